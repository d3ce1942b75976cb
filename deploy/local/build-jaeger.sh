#!/usr/bin/env bash
# Builds Jaeger from the Go module proxy into $LIB/jaeger/jaeger: the jaeger
# entry of build-go-tool.sh (same environment, lock and idempotence).
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-go-tool.sh" jaeger
