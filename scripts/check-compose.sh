#!/usr/bin/env bash
# check-compose.sh — validate docker-compose.yml without a Docker engine, using the
# docker-compose CLI (Debian: apt-get install docker-compose) or, if present, `docker compose`.
# Exits 0 with "skipped: …" when neither is installed, non-zero when the file is invalid or an
# image is not pinned to a version.
# Also checks dashboards/prometheus.yml with promtool when that is installed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
file="$repo/docker-compose.yml"

if command -v docker-compose >/dev/null 2>&1; then
	compose=(docker-compose)
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
else
	echo "check-compose: skipped: docker-compose not installed (apt-get install docker-compose)"
	exit 0
fi

"${compose[@]}" -f "$file" config -q
# Every image pinned to a version: an unpinned one changes under its users between two `up`s.
unpinned="$("${compose[@]}" -f "$file" config | awk '$1 == "image:" && ($2 !~ /:/ || $2 ~ /:latest$/) { print $2 }')"
if [ -n "$unpinned" ]; then
	echo "check-compose: unpinned image(s) in $file: $unpinned" >&2
	exit 1
fi
echo "check-compose: ok: $file (${compose[*]} config, every image pinned)"

if command -v promtool >/dev/null 2>&1; then
	promtool check config "$repo/dashboards/prometheus.yml" >/dev/null
	echo "check-compose: ok: dashboards/prometheus.yml (promtool)"
fi
