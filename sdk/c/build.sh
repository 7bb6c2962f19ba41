#!/usr/bin/env bash
# Builds a hearsay handler written in C into a WebAssembly component.
#
#   ./build.sh [PROJECT_DIR] [OUT.wasm]
#
# PROJECT_DIR (default .) holds the handler's C sources: every *.c in it and in its src/. They are
# compiled with the SDK helpers that sit beside this script (hearsay.h, hearsay.c) and the bindings
# that wit-bindgen generates from the contract (the world handler-with-http: wit/handler.wit,
# wit/handler-http.wit and the WASI packages of wit/deps/, beside this script or at ../../wit inside
# the hearsay repository), into OUT (default PROJECT_DIR/<name of PROJECT_DIR>.wasm). The component
# imports wasi:http only when the handler sends HTTP requests.
#
# The first run installs what is missing, saying so on stderr: Debian's clang-19, lld-19,
# wasi-libc and libclang-rt-19-dev-wasm32 (apt-get, with sudo when not root), wasm-tools and
# wit-bindgen-cli (cargo install --locked, pinned versions), and the WASI preview1 reactor adapter
# (from the crate wasi-preview1-component-adapter-provider, checked against a pinned sha256 and
# cached in ${XDG_CACHE_HOME:-~/.cache}/hearsay/). Later runs take a second or two.
#
# Environment: HEARSAY_CFLAGS and HEARSAY_LDFLAGS add flags for your sources and for the link;
# WASI_SDK_PATH=/opt/wasi-sdk uses that wasi-sdk's clang and sysroot instead of Debian's packages;
# HEARSAY_KEEP_BUILD=1 keeps the build directory (bindings, core module) and prints where it is.
set -euo pipefail

WASM_TOOLS_VERSION=1.263.0
WIT_BINDGEN_VERSION=0.63.0
# The adapter's version follows the wasmtime the agent embeds (48.x).
ADAPTER_VERSION=48.0.8
ADAPTER_SHA256=134b86dc09c6b62077f2307b96fa8b83b94dc86737bc705ac3dbe27cb107b1f9
LLVM_VERSION=19
DEBIAN_PACKAGES=("clang-$LLVM_VERSION" "lld-$LLVM_VERSION" wasi-libc "libclang-rt-$LLVM_VERSION-dev-wasm32")

say() { printf 'build.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=${1:-.}
[ -d "$PROJECT_DIR" ] || die "project directory $PROJECT_DIR does not exist"
PROJECT_DIR=$(cd "$PROJECT_DIR" && pwd)
NAME=$(basename "$PROJECT_DIR")
OUT=${2:-$PROJECT_DIR/$NAME.wasm}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

# The world the bindings are for: the handler world plus wasi:http/outgoing-handler, whose WASI
# packages are in the WIT directory's deps/.
WORLD=handler-with-http
WIT_FILES=(handler.wit handler-http.wit deps/http.wit)
wit_complete() {
    local f
    for f in "${WIT_FILES[@]}"; do [ -f "$1/$f" ] || return 1; done
}
if [ -f "$SCRIPT_DIR/wit/handler.wit" ]; then
    WIT_DIR=$SCRIPT_DIR/wit
elif [ -f "$SCRIPT_DIR/../../wit/handler.wit" ]; then
    WIT_DIR=$(cd "$SCRIPT_DIR/../../wit" && pwd)
else
    die "cannot find the contract: neither $SCRIPT_DIR/wit/handler.wit nor $SCRIPT_DIR/../../wit/handler.wit exists"
fi
wit_complete "$WIT_DIR" ||
    die "$WIT_DIR lacks some of ${WIT_FILES[*]} (the world $WORLD); copy them from the hearsay repository's wit/ (a project made by an older \`hearsay new\` has only handler.wit)"
for f in hearsay.h hearsay.c; do
    [ -f "$SCRIPT_DIR/$f" ] || die "the SDK file $f is missing beside build.sh ($SCRIPT_DIR)"
done

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (no sudo); install the packages yourself"
    fi
}

# --- 1. tools -----------------------------------------------------------------------------------

# The C compiler and the WASI sysroot.
if [ -n "${WASI_SDK_PATH:-}" ]; then
    CLANG=$WASI_SDK_PATH/bin/clang
    [ -x "$CLANG" ] || die "WASI_SDK_PATH is set but $CLANG is not there"
    TARGET_FLAGS=(--target=wasm32-wasip1 "--sysroot=$WASI_SDK_PATH/share/wasi-sysroot")
