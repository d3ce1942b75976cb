#!/usr/bin/env bash
# Installs what hoststream needs on this machine: Debian packages, the Python
# virtual env, and the Kafka, MirrorMaker 2 and schema-registry jars from Maven Central.
# Idempotent: a second run finds everything in place and does no network work.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${HOSTSTREAM_STATE_DIR:-$ROOT/.hoststream}
LIB=${HOSTSTREAM_LIB_DIR:-$STATE/lib}
VENV=$ROOT/.venv
KAFKA_VERSION=4.1.1
APICURIO_VERSION=3.3.3
MVN_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1
# uv (from PyPI) installs the pinned packages about ten times faster than pip
# on a cold cache; pip remains the fallback (HOSTSTREAM_INSTALL_WITH=pip forces it).
UV_VERSION=0.13.8
TOOLS=$STATE/tools

say() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'hoststream install: %s\n' "$*" >&2; exit 1; }
since() { printf '%ss' "$(( $(date +%s) - $1 ))"; }

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
# Building Jaeger, VictoriaLogs and VictoriaMetrics from the Go module proxy
# takes minutes on a cold cache; the builds run while the rest installs and the
# stack starts, one at a time (build-go-tool.sh), at a lower CPU priority than
# the pipeline's first start, and each store joins when built (the stack waits
# for Jaeger and VictoriaLogs only where it must: `make test`). Nothing starts
# when a binary is up to date; a build already under way is not started twice
# (flock).
background_build() {
  local name=$1 binary=$2; shift 2
  mkdir -p "$STATE/logs" "$STATE/build"
  [ -x "$binary" ] || say "building $name in the background (log: $STATE/logs/build-$name.log)"
  # One queue per name: a second `make` while the first one's builds still
  # run leaves them to it instead of queueing the same builds again.
  HOSTSTREAM_STATE_DIR=$STATE HOSTSTREAM_LIB_DIR=$LIB setsid nohup nice -n 5 bash -c '
    exec 7>"$HOSTSTREAM_STATE_DIR/build/queue-$1.lock"; flock -n 7 || exit 0; shift
    for tool; do bash "$0/build-go-tool.sh" "$tool" || true; done
  ' "$ROOT/deploy/local" "$name" "$@" >>"$STATE/logs/build-$name.log" 2>&1 </dev/null &
}
command -v go >/dev/null 2>&1 || die "Go is missing; install Go 1.24+ (apt-get install golang)"
background_build jaeger "$LIB/jaeger/jaeger" jaeger
background_build victorialogs "$LIB/victorialogs/victoria-logs" victorialogs
# VictoriaMetrics with its UI (vmui), last: after the two stores above (each
# call waits for, or finds, the one before); the stack runs Debian's until then.
background_build victoriametrics "$LIB/victoriametrics/victoria-metrics" \
  jaeger victorialogs victoriametrics

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
# Both downloads run at once and while the Python packages install (they wait
# on the network and Maven, the installer on the CPU); the script waits for
# them before it says ready.
# The runtime dependencies of deploy/local/maven/NAME.xml into $LIB/NAME, by
# way of NAME.tmp, so that an interrupted fetch leaves no half folder that
# the next run would take for done. Args: NAME, what it is (for the log), and
# the jar that is there once the folder is complete.
maven_jars() {
  local name=$1 what=$2 marker=$3 started
  [ -f "$LIB/$name/$marker" ] && return 0
  started=$(date +%s)
  say "$what $KAFKA_VERSION jars into $LIB/$name (Maven cache: ~/.m2)"
  rm -rf "$LIB/$name.tmp"
  mvn -q -B -Dstyle.color=never -f "$ROOT/deploy/local/maven/$name.xml" "$MVN_DEP_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$LIB/$name.tmp"
  rm -rf "$LIB/$name" && mv "$LIB/$name.tmp" "$LIB/$name"
  say "$what jars in $(since "$started")"
}
kafka_jars() { maven_jars kafka Kafka "kafka_2.13-$KAFKA_VERSION.jar"; }

