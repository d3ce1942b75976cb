#!/usr/bin/env bash
# Builds VictoriaLogs (Apache-2.0; `app/victoria-logs` of the Go module
# github.com/VictoriaMetrics/VictoriaLogs) from the Go module proxy into
# $LIB/victorialogs/victoria-logs, for the local stack's log store
# (hoststream/stack/victorialogs.py). It accepts the Loki push API, which every
# hoststream component ships its logs to; Loki itself is AGPL and not built here.
#
# Same rules as build-jaeger.sh: the scratch module lives under
# $STATE/build/victorialogs, the build holds an exclusive flock on
# $STATE/build/victorialogs.lock, and nothing happens when the binary of this
# version is in place. `make install` starts it in the background.
#
# Environment: HOSTSTREAM_VICTORIALOGS_VERSION (default below),
# HOSTSTREAM_STATE_DIR, HOSTSTREAM_LIB_DIR, and the usual Go variables.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${HOSTSTREAM_STATE_DIR:-$ROOT/.hoststream}
LIB=${HOSTSTREAM_LIB_DIR:-$STATE/lib}
VERSION=${HOSTSTREAM_VICTORIALOGS_VERSION:-v1.52.2}
MODULE=github.com/VictoriaMetrics/VictoriaLogs
BUILD=$STATE/build/victorialogs
OUT=$LIB/victorialogs

say() { printf 'build-victorialogs: %s\n' "$*" >&2; }
die() { printf 'hoststream build-victorialogs: %s\n' "$*" >&2; exit 1; }

up_to_date() { [ -x "$OUT/victoria-logs" ] && [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$VERSION" ]; }
up_to_date && exit 0

mkdir -p "$STATE/build"
exec 9>"$STATE/build/victorialogs.lock"
flock 9
up_to_date && exit 0

command -v go >/dev/null 2>&1 || die "Go is missing; install Go 1.24+ (apt-get install golang)"

say "VictoriaLogs $VERSION from the Go module proxy into $OUT (minutes on a cold cache)"
started=$(date +%s)
mkdir -p "$BUILD" "$OUT"
cd "$BUILD"
[ -f go.mod ] || go mod init hoststream.local/victorialogs-build 2>/dev/null \
  || die "go mod init failed in $BUILD"
go get -tool "$MODULE/app/victoria-logs@$VERSION"
go build -trimpath -ldflags "-s -w" -o "$OUT/victoria-logs.tmp" "$MODULE/app/victoria-logs"
mv -f "$OUT/victoria-logs.tmp" "$OUT/victoria-logs"
printf '%s\n' "$VERSION" >"$OUT/VERSION"
say "built $OUT/victoria-logs in $(( $(date +%s) - started ))s"
