#!/usr/bin/env bash
# up.sh — run the local hopwatch pipeline as plain processes (`make up`).
#
#   client ─► front proxy :10000 (TLS :10443) ─► frontend sidecar :10001 ─► frontend app :8081
#                 ─► catalog sidecar :10002 ─► catalog app :8082
#                 ─► inventory sidecar :10003 ─► inventory app :8083
#                 (the catalog app also asks the legacy-pricing sidecar :10004
#                 ─► legacy-pricing app :8085 for a price; that app is traced
#                 with jaeger-client-go and reports thrift to Jaeger :14268)
#                 (the catalog sidecar sends a share to the catalog canary :8084,
#                 zone-aware; sidecar-catalog.yaml)
#
# Every proxy flushes its stats every 5 s as DogStatsD, tagged with its
# node_id, to statsd-sink (--preset=envoy) on 127.0.0.1:8125, which serves
# them at 127.0.0.1:9102/metrics. When bin/jaeger exists (`make tools`),
# Jaeger runs too and the proxies and demo apps send it their spans (the
# proxies trace either way: their access logs carry trace IDs). `demo load`
# sends a modest, bounded load through the front proxy. Prometheus, Grafana
# and Tilt are not part of this step.
#
# It stops everything it started on Ctrl-C, SIGTERM or SIGHUP (and exits 0),
# and stops everything and exits 1 when any process dies unexpectedly. The
# load generator finishing its run is expected: the rest keeps running.
#
# Environment:
#   UP_LOAD_RATE       requests per second of the load generator (default 20)
#   UP_LOAD_DURATION   how long it sends, a Go duration (default 1h)
#   UP_PORT_BASE       move every port into the block UP_PORT_BASE ..
#                      UP_PORT_BASE+22 (for tests and for running beside
#                      something that holds the default ports); the proxies
#                      then run copies of their configs, in UP_LOG_DIR/config
#   UP_BIN_DIR         where the binaries are (default ./bin)
#   UP_LOG_DIR         where logs (and moved configs) go (default ./tmp/up)
#   UP_JAEGER          0 to leave Jaeger out even when bin/jaeger exists
#   UP_READY_TIMEOUT   seconds each process gets to become ready (default 30;
#                      Jaeger gets twice as long)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$root/deploy/local"
bin=${UP_BIN_DIR:-$root/bin}
logs=${UP_LOG_DIR:-$root/tmp/up}
load_rate=${UP_LOAD_RATE:-20}
load_duration=${UP_LOAD_DURATION:-1h}
ready_timeout=${UP_READY_TIMEOUT:-30}
port_base=${UP_PORT_BASE:-}
want_jaeger=${UP_JAEGER:-1}

die() {
	echo "up: $*" >&2
	exit 1
}

