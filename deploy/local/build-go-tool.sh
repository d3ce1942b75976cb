#!/usr/bin/env bash
# Builds one of the deployment checkers CI runs from the Go module proxy into
# $LIB/<tool>/<tool>: `helm` (renders and lints deploy/helm/hoststream) and
# `docker-compose` (Docker Compose v2, whose `config` validates
# docker-compose.kafka.yml without a Docker engine).
#
# Why build them: the project reaches package registries only, and both are Go
# modules there; Debian's docker-compose is 1.29, which rejects the Compose
# specification's top-level `name`. The scratch module lives under
# $STATE/build/<tool> so its go.sum and the Go caches survive between runs.
# Idempotent: does nothing when the binary of the pinned version is in place.
#
# Usage: build-go-tool.sh helm|docker-compose
# Environment: HOSTSTREAM_HELM_VERSION, HOSTSTREAM_COMPOSE_VERSION (defaults
# below), HOSTSTREAM_STATE_DIR, HOSTSTREAM_LIB_DIR, and the usual Go variables.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${HOSTSTREAM_STATE_DIR:-$ROOT/.hoststream}
LIB=${HOSTSTREAM_LIB_DIR:-$STATE/lib}

say() { printf 'build-go-tool: %s\n' "$*" >&2; }
die() { printf 'hoststream build-go-tool: %s\n' "$*" >&2; exit 1; }

tool=${1:-}
case "$tool" in
  helm)
    version=${HOSTSTREAM_HELM_VERSION:-v3.19.5}
    module=helm.sh/helm/v3
    package=$module/cmd/helm
    # What `helm version` prints; without it helm reports v3 with no patch.
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
    ;;
  docker-compose)
    version=${HOSTSTREAM_COMPOSE_VERSION:-v2.40.3}
    module=github.com/docker/compose/v2
    package=$module/cmd
    ldflags="-s -w -X github.com/docker/compose/v2/internal.Version=$version"
    ;;
  *) die "usage: build-go-tool.sh helm|docker-compose" ;;
esac

BUILD=$STATE/build/$tool
OUT=$LIB/$tool
if [ -x "$OUT/$tool" ] && [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || die "Go is missing; install Go 1.24+ (https://go.dev/doc/install or apt-get install golang)"

say "$tool $version from the Go module proxy into $OUT (minutes on a cold cache)"
started=$(date +%s)
mkdir -p "$BUILD" "$OUT"
cd "$BUILD"
[ -f go.mod ] || go mod init "hoststream.local/$tool-build" 2>/dev/null || die "go mod init failed in $BUILD"
go get -tool "$package@$version"
go build -trimpath -ldflags "$ldflags" -o "$OUT/$tool.tmp" "$package"
mv -f "$OUT/$tool.tmp" "$OUT/$tool"
printf '%s\n' "$version" >"$OUT/VERSION"
say "built $OUT/$tool in $(( $(date +%s) - started ))s"
