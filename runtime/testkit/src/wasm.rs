//! The WebAssembly guests hearsay's tests run: builds the ready-made handlers (`handlers/`), the
//! test guests (`runtime/host/tests/guests`: the hostile probe, and fetch for HTTP) and the SDK
//! template for wasm32-wasip2, installing the target with rustup when it is missing, once per test
//! binary; and the handlers in other languages, with `scripts/build-handlers.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the built components.
#[derive(Debug, Clone)]
pub struct Guests {
    /// Replies to a query with its payload; logs user events.
    pub echo: PathBuf,
    /// Replies with N bytes (the payload is N).
    pub blob: PathBuf,
    /// Replies with host name, uptime and load; needs `/proc` granted.
    pub sysinfo: PathBuf,
    /// Answers `resolve` with the members carrying a service tag.
    pub resolve: PathBuf,
    /// The hostile guest: the query name picks what it does (`loop`, `hog`, `panic`, ...).
    pub probe: PathBuf,
    /// Answers a query whose payload is a URL with the HTTP response (`STATUS BODY`) or the
    /// error, through the SDK's `http` client.
    pub fetch: PathBuf,
    /// The SDK's template handler (`sdk/template`), built as a user would build it.
    pub template: PathBuf,
    /// A handler built against contract 0.1.0 (`wit/v0.1.0`): answers `v0.1 PAYLOAD`.
    pub contract_v0_1: PathBuf,
}

/// Builds the guests into `<target_tmp>/wasm-guests` (pass the test's `CARGO_TARGET_TMPDIR`, so
/// every test crate of the workspace shares one build) and returns their paths.
pub fn guests(target_tmp: &Path) -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| build(target_tmp))
}

fn build(target_tmp: &Path) -> Guests {
    ensure_wasm_target();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target_dir = target_tmp.join("wasm-guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for manifest in [
        "handlers/Cargo.toml",
        "runtime/host/tests/guests/Cargo.toml",
        "sdk/template/Cargo.toml",
    ] {
        let status = Command::new(&cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join(manifest))
            .arg("--target-dir")
            .arg(&target_dir)
            // The host build's flags are not meant for the wasm target.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("running cargo to build the wasm guests");
        assert!(
            status.success(),
            "building {manifest} for wasm32-wasip2 failed"
        );
    }
    let out = target_dir.join("wasm32-wasip2/release");
    Guests {
        echo: out.join("hearsay_handler_echo.wasm"),
        blob: out.join("hearsay_handler_blob.wasm"),
        sysinfo: out.join("hearsay_handler_sysinfo.wasm"),
        resolve: out.join("hearsay_handler_resolve.wasm"),
        probe: out.join("hearsay_test_probe.wasm"),
        fetch: out.join("hearsay_test_fetch.wasm"),
        template: out.join("my_handler.wasm"),
        contract_v0_1: out.join("hearsay_test_contract_v0_1.wasm"),
    }
}

/// The handlers written in C, Python and JavaScript (`handlers/NAME-LANG`), built by
/// `scripts/build-handlers.sh` (which installs each language's tools the first time, and skips a
/// component newer than its sources) into `<target_tmp>/handlers`, once per test binary. Returns
/// that directory; each handler is `NAME-LANG.wasm` in it.
pub fn language_handlers(target_tmp: &Path) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = target_tmp.join("handlers");
        let status = Command::new(root.join("scripts/build-handlers.sh"))
            .args(["-lang", "c", "-lang", "python", "-lang", "js"])
            .arg(&out)
            // The host build's flags are not meant for the tools the script runs.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("running scripts/build-handlers.sh");
        assert!(status.success(), "scripts/build-handlers.sh failed");
        out
    })
}

/// Installs the wasm32-wasip2 standard library with rustup when it is missing.
fn ensure_wasm_target() {
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.is_some_and(|d| d.is_dir()) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .expect("running rustup to add the wasm32-wasip2 target");
    assert!(status.success(), "rustup target add wasm32-wasip2 failed");
}
