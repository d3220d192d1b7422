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
cat >"$work/pkg/assets/build/index.html" <<'PAGE'
<!doctype html><meta charset="utf-8"><title>Tilt (no web UI in this build)</title>
<h1>Tilt is running, but this build has no web UI</h1>
<p>This Tilt is built from its Go module (tools/tilt/build.sh), which does not carry the web UI's
assets. Everything else works: the terminal UI where you ran <code>tilt up</code>, and the CLI:
<code>tilt get uiresources</code> (every resource and its state), <code>tilt logs &lt;resource&gt;</code>,
<code>tilt describe uiresource &lt;resource&gt;</code> (its links: Prometheus, Jaeger, statsd-sink),
<code>tilt trigger &lt;resource&gt;</code>.</p>
<p>The official release has the web UI: <a href="https://github.com/tilt-dev/tilt/releases">github.com/tilt-dev/tilt/releases</a>
(or <code>curl -fsSL https://raw.githubusercontent.com/tilt-dev/tilt/master/scripts/install.sh | bash</code>);
with a <code>tilt</code> of its own on PATH, <code>make up</code> uses it instead of building one.</p>
PAGE
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-X main.version=${version#v}" -o "$out" ./cmd/tilt)
