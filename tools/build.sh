#!/usr/bin/env bash
# build.sh TOOL... — build pinned dev tools into ./bin.
#
# Each tool is pinned by its own module in tools/<tool>/ (go.mod + go.sum with
# a `tool` directive), so that the tools' dependencies never enter the
# product's go.mod and never constrain each other. A tool is rebuilt only when
# its binary is missing or its go.mod/go.sum changed since the last build
# (bin/.<tool>.stamp holds their checksum).
#
# A tool that cannot be built from a `tool` directive (Tilt) has a
# tools/<tool>/build.sh that takes the output path; its go.mod still pins the
# version, and that script is part of the checksum.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
mkdir -p "$bin"

build_one() {
	local tool=$1 dir="$root/tools/$1"
	if [ ! -f "$dir/go.mod" ]; then
		echo "tools: unknown tool '$tool' (no tools/$tool/go.mod); known: $(cd "$root/tools" && ls -d */ | tr -d / | tr '\n' ' ')" >&2
		return 2
	fi
	local stamp="$bin/.$tool.stamp" sum
	local script=
	[ -f "$dir/build.sh" ] && script="$dir/build.sh"
	sum=$(cat "$dir/go.mod" "$dir/go.sum" $script | sha256sum | cut -c1-16)
	local pkg start
	if [ -n "$script" ]; then
		pkg="$(grep -m1 -E '^require ' "$dir/go.mod" | cut -d' ' -f2,3) via tools/$tool/build.sh"
	else
		pkg=$(grep -m1 -E '^tool ' "$dir/go.mod" | cut -d' ' -f2)
	fi
	if [ -x "$bin/$tool" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
		echo "tools: $tool is up to date ($pkg)"
		return 0
	fi
	start=$(date +%s)
	echo "tools: building $tool from $pkg (pinned in tools/$tool/go.mod) ..."
	if [ -n "$script" ]; then
		"$script" "$bin/$tool"
	else
		(cd "$dir" && GOFLAGS=-mod=mod go build -trimpath -o "$bin/$tool" "$pkg")
	fi
	echo "$sum" >"$stamp"
	echo "tools: built $tool in $(($(date +%s) - start))s"
}

for t in "$@"; do build_one "$t"; done
