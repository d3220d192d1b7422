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
page='<!doctype html><meta charset="utf-8"><title>Alertmanager (no web UI in this build)</title>
<h1>Alertmanager is running, but this build has no web UI</h1>
<p>This Alertmanager is built from its Go module (tools/alertmanager/build.sh), which does not carry
the web UI (it is built with npm for the releases). Routing, receivers and the API all work:
<a href="api/v2/alerts">/api/v2/alerts</a> (the alerts Prometheus sent), <a href="api/v2/silences">/api/v2/silences</a>,
<a href="api/v2/status">/api/v2/status</a>, or <code>amtool</code>.</p>
<p>The official release has the UI: <a href="https://github.com/prometheus/alertmanager/releases">github.com/prometheus/alertmanager/releases</a>
(or the image <code>quay.io/prometheus/alertmanager</code>); put its <code>alertmanager</code> at <code>bin/alertmanager</code>.</p>'
# brotli_stored writes stdin (under 64 KiB) as a brotli stream of one
# uncompressed meta-block (RFC 7932, section 9.2): no brotli encoder needed.
# Header bits, least significant first: WBITS=16 (0), ISLAST=0, MNIBBLES=4
# (00), MLEN-1 in 16 bits, ISUNCOMPRESSED=1, zero padding to the byte; then
# the bytes, then an empty last meta-block (ISLAST=1, ISLASTEMPTY=1).
brotli_stored() {
	local tmp n v
	tmp=$(mktemp)
	cat >"$tmp"
	n=$(wc -c <"$tmp")
	((n > 0 && n <= 65536)) || { echo "brotli_stored: $n bytes, want 1..65536" >&2; rm -f "$tmp"; return 1; }
	v=$((((n - 1) << 4) | (1 << 20)))
	printf "\\x$(printf %02x $((v & 255)))\\x$(printf %02x $(((v >> 8) & 255)))\\x$(printf %02x $(((v >> 16) & 255)))"
	cat "$tmp"
	printf '\x03'
	rm -f "$tmp"
}
for ui in elm mantine; do
	mkdir -p "$work/ui/app/dist/$ui"
	# ui/web.go serves HTML only from its .br or .gz form, the one the
	# client's Accept-Encoding asks for, and answers 404 otherwise: a plain
	# index.html never shows. Browsers ask for br first.
	echo "$page" | gzip -n >"$work/ui/app/dist/$ui/index.html.gz"
	echo "$page" | brotli_stored >"$work/ui/app/dist/$ui/index.html.br"
done
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath \
	-ldflags "-X github.com/prometheus/common/version.Version=${version#v}" \
	-o "$out" ./cmd/alertmanager)
