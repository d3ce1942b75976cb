#!/usr/bin/env bash
# Builds VictoriaLogs from the Go module proxy into
# $LIB/victorialogs/victoria-logs: the victorialogs entry of build-go-tool.sh
# (same environment, lock and idempotence).
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-go-tool.sh" victorialogs
