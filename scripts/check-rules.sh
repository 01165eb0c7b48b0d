#!/usr/bin/env bash
# check-rules.sh — validate the Prometheus recording and alerting rules in dashboards/rules/
# (`promtool check rules`, duplicate rules an error) and run their unit tests
# (`promtool test rules`: each alert firing and not firing, recording rule values).
# Exits 0 with "skipped: …" when promtool is not installed (Debian: apt-get install
# prometheus), non-zero on any invalid rule or failed test.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rules="$repo/dashboards/rules/statepipe.rules.yml"
tests="$repo/dashboards/rules/statepipe.rules.test.yml"

if ! command -v promtool >/dev/null 2>&1; then
	echo "check-rules: skipped: promtool not installed (apt-get install prometheus)"
	exit 0
fi

promtool check rules --lint=all --lint-fatal "$rules"
promtool test rules "$tests"
echo "check-rules: ok: dashboards/rules (promtool $(promtool --version 2>&1 | awk 'NR == 1 { print $3 }'))"
