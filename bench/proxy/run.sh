#!/usr/bin/env bash
# bench/proxy/run.sh — `make bench-proxy`: hopwatch-proxy vs nginx, HAProxy
# and Caddy, all with access logging on, plus the upstream alone as a
# baseline, in interleaved rounds. Rewrites the "## hopwatch-proxy vs nginx, HAProxy, Caddy" section
# of BENCHMARKS.md and leaves the rest of the file alone.
#
# Settings (environment):
#   LOADS=2x64,1x50,tls:1x50                     wrk THREADSxCONNECTIONS pairs; tls: = HTTPS
#                                                (WRK_THREADS/WRK_CONNECTIONS, if set
#                                                and LOADS is not, give one pair)
#   ROUNDS=3                                     interleaved rounds
#   WRK_DURATION=10 (seconds) WARMUP=2 (seconds) per proxy, per load, per round
#   PROXIES=nginx,haproxy,caddy,hopwatch-proxy-off,hopwatch-proxy-nostats,hopwatch-proxy,hopwatch-proxy-full
#                                                which proxies to measure
#                                                (-off: nothing on; -nostats: stats off;
#                                                -full: statsd-sink, access log, Jaeger;
#                                                -exemplars, not in the default: -full
#                                                with exemplars on its StatsD sink)
#   BODY_SIZE=128                                upstream body in bytes
#   BENCH_OUT=BENCHMARKS.md                      file to update; empty = print only
#   MODES=wrk                                    what to measure, from
#                                                wrk,h2,grpc,idle,bodies,stats; each
#                                                mode but wrk compares nginx with the
#                                                hopwatch-proxy variants in PROXIES
#                                                (stats: timer vs compact) and writes
#                                                a section of its own
#   H1_CONNS=64 H2_CONNS=4 H2_STREAMS=100        h2/grpc modes: h2load --h1 -c, and
#                                                HTTP/2 connections × streams each
#   IDLE_CONNS=10000                             idle mode: idle keep-alive connections
#
# It installs missing peers and wrk with apt-get (it must run as root then),
# sends traffic only to 127.0.0.1, bounds every wrk run with -d, and kills
# every process it started and removes its temporary directory on exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

default_loads=2x64,1x50,tls:1x50
if [[ -z ${LOADS:-} && ( -n ${WRK_THREADS:-} || -n ${WRK_CONNECTIONS:-} ) ]]; then
	LOADS=${WRK_THREADS:-2}x${WRK_CONNECTIONS:-64}