# Every port the pipeline uses, by name, with its default. The configs in
# deploy/local use exactly these (as 127.0.0.1:<port>); with UP_PORT_BASE the
# i-th name gets UP_PORT_BASE+i. Add a port here when a config gains one:
# up.sh refuses a config that names a loopback port not in this table.
port_names=(
	front_proxy frontend_sidecar catalog_sidecar inventory_sidecar
	front_proxy_admin frontend_sidecar_admin catalog_sidecar_admin inventory_sidecar_admin
	frontend_app catalog_app inventory_app
	statsd sink_web
	otlp_grpc otlp_http jaeger_ui jaeger_grpc
	catalog_canary_app
	front_proxy_tls
	legacy_pricing_sidecar legacy_pricing_sidecar_admin legacy_pricing_app jaeger_thrift_http
)
port_defaults=(
	10000 10001 10002 10003
	9901 9902 9903 9904
	8081 8082 8083
	8125 9102
	4317 4318 16686 16685
	8084
	10443
	10004 9905 8085 14268
)
declare -A port
if [[ -n $port_base ]]; then
	if ! [[ $port_base =~ ^[0-9]{1,5}$ ]] || ((10#$port_base < 1024 || 10#$port_base + ${#port_names[@]} - 1 > 65535)); then
		die "UP_PORT_BASE=$port_base: want a port number from 1024 to $((65535 - ${#port_names[@]} + 1)); the pipeline uses ${#port_names[@]} ports from there"
	fi
	port_base=$((10#$port_base))
fi
for i in "${!port_names[@]}"; do
	if [[ -n $port_base ]]; then
		port[${port_names[i]}]=$((port_base + i))
	else
		port[${port_names[i]}]=${port_defaults[i]}
	fi
done

# --- check the inputs before starting anything -------------------------------

# The load generator's own bounds (tracing/demo: MaxRate, MaxDuration) are
# checked by it; a rate is checked here too, so that a typo fails before
# anything starts.
if ! [[ $load_rate =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v r="$load_rate" 'BEGIN { exit !(r > 0 && r <= 10000) }'; then
	die "UP_LOAD_RATE=$load_rate: want a positive number of requests per second up to 10000, such as 20"
fi
[[ $load_duration =~ ^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$ ]] ||
	die "UP_LOAD_DURATION=$load_duration: want a Go duration such as 90s, 10m or 1h"
[[ $ready_timeout =~ ^[1-9][0-9]*$ ]] ||
	die "UP_READY_TIMEOUT=$ready_timeout: want a whole number of seconds, such as 30"
for tool in ss curl setsid; do
	command -v "$tool" >/dev/null || die "$tool is not installed; up.sh needs it (Debian: apt-get install iproute2 curl util-linux)"
done
for b in hopwatch-proxy statsd-sink demo; do
	[[ -x $bin/$b ]] || die "$bin/$b is missing: run \`make build\` (or \`make up\`, which builds first)"
done
jaeger=0
if [[ $want_jaeger != 0 && -x $bin/jaeger ]]; then
	jaeger=1
fi

mkdir -p "$logs"
proxies=(front-proxy sidecar-frontend sidecar-catalog sidecar-inventory sidecar-legacy-pricing)
declare -A config
for p in "${proxies[@]}"; do
	src="$here/$p.yaml"
	[[ -f $src ]] || die "$src is missing"
	# Phase 1 names every known port; a loopback address left over is a port
	# this script does not know, which UP_PORT_BASE could not move.
	named=$(sed -E "$(for i in "${!port_names[@]}"; do
		printf 's/127\\.0\\.0\\.1:%s\\b/127.0.0.1:@%s@/g\n' "${port_defaults[i]}" "${port_names[i]}"
	done)" "$src")
	if unknown=$(grep -noE '127\.0\.0\.1:[0-9]+' <<<"$named" | head -n 1) && [[ -n $unknown ]]; then
		die "$src:${unknown%%:*}: ${unknown#*:} is not one of up.sh's ports; add it to port_names and port_defaults in up.sh"
	fi
	if [[ -z $port_base ]]; then
		# The file itself, so that editing it reloads the running proxy.
		config[$p]=$src
		continue
	fi
	mkdir -p "$logs/config"
	config[$p]="$logs/config/$p.yaml"
	{
		echo "# Generated by deploy/local/up.sh from $src with UP_PORT_BASE=$port_base; edits are lost."
		sed -E "$(for n in "${port_names[@]}"; do printf 's/@%s@/%s/g\n' "$n" "${port[$n]}"; done)" <<<"$named"
	} >"${config[$p]}"
done
# The front proxy's TLS listener serves a self-signed certificate made now,
# in tls/ beside the configuration it loads (front-proxy.yaml names it
# relative to itself), so that the check below finds it.
"$bin/demo" cert --dir "$(dirname "${config[front-proxy]}")/tls" --name front-proxy >/dev/null ||
	die "could not write the front proxy's self-signed certificate"
for p in "${proxies[@]}"; do
	out=$("$bin/hopwatch-proxy" -check-config -c "${config[$p]}" 2>&1) ||
		die "${config[$p]} is not a valid proxy configuration:"$'\n'"$out"
done

# Every port must be free, and a busy one is named with whoever holds it.
busy=()
check_port() { # proto(t|u) port name
	local lines
	lines=$(ss -H -ln"$1"p "sport = :$2" 2>/dev/null || true)
	if [[ -n $lines ]]; then
		local who
		who=$(grep -oE 'users:\(\(.*\)\)' <<<"$lines" | head -1 || true)
		busy+=("$(printf '%-4s %5s (%s) is in use by %s' "$([[ $1 == t ]] && echo tcp || echo udp)" "$2" "$3" \
			"${who:-a process this user cannot see (another user or a container); try sudo ss -ltnup}")")
	fi
}
for i in "${!port_names[@]}"; do
	n=${port_names[i]}
	if [[ $jaeger == 0 && $n =~ ^(otlp_|jaeger_) ]]; then
		continue
	fi
	check_port t "${port[$n]}" "$n"
done
check_port u "${port[statsd]}" statsd
if ((${#busy[@]})); then
	echo "up: ports the pipeline needs are taken:" >&2
	printf '  %s\n' "${busy[@]}" >&2
	echo "Stop those processes (an earlier \`make up\`?), or move every port with UP_PORT_BASE=<port>." >&2
	exit 1
fi

# --- processes -----------------------------------------------------------------

pids=()
declare -A name_of log_of stage_of
stopped=0

# start runs a process in the background, its output in its log. stage says
# when stop_all stops it: 0 first (the load), then 1 (proxies), 2 (apps),
# 3 (the sink and Jaeger).
start() { # stage name command...
	local stage=$1 name=$2
	shift 2
	local log="$logs/$name.log"
	# setsid: its own session, so that a Ctrl-C in the terminal reaches only
	# this script, which then stops everything in order (stop_all). The child
	# is not a process group leader, so setsid execs it in place and $! is
	# the program's own PID.
	setsid "$@" >"$log" 2>&1 </dev/null &
	local pid=$!
	pids+=("$pid")
	name_of[$pid]=$name
	log_of[$pid]=$log
	stage_of[$pid]=$stage
	printf '  started %-22s pid %-7s log %s\n' "$name" "$pid" "${log#"$root"/}"
}

# stop_all stops the processes still running in stages, each with SIGTERM
# and up to 15 s before SIGKILL: first the load, then the proxies (they
# drain for their drain_time, 5 s, while the apps behind them still answer,
# and flush their last stats), then the apps, and last the sink and Jaeger,
# which so receive everything sent to them. Only these PIDs are signalled,
# never processes found by name.
stop_all() {
	((stopped)) && return 0
	stopped=1
	((${#pids[@]})) || return 0
	local stage pid n=0
	for stage in 0 1 2 3; do
		local alive=()
		for pid in "${pids[@]}"; do
			if [[ ${stage_of[$pid]} == "$stage" ]] && kill -0 "$pid" 2>/dev/null; then
				kill -TERM "$pid" 2>/dev/null || true
				alive+=("$pid")
			fi
		done
		local deadline=$((SECONDS + 15))
		for pid in "${alive[@]}"; do
			while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
				sleep 0.1
			done
			if kill -0 "$pid" 2>/dev/null; then
				echo "up: ${name_of[$pid]} (pid $pid) did not stop within 15s of SIGTERM; killing it" >&2
				kill -KILL "$pid" 2>/dev/null || true
			fi
		done
		n=$((n + ${#alive[@]}))
	done
	wait 2>/dev/null || true
	echo "up: stopped $n processes"
}

log_tail() { # pid
	local log=${log_of[$1]}
	echo "  last lines of ${log#"$root"/}:" >&2
	tail -n 30 "$log" | sed 's/^/    /' >&2
}

fail() { # pid message
	echo "up: $2" >&2
	log_tail "$1"
	echo "up: stopping everything" >&2
	stop_all >&2
	exit 1
}

on_signal() {
	echo
	echo "up: $1 received; stopping everything"
	stop_all
	exit 0
}
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGHUP' HUP
# Any other way out (a failing command under set -e) stops the children too.
trap 'stop_all >&2' EXIT

# wait_ready polls url until it answers 2xx, failing early with the log tail
# when the process exits first.
wait_ready() { # pid url timeout-seconds
	local pid=$1 url=$2 timeout=$3
	local deadline=$((SECONDS + timeout))
	until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			local status=0
			wait "$pid" 2>/dev/null || status=$?
			fail "$pid" "${name_of[$pid]} exited (status $status) before it was ready at $url"
		fi
		if ((SECONDS >= deadline)); then
			fail "$pid" "${name_of[$pid]} (pid $pid) was not ready at $url after ${timeout}s"
		fi
		sleep 0.2
	done
}

loop="http://127.0.0.1"
echo "up: starting the local pipeline (logs in ${logs#"$root"/})"

start 3 statsd-sink "$bin/statsd-sink" --preset=envoy \
	--statsd.listen-udp="127.0.0.1:${port[statsd]}" --statsd.listen-tcp="127.0.0.1:${port[statsd]}" \
	--web.listen-address="127.0.0.1:${port[sink_web]}"
wait_ready "$!" "$loop:${port[sink_web]}/-/ready" "$ready_timeout"

otlp=() thrift=()
if ((jaeger)); then
	start 3 jaeger env HOPWATCH_UP_OTLP_GRPC="127.0.0.1:${port[otlp_grpc]}" \
		HOPWATCH_UP_OTLP_HTTP="127.0.0.1:${port[otlp_http]}" \
		HOPWATCH_UP_JAEGER_UI="127.0.0.1:${port[jaeger_ui]}" \
		HOPWATCH_UP_JAEGER_GRPC="127.0.0.1:${port[jaeger_grpc]}" \
		HOPWATCH_UP_JAEGER_THRIFT_HTTP="127.0.0.1:${port[jaeger_thrift_http]}" \
		HOPWATCH_UP_JAEGER_UI_ASSETS="$here/jaeger-ui" \
		"$bin/jaeger" --config "$here/jaeger.yml"
	wait_ready "$!" "$loop:${port[jaeger_ui]}/api/services" $((2 * ready_timeout))
	otlp=(--otlp-endpoint "127.0.0.1:${port[otlp_grpc]}")
	thrift=(--jaeger-endpoint "$loop:${port[jaeger_thrift_http]}/api/traces")
fi

# The apps, last hop first, each calling the next service's sidecar.
start 2 legacy-pricing "$bin/demo" legacy-pricing --listen "127.0.0.1:${port[legacy_pricing_app]}" "${thrift[@]}"
wait_ready "$!" "$loop:${port[legacy_pricing_app]}/healthz" "$ready_timeout"
pricing=(--pricing "$loop:${port[legacy_pricing_sidecar]}/")
start 2 inventory "$bin/demo" inventory --listen "127.0.0.1:${port[inventory_app]}" "${otlp[@]}"
wait_ready "$!" "$loop:${port[inventory_app]}/healthz" "$ready_timeout"
start 2 catalog "$bin/demo" catalog --listen "127.0.0.1:${port[catalog_app]}" \
	--upstream "$loop:${port[inventory_sidecar]}/" "${pricing[@]}" "${otlp[@]}"
wait_ready "$!" "$loop:${port[catalog_app]}/healthz" "$ready_timeout"
# The catalog's canary: the same app, slower and failing 10 % of its
# requests (its sidecar retries them), so that the canary dashboard shows
# a difference. It gets a quarter of the catalog's traffic (zone-aware
# routing, sidecar-catalog.yaml).
start 2 catalog-canary "$bin/demo" catalog --listen "127.0.0.1:${port[catalog_canary_app]}" \
	--upstream "$loop:${port[inventory_sidecar]}/" "${pricing[@]}" --inject 'delay=20ms&error_rate=0.1' "${otlp[@]}"
wait_ready "$!" "$loop:${port[catalog_canary_app]}/healthz" "$ready_timeout"
start 2 frontend "$bin/demo" frontend --listen "127.0.0.1:${port[frontend_app]}" \
	--upstream "$loop:${port[catalog_sidecar]}/" "${otlp[@]}"
wait_ready "$!" "$loop:${port[frontend_app]}/healthz" "$ready_timeout"

for p in sidecar-legacy-pricing sidecar-inventory sidecar-catalog sidecar-frontend front-proxy; do
	case $p in
	front-proxy) admin=${port[front_proxy_admin]} ;;
	sidecar-*)
		svc=${p#sidecar-}
		admin=${port[${svc//-/_}_sidecar_admin]}
		;;
	esac
	start 1 "$p" "$bin/hopwatch-proxy" -c "${config[$p]}"
	wait_ready "$!" "$loop:$admin/ready" "$ready_timeout"
done

# One request through every hop before the load starts, so that a broken
# chain is reported here rather than as a stream of 5xx.
front="$loop:${port[front_proxy]}/"
reply=$(curl -sS --max-time 15 -w '\n%{http_code}' "$front" 2>&1) || true
code=${reply##*$'\n'}
if [[ $code != 200 ]]; then
	echo "up: a request through the chain ($front) did not answer 200:" >&2
	printf '    %s\n' "${reply//$'\n'/$'\n'    }" >&2
	echo "up: see the logs in $logs; stopping everything" >&2
	stop_all >&2
	exit 1
fi

start 0 load "$bin/demo" load --target "$front" --rate "$load_rate" --duration "$load_duration"
load_pid=$!

if ((jaeger)); then
	jaeger_line="$loop:${port[jaeger_ui]}/search
                            API: $loop:${port[jaeger_ui]}/api/traces?service=front-proxy&limit=5
                            (17 spans a request: every proxy and every app,
                            legacy-pricing's reported by jaeger-client-go)
                            (a Jaeger built from its Go module has no web UI assets:
                            / then shows a placeholder page, but the API works)"
else
	jaeger_line="not running: build it with \`make tools\` and run \`make up\` again"
fi
cat <<EOF

hopwatch is up. Logs: ${logs#"$root"/}/*.log

  what                      URL
  front proxy (clients)     $loop:${port[front_proxy]}/
  front proxy over TLS      https://127.0.0.1:${port[front_proxy_tls]}/ (self-signed: curl -k)
  front proxy stats         $loop:${port[front_proxy_admin]}/stats/prometheus
  frontend sidecar stats    $loop:${port[frontend_sidecar_admin]}/stats/prometheus
  catalog sidecar stats     $loop:${port[catalog_sidecar_admin]}/stats/prometheus
  inventory sidecar stats   $loop:${port[inventory_sidecar_admin]}/stats/prometheus
  legacy-pricing sidecar    $loop:${port[legacy_pricing_sidecar_admin]}/stats/prometheus
  statsd-sink (all proxies) $loop:${port[sink_web]}/metrics
  Jaeger UI                 $jaeger_line

What to look at:
  - The sink turns the proxies' 5 s DogStatsD flushes into Envoy's Prometheus names:
      curl -s $loop:${port[sink_web]}/metrics | grep -E '^envoy_cluster_upstream_rq(_total)?\\{'
    Every series names its proxy (node_id="front-proxy", "catalog-sidecar", ...):
      curl -s $loop:${port[sink_web]}/metrics | grep '^envoy_server_live'
  - Cross-zone stats (front proxy in zone-a, frontend in zone-b):
      curl -s '$loop:${port[front_proxy_admin]}/stats?filter=zone'
  - A canary, routed zone-aware: the catalog sidecar sends a quarter of its
    requests across zones to the catalog canary ($loop:${port[catalog_canary_app]}, slower, 10 % errors):
      curl -s $loop:${port[sink_web]}/metrics | grep -E 'envoy_cluster_(canary_upstream_rq_completed|lb_zone_routing).*catalog_app'
  - Retries: make the catalog fail 30% of requests; its sidecar retries them:
      curl -X POST '$loop:${port[catalog_app]}/demo/inject?error_rate=0.3'
      curl -s $loop:${port[sink_web]}/metrics | grep 'upstream_rq_retry.*catalog_app'
      curl -X DELETE $loop:${port[catalog_app]}/demo/inject
  - One request, three ways: its x-request-id ties the access-log lines of
    every hop (grep it in ${logs#"$root"/}/*.log) and, with Jaeger, its trace:
      curl -si $front
  - legacy-pricing, still traced with jaeger-client-go (uber-trace-id from its
    sidecar, thrift to Jaeger), shows in the same traces as every other hop:
      curl -s '$loop:${port[jaeger_ui]}/api/traces?service=legacy-pricing&limit=1'

Load: demo load at $load_rate req/s for $load_duration (UP_LOAD_RATE, UP_LOAD_DURATION); the
rest keeps running after it ends. Not part of this step yet: Prometheus,
Grafana and the Tilt environment.
Press Ctrl-C to stop everything.
EOF

# Watch the children: any exit other than the load generator finishing is
# a failure that takes the whole pipeline down.
while :; do
	done_pid=
	status=0
	wait -n -p done_pid "${pids[@]}" || status=$?
	[[ -n $done_pid ]] || continue
	name=${name_of[$done_pid]}
	if [[ $done_pid == "$load_pid" && $status == 0 ]]; then
		echo "up: the load generator finished ($(tail -n 1 "${log_of[$done_pid]}")); everything else keeps running. Ctrl-C to stop."
		remaining=()
		for pid in "${pids[@]}"; do
			[[ $pid == "$done_pid" ]] || remaining+=("$pid")
		done
		pids=("${remaining[@]}")
		continue
	fi
	fail "$done_pid" "$name (pid $done_pid) exited unexpectedly with status $status"
done
