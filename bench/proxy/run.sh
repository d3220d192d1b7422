#!/usr/bin/env bash
# bench/proxy/run.sh — `make bench-proxy`: hopwatch-proxy vs nginx, HAProxy
# and Caddy, all with access logging on, plus the upstream alone as a
# baseline. Rewrites the "## hopwatch-proxy vs nginx, HAProxy, Caddy" section
# of BENCHMARKS.md and leaves the rest of the file alone.
#
# Settings (environment):
#   WRK_THREADS=2 WRK_CONNECTIONS=64 WRK_DURATION=10 (seconds) WARMUP=2 (seconds)
#   PROXIES=nginx,haproxy,caddy,hopwatch-proxy-nostats,hopwatch-proxy
#                                                which proxies to measure
#                                                (hopwatch-proxy-nostats: stats off)
#   BODY_SIZE=128                                upstream body in bytes
#   BENCH_OUT=BENCHMARKS.md                      file to update; empty = print only
#
# It installs missing peers and wrk with apt-get (it must run as root then),
# sends traffic only to 127.0.0.1, bounds every wrk run with -d, and kills
# every process it started and removes its temporary directory on exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

threads=${WRK_THREADS:-2}
connections=${WRK_CONNECTIONS:-64}
duration=${WRK_DURATION:-10}
warmup=${WARMUP:-2}
default_proxies=nginx,haproxy,caddy,hopwatch-proxy-nostats,hopwatch-proxy
proxies=${PROXIES:-$default_proxies}
body_size=${BODY_SIZE:-128}
out=${BENCH_OUT-BENCHMARKS.md}
# Accept "10" and "10s" alike; the harness wants whole seconds.
duration=${duration%s}
warmup=${warmup%s}
for pair in WRK_THREADS:threads WRK_CONNECTIONS:connections WRK_DURATION:duration WARMUP:warmup BODY_SIZE:body_size; do
	env_name=${pair%%:*} v=${pair#*:}
	if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
		echo "run.sh: $env_name=${!v}: want a whole number" >&2
		exit 2
	fi
done

# --- tools -----------------------------------------------------------------
# wrk and the peers this run measures, installed with apt-get when missing.
want=(wrk)
for p in nginx haproxy caddy; do
	[[ ,$proxies, == *,$p,* ]] && want+=("$p")
done
"$root/bench/proxy/install-peers.sh" "${want[@]}"
export PATH=$PATH:/usr/sbin:/sbin

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
if [[ ,$proxies, == *,hopwatch-proxy,* || ,$proxies, == *,hopwatch-proxy-nostats,* ]]; then
	if ! go build -o "$work/bin/hopwatch-proxy" ./cmd/hopwatch-proxy; then
		echo "run.sh: hopwatch-proxy does not build; fix it, or run the peers alone with PROXIES=nginx,haproxy,caddy" >&2
		exit 1
	fi
	hopwatch_args=(-hopwatch "$work/bin/hopwatch-proxy")
fi

# The command recorded in BENCHMARKS.md, with the settings spelled out.
recorded="WRK_THREADS=$threads WRK_CONNECTIONS=$connections WRK_DURATION=$duration WARMUP=$warmup"
[[ $proxies != "$default_proxies" ]] && recorded+=" PROXIES=$proxies"
[[ $body_size != 128 ]] && recorded+=" BODY_SIZE=$body_size"
recorded+=" bench/proxy/run.sh"

# Run in the background and wait, so that the traps fire while it runs.
"$work/bin/harness" \
	-upstream "$work/bin/upstream" "${hopwatch_args[@]}" \
	-proxies "$proxies" \
	-threads "$threads" -connections "$connections" \
	-duration "${duration}s" -warmup "${warmup}s" \
	-body-size "$body_size" -workers "$(nproc)" \
	-workdir "$work/run" -out "$out" -command "$recorded" &
harness_pid=$!
wait "$harness_pid"
