#!/usr/bin/env bash
# tools/alertmanager/build.sh OUT — build the Alertmanager pinned in
# tools/alertmanager/go.mod into OUT.
#
# Alertmanager's module (v0.35.0, and every version back to v0.32) does not
# carry its built web UI: ui/web.go embeds ui/app/dist, which its Makefile
# produces with npm and which is not in the module, so `go build` of the
# module fails with "pattern app/dist: no matching files found". As for Tilt
# (tools/tilt/build.sh): copy the module from the module cache to a writable
# temporary directory, write placeholder pages for the two UIs it serves
# (app/dist/elm, app/dist/mantine), and build ./cmd/alertmanager there. The
# API (/api/v2/alerts, /-/ready), routing and receivers are all there; only
# the web pages are the placeholder. tools/build.sh calls this script and
# keeps its skip-if-up-to-date stamp.
set -euo pipefail
out=${1:?usage: tools/alertmanager/build.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
mod=github.com/prometheus/alertmanager
version=$(cd "$here" && go list -m -f '{{.Version}}' "$mod")
[[ -n $version ]] || { echo "tools/alertmanager: no $mod requirement in tools/alertmanager/go.mod" >&2; exit 2; }
src=$(cd "$here" && go mod download -json "$mod@$version" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
[[ -d $src ]] || { echo "tools/alertmanager: go mod download $mod@$version gave no directory" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/alertmanager-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
page='<!doctype html><title>Alertmanager</title><p>The Alertmanager web UI is not part of the Go module; use the API (/api/v2/alerts, /api/v2/status) or amtool.'
for ui in elm mantine; do
	mkdir -p "$work/ui/app/dist/$ui"
	echo "$page" >"$work/ui/app/dist/$ui/index.html"
done
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath \
	-ldflags "-X github.com/prometheus/common/version.Version=${version#v}" \
	-o "$out" ./cmd/alertmanager)