fi
loads=${LOADS:-$default_loads}
rounds=${ROUNDS:-3}
duration=${WRK_DURATION:-10}
warmup=${WARMUP:-2}
default_proxies=nginx,haproxy,caddy,hopwatch-proxy-off,hopwatch-proxy-nostats,hopwatch-proxy,hopwatch-proxy-full
proxies=${PROXIES:-$default_proxies}
body_size=${BODY_SIZE:-128}
out=${BENCH_OUT-BENCHMARKS.md}
modes=${MODES:-wrk}
h1_conns=${H1_CONNS:-64}
h2_conns=${H2_CONNS:-4}
h2_streams=${H2_STREAMS:-100}
idle_conns=${IDLE_CONNS:-10000}
# Accept "10" and "10s" alike; the harness wants whole seconds.
duration=${duration%s}
warmup=${warmup%s}
for pair in ROUNDS:rounds WRK_DURATION:duration WARMUP:warmup BODY_SIZE:body_size \
	H1_CONNS:h1_conns H2_CONNS:h2_conns H2_STREAMS:h2_streams IDLE_CONNS:idle_conns; do
	env_name=${pair%%:*} v=${pair#*:}
	if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
		echo "run.sh: $env_name=${!v}: want a whole number" >&2
		exit 2
	fi
done
if ! [[ $loads =~ ^(tls:)?[0-9]+x[0-9]+(,(tls:)?[0-9]+x[0-9]+)*$ ]]; then
	echo "run.sh: LOADS=$loads: want THREADSxCONNECTIONS pairs (tls:THREADSxCONNECTIONS for HTTPS) separated by commas, such as $default_loads" >&2
	exit 2
fi

# --- tools -----------------------------------------------------------------
# wrk and the peers this run measures, installed with apt-get when missing.
want=(wrk)
for p in nginx haproxy caddy; do
	[[ ,$proxies, == *,$p,* ]] && want+=("$p")
done
[[ ,$modes, == *,h2,* ]] && want+=(h2load)
"$root/bench/proxy/install-peers.sh" "${want[@]}"
export PATH=$PATH:/usr/sbin:/sbin

# The idle mode holds IDLE_CONNS connections in the harness and as many in
# each proxy: raise the open-file limit (soft and hard; root may exceed
# the hard one) for the harness and everything it starts.
if [[ ,$modes, == *,idle,* ]]; then
	need=$((idle_conns + 4096))
	if (($(ulimit -n) < need)) && ! ulimit -n "$need" 2>/dev/null; then
		echo "run.sh: MODES has idle, but ulimit -n cannot be raised from $(ulimit -n) to $need (hard limit $(ulimit -Hn); not root?): lower IDLE_CONNS or raise the limit" >&2
		exit 1
	fi
fi

# --- work directory and cleanup --------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/hopwatch-bench-proxy.XXXXXX")
harness_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [[ -n $harness_pid ]] && kill -0 "$harness_pid" 2>/dev/null; then
		# The harness stops its children itself on SIGTERM; whatever is left
		# dies with it (each child has Pdeathsig=SIGKILL).
		kill -TERM "$harness_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$harness_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$harness_pid" 2>/dev/null || true
		wait "$harness_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- build -----------------------------------------------------------------
mkdir -p "$work/bin"
echo "run.sh: building upstream, harness and hopwatch-proxy" >&2
go build -o "$work/bin/upstream" ./bench/proxy/upstream
go build -o "$work/bin/harness" ./bench/proxy
hopwatch_args=()
if [[ ,$proxies, == *,hopwatch-proxy* || ,$modes, == *,stats,* ]]; then
	if ! go build -o "$work/bin/hopwatch-proxy" ./cmd/hopwatch-proxy; then
		echo "run.sh: hopwatch-proxy does not build; fix it, or run the peers alone with PROXIES=nginx,haproxy,caddy" >&2
		exit 1
	fi
	hopwatch_args=(-hopwatch "$work/bin/hopwatch-proxy")
fi

# hopwatch-proxy-full and -exemplars need a real statsd-sink (as `make
# build` builds it) and Jaeger (bin/jaeger, from `make tools`).
if [[ ,$proxies, == *,hopwatch-proxy-full,* || ,$proxies, == *,hopwatch-proxy-exemplars,* ]]; then
	go build -o "$work/bin/statsd-sink" ./cmd/statsd-sink
	if [[ ! -x $root/bin/jaeger ]]; then
		echo "run.sh: $root/bin/jaeger is missing: run \`make tools\` (or tools/build.sh jaeger), or leave hopwatch-proxy-full and hopwatch-proxy-exemplars out of PROXIES" >&2
		exit 1
	fi
	hopwatch_args+=(-statsd-sink "$work/bin/statsd-sink" -jaeger "$root/bin/jaeger"
		-jaeger-config "$root/tracing/testdata/jaeger-e2e.yaml")
fi

# The command recorded in BENCHMARKS.md, with the settings spelled out.
recorded="ROUNDS=$rounds"
[[ ,$modes, == *,wrk,* ]] && recorded+=" LOADS=$loads"
recorded+=" WRK_DURATION=$duration WARMUP=$warmup"
[[ $proxies != "$default_proxies" ]] && recorded+=" PROXIES=$proxies"
[[ $body_size != 128 ]] && recorded+=" BODY_SIZE=$body_size"
[[ $modes != wrk ]] && recorded+=" MODES=$modes"
[[ ,$modes, == *,h2,* && $h1_conns != 64 ]] && recorded+=" H1_CONNS=$h1_conns"
[[ ,$modes, == *,h2,* || ,$modes, == *,grpc,* ]] && [[ $h2_conns != 4 ]] && recorded+=" H2_CONNS=$h2_conns"
[[ ,$modes, == *,h2,* || ,$modes, == *,grpc,* ]] && [[ $h2_streams != 100 ]] && recorded+=" H2_STREAMS=$h2_streams"
[[ ,$modes, == *,idle,* && $idle_conns != 10000 ]] && recorded+=" IDLE_CONNS=$idle_conns"
recorded+=" bench/proxy/run.sh"

# Run in the background and wait, so that the traps fire while it runs.
"$work/bin/harness" \
	-upstream "$work/bin/upstream" "${hopwatch_args[@]}" \
	-modes "$modes" -h1-conns "$h1_conns" -h2-conns "$h2_conns" -h2-streams "$h2_streams" -idle-conns "$idle_conns" \
	-proxies "$proxies" \
	-loads "$loads" -rounds "$rounds" \
	-duration "${duration}s" -warmup "${warmup}s" \
	-body-size "$body_size" -workers "$(nproc)" \
	-workdir "$work/run" -out "$out" -command "$recorded" &
harness_pid=$!
wait "$harness_pid"
