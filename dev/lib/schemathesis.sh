# Property-based API testing of billing with schemathesis (from PyPI, in a cached venv): the
# generated requests must never get a 5xx or a reset connection, and every answer must match
# the OpenAPI document billing serves.
# shellcheck shell=bash

: "${SCHEMATHESIS_VERSION:=4.32.5}"
: "${SCHEMATHESIS_MAX_EXAMPLES:=500}"
: "${EP_SCHEMATHESIS_PORT:=18180}"

schemathesis_bin() { echo "$EP_CACHE/venv/schemathesis-$SCHEMATHESIS_VERSION/bin/st"; }

ensure_schemathesis() {
    [ -x "$(schemathesis_bin)" ] && return 0
    log "installing schemathesis $SCHEMATHESIS_VERSION into $EP_CACHE/venv"
    local venv="$EP_CACHE/venv/schemathesis-$SCHEMATHESIS_VERSION"
    rm -rf "$venv"
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"; } \
        >"$EP_LOGS/schemathesis-install.log" 2>&1 ||
        start_failed schemathesis "$EP_LOGS/schemathesis-install.log" "pip install failed"
}

# Starts billing on a database of its own, runs schemathesis against it, stops billing.
run_schemathesis() {
    ensure_schemathesis
    local stamp database billing_bin
    stamp=$(date +%s)
    database="schemathesis_$stamp"
    billing_bin="${CARGO_TARGET_DIR:-$EP_CACHE/cargo-target}/debug/billing"
    cargo build --locked -q -p billing || return 1
    psql "$EP_POSTGRES_URL" -qc "CREATE DATABASE $database" >/dev/null || return 1
    require_free_port "$EP_SCHEMATHESIS_PORT" "billing (schemathesis)" EP_SCHEMATHESIS_PORT

    local logfile="$EP_LOGS/billing-schemathesis.log"
    BIND_ADDRESS="127.0.0.1:$EP_SCHEMATHESIS_PORT" \
        DATABASE_URL="postgres://postgres@127.0.0.1:$EP_POSTGRES_PORT/$database" \
        KAFKA_BOOTSTRAP_SERVERS="$EP_KAFKA_BOOTSTRAP" KAFKA_TOPIC="schemathesis-$stamp" \
        "$billing_bin" >"$logfile" 2>&1 &
    record_pid billing-schemathesis $!
    wait_until billing-schemathesis 60 "$logfile" \
        curl -sf "http://127.0.0.1:$EP_SCHEMATHESIS_PORT/healthz"

    local status=0
    (cd "$EP_RUN" && "$(schemathesis_bin)" run \
        "http://127.0.0.1:$EP_SCHEMATHESIS_PORT/api/openapi.json" \
        --max-examples "$SCHEMATHESIS_MAX_EXAMPLES" --seed 20261203 \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance) ||
        status=$?
    stop_pid billing-schemathesis 20
    return $status
}
