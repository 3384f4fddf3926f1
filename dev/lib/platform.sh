# The platform's own processes on this machine: the carbon function, billing and the
# recommender, configured from dev/platform.yaml the way the operator configures them in a
# cluster (the topic and RabbitMQ topology are converged by `operator provision`, the
# recommender's thresholds come from `operator thresholds`).
# shellcheck shell=bash

EP_APPS=(carbon-calculator billing recommender)
: "${EP_BILLING_PORT:=18080}"
: "${EP_CARBON_PORT:=18081}"
: "${EP_RECOMMENDER_PORT:=18082}"
: "${EP_PLATFORM_FILE:=$EP_ROOT/dev/platform.yaml}"
: "${EP_PLATFORM_DB:=energy}"
# Consumer group of the recommender; another group (as dev/test's browser run uses) reads the
# topic on its own without taking partitions from a running dev/up.
: "${EP_RECOMMENDER_GROUP:=recommender}"

# `dev/up` runs release builds, as a deployment would; dev/test's browser run sets `debug` to
# reuse the test build.
: "${EP_BUILD_PROFILE:=release}"

cargo_target() { echo "${CARGO_TARGET_DIR:-$EP_CACHE/cargo-target}"; }
# EP_BIN_DIR runs binaries from elsewhere (a benchmark comparing two builds).
app_bin() { echo "${EP_BIN_DIR:-$(cargo_target)/$EP_BUILD_PROFILE}/$1"; }

# The web page's assets from the pinned npm packages of web/package-lock.json.
web_build() {
    log "building the web page (npm ci, npm run build)"
    (cd "$EP_ROOT/web" && npm ci --no-audit --no-fund && npm run build) \
        >"$EP_LOGS/web-build.log" 2>&1 || start_failed web "$EP_LOGS/web-build.log" "npm failed"
}

platform_build() {
    web_build
    log "building the platform binaries (cargo build, $EP_BUILD_PROFILE profile)"
    local profile=()
    [ "$EP_BUILD_PROFILE" = release ] && profile=(--release)
    CARGO_TARGET_DIR="$(cargo_target)" cargo build "${profile[@]}" --locked \
        --manifest-path "$EP_ROOT/Cargo.toml" \
        -p billing -p recommender -p carbon-calculator -p operator \
        >"$EP_LOGS/cargo-build.log" 2>&1 ||
        start_failed platform "$EP_LOGS/cargo-build.log" "cargo build failed"
}

# Creates the platform's database once; the services run the migrations themselves.
platform_database() {
    local exists
    exists=$(psql "$EP_POSTGRES_URL" -Atc \
        "SELECT 1 FROM pg_database WHERE datname = '$EP_PLATFORM_DB'") ||
        die "cannot reach PostgreSQL at $EP_POSTGRES_URL"
    [ "$exists" = 1 ] || psql "$EP_POSTGRES_URL" -qc "CREATE DATABASE $EP_PLATFORM_DB" >/dev/null
    echo "postgres://postgres@127.0.0.1:$EP_POSTGRES_PORT/$EP_PLATFORM_DB"
}

platform_provision() {
    "$(app_bin operator)" provision --file "$EP_PLATFORM_FILE" \
        --kafka-bootstrap "$EP_KAFKA_BOOTSTRAP" --amqp-url "$EP_AMQP_URL" \
        >"$EP_LOGS/provision.log" 2>&1 || start_failed provision "$EP_LOGS/provision.log" \
        "operator provision failed"
    "$(app_bin operator)" thresholds --file "$EP_PLATFORM_FILE" >"$EP_RUN/thresholds.json"
}

# Process names get this prefix, so a second copy of the platform (dev/test's browser run) keeps
# its pids and logs apart from a running dev/up.
: "${EP_APP_PREFIX:=}"

# Starts one app in the background with the given environment; waits for its health URL.
app_start() {
    local app=$1 health=$2 name="$EP_APP_PREFIX$1"
    shift 2
    if running_pid "$name" >/dev/null; then
        log "$name already runs"
        return
    fi
    local logfile="$EP_LOGS/$name.log"
    setsid env "$@" "$(app_bin "$app")" >>"$logfile" 2>&1 </dev/null &
    record_pid "$name" $!
    wait_until "$name" 60 "$logfile" curl -sf "$health"
    log "$name ready ($health)"
}

platform_start() {
    local database_url
    database_url=$(platform_database)
    platform_provision
    app_start carbon-calculator "http://127.0.0.1:$EP_CARBON_PORT/_/health" \
        BIND_ADDRESS="127.0.0.1:$EP_CARBON_PORT" DEFAULT_REGION=GB
    app_start billing "http://127.0.0.1:$EP_BILLING_PORT/readyz" \
        BIND_ADDRESS="127.0.0.1:$EP_BILLING_PORT" DATABASE_URL="$database_url" \
        KAFKA_BOOTSTRAP_SERVERS="$EP_KAFKA_BOOTSTRAP" KAFKA_TOPIC=raw-consumption-events \
        AMQP_URL="$EP_AMQP_URL" WEB_ROOT="$EP_ROOT/web/dist"
    recommender_start "$database_url"
}

platform_stop() {
    local i
    for ((i = ${#EP_APPS[@]} - 1; i >= 0; i--)); do stop_pid "$EP_APP_PREFIX${EP_APPS[i]}" 30; done
}

platform_status() {
    local app pid
    for app in "${EP_APPS[@]}"; do
        pid=$(running_pid "$app") || pid=-
        printf '%-10s %-8s pid %-8s log %s\n' "$app" "$([ "$pid" = - ] && echo stopped ||
            echo running)" "$pid" "$EP_LOGS/$app.log"
    done
    echo "web page: http://127.0.0.1:$EP_BILLING_PORT/ (API under /api/v1, OpenAPI at /api/openapi.json)"
}

recommender_start() {
    local database_url=$1
    app_start recommender "http://127.0.0.1:$EP_RECOMMENDER_PORT/healthz" \
        METRICS_ADDRESS="127.0.0.1:$EP_RECOMMENDER_PORT" DATABASE_URL="$database_url" \
        KAFKA_BOOTSTRAP_SERVERS="$EP_KAFKA_BOOTSTRAP" KAFKA_TOPIC=raw-consumption-events \
        CARBON_URL="http://127.0.0.1:$EP_CARBON_PORT/" AMQP_URL="$EP_AMQP_URL" \
        THRESHOLDS_FILE="$EP_RUN/thresholds.json" KAFKA_GROUP="$EP_RECOMMENDER_GROUP"
}
