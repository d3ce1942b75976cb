#!/usr/bin/env bash
# Builds Jaeger (the v2 single binary, `cmd/jaeger`) from the Go module proxy into
# $LIB/jaeger/jaeger, for the local stack's trace backend (hoststream/stack/jaeger.py).
#
# Why build it: the project reaches package registries only, and Jaeger is a Go
# module there; Tempo and Loki are AGPL and are not built here (docs/observability.md).
# The scratch module lives under $STATE/build/jaeger so its go.sum and the Go
# caches survive between runs. Idempotent: does nothing when the binary of this
# version is already in place. While it works it holds an exclusive flock on
# $STATE/build/jaeger.lock: a second caller waits for the first and then finds
# the binary, and the stack (hoststream/stack/builds.py) reads the lock as
# "building". `make install` starts it in the background.
#
# Environment: HOSTSTREAM_JAEGER_VERSION (default below), HOSTSTREAM_STATE_DIR,
# HOSTSTREAM_LIB_DIR, and the usual Go variables (GOMODCACHE, GOCACHE, GOPROXY).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${HOSTSTREAM_STATE_DIR:-$ROOT/.hoststream}
LIB=${HOSTSTREAM_LIB_DIR:-$STATE/lib}
JAEGER_VERSION=${HOSTSTREAM_JAEGER_VERSION:-v1.76.0}
MODULE=github.com/jaegertracing/jaeger
BUILD=$STATE/build/jaeger
OUT=$LIB/jaeger

say() { printf 'build-jaeger: %s\n' "$*" >&2; }
die() { printf 'hoststream build-jaeger: %s\n' "$*" >&2; exit 1; }

up_to_date() { [ -x "$OUT/jaeger" ] && [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$JAEGER_VERSION" ]; }
up_to_date && exit 0

mkdir -p "$STATE/build"
exec 9>"$STATE/build/jaeger.lock"
flock 9
# Another caller may have built it while this one waited for the lock.
up_to_date && exit 0

command -v go >/dev/null 2>&1 || die "Go is missing; install Go 1.24+ (https://go.dev/doc/install or apt-get install golang)"

say "Jaeger $JAEGER_VERSION from the Go module proxy into $OUT (a few minutes on a cold cache)"
started=$(date +%s)
mkdir -p "$BUILD" "$OUT"
cd "$BUILD"
# The version is part of the module path's requirement, so a new version rewrites go.mod.
[ -f go.mod ] || go mod init hoststream.local/jaeger-build 2>/dev/null \
  || die "go mod init failed in $BUILD"
go get -tool "$MODULE/cmd/jaeger@$JAEGER_VERSION"
# -trimpath and -s -w: a smaller binary with no paths of this machine in it.
# The version ldflag is what `jaeger version` and the UI's footer print.
go build -trimpath \
  -ldflags "-s -w -X $MODULE/internal/version.latestVersion=$JAEGER_VERSION" \
  -o "$OUT/jaeger.tmp" "$MODULE/cmd/jaeger"
mv -f "$OUT/jaeger.tmp" "$OUT/jaeger"
printf '%s\n' "$JAEGER_VERSION" >"$OUT/VERSION"
say "built $OUT/jaeger in $(( $(date +%s) - started ))s"
