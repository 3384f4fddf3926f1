# The real services the platform and its tests run against, each on 127.0.0.1.
#
# Every service has four functions: <name>_install (idempotent, cached), <name>_start (fresh
# data folder, log in $EP_LOGS, pid recorded in $EP_PIDS, waits until it answers), <name>_stop
# (only the recorded processes) and <name>_env (the variables tests read).
# shellcheck shell=bash

# shellcheck source=build-go.sh
source "$EP_ROOT/dev/lib/build-go.sh"

EP_SERVICES=(postgres rabbitmq kafka kube)

fresh_dir() {
    rm -rf "$1"
    mkdir -p "$1"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL (Debian's server, run as the postgres user: initdb refuses root)

pg_bin() { echo "/usr/lib/postgresql/$POSTGRES_MAJOR/bin"; }

postgres_install() { apt_install "postgresql-$POSTGRES_MAJOR"; }

postgres_start() {
    require_free_port "$EP_POSTGRES_PORT" PostgreSQL EP_POSTGRES_PORT
    local dir="$EP_DATA/postgres" logfile="$EP_LOGS/postgres.log"
    fresh_dir "$dir"
    chown postgres:postgres "$dir"
    : >"$logfile"
    chown postgres:postgres "$logfile"
    runuser -u postgres -- "$(pg_bin)/initdb" -D "$dir" -U postgres --auth=trust --no-sync \
        -E UTF8 --locale=C.UTF-8 >"$EP_LOGS/postgres-initdb.log" 2>&1 ||
        start_failed postgres "$EP_LOGS/postgres-initdb.log" "initdb failed"
    cat >>"$dir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $EP_POSTGRES_PORT
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
full_page_writes = off
EOF
    postgres_launch
}

# Starts the server on the existing data folder (also used by tests that restart PostgreSQL).
postgres_launch() {
    require_free_port "$EP_POSTGRES_PORT" PostgreSQL EP_POSTGRES_PORT
    local dir="$EP_DATA/postgres" logfile="$EP_LOGS/postgres.log"
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$dir" -l "$logfile" -w -t 60 start \
        >/dev/null 2>&1 || start_failed postgres "$logfile" "pg_ctl start failed"
    record_pid postgres "$(head -n1 "$dir/postmaster.pid")"
    wait_until postgres 30 "$logfile" \
        "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$EP_POSTGRES_PORT"
}

postgres_stop() {
    running_pid postgres >/dev/null || return 0
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$EP_DATA/postgres" -m fast -w stop \
        >/dev/null 2>&1 || true
    stop_pid postgres
}

postgres_env() {
    echo "export EP_POSTGRES_URL=postgres://postgres@127.0.0.1:$EP_POSTGRES_PORT/postgres"
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ (Debian's server, run straight from its scripts so that every setting is ours: node
# name, ports, data, logs, cookie and a private epmd)

rabbitmq_install() { apt_install rabbitmq-server; }

rabbitmq_vars() {
    local dir="$EP_DATA/rabbitmq"
    export HOME="$dir"
    export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EP_EPMD_PORT"
    export RABBITMQ_NODENAME=ep@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$EP_RABBITMQ_PORT" RABBITMQ_DIST_PORT="$EP_RABBITMQ_DIST_PORT"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$EP_LOGS/rabbitmq"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
}

rabbitmq_ctl() { (rabbitmq_vars && /usr/lib/rabbitmq/bin/rabbitmqctl "$@"); }

rabbitmq_start() {
    require_free_port "$EP_RABBITMQ_PORT" RabbitMQ EP_RABBITMQ_PORT
    require_free_port "$EP_RABBITMQ_MGMT_PORT" "RabbitMQ management" EP_RABBITMQ_MGMT_PORT
    require_free_port "$EP_EPMD_PORT" "RabbitMQ's epmd" EP_EPMD_PORT
    local dir="$EP_DATA/rabbitmq" logfile="$EP_LOGS/rabbitmq.log"
    fresh_dir "$dir"
    mkdir -p "$EP_LOGS/rabbitmq"
    : >"$dir/rabbitmq-env.conf"
    echo '[rabbitmq_management].' >"$dir/enabled_plugins"
    cat >"$dir/rabbitmq.conf" <<EOF
management.tcp.ip = 127.0.0.1
management.tcp.port = $EP_RABBITMQ_MGMT_PORT
loopback_users.guest = true
EOF
    rabbitmq_launch
}

# Starts the node on the existing data folder (also used by tests that restart RabbitMQ).
rabbitmq_launch() {
    require_free_port "$EP_RABBITMQ_PORT" RabbitMQ EP_RABBITMQ_PORT
    require_free_port "$EP_EPMD_PORT" "RabbitMQ's epmd" EP_EPMD_PORT
    local logfile="$EP_LOGS/rabbitmq.log"
    (
        rabbitmq_vars
        setsid epmd -address 127.0.0.1 -port "$EP_EPMD_PORT" >"$EP_LOGS/epmd.log" 2>&1 </dev/null &
        echo $! >"$(pid_file epmd)"
        setsid /usr/lib/rabbitmq/bin/rabbitmq-server >>"$logfile" 2>&1 </dev/null &
        echo $! >"$(pid_file rabbitmq)"
    )
    # await_startup can return before the node registers; the ports are the real signal.
    wait_until rabbitmq 90 "$logfile" port_open "$EP_RABBITMQ_PORT"
    wait_until rabbitmq 60 "$logfile" port_open "$EP_RABBITMQ_MGMT_PORT"
}

rabbitmq_stop() {
    if running_pid rabbitmq >/dev/null; then
        # rabbitmqctl starts an epmd of its own when none answers on the port; ask the node to
        # stop only while ours runs, else signal its process group directly.
        if running_pid epmd >/dev/null; then
            rabbitmq_ctl -n ep@localhost stop >/dev/null 2>&1 || true
        fi
        stop_pid rabbitmq 30
    fi
    stop_pid epmd 5
}

rabbitmq_env() {
    echo "export EP_AMQP_URL=amqp://guest:guest@127.0.0.1:$EP_RABBITMQ_PORT/%2f"
    echo "export EP_RABBITMQ_API=http://guest:guest@127.0.0.1:$EP_RABBITMQ_MGMT_PORT"
}

# ---------------------------------------------------------------------------------------------
# Apache Kafka (single KRaft node from Maven Central jars)

kafka_libs() { echo "$EP_CACHE/kafka/$KAFKA_VERSION/libs"; }

kafka_install() {
    apt_install kcat
    local libs
    libs=$(kafka_libs)
    [ -f "$libs/.complete" ] && return 0
    log "fetching Kafka $KAFKA_VERSION jars from Maven"
    rm -rf "$libs"
    mvn -B -q -f "$EP_ROOT/dev/kafka/pom.xml" -Dmaven.repo.local="$EP_M2" \
        -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
        -DoutputDirectory="$libs" dependency:copy-dependencies >"$EP_LOGS/kafka-fetch.log" 2>&1 ||
        start_failed kafka "$EP_LOGS/kafka-fetch.log" "fetching the jars failed"
    touch "$libs/.complete"
}

kafka_java_opts() {
    echo "-Xms256m -Xmx512m -XX:+UseG1GC" \
        "-Dlog4j2.configurationFile=$EP_ROOT/dev/kafka/log4j2.properties"
}

kafka_java() {
    # shellcheck disable=SC2046 # the options are single words
    java $(kafka_java_opts) -cp "$(kafka_libs)/*" "$@"
}

kafka_start() {
    require_free_port "$EP_KAFKA_PORT" Kafka EP_KAFKA_PORT
    require_free_port "$EP_KAFKA_CONTROLLER_PORT" "Kafka controller" EP_KAFKA_CONTROLLER_PORT
    local dir="$EP_DATA/kafka" logfile="$EP_LOGS/kafka.log"
    fresh_dir "$dir"
    sed -e "s|@DATA@|$dir/log|" -e "s|@PORT@|$EP_KAFKA_PORT|" \
        -e "s|@CONTROLLER_PORT@|$EP_KAFKA_CONTROLLER_PORT|" \
        "$EP_ROOT/dev/kafka/server.properties.in" >"$dir/server.properties"
    kafka_java kafka.tools.StorageTool format -t "$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null)" \
        -c "$dir/server.properties" >"$EP_LOGS/kafka-format.log" 2>&1 ||
        start_failed kafka "$EP_LOGS/kafka-format.log" "formatting the storage failed"
    kafka_launch
}

# Starts the broker on the existing data folder (also used by tests that restart Kafka).
kafka_launch() {
    require_free_port "$EP_KAFKA_PORT" Kafka EP_KAFKA_PORT
    local logfile="$EP_LOGS/kafka.log"
    # shellcheck disable=SC2046 # the options are single words
    setsid java $(kafka_java_opts) -cp "$(kafka_libs)/*" kafka.Kafka \
        "$EP_DATA/kafka/server.properties" >>"$logfile" 2>&1 </dev/null &
    record_pid kafka $!
    wait_until kafka 90 "$logfile" kcat -b "127.0.0.1:$EP_KAFKA_PORT" -L -m 2
}

kafka_stop() { stop_pid kafka 30; }

kafka_env() { echo "export EP_KAFKA_BOOTSTRAP=127.0.0.1:$EP_KAFKA_PORT"; }

# ---------------------------------------------------------------------------------------------
# Kubernetes control plane: etcd + kube-apiserver (envtest-style, no kubelet), kubectl, helm

kube_dir() { echo "$EP_DATA/kube"; }
kubeconfig() { echo "$EP_RUN/kube/admin.kubeconfig"; }

kube_install() {
    apt_install openssl curl
    ensure_etcd
    ensure_kubernetes
    ensure_helm
}

# A CA, a serving certificate for 127.0.0.1/localhost, an admin client certificate
# (system:masters) and the service-account key pair. X.509 v3 throughout: rustls rejects v1.
kube_certs() {
    local pki=$1
    mkdir -p "$pki"
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
            -subj "/CN=energy-platform-dev-ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/CN=kube-apiserver"
        printf '%s\n' "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" \
            "subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default" \
            >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out server.crt -days 30 -extfile server.ext
        openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
            -subj "/O=system:masters/CN=energy-platform-admin"
        printf '%s\n' "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=clientAuth" >admin.ext
        openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out admin.crt -days 30 -extfile admin.ext
        openssl genrsa -out sa.key 2048
        openssl rsa -in sa.key -pubout -out sa.pub
    ) >"$EP_LOGS/kube-certs.log" 2>&1 || start_failed kube "$EP_LOGS/kube-certs.log" "certificates"
}

write_kubeconfig() {
    local pki=$1 out
    out=$(kubeconfig)
    mkdir -p "$(dirname "$out")"
    cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: energy-dev
  cluster:
    server: https://127.0.0.1:$EP_APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$pki/admin.crt")
    client-key-data: $(base64 -w0 "$pki/admin.key")
contexts:
- name: energy-dev
  context:
    cluster: energy-dev
    user: admin
current-context: energy-dev
EOF
}

apiserver_ready() {
    local pki
    pki="$(kube_dir)/pki"
    curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://127.0.0.1:$EP_APISERVER_PORT/readyz"
}

kube_start() {
    require_free_port "$EP_ETCD_PORT" etcd EP_ETCD_PORT
    require_free_port "$EP_ETCD_PEER_PORT" "etcd peer" EP_ETCD_PEER_PORT
    require_free_port "$EP_APISERVER_PORT" kube-apiserver EP_APISERVER_PORT
    local dir pki
    dir=$(kube_dir)
    pki="$dir/pki"
    fresh_dir "$dir"
    kube_certs "$pki"
    write_kubeconfig "$pki"
    kube_launch
}

# Starts etcd and the API server on the existing data folder and certificates.
kube_launch() {
    local dir pki
    dir=$(kube_dir)
    pki="$dir/pki"
    local etcd_url="http://127.0.0.1:$EP_ETCD_PORT" peer_url="http://127.0.0.1:$EP_ETCD_PEER_PORT"
    setsid "$(etcd_bin_dir)/etcd" --name energy-dev --data-dir "$dir/etcd" \
        --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
        --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
        --initial-cluster "energy-dev=$peer_url" --unsafe-no-fsync \
        >"$EP_LOGS/etcd.log" 2>&1 </dev/null &
    record_pid etcd $!
    wait_until etcd 30 "$EP_LOGS/etcd.log" curl -sf "$etcd_url/health"

    setsid "$(kube_bin_dir)/kube-apiserver" --etcd-servers="$etcd_url" \
        --cert-dir="$pki" --tls-cert-file="$pki/server.crt" \
        --tls-private-key-file="$pki/server.key" --client-ca-file="$pki/ca.crt" \
        --secure-port="$EP_APISERVER_PORT" --bind-address=127.0.0.1 \
        --advertise-address=127.0.0.1 --service-cluster-ip-range=10.96.0.0/16 \
        --allow-privileged=true --disable-admission-plugins=ServiceAccount \
        --authorization-mode=RBAC --service-account-issuer=https://127.0.0.1 \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" \
        >"$EP_LOGS/kube-apiserver.log" 2>&1 </dev/null &
    record_pid kube-apiserver $!
    wait_until kube-apiserver 90 "$EP_LOGS/kube-apiserver.log" apiserver_ready
}

# The API server goes first: without etcd it retries for a long while before exiting.
kube_stop() {
    stop_pid kube-apiserver 30
    stop_pid etcd 20
}

kube_env() {
    echo "export EP_KUBECONFIG=$(kubeconfig)"
    echo "export EP_KUBECTL=$(kube_bin_dir)/kubectl"
    echo "export EP_HELM=$(helm_bin_dir)/helm"
}

# ---------------------------------------------------------------------------------------------

service_pids() {
    case $1 in
    rabbitmq) echo rabbitmq epmd ;;
    kube) echo etcd kube-apiserver ;;
    *) echo "$1" ;;
    esac
}

service_running() {
    local p
    # epmd is RabbitMQ's helper; the node itself starts another if ours is gone.
    for p in $(service_pids "$1"); do
        [ "$p" = epmd ] && continue
        running_pid "$p" >/dev/null || return 1
    done
}

service_address() {
    case $1 in
    postgres) echo "postgres://127.0.0.1:$EP_POSTGRES_PORT" ;;
    rabbitmq) echo "amqp://127.0.0.1:$EP_RABBITMQ_PORT, http://127.0.0.1:$EP_RABBITMQ_MGMT_PORT" ;;
    kafka) echo "127.0.0.1:$EP_KAFKA_PORT" ;;
    kube) echo "https://127.0.0.1:$EP_APISERVER_PORT (etcd http://127.0.0.1:$EP_ETCD_PORT)" ;;
    esac
}

# Rewrites the env file from the services that run now.
write_env_file() {
    local svc tmp="$EP_ENV_FILE.tmp"
    {
        echo "# Written by dev/services; source it to reach the running services."
        echo "export EP_RUN=$EP_RUN"
        for svc in "${EP_SERVICES[@]}"; do
            service_running "$svc" && "${svc}_env"
        done
    } >"$tmp"
    mv "$tmp" "$EP_ENV_FILE"
}
