#!/usr/bin/env bash
# What `make bench` needs beyond `make install`: plotting and profiling packages,
# Kafka's own tools (ProducerPerformance), a real node_exporter as a peer, and
# Quix Streams, Bytewax and Pathway as peers, each in a virtualenv of its own
# (Quix needs an older confluent-kafka and pydantic than hoststream pins).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIB=${HOSTSTREAM_LIB_DIR:-$ROOT/.hoststream/lib}
VENV=$ROOT/.venv

stamp=$VENV/.hoststream-bench-installed
if [ ! -f "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT[bench]"
  touch "$stamp"
fi
QUIX=$ROOT/.hoststream/bench-quix
if [ ! -f "$QUIX/.installed-3.28.1" ]; then
  rm -rf "$QUIX"
  "$VENV/bin/python" -m venv "$QUIX"
  "$QUIX/bin/python" -m pip install -q "quixstreams==3.28.1" "fastavro==1.13.1"
  touch "$QUIX/.installed-3.28.1"
fi
for peer in "bytewax:bytewax[kafka]==0.21.1" "pathway:pathway==0.33.0"; do
  name=${peer%%:*}
  spec=${peer#*:}
  PEER=$ROOT/.hoststream/bench-$name
  if [ ! -f "$PEER/.installed-${spec##*==}" ]; then
    rm -rf "$PEER"
    "$VENV/bin/python" -m venv "$PEER"
    "$PEER/bin/python" -m pip install -q "$spec" "fastavro==1.13.1"
    touch "$PEER/.installed-${spec##*==}"
  fi
done
if [ ! -f "$LIB/kafka-tools/kafka-tools-4.1.1.jar" ]; then
  rm -rf "$LIB/kafka-tools.tmp"
  mvn -q -B -Dstyle.color=never -f "$ROOT/deploy/local/maven/kafka-tools.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIB/kafka-tools.tmp"
  rm -rf "$LIB/kafka-tools" && mv "$LIB/kafka-tools.tmp" "$LIB/kafka-tools"
fi
if ! command -v prometheus-node-exporter >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "run as root: apt-get install prometheus-node-exporter" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-node-exporter >/dev/null
  service prometheus-node-exporter stop >/dev/null 2>&1 || true
fi
