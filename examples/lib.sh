# shellcheck shell=bash
# What the examples' run.sh scripts share; sourced, not run. It finds the repo, builds (or
# reuses) the `hearsay` binary and the handler components, keeps the pids the example starts and
# stops exactly those when the script ends however it ends, and gives bounded waits.
#
# Environment (all optional):
#   HEARSAY_BIN        a built `hearsay` binary to use instead of building one
#   HEARSAY_PROFILE    `debug` (default) or `release`: which build of `hearsay` to make
#   CARGO_TARGET_DIR   where cargo builds `hearsay` (default: the repo's target/)
#   HEARSAY_WASM_DIR   a directory holding the built hearsay_handler_*.wasm, instead of building them
#   EXAMPLE_PORT_BASE  first port of the block the example uses (each example has its own default)
#   EXAMPLE_KEEP=1     after the demonstration, keep the cluster running until Ctrl-C

set -euo pipefail

EXAMPLES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$EXAMPLES_DIR/.." && pwd)
EXAMPLE=${EXAMPLE:-example}

# Every process the example starts, by pid; cleanup stops these and no other.
PIDS=()
# The ones that should still be running, by name: a wait gives up at once if one has exited.
declare -A RUNNING=()
WORK=""

say() { printf '\n== %s\n' "$*"; }
die() {
  echo "$EXAMPLE: $*" >&2
  exit 1
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
# A signal ends the script through its EXIT trap, so the agents are stopped then too.
trap 'exit 130' INT
trap 'exit 143' TERM

# Checks that what the example needs is installed; `scripts/setup.sh` installs all of it.
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "\`$tool\` is not installed: run scripts/setup.sh (once per machine) first"
  done
}

# Sets HEARSAY: the binary, from HEARSAY_BIN or built with cargo.
build_hearsay() {
  if [ -n "${HEARSAY_BIN:-}" ]; then
    [ -x "$HEARSAY_BIN" ] || die "HEARSAY_BIN=$HEARSAY_BIN is not an executable"
    HEARSAY=$HEARSAY_BIN
    return
  fi
  need cargo
  local profile=${HEARSAY_PROFILE:-debug} flag=()
  case "$profile" in
    debug) ;;
    release) flag=(--release) ;;
    *) die "HEARSAY_PROFILE must be debug or release, not $profile" ;;
  esac
  say "building hearsay ($profile)"
  (cd "$REPO" && cargo build -q "${flag[@]}" -p hearsay --bin hearsay)
  HEARSAY=${CARGO_TARGET_DIR:-$REPO/target}/$profile/hearsay
  case "$HEARSAY" in /*) ;; *) HEARSAY=$REPO/$HEARSAY ;; esac
}

# Sets WASM: the directory of the built handler components (handlers/), built for wasm32-wasip2
# as handlers/README.md says unless HEARSAY_WASM_DIR names them already.
build_handlers() {
  if [ -n "${HEARSAY_WASM_DIR:-}" ]; then
    WASM=$HEARSAY_WASM_DIR
  else
    need cargo rustup
    rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 ||
      die "the wasm32-wasip2 target is not installed: run scripts/setup.sh (once per machine) first"
    say "building the handler components for wasm32-wasip2 (handlers/)"
    # The host's flags are not meant for the wasm target.
    (cd "$REPO" && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET -u CARGO_TARGET_DIR \
      cargo build -q --release --target wasm32-wasip2 --manifest-path handlers/Cargo.toml)
    WASM=$REPO/handlers/target/wasm32-wasip2/release
  fi
  local name
  for name in "$@"; do
    [ -f "$WASM/hearsay_handler_$name.wasm" ] || die "no $WASM/hearsay_handler_$name.wasm"
  done
}

# Makes WORK, the example's scratch directory (removed at the end), and copies the handlers
# named into it as NAME.wasm: the agents run there, so the config files name `echo.wasm`.
make_work() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/hearsay-$EXAMPLE.XXXXXX")
  local name
  for name in "$@"; do cp "$WASM/hearsay_handler_$name.wasm" "$WORK/$name.wasm"; done
}

# A command as a user would type it: `hearsay` for the binary's path.
typed() {
  local words=("$@")
  if [ "${words[0]}" = "${HEARSAY:-}" ]; then words[0]=hearsay; fi
  echo "${words[*]}"
}

# `start NAME COMMAND...`: runs COMMAND in WORK in the background, its output in WORK/NAME.log.
start() {
  local name=$1
  shift
  (cd "$WORK" && exec "$@") >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  RUNNING[$name]=$!
  echo "started $name (pid $!, log $name.log): $(typed "$@")"
}

# `gone NAME`: NAME was told to stop, so waits no longer expect it to run.
gone() { unset "RUNNING[$1]"; }

# `stop NAME [SIGNAL]`: sends SIGNAL (default TERM) to NAME, started by `start`, and waits for
# it to end; the cleanup then leaves its pid alone (the system may give it to another process).
stop() {
  local name=$1 signal=${2:-TERM} pid p kept=()
  pid=${RUNNING[$name]:?"$name is not running"}
  gone "$name"
  kill "-$signal" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

# The last log lines of every process started.
show_logs() {
  local f
  for f in "$WORK"/*.log; do
    echo "-- last lines of $f:" >&2
    tail -n 20 "$f" >&2
  done
}

# `run COMMAND...`: prints the command as typed and runs it, killed after 30 s.
run() {
  printf '$ %s\n' "$(typed "$@")"
  timeout 30 "$@"
}

# `wait_for SECONDS DESCRIPTION COMMAND...`: runs COMMAND every 0.2 s until it succeeds; after
# SECONDS it prints what the last try printed and the agents' last log lines, and fails. A
# program is killed after 10 s; a shell function runs as it is (the programs it runs must bound
# themselves).
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds)) bound=(timeout 10)
  if declare -F "$1" >/dev/null; then bound=(); fi
  local name
  until "${bound[@]}" "$@" >"$WORK/wait.out" 2>&1; do
    for name in "${!RUNNING[@]}"; do
      if ! kill -0 "${RUNNING[$name]}" 2>/dev/null; then
        echo "$EXAMPLE: $name exited while waiting for $what" >&2
        show_logs
        exit 1
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$EXAMPLE: gave up after ${seconds}s waiting for $what; the last try printed:" >&2
      cat "$WORK/wait.out" >&2
      show_logs
      exit 1
    fi
    sleep 0.2
  done
}

# `expect TEXT FILE`: fails the example unless FILE (a command's saved output) has a line
# containing TEXT.
expect() {
  grep -qF -- "$1" "$2" || die "expected a line with \"$1\"; got:
$(cat "$2")"
}

# With EXAMPLE_KEEP=1, keeps the agents running until Ctrl-C.
keep_running() {
  [ "${EXAMPLE_KEEP:-}" = 1 ] || return 0
  say "the cluster keeps running (EXAMPLE_KEEP=1); logs in $WORK; Ctrl-C stops it"
  while true; do sleep 1; done
}