# Apicurio Registry (Confluent-compatible schema registry)
registry_jars() {
  [ -f "$LIB/apicurio/quarkus-run.jar" ] && return 0
  local started; started=$(date +%s)
  say "Apicurio Registry $APICURIO_VERSION into $LIB/apicurio"
  rm -rf "$LIB/apicurio.tmp" && mkdir -p "$LIB/apicurio.tmp"
  mvn -q -B -Dstyle.color=never "$MVN_DEP_PLUGIN:copy" \
    -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
    -DoutputDirectory="$LIB/apicurio.tmp"
  tar -xzf "$LIB/apicurio.tmp/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$LIB/apicurio.tmp"
  rm -f "$LIB/apicurio.tmp/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
  rm -rf "$LIB/apicurio" && mv "$LIB/apicurio.tmp" "$LIB/apicurio"
  say "Apicurio Registry in $(since "$started")"
}
# Kafka's MirrorMaker 2 (connect-mirror and the Connect runtime), for `stack up --regions 2`
mirrormaker_jars() { maven_jars mirrormaker "MirrorMaker 2" "connect-mirror-$KAFKA_VERSION.jar"; }
kafka_jars &
kafka_pid=$!
registry_jars &
registry_pid=$!
mirrormaker_jars &
mirrormaker_pid=$!

# --- Python virtual env -----------------------------------------------------
# uv, in a folder of its own (not in the virtual env, which holds exactly the
# pinned packages), fetched by the Python's own pip when it has one, else by a
# virtual env's; prints its path, or nothing when it cannot be had.
find_uv() {
  [ "${HOSTSTREAM_INSTALL_WITH:-uv}" = pip ] && return 0
  local dir=$TOOLS/uv-$UV_VERSION pip
  if [ ! -x "$dir/bin/uv" ]; then
    pip=$PYTHON
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
      [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" >&2 || return 0
      pip=$VENV/bin/python
    fi
    rm -rf "$dir.tmp"
    # --target installs into a folder, which an externally managed Python allows too.
    PIP_ROOT_USER_ACTION=ignore "$pip" -m pip install -q --no-compile --disable-pip-version-check \
      --target "$dir.tmp" "uv==$UV_VERSION" >&2 || { rm -rf "$dir.tmp"; return 0; }
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  printf '%s\n' "$dir/bin/uv"
}

stamp_key=$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" 2>/dev/null | sha256sum | cut -c1-16)
stamp=$VENV/.hoststream-installed-$stamp_key
if [ ! -f "$stamp" ]; then
  started=$(date +%s)
  say "Python packages into $VENV"
  uv=$(find_uv)
  # Neither installer byte-compiles the whole dependency tree up front (a
  # minute of CPU on a small machine); Python writes .pyc files as modules
  # are first imported. Both install exactly the pins of constraints.txt.
  # uv makes the env too, with pip in it (`make bench` and users need it):
  # seconds, where `python -m venv` byte-compiles its own pip first.
  if [ -n "$uv" ] && { [ -x "$VENV/bin/python" ] || "$uv" venv -q --seed --python "$PYTHON" "$VENV"; } \
    && "$uv" pip install -q --python "$VENV/bin/python" --link-mode copy \
      -c "$ROOT/constraints.txt" -e "$ROOT[dev]"; then
    say "Python packages installed with uv $UV_VERSION in $(since "$started")"
  else
    [ -n "$uv" ] && say "uv failed; installing with pip instead"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --no-compile --disable-pip-version-check --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q --no-compile --disable-pip-version-check \
      -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
    say "Python packages installed with pip in $(since "$started")"
  fi
  rm -f "$VENV"/.hoststream-installed-*
  touch "$stamp"
fi

wait "$kafka_pid" || die "fetching the Kafka jars failed; see the lines above"
wait "$registry_pid" || die "fetching the schema registry failed; see the lines above"
wait "$mirrormaker_pid" || die "fetching the MirrorMaker 2 jars failed; see the lines above"

# The registry needs Java 21+ (Apicurio 3.3 is built for it); say so now, not
# at start. The JDKs looked at are those of hoststream/stack/java.py, read the
# same way (their `release` file), without starting Python.
java_at_least() {
  local home version
  for home in ${HOSTSTREAM_JAVA_HOME:-} ${JAVA_HOME:-} \
    "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /usr/lib/jvm/*; do
    [ -x "$home/bin/java" ] && [ -f "$home/release" ] || continue
    version=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release")
    [ -n "$version" ] && [ "$version" -ge "$1" ] && return 0
  done
  return 1
}
java_at_least 21 || die "the schema registry needs Java 21+; install one or set HOSTSTREAM_JAVA_HOME"

say "ready"