else
    CLANG=clang-$LLVM_VERSION
    TARGET_FLAGS=(--target=wasm32-wasi)
    debian_ready() {
        command -v "$CLANG" >/dev/null 2>&1 &&
            [ -x /usr/lib/llvm-$LLVM_VERSION/bin/wasm-ld ] &&
            [ -f /usr/include/wasm32-wasi/stdio.h ] &&
            [ -f /usr/lib/wasm32-wasi/crt1-reactor.o ] &&
            [ -f /usr/lib/llvm-$LLVM_VERSION/lib/clang/$LLVM_VERSION/lib/wasi/libclang_rt.builtins-wasm32.a ]
    }
    if ! debian_ready; then
        command -v apt-get >/dev/null 2>&1 ||
            die "clang-$LLVM_VERSION with the wasm32-wasi sysroot is missing and this is not a Debian-like system: install clang, wasm-ld, wasi-libc and compiler-rt for wasm32, or point WASI_SDK_PATH at a wasi-sdk"
        say "installing ${DEBIAN_PACKAGES[*]} with apt-get"
        as_root apt-get update -qq >&2 || die "apt-get update failed"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${DEBIAN_PACKAGES[@]}" >&2 ||
            die "apt-get install ${DEBIAN_PACKAGES[*]} failed"
        debian_ready || die "${DEBIAN_PACKAGES[*]} are installed but clang-$LLVM_VERSION, wasm-ld or the wasm32-wasi sysroot is still missing"
    fi
fi

CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH="$PATH:$CARGO_BIN"
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/hearsay
ensure_cache_dir() {
    mkdir -p "$(dirname "$CACHE_DIR")"
    [ -d "$CACHE_DIR" ] || mkdir -m 0700 "$CACHE_DIR"
    [ -O "$CACHE_DIR" ] || die "$CACHE_DIR is not owned by you; refusing to use it"
}

need_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo is needed to install $1 (install Rust with rustup, see https://rustup.rs), or install $1 yourself"
}

# tool_version BINARY: the version a tool prints ("wit-bindgen-cli 0.63.0" -> 0.63.0).
tool_version() { "$1" --version 2>/dev/null | awk '{print $2; exit}'; }

# wasm-tools: any version makes components; the pinned one is installed when there is none.
if command -v wasm-tools >/dev/null 2>&1; then
    WASM_TOOLS=$(command -v wasm-tools)
else
    need_cargo wasm-tools
    say "installing wasm-tools $WASM_TOOLS_VERSION with cargo install (a few minutes, once)"
    cargo install --locked --quiet --no-default-features --features component "wasm-tools@$WASM_TOOLS_VERSION" >&2 ||
        die "cargo install wasm-tools@$WASM_TOOLS_VERSION failed"
    WASM_TOOLS=$CARGO_BIN/wasm-tools
fi

# wit-bindgen: the SDK helpers use the names of the generated C, so the version is pinned. One
# installed with another version is left alone and the pinned one goes into the cache instead.
WIT_BINDGEN=
for candidate in "$CACHE_DIR/tools/bin/wit-bindgen" "$(command -v wit-bindgen 2>/dev/null || true)"; do
    if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
    # Only run the cached one from a cache directory of our own.
    [ "$candidate" != "$CACHE_DIR/tools/bin/wit-bindgen" ] || [ -O "$CACHE_DIR" ] || continue
    if [ "$(tool_version "$candidate")" = "$WIT_BINDGEN_VERSION" ]; then
        WIT_BINDGEN=$candidate
        break
    fi
done
if [ -z "$WIT_BINDGEN" ]; then
    need_cargo wit-bindgen-cli
    if command -v wit-bindgen >/dev/null 2>&1; then
        ensure_cache_dir
        say "wit-bindgen $(tool_version wit-bindgen) is installed but the SDK needs $WIT_BINDGEN_VERSION:" \
            "installing wit-bindgen-cli $WIT_BINDGEN_VERSION into $CACHE_DIR/tools (a few minutes, once)"
        cargo install --locked --quiet --no-default-features --features c --root "$CACHE_DIR/tools" "wit-bindgen-cli@$WIT_BINDGEN_VERSION" >&2 ||
            die "cargo install wit-bindgen-cli@$WIT_BINDGEN_VERSION failed"
        WIT_BINDGEN=$CACHE_DIR/tools/bin/wit-bindgen
    else
        say "installing wit-bindgen-cli $WIT_BINDGEN_VERSION with cargo install (a few minutes, once)"
        cargo install --locked --quiet --no-default-features --features c "wit-bindgen-cli@$WIT_BINDGEN_VERSION" >&2 ||
            die "cargo install wit-bindgen-cli@$WIT_BINDGEN_VERSION failed"
        WIT_BINDGEN=$CARGO_BIN/wit-bindgen
    fi
fi

# The WASI preview1 reactor adapter, which turns wasi-libc's preview1 imports into the preview2
# interfaces the agent provides.
ADAPTER=$CACHE_DIR/wasi_snapshot_preview1.reactor-$ADAPTER_VERSION.wasm
sha256_of() { sha256sum "$1" | awk '{print $1}'; }
if [ ! -f "$ADAPTER" ] || [ "$(sha256_of "$ADAPTER")" != "$ADAPTER_SHA256" ]; then
    ensure_cache_dir
    need_cargo "the WASI adapter (crate wasi-preview1-component-adapter-provider)"
    say "fetching the WASI preview1 reactor adapter $ADAPTER_VERSION (crate wasi-preview1-component-adapter-provider)"
    fetch_dir=$(mktemp -d)
    mkdir "$fetch_dir/src"
    : >"$fetch_dir/src/lib.rs"
    cat >"$fetch_dir/Cargo.toml" <<EOF
