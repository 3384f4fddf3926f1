# Shared helpers for the dev scripts: where things live, logging, ports, process ids.
#
# Layout (both outside the checkout):
#   EP_CACHE  downloads and builds, keyed by version; survives between runs.
#   EP_RUN    throwaway state of the running services: data/, logs/, pids/ and the env file
#             that tests and tools source.
# shellcheck shell=bash

EP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../versions.env
source "$EP_ROOT/dev/versions.env"

: "${EP_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/energy-platform}"
# The run folder must be reachable by the postgres user, so it lives under /tmp.
: "${EP_RUN:=/tmp/energy-platform}"
EP_LOGS="$EP_RUN/logs"
EP_PIDS="$EP_RUN/pids"
EP_DATA="$EP_RUN/data"
EP_ENV_FILE="$EP_RUN/env"
EP_BIN="$EP_CACHE/bin"
export EP_CACHE EP_RUN

# Go and Maven keep their caches beside the builds, never in the checkout.
export GOMODCACHE="$EP_CACHE/go/mod"
export GOCACHE="$EP_CACHE/go/build"
export GOFLAGS="-buildvcs=false"
EP_M2="$EP_CACHE/m2"

mkdir -p "$EP_CACHE" "$EP_BIN" "$EP_LOGS" "$EP_PIDS" "$EP_DATA"

log() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }
die() {
    printf '\033[1;31m[dev] error:\033[0m %s\n' "$*" >&2
    exit 1
}

# Runs apt-get install for the packages that are missing, once per machine. Services that a
# package would start on its own are kept from starting (policy-rc.d), since the scripts start
# their own instances on other ports.
apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    local lists=(/var/lib/apt/lists/*Packages*)
    [ -e "${lists[0]}" ] || apt-get update -qq >"$EP_LOGS/apt.log" 2>&1
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >>"$EP_LOGS/apt.log" 2>&1; then
        apt-get update -qq >>"$EP_LOGS/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >>"$EP_LOGS/apt.log" 2>&1 || {
            [ $made_policy -eq 1 ] && rm -f "$policy"
            tail -n 30 "$EP_LOGS/apt.log" >&2
            die "apt-get install ${missing[*]} failed (log: $EP_LOGS/apt.log)"
        }
    fi
    [ $made_policy -eq 1 ] && rm -f "$policy"
    return 0
}

# True when something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuses to start a service on a port that something else already holds, naming the holder.
require_free_port() {
    local port=$1 service=$2 var=$3
    if port_open "$port"; then
        local holder
        holder=$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\)).*/\1/p')
        die "$service cannot start: 127.0.0.1:$port is already in use${holder:+ by $holder}." \
            "Stop that process or choose another port with $var=<port>."
    fi
}

pid_file() { echo "$EP_PIDS/$1.pid"; }

# Prints the recorded pid of a service when that process still runs.
running_pid() {
    local file pid
    file=$(pid_file "$1")
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
        return 0
    fi
    rm -f "$file"
    return 1
}

record_pid() { echo "$2" >"$(pid_file "$1")"; }

# Waits until CHECK (a command) succeeds; on timeout prints the end of the service's log and
# fails. Also fails early when the recorded process has died.
wait_until() {
    local service=$1 timeout=$2 logfile=$3
    shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ -f "$(pid_file "$service")" ] && ! running_pid "$service" >/dev/null; then
            start_failed "$service" "$logfile" "the process exited"
        fi
        if [ $SECONDS -ge $deadline ]; then
            start_failed "$service" "$logfile" "no answer within ${timeout}s"
        fi
        sleep 0.3
    done
}

start_failed() {
    local service=$1 logfile=$2 why=$3
    printf '\033[1;31m[dev] %s failed to start: %s. Last lines of %s:\033[0m\n' \
        "$service" "$why" "$logfile" >&2
    tail -n 40 "$logfile" >&2 2>/dev/null || true
    exit 1
}

# Sends TERM to a recorded process, waits, then KILL after the grace period. A process the
# scripts started with setsid leads its own process group, which holds only what it started
# (RabbitMQ's shell wrapper and its Erlang VM, for example); the whole group is signalled.
stop_pid() {
    local service=$1 grace=${2:-20} pid target
    pid=$(running_pid "$service") || return 0
    target=$pid
    [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ] && target=-$pid
    kill -TERM -- "$target" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while kill -0 -- "$target" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            log "$service (pid $pid) did not stop within ${grace}s; sending KILL"
            kill -KILL -- "$target" 2>/dev/null || true
        fi
        sleep 0.2
    done
    rm -f "$(pid_file "$service")"
    log "$service stopped (pid $pid)"
}
