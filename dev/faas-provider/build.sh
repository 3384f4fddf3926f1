#!/usr/bin/env bash
# Builds the test OpenFaaS provider (main.go: a faas-provider based stand-in for faas-netes)
# and prints the path of the binary. The binary is cached by a hash of its sources, so a second
# call is instant; the Go module and build caches live under the project's cache folder.
#
#   dev/faas-provider/build.sh        # -> $HOME/.cache/energy-platform/go/bin/faas-provider-<hash>
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${EP_CACHE:-$HOME/.cache/energy-platform}
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-buildvcs=false

hash=$(cd "$here" && cat go.mod go.sum main.go | sha256sum | cut -c1-16)
binary=$cache/go/bin/faas-provider-$hash
if [ ! -x "$binary" ]; then
    mkdir -p "$cache/go/bin"
    log=$cache/go/bin/faas-provider-$hash.log
    # Built to a temporary name first, so an interrupted build never leaves a cached binary.
    if ! (cd "$here" && go build -trimpath -o "$binary.tmp" .) >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "building the test faas-provider failed (log: $log)" >&2
        exit 1
    fi
    mv "$binary.tmp" "$binary"
fi
echo "$binary"