[package]
name = "hearsay-adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_VERSION"
EOF
    if ! (cd "$fetch_dir" && cargo fetch --quiet >&2); then
        rm -rf "$fetch_dir"
        die "cargo fetch of wasi-preview1-component-adapter-provider $ADAPTER_VERSION failed"
    fi
    rm -rf "$fetch_dir"
    found=
    for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"wasi-preview1-component-adapter-provider-$ADAPTER_VERSION/artefacts/wasi_snapshot_preview1.reactor.wasm"; do
        [ -f "$f" ] && [ "$(sha256_of "$f")" = "$ADAPTER_SHA256" ] && found=$f && break
    done
    [ -n "$found" ] || die "the fetched crate has no wasi_snapshot_preview1.reactor.wasm with sha256 $ADAPTER_SHA256"
    tmp=$(mktemp "$CACHE_DIR/adapter.XXXXXX")
    cp "$found" "$tmp"
    mv -f "$tmp" "$ADAPTER"
fi

# --- 2. bindings --------------------------------------------------------------------------------

BUILD_DIR=$(mktemp -d)
if [ "${HEARSAY_KEEP_BUILD:-}" = 1 ]; then
    say "keeping the build directory $BUILD_DIR"
else
    trap 'rm -rf "$BUILD_DIR"' EXIT
fi

# Named after the handler world (handler.h, handler_*, exports_handler_handle), which the world
# with HTTP includes, so that the helpers and handlers use the same names with or without it.
if ! "$WIT_BINDGEN" c --world "$WORLD" --rename-world handler --out-dir "$BUILD_DIR/bindings" "$WIT_DIR" \
    >"$BUILD_DIR/wit-bindgen.log" 2>&1; then
    cat "$BUILD_DIR/wit-bindgen.log" >&2
    die "wit-bindgen could not generate the bindings from $WIT_DIR"
fi

# --- 3. compile, link, componentize -------------------------------------------------------------

SOURCES=()
shopt -s nullglob
for f in "$PROJECT_DIR"/*.c "$PROJECT_DIR"/src/*.c; do
    # In a project made by `hearsay new`, the SDK's hearsay.c sits among the sources.
    [ "$f" -ef "$SCRIPT_DIR/hearsay.c" ] && continue
    SOURCES+=("$f")
done
shopt -u nullglob
[ ${#SOURCES[@]} -gt 0 ] || die "no C sources (*.c, src/*.c) in $PROJECT_DIR"

CFLAGS=(-O2 "${TARGET_FLAGS[@]}")
WARN=(-Wall -Wextra -Werror)
# Extra flags for your sources and the link (e.g. HEARSAY_CFLAGS="-DDEBUG -std=c17").
read -r -a EXTRA_CFLAGS <<<"${HEARSAY_CFLAGS:-}"
read -r -a EXTRA_LDFLAGS <<<"${HEARSAY_LDFLAGS:-}"
INCLUDES=(-I "$BUILD_DIR/bindings" -I "$SCRIPT_DIR" -I "$PROJECT_DIR")
[ -d "$PROJECT_DIR/include" ] && INCLUDES+=(-I "$PROJECT_DIR/include")

objects=()
compile() { # compile SOURCE OBJECT FLAGS...
    local src=$1 obj=$2
    shift 2
    "$CLANG" "${CFLAGS[@]}" "$@" "${INCLUDES[@]}" -c "$src" -o "$obj" ||
        die "compiling $src failed"
    objects+=("$obj")
}
# The generated bindings are not ours to warn about.
compile "$BUILD_DIR/bindings/handler.c" "$BUILD_DIR/handler.o" -w
compile "$SCRIPT_DIR/hearsay.c" "$BUILD_DIR/hearsay.o" "${WARN[@]}"
i=0
for src in "${SOURCES[@]}"; do
    compile "$src" "$BUILD_DIR/src$i.o" "${WARN[@]}" ${EXTRA_CFLAGS[@]+"${EXTRA_CFLAGS[@]}"}
    i=$((i + 1))
done

# A reactor: no main; the adapter and the component call _initialize, then `handle`.
"$CLANG" "${CFLAGS[@]}" -mexec-model=reactor -Wl,--strip-debug -o "$BUILD_DIR/core.wasm" \
    "${objects[@]}" "$BUILD_DIR/bindings/handler_component_type.o" \
    ${EXTRA_LDFLAGS[@]+"${EXTRA_LDFLAGS[@]}"} ||
    die "linking failed"

mkdir -p "$(dirname "$OUT")"
"$WASM_TOOLS" component new "$BUILD_DIR/core.wasm" \
    --adapt "wasi_snapshot_preview1=$ADAPTER" -o "$OUT.tmp" ||
    die "wasm-tools could not make a component of the core module"
mv -f "$OUT.tmp" "$OUT"
say "built $OUT ($(wc -c <"$OUT") bytes)"
