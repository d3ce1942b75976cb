#!/usr/bin/env bash
# Builds one Go program hoststream runs from the Go module proxy into
# $LIB/<tool>/<binary>:
#   jaeger           the v2 single binary (`cmd/jaeger`), the local stack's trace
#                    store (hoststream/stack/jaeger.py)
#   victorialogs     VictoriaLogs (Apache-2.0), the local stack's log store
#                    (hoststream/stack/victorialogs.py); Loki is AGPL and not built here
#   victoriametrics  VictoriaMetrics single-node with its built-in UI, vmui (the
#                    module carries the built UI; Debian's package has none);
#                    the stack runs it instead of Debian's once it is built
#   helm             renders and lints deploy/helm/hoststream (CI)
#   docker-compose   Docker Compose v2, whose `config` validates
#                    docker-compose.kafka.yml without a Docker engine (CI);
#                    Debian's 1.29 rejects the Compose specification's `name`
#
# Why build them: the project reaches package registries only, and each is a Go
# module there. The scratch module lives under $STATE/build/<tool> so its
# go.sum and the Go caches survive between runs. Idempotent: does nothing when
# the binary of the pinned version is in place. While it works it holds an
# exclusive flock on $STATE/build/<tool>.lock: a second caller waits for the
# first and then finds the binary, and the stack (hoststream/stack/builds.py)
# reads the lock as "building". `make install` starts the stores' builds in
# the background.
#
# Usage: build-go-tool.sh jaeger|victorialogs|victoriametrics|helm|docker-compose
# Environment: HOSTSTREAM_<TOOL>_VERSION (HOSTSTREAM_JAEGER_VERSION,
# HOSTSTREAM_VICTORIALOGS_VERSION, HOSTSTREAM_VICTORIAMETRICS_VERSION,
# HOSTSTREAM_HELM_VERSION, HOSTSTREAM_COMPOSE_VERSION; defaults below),
# HOSTSTREAM_STATE_DIR, HOSTSTREAM_LIB_DIR, and the usual Go variables
# (GOMODCACHE, GOCACHE, GOPROXY).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${HOSTSTREAM_STATE_DIR:-$ROOT/.hoststream}
LIB=${HOSTSTREAM_LIB_DIR:-$STATE/lib}

tool=${1:-}
say() { printf 'build-%s: %s\n' "$tool" "$*" >&2; }
die() { printf 'hoststream build-go-tool: %s\n' "$*" >&2; exit 1; }

# Per tool: the pinned version, the module, the main package, the binary's
# name, and the link flags (-s -w: a smaller binary; the -X flags set what the
# program prints as its version, which is otherwise empty in a module build).
cgo=${CGO_ENABLED:-}
case "$tool" in
  jaeger)
    version=${HOSTSTREAM_JAEGER_VERSION:-v1.76.0}
    module=github.com/jaegertracing/jaeger
    package=$module/cmd/jaeger
    binary=jaeger
    ldflags="-s -w -X $module/internal/version.latestVersion=$version"
    ;;
  victorialogs)
    version=${HOSTSTREAM_VICTORIALOGS_VERSION:-v1.52.2}
    module=github.com/VictoriaMetrics/VictoriaLogs
    package=$module/app/victoria-logs
    binary=victoria-logs
    ldflags="-s -w"
    ;;
  victoriametrics)
    # v1.151.0: the newest release whose go.mod asks for no newer Go than 1.26
    # (later ones make the go command fetch a 1.27 toolchain first).
    version=${HOSTSTREAM_VICTORIAMETRICS_VERSION:-v1.151.0}
    module=github.com/VictoriaMetrics/VictoriaMetrics
    package=$module/app/victoria-metrics
    binary=victoria-metrics
    ldflags="-s -w -X $module/lib/buildinfo.Version=victoria-metrics-tags-$version"
    # Its pure-Go zstd, as VictoriaMetrics' own "-pure" builds: no C compiler needed.
    cgo=${CGO_ENABLED:-0}
    ;;
  helm)
    version=${HOSTSTREAM_HELM_VERSION:-v3.19.5}
    module=helm.sh/helm/v3
    package=$module/cmd/helm
    binary=helm
    # What `helm version` prints; without it helm reports v3 with no patch.
    ldflags="-s -w -X $module/internal/version.version=$version"
    ;;
  docker-compose)
    version=${HOSTSTREAM_COMPOSE_VERSION:-v2.40.3}
    module=github.com/docker/compose/v2
    package=$module/cmd
    binary=docker-compose
    ldflags="-s -w -X $module/internal.Version=$version"
    ;;
  *) die "usage: build-go-tool.sh jaeger|victorialogs|victoriametrics|helm|docker-compose" ;;
esac

BUILD=$STATE/build/$tool
OUT=$LIB/$tool
up_to_date() { [ -x "$OUT/$binary" ] && [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$version" ]; }
up_to_date && exit 0

mkdir -p "$STATE/build"
exec 9>"$STATE/build/$tool.lock"
flock 9
# Another caller may have built it while this one waited for the lock.
up_to_date && exit 0
case "$tool" in
  jaeger | victorialogs | victoriametrics)
    # The stores are built one at a time: each build uses every core, the
    # first one joins the stack sooner, and later ones find the packages they
    # share with it in the Go build cache.
    exec 8>"$STATE/build/go-stores.lock"
    flock -n 8 || { say "waiting for another store's build to finish"; flock 8; }
    ;;
esac

command -v go >/dev/null 2>&1 || die "Go is missing; install Go 1.24+ (https://go.dev/doc/install or apt-get install golang)"

say "$tool $version from the Go module proxy into $OUT (minutes on a cold cache)"
started=$(date +%s)
mkdir -p "$BUILD" "$OUT"
cd "$BUILD"
# The version is part of the module's requirement, so a new version rewrites go.mod.
[ -f go.mod ] || go mod init "hoststream.local/$tool-build" 2>/dev/null \
  || die "go mod init failed in $BUILD"
go get -tool "$package@$version"
# -trimpath: no paths of this machine in the binary.
${cgo:+env CGO_ENABLED=$cgo} go build -trimpath -ldflags "$ldflags" -o "$OUT/$binary.tmp" "$package"
mv -f "$OUT/$binary.tmp" "$OUT/$binary"
printf '%s\n' "$version" >"$OUT/VERSION"
say "built $OUT/$binary in $(( $(date +%s) - started ))s"
