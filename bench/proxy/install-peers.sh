#!/usr/bin/env bash
# install-peers.sh [CMD...]: apt-get install the Debian packages that provide
# the proxy benchmark's peers and load generator (default: nginx, haproxy,
# caddy, wrk; h2load, from nghttp2-client, for the HTTP/2 modes), when they are missing. Used by run.sh and by `make test-deps`
# (the peers' config-validation tests run the real programs; e2e/ratelimit
# runs redis-server and the Tiltfile's pipeline-check runs jq, which
# `make test-deps` asks for by name). Needs root.
set -euo pipefail
declare -A pkg=([wrk]=wrk [h2load]=nghttp2-client [nginx]=nginx-light [haproxy]=haproxy [caddy]=caddy [redis-server]=redis-server [jq]=jq)
cmds=("$@")
((${#cmds[@]})) || cmds=(nginx haproxy caddy wrk)
missing=()
for cmd in "${cmds[@]}"; do
	[[ -n ${pkg[$cmd]:-} ]] || { echo "install-peers.sh: unknown command $cmd (known: ${!pkg[*]})" >&2; exit 2; }
	# nginx and haproxy live in /usr/sbin, which a non-login PATH may lack.
	command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] || missing+=("${pkg[$cmd]}")
done
((${#missing[@]})) || exit 0
echo "install-peers.sh: installing ${missing[*]}" >&2
if [[ $(id -u) != 0 ]]; then
	echo "install-peers.sh: need root to apt-get install ${missing[*]}" >&2
	exit 1
fi
# Debian starts a freshly installed daemon (nginx on :80, caddy, haproxy)
# unless policy-rc.d forbids it; a benchmark must not leave those behind.
policy=/usr/sbin/policy-rc.d
created_policy=
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
fi
status=0
{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } || status=$?
[[ -n $created_policy ]] && rm -f "$policy"
((status == 0)) || { echo "install-peers.sh: apt-get failed ($status)" >&2; exit "$status"; }
