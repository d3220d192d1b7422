#!/usr/bin/env bash
# tools/tilt/build.sh OUT — build the Tilt pinned in tools/tilt/go.mod into OUT.
#
# Tilt cannot be built with `go build <pkg>` from a tools module: its module
# vendors a tree that disagrees with its go.mod, its web UI assets are not in
# the module, and the module proxy refuses its version list (so `go install
# ...@latest` fails). The recipe verified on this machine (DESIGN.md): copy
# the module from the module cache to a writable temporary directory, delete
# vendor/, write a placeholder pkg/assets/build/index.html (run Tilt with
# --web-mode=prod), and build there with -mod=mod. tools/build.sh calls this
# script and keeps its skip-if-up-to-date stamp.
set -euo pipefail
out=${1:?usage: tools/tilt/build.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
mod=github.com/tilt-dev/tilt
version=$(cd "$here" && go list -m -f '{{.Version}}' "$mod")
[[ -n $version ]] || { echo "tools/tilt: no $mod requirement in tools/tilt/go.mod" >&2; exit 2; }
src=$(cd "$here" && go mod download -json "$mod@$version" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
[[ -d $src ]] || { echo "tools/tilt: go mod download $mod@$version gave no directory" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/tilt-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
rm -rf "$work/vendor"
mkdir -p "$work/pkg/assets/build"
echo '<!doctype html><title>Tilt</title><p>The Tilt web UI is not part of the Go module; run tilt with --web-mode=prod and use the CLI (tilt get uiresources, tilt logs).' >"$work/pkg/assets/build/index.html"
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-X main.version=${version#v}" -o "$out" ./cmd/tilt)
