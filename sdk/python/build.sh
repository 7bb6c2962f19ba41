#!/usr/bin/env bash
# Builds a hearsay handler written in Python into a WebAssembly component.
#
#   build.sh [PROJECT_DIR] [OUT.wasm]
#
# PROJECT_DIR (default .) holds app.py, which defines the handler (see README.md); other modules
# and packages beside it may be imported. OUT defaults to PROJECT_DIR/<name of PROJECT_DIR>.wasm.
#
# The first run installs componentize-py (pinned below) into a private virtualenv beside this
# script ($SCRIPT_DIR/.venv, made with `python3 -m venv`; your Python's packages are not
# touched). Set PYTHON to choose the interpreter that makes it, or COMPONENTIZE_PY to the path of
# a componentize-py of your own. The hearsay package (hearsay/) sits beside this script; the WIT
# is $SCRIPT_DIR/wit, else $SCRIPT_DIR/../../wit (inside the hearsay repository).
#
# Bindings are generated from the WIT into PROJECT_DIR/.build/bindings on every build (stubs for
# editors and type checkers: componentize-py makes the real ones itself); nothing generated is
# meant to be committed.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

say() { printf 'build.sh: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PROJECT_DIR=${1:-.}
[[ -d $PROJECT_DIR ]] || die "project directory '$PROJECT_DIR' does not exist"
PROJECT_DIR=$(cd "$PROJECT_DIR" && pwd)
NAME=$(basename "$PROJECT_DIR")
OUT=${2:-$PROJECT_DIR/$NAME.wasm}
[[ $OUT == /* ]] || OUT=$PWD/$OUT

[[ -f $PROJECT_DIR/app.py ]] ||
	die "no app.py in $PROJECT_DIR: it is the module that defines the handler"
[[ -f $SCRIPT_DIR/hearsay/__init__.py && -f $SCRIPT_DIR/hearsay/_world.py ]] ||
	die "the hearsay package is missing: expected $SCRIPT_DIR/hearsay/ beside build.sh"
[[ ! -e $PROJECT_DIR/hearsay || $PROJECT_DIR -ef $SCRIPT_DIR ]] ||
	die "$PROJECT_DIR/hearsay shadows the SDK's hearsay package: rename it"

if [[ -d $SCRIPT_DIR/wit ]]; then
	WIT=$SCRIPT_DIR/wit
elif [[ -f $SCRIPT_DIR/../../wit/handler.wit ]]; then
	WIT=$(cd "$SCRIPT_DIR/../../wit" && pwd)
else
	die "no WIT found: expected $SCRIPT_DIR/wit/handler.wit (or ../../wit in the hearsay repository)"
fi
# The handler world with wasi:http imported by name (wit/handler-http.wit), for hearsay.http.
WORLD=handler-with-http
[[ -f $WIT/handler-http.wit && -d $WIT/deps ]] ||
	die "$WIT lacks handler-http.wit or deps/ (the WASI packages): copy them from the hearsay repository's wit/"

# --- the tool -------------------------------------------------------------------------------

has_version() { # componentize-py binary -> whether it is the pinned version
	[[ -x $1 ]] && [[ $("$1" --version 2>/dev/null) == "componentize-py $COMPONENTIZE_PY_VERSION" ]]
}

if [[ -n ${COMPONENTIZE_PY:-} ]]; then
	CPY=$COMPONENTIZE_PY
	"$CPY" --version >/dev/null 2>&1 || die "COMPONENTIZE_PY=$CPY does not run"
	has_version "$CPY" ||
		say "warning: $CPY is not componentize-py $COMPONENTIZE_PY_VERSION, the tested version"
else
	VENV=$SCRIPT_DIR/.venv
	CPY=$VENV/bin/componentize-py
	if ! has_version "$CPY"; then
		if [[ ! -x $VENV/bin/python ]]; then
			PY=${PYTHON:-python3}
			command -v "$PY" >/dev/null ||
				die "$PY not found: componentize-py needs Python 3 (>= 3.9) to install; install python3 or set PYTHON"
			say "installing componentize-py $COMPONENTIZE_PY_VERSION into $VENV (first build only)"
			"$PY" -m venv "$VENV" ||
				die "'$PY -m venv $VENV' failed (on Debian/Ubuntu: apt-get install python3-venv)"
		else
			say "installing componentize-py $COMPONENTIZE_PY_VERSION into $VENV"
		fi
		"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
			"componentize-py==$COMPONENTIZE_PY_VERSION" >&2 ||
			die "pip could not install componentize-py $COMPONENTIZE_PY_VERSION into $VENV (no network? remove $VENV and try again)"
		has_version "$CPY" || die "componentize-py $COMPONENTIZE_PY_VERSION did not install into $VENV"
	fi
fi

# --- the build ------------------------------------------------------------------------------

BUILD=$PROJECT_DIR/.build
mkdir -p "$BUILD"
rm -rf "$BUILD/bindings"
"$CPY" -q -d "$WIT" -w "$WORLD" bindings "$BUILD/bindings" ||
	die "componentize-py could not generate bindings from $WIT"

mkdir -p "$(dirname "$OUT")"
TMP=$(mktemp -d "$BUILD/out.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
TMP_OUT=$TMP/out.wasm

say "building $OUT"
# The app is hearsay._world, which imports the project's app.py. The project comes first on the
# path; the SDK directory gives the hearsay package. componentize-py runs the imports once, now,
# and keeps the initialised interpreter in the component.
if ! (cd "$PROJECT_DIR" && RUST_BACKTRACE=0 "$CPY" -q -d "$WIT" -w "$WORLD" componentize \
	-p "$PROJECT_DIR" -p "$SCRIPT_DIR" hearsay._world -o "$TMP_OUT"); then
	die "componentize-py failed to build $PROJECT_DIR (see above: an exception in app.py at import time is reported here)"
fi
mv -f "$TMP_OUT" "$OUT"
say "built $OUT ($(wc -c <"$OUT") bytes)"
