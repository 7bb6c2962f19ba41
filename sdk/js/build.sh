#!/usr/bin/env bash
# Builds a hearsay event handler written in JavaScript into a WebAssembly component.
#
#   ./build.sh [PROJECT_DIR] [OUT.wasm]    PROJECT_DIR/handler.js -> OUT (default PROJECT_DIR/NAME.wasm,
#                                          NAME being the directory's name)
#   ./build.sh --types DIR                 writes the TypeScript declarations of the WIT interfaces
#                                          to DIR, for an editor (e.g. DIR=types)
#
# The first run installs the build tools (componentize-js and jco, pinned in package-lock.json) with
# `npm ci` into node_modules beside this script. Needs Node.js 18 or later and npm.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
	echo "build.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 [PROJECT_DIR] [OUT.wasm]" >&2
	echo "       $0 --types DIR" >&2
	exit 2
}

types_dir=""
case "${1:-}" in
-h | --help) usage ;;
--types)
	[ $# -eq 2 ] || usage
	types_dir="$2"
	;;
-*) usage ;;
*) [ $# -le 2 ] || usage ;;
esac

# The WIT contract: beside this script in a project made by `hearsay new`, at the top of the
# hearsay repository for sdk/js/build.sh.
if [ -d "$SCRIPT_DIR/wit" ]; then
	WIT_DIR="$SCRIPT_DIR/wit"
elif [ -d "$SCRIPT_DIR/../../wit" ]; then
	WIT_DIR="$(cd "$SCRIPT_DIR/../../wit" && pwd)"
else
	die "no wit/ directory beside $SCRIPT_DIR (nor at ../../wit): it holds handler.wit, the handler contract"
fi

# Node.js and npm.
command -v node >/dev/null 2>&1 ||
	die "node not found: install Node.js 18 or later (https://nodejs.org, or your system's nodejs package)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "Node.js $(node --version) is too old: componentize-js needs 18 or later"

# The tools, installed once from the committed lock file; installed again when the lock file
# changes (the copy in node_modules/.hearsay-lock records what was installed).
stamp="$SCRIPT_DIR/node_modules/.hearsay-lock"
if ! cmp -s "$SCRIPT_DIR/package-lock.json" "$stamp" 2>/dev/null; then
	[ -f "$SCRIPT_DIR/package-lock.json" ] || die "$SCRIPT_DIR/package-lock.json is missing: it pins the build tools"
	command -v npm >/dev/null 2>&1 || die "npm not found: it comes with Node.js (https://nodejs.org)"
	tools="$(node -p 'Object.entries(require(process.argv[1]).devDependencies).map(([n, v]) => n + "@" + v).join(", ")' "$SCRIPT_DIR/package.json")"
	echo "build.sh: installing the JavaScript build tools into $SCRIPT_DIR/node_modules: $tools (npm ci, ~390 MB, once)" >&2
	(cd "$SCRIPT_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
		die "npm ci failed in $SCRIPT_DIR (is the npm registry reachable?)"
	cp "$SCRIPT_DIR/package-lock.json" "$stamp"
fi

if [ -n "$types_dir" ]; then
	exec node "$SCRIPT_DIR/build.mjs" types "$WIT_DIR" "$types_dir"
fi

PROJECT_DIR="${1:-.}"
[ -d "$PROJECT_DIR" ] || die "$PROJECT_DIR is not a directory"
PROJECT_DIR="$(cd "$PROJECT_DIR" && pwd)"
OUT="${2:-$PROJECT_DIR/$(basename "$PROJECT_DIR").wasm}"
[ -d "$(dirname "$OUT")" ] || die "the directory of $OUT does not exist"

# A private build directory, removed whatever happens.
BUILD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hearsay-js-build.XXXXXXXX")"
trap 'rm -rf "$BUILD_DIR"' EXIT

# Everything the build prints (Wizer's output among it) goes to stderr.
node "$SCRIPT_DIR/build.mjs" component "$WIT_DIR" "$SCRIPT_DIR" "$PROJECT_DIR" "$OUT" "$BUILD_DIR" >&2
echo "build.sh: built $OUT ($(($(wc -c <"$OUT") / 1024)) KiB)" >&2
