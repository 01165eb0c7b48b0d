#!/usr/bin/env bash
# fetch-chdb.sh — fetch chDB's libchdb.so (the in-process ClickHouse engine that embedded mode
# loads at run time) from the npm package @chdb/lib-linux-x64-gnu, pinned by version and by the
# sha256 of the package tarball.
#
#   scripts/fetch-chdb.sh            # → <repo>/.deps/chdb/libchdb.so, prints that path
#   DEST=/some/where/libchdb.so scripts/fetch-chdb.sh
#
# Environment:
#   DEST       where to put libchdb.so (default: <repo>/.deps/chdb/libchdb.so)
#   CHDB_TGZ   use this local copy of the package tarball instead of `npm pack` (it is still
#              checked against the pinned sha256); handy for offline runs and tests
#
# Idempotent: a stamp file next to DEST records version and checksum; when it matches and DEST
# exists, nothing is downloaded and the path is printed. The only line on stdout is the path;
# progress goes to stderr.
#
# No PyPI fallback: the wheel `chdb-core` (checked at 26.5.0, the nearest to 26.5.3 — there is
# no 26.5.3 wheel) ships no libchdb.so; its chdb/_chdb.abi3.so is a Python extension that exports
# only PyInit__chdb and none of the chdb_* C API, and needs a Python interpreter's symbols. So
# npm is required.
set -euo pipefail

CHDB_NPM_PACKAGE="@chdb/lib-linux-x64-gnu"
CHDB_VERSION="26.5.3"
CHDB_TGZ_SHA256="b874e449710950da3abd7e20376f7bb3387d9e03adcc7082f022be18dfdf316a"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${DEST:-$repo/.deps/chdb/libchdb.so}"
stamp="$dest.stamp"
want_stamp="package=$CHDB_NPM_PACKAGE version=$CHDB_VERSION sha256=$CHDB_TGZ_SHA256"

log() { printf 'fetch-chdb: %s\n' "$*" >&2; }
die() { printf 'fetch-chdb: ERROR: %s\n' "$*" >&2; exit 1; }

up_to_date() {
	if [[ -f "$dest" && -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]]; then
		log "up to date ($CHDB_NPM_PACKAGE@$CHDB_VERSION)"
		printf '%s\n' "$dest"
		exit 0
	fi
}
up_to_date

dest_dir="$(dirname "$dest")"
mkdir -p "$dest_dir"
# One fetch at a time (parallel test runs); the lock goes when this process exits.
exec {lock}>"$dest.lock"
flock "$lock"
up_to_date
# Work next to the destination so the final move is a rename on the same file system
# (the library is ~560 MB unpacked).
tmp="$(mktemp -d "$dest_dir/.fetch-chdb.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if [[ -n "${CHDB_TGZ:-}" ]]; then
	[[ -f "$CHDB_TGZ" ]] || die "CHDB_TGZ=$CHDB_TGZ does not exist"
	log "using local tarball $CHDB_TGZ"
	tgz="$CHDB_TGZ"
else
	command -v npm >/dev/null 2>&1 ||
		die "npm not found; install Node.js/npm (e.g. apt-get install npm) or set CHDB_TGZ to a copy of $CHDB_NPM_PACKAGE-$CHDB_VERSION's tarball"
	log "npm pack $CHDB_NPM_PACKAGE@$CHDB_VERSION (~166 MB)"
	# A private npm cache inside the temp dir keeps the download out of ~/.npm.
	(cd "$tmp" && npm pack --silent --cache "$tmp/npm-cache" \
		"$CHDB_NPM_PACKAGE@$CHDB_VERSION" >/dev/null) ||
		die "npm pack $CHDB_NPM_PACKAGE@$CHDB_VERSION failed"
	rm -rf "$tmp/npm-cache"
	shopt -s nullglob
	tgzs=("$tmp"/*.tgz)
	shopt -u nullglob
	[[ ${#tgzs[@]} -eq 1 ]] || die "npm pack produced ${#tgzs[@]} tarballs in $tmp, expected 1"
	tgz="${tgzs[0]}"
fi

got="$(sha256sum "$tgz" | cut -d' ' -f1)"
if [[ "$got" != "$CHDB_TGZ_SHA256" ]]; then
	die "checksum mismatch for $tgz
  expected sha256 $CHDB_TGZ_SHA256
  got      sha256 $got
refusing to install it; if the pin was bumped on purpose, update CHDB_VERSION and CHDB_TGZ_SHA256 in $0"
fi
log "sha256 ok"

tar -xzmf "$tgz" -C "$tmp" package/libchdb.so || die "package/libchdb.so not found in $tgz"
chmod 0755 "$tmp/package/libchdb.so"
rm -f "$stamp"
mv -f "$tmp/package/libchdb.so" "$dest"
printf '%s\n' "$want_stamp" >"$stamp"
log "installed $dest"
printf '%s\n' "$dest"
