#!/usr/bin/env bash
# tools/ratelimit/build.sh OUT — build Envoy's reference rate-limit service
# (github.com/envoyproxy/ratelimit, pinned in tools/ratelimit/go.mod) into OUT.
#
# The service is a main package of a module that is not meant to be used as
# a dependency (it has replace-free but heavy requirements, and no tagged
# release serves this commit), so `go build <pkg>` from a tools module does
# not work. The recipe (issue 8): copy the module from the module cache to a
# writable temporary directory and build ./src/service_cmd there with
# -mod=mod (about 15 s on 2 cores once its dependencies are cached).
# tools/build.sh calls this script and keeps its skip-if-up-to-date stamp.
# e2e/ratelimit runs the binary against Debian's redis-server.
set -euo pipefail
out=${1:?usage: tools/ratelimit/build.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
mod=github.com/envoyproxy/ratelimit
version=$(cd "$here" && go list -m -f '{{.Version}}' "$mod")
[[ -n $version ]] || { echo "tools/ratelimit: no $mod requirement in tools/ratelimit/go.mod" >&2; exit 2; }
src=$(cd "$here" && go mod download -json "$mod@$version" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
[[ -d $src ]] || { echo "tools/ratelimit: go mod download $mod@$version gave no directory" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ratelimit-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -o "$out" ./src/service_cmd)
