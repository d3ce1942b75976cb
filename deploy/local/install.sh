#!/usr/bin/env bash
# Installs what hoststream needs on this machine: Debian packages, the Python
# virtual env, and the Kafka and schema-registry jars from Maven Central.
# Idempotent: a second run finds everything in place and does no network work.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${HOSTSTREAM_STATE_DIR:-$ROOT/.hoststream}
LIB=${HOSTSTREAM_LIB_DIR:-$STATE/lib}
VENV=$ROOT/.venv
KAFKA_VERSION=4.1.1
APICURIO_VERSION=3.3.3
MVN_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1

say() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'hoststream install: %s\n' "$*" >&2; exit 1; }

# --- prerequisites: one clear line each -----------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
[ -n "$PYTHON" ] || die "Python 3.11+ is missing; install python3.11 (apt-get install python3.11 python3.11-venv)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11+ is needed, $PYTHON is $("$PYTHON" -V 2>&1); set PYTHON=/path/to/python3.11"
command -v java >/dev/null 2>&1 || die "Java 17+ is missing; install a JDK (apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null 2>&1 || die "Maven is missing; install it (apt-get install maven)"

# --- Stores built from source, in the background ---------------------------
# Building Jaeger and VictoriaLogs from the Go module proxy takes minutes on a cold cache; each
# runs while the rest installs and the stack starts, and joins when built (the
# stack waits for it only where it must: `make test`). Nothing starts when the
# binary is up to date; a build already under way is not started twice (flock).
background_build() {
  local name=$1 binary=$2
  mkdir -p "$STATE/logs"
  [ -x "$binary" ] || say "building $name in the background (log: $STATE/logs/build-$name.log)"
  HOSTSTREAM_STATE_DIR=$STATE HOSTSTREAM_LIB_DIR=$LIB \
    setsid nohup bash "$ROOT/deploy/local/build-$name.sh" >>"$STATE/logs/build-$name.log" 2>&1 </dev/null &
}
command -v go >/dev/null 2>&1 || die "Go is missing; install Go 1.24+ (apt-get install golang)"
background_build jaeger "$LIB/jaeger/jaeger"
background_build victorialogs "$LIB/victorialogs/victoria-logs"

# --- Debian packages: the servers the stack runs ---------------------------
missing=()
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
# node_exporter 1.5.0: the reference the collectors are tested against (never run as a service).
command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "Debian packages missing: ${missing[*]}; run as root: apt-get install ${missing[*]}"
  fi
  say "apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  # The packages' own services are not wanted: hoststream starts its own on loopback.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  for svc in victoria-metrics postgresql prometheus-alertmanager prometheus-node-exporter; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# --- Java jars from Maven Central, beside the Python install ---------------
# Both steps run while pip works (they wait on the network and Maven, pip on
# the CPU); the script waits for them before it says ready.
jars() {
# --- Kafka broker jars
if [ ! -f "$LIB/kafka/kafka_2.13-$KAFKA_VERSION.jar" ]; then
  say "Kafka $KAFKA_VERSION jars into $LIB/kafka (Maven cache: ~/.m2)"
  rm -rf "$LIB/kafka.tmp"
  mvn -q -B -Dstyle.color=never -f "$ROOT/deploy/local/maven/kafka.xml" "$MVN_DEP_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$LIB/kafka.tmp"
  rm -rf "$LIB/kafka" && mv "$LIB/kafka.tmp" "$LIB/kafka"
fi

# --- Apicurio Registry (Confluent-compatible schema registry)
if [ ! -f "$LIB/apicurio/quarkus-run.jar" ]; then
  say "Apicurio Registry $APICURIO_VERSION into $LIB/apicurio"
  rm -rf "$LIB/apicurio.tmp" && mkdir -p "$LIB/apicurio.tmp"
  mvn -q -B -Dstyle.color=never "$MVN_DEP_PLUGIN:copy" \
    -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
    -DoutputDirectory="$LIB/apicurio.tmp"
  tar -xzf "$LIB/apicurio.tmp/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$LIB/apicurio.tmp"
  rm -f "$LIB/apicurio.tmp/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
  rm -rf "$LIB/apicurio" && mv "$LIB/apicurio.tmp" "$LIB/apicurio"
fi
}
jars &
jars_pid=$!

# --- Python virtual env -----------------------------------------------------
stamp_key=$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" 2>/dev/null | sha256sum | cut -c1-16)
stamp=$VENV/.hoststream-installed-$stamp_key
if [ ! -f "$stamp" ]; then
  say "Python packages into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # --no-compile: no .pyc for the whole dependency tree up front (a minute of
  # CPU on a small machine); Python writes them as modules are first imported.
  "$VENV/bin/python" -m pip install -q --no-compile --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --no-compile --disable-pip-version-check \
    -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
  rm -f "$VENV"/.hoststream-installed-*
  touch "$stamp"
fi

wait "$jars_pid" || die "fetching the Kafka or schema-registry jars failed; see the lines above"

# The registry needs Java 21+ (Apicurio 3.3 is built for it); say so now, not at start.
"$VENV/bin/python" -c 'from hoststream.stack.java import find_java; find_java(21)' \
  || die "the schema registry needs Java 21+; install one or set HOSTSTREAM_JAVA_HOME"

say "ready"
