# Builds kube-apiserver, kubectl, etcd and helm from the Go module proxy, once per version.
#
# k8s.io/kubernetes and etcd's server module cannot be `go install`ed: their go.mod files replace
# sibling modules with local paths. Each is built from a small wrapper module that requires the
# release and replaces every such sibling with the same release from the proxy. The list of
# siblings is read from the release's own go.mod, never hard-coded, since it changes between
# releases. Binaries land in $EP_CACHE/<tool>/<version>/bin.
# shellcheck shell=bash

kube_bin_dir() { echo "$EP_CACHE/kubernetes/v$KUBERNETES_VERSION/bin"; }
etcd_bin_dir() { echo "$EP_CACHE/etcd/v$ETCD_VERSION/bin"; }
helm_bin_dir() { echo "$EP_CACHE/helm/v$HELM_VERSION/bin"; }

# Writes a wrapper go.mod for MODULE@VERSION whose replace directives point each local-path
# replace of the release's go.mod at SIBLING_VERSION of that module from the proxy.
write_wrapper_module() {
    local dir=$1 module=$2 version=$3 sibling_version=$4
    mkdir -p "$dir"
    local gomod
    # Downloaded from outside any module, so a stale wrapper cannot get in the way.
    gomod=$(cd "$EP_CACHE" && go mod download -json "$module@$version" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    [ -f "$gomod" ] || die "could not download the go.mod of $module@$version"
    local gover
    gover=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod" | head -n1)
    {
        echo "module energy-platform.local/build/$(basename "$dir")"
        echo
        echo "go $gover"
        echo
        echo "require $module $version"
        echo
        # Lines such as `k8s.io/api => ./staging/src/k8s.io/api` or `go.etcd.io/etcd/api/v3 =>
        # ../api` (inside or outside a replace block) name the siblings.
        sed -n 's/^[[:space:]]*\(replace[[:space:]]\+\)\{0,1\}\([^[:space:]]\+\)[[:space:]]\+=>[[:space:]]\+\.\{1,2\}\/.*$/\2/p' \
            "$gomod" | sort -u | while read -r sibling; do
            # Only siblings the release requires; others are fenced off on purpose
            # (etcd replaces go.etcd.io/etcd with ./FORBIDDEN_DEPENDENCY).
            if grep -Eq "^[[:space:]]*(require[[:space:]]+)?$sibling[[:space:]]+v" "$gomod"; then
                echo "replace $sibling => $sibling $sibling_version"
            fi
        done
    } >"$dir/go.mod"
}

# Builds PACKAGES (import paths) of a wrapper module into BIN_DIR with LDFLAGS.
build_in_wrapper() {
    local dir=$1 bin_dir=$2 ldflags=$3 logfile=$4
    shift 4
    mkdir -p "$bin_dir"
    (
        cd "$dir"
        printf 'package tools\n\nimport (\n' >tools.go
        local pkg
        for pkg in "$@"; do printf '\t_ "%s"\n' "$pkg" >>tools.go; done
        printf ')\n' >>tools.go
        go mod tidy
        for pkg in "$@"; do
            go build -trimpath -ldflags "$ldflags" -o "$bin_dir/$(basename "$pkg")" "$pkg"
        done
    ) >"$logfile" 2>&1 || {
        tail -n 40 "$logfile" >&2
        die "go build in $dir failed (log: $logfile)"
    }
}

ensure_kubernetes() {
    local bin_dir
    bin_dir=$(kube_bin_dir)
    [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/kubectl" ] && return 0
    log "building kube-apiserver and kubectl v$KUBERNETES_VERSION (minutes on a cold cache)"
    local dir="$EP_CACHE/kubernetes/v$KUBERNETES_VERSION/wrapper"
    local minor=${KUBERNETES_VERSION#*.}
    minor=${minor%%.*}
    write_wrapper_module "$dir" k8s.io/kubernetes "v$KUBERNETES_VERSION" "v0.${KUBERNETES_VERSION#*.}"
    # Stamp the release so `kubectl version` and clients see a parseable version.
    local flags="" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=1"
        flags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    build_in_wrapper "$dir" "$bin_dir" "-s -w$flags" "$EP_LOGS/build-kubernetes.log" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
}

ensure_etcd() {
    local bin_dir
    bin_dir=$(etcd_bin_dir)
    [ -x "$bin_dir/etcd" ] && return 0
    log "building etcd v$ETCD_VERSION"
    local dir="$EP_CACHE/etcd/v$ETCD_VERSION/wrapper"
    write_wrapper_module "$dir" go.etcd.io/etcd/server/v3 "v$ETCD_VERSION" "v$ETCD_VERSION"
    build_in_wrapper "$dir" "$bin_dir" "-s -w" "$EP_LOGS/build-etcd.log" go.etcd.io/etcd/server/v3
    mv "$bin_dir/v3" "$bin_dir/etcd"
}

ensure_helm() {
    local bin_dir
    bin_dir=$(helm_bin_dir)
    [ -x "$bin_dir/helm" ] && return 0
    log "building helm v$HELM_VERSION"
    mkdir -p "$bin_dir"
    GOBIN="$bin_dir" go install "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION" \
        >"$EP_LOGS/build-helm.log" 2>&1 || {
        tail -n 40 "$EP_LOGS/build-helm.log" >&2
        die "go install helm v$HELM_VERSION failed (log: $EP_LOGS/build-helm.log)"
    }
}
