#!/usr/bin/env bash
# deploy/local/prometheus-classic.sh DIR — put Debian's prometheus package
# (2.42, with the classic web UI) into DIR, for the dev environment.
#
# The pinned Prometheus (tools/prometheus, 3.x) is built from its Go module,
# which does not carry the web UI's assets: it serves the API and nothing to
# look at. Debian's package serves the classic UI (graph, alerts, rules,
# targets) from /usr/share/prometheus/web, and hopwatch's generated config and
# rules load in it (checked with its promtool and by `tilt ci`). Installing
# the package itself would also install and start a system service on :9090,
# the port the dev environment's Prometheus uses, so this script only
# apt-get installs the UI's JavaScript and font packages (data, no daemons),
# downloads the prometheus .deb and unpacks it into DIR. The Tiltfile runs
# DIR/usr/bin/prometheus with --web.local-assets pointing into DIR when it
# exists, and bin/prometheus (API only) otherwise.
#
# Without apt-get (not Debian) it says so and exits 0: the dev environment
# then runs the API-only Prometheus. apt-get install needs root; without it
# the script says so and exits 0.
set -euo pipefail
dir=${1:?usage: deploy/local/prometheus-classic.sh DIR}
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
	echo "tools: prometheus-classic: no apt-get/dpkg-deb here (not Debian); the dev environment's Prometheus (bin/prometheus) serves the API only, no web UI" >&2
	exit 0
fi
candidate=$(apt-cache policy prometheus 2>/dev/null | sed -nE 's/^ *Candidate: (.*)$/\1/p')
if [[ -z $candidate || $candidate == "(none)" ]]; then
	echo "tools: prometheus-classic: apt has no prometheus package (apt-get update?); the dev environment's Prometheus serves the API only" >&2
	exit 0
fi
if [[ -x $dir/usr/bin/prometheus && -f $dir/version && $(cat "$dir/version") == "$candidate" ]]; then
	echo "tools: prometheus-classic is up to date (Debian prometheus $candidate)"
	exit 0
fi
echo "tools: installing Debian's prometheus $candidate (classic web UI) into $dir ..."
# The UI's scripts and fonts: the package's Depends other than adduser and libc.
deps=$(apt-cache depends prometheus | sed -nE 's/^ *Depends: ((libjs|fonts)-[^ ]+)$/\1/p' | sort -u | tr '\n' ' ')
missing=()
for p in $deps; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) != 0 ]]; then
		echo "tools: prometheus-classic: apt-get install ${missing[*]} (the classic UI's scripts and fonts) needs root; run \`sudo $0 $dir\` for Prometheus's web UI. Until then the dev environment's Prometheus serves the API only." >&2
		exit 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${missing[@]}" ||
		{ apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/prometheus-classic.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "prometheus=$candidate" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
deb=$(ls "$work"/prometheus_*.deb)
rm -rf "$dir"
mkdir -p "$dir"
dpkg-deb -x "$deb" "$dir"
# The web assets link to the JavaScript and fonts relative to /usr/share
# (../../../javascript/jquery); point those at the installed packages.
ln -sfn /usr/share/javascript "$dir/usr/share/javascript"
ln -sfn /usr/share/fonts-glyphicons "$dir/usr/share/fonts-glyphicons"
for f in jquery/jquery.min.js bootstrap4/js/bootstrap.min.js rickshaw/rickshaw.min.js; do
	[[ -e $dir/usr/share/prometheus/web/static/$f ]] || { echo "tools: prometheus-classic: web asset static/$f does not resolve after install" >&2; exit 1; }
done
echo "$candidate" >"$dir/version"
echo "tools: installed Debian's prometheus $candidate into $dir"
