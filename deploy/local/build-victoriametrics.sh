#!/usr/bin/env bash
# Builds VictoriaMetrics single-node, with its UI (vmui), from the Go module
# proxy into $LIB/victoriametrics/victoria-metrics: the victoriametrics entry of
# build-go-tool.sh (same environment, lock and idempotence).
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-go-tool.sh" victoriametrics
