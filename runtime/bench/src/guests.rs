//! The WebAssembly components the handler and query figures run: the ready-made `echo` and
//! `blob` handlers, the bench's own `slow` guest (`runtime/bench/guests/slow`: sleeps 100 ms per
//! user event) and `act` guest (`runtime/bench/guests/act`: writes a file, sends an HTTP GET or
//! runs a command per user event, as its environment says), and hearsay-host's hostile test
//! guest `probe` (`runtime/host/tests/guests/probe`: the query name picks what it does; the
//! isolation figures use `sleep`, `loop` and `log`). Built once for wasm32-wasip2 with cargo,
//! into `wasm-guests/` of the target directory, unless `--wasm-dir` names a directory that
//! already holds them (`probe` and `act` may be missing there: only the isolation and the
//! capability figures need them).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of the built components.
#[derive(Debug, Clone)]
pub(crate) struct Guests {
    pub echo: PathBuf,
    pub slow: PathBuf,
    /// Answers a query whose payload is a decimal byte count with that many bytes.
    pub blob: PathBuf,
    /// The hostile test guest, when built or present in `--wasm-dir`.
    pub probe: Option<PathBuf>,
    /// The bench's guest that acts through a capability, when built or present in `--wasm-dir`.
    pub act: Option<PathBuf>,
}

/// The probe's file name (optional in `--wasm-dir`).
const PROBE: &str = "hearsay_test_probe.wasm";
/// The act guest's file name (optional in `--wasm-dir`).
const ACT: &str = "hearsay_bench_act.wasm";

const FILES: &[&str] = &[
    "hearsay_handler_echo.wasm",
    "hearsay_bench_slow.wasm",
    "hearsay_handler_blob.wasm",
];

fn from_dir(dir: &Path) -> Option<Guests> {
    let all: Vec<PathBuf> = FILES.iter().map(|f| dir.join(f)).collect();
    if !all.iter().all(|p| p.is_file()) {
        return None;
    }
    Some(Guests {
        echo: all[0].clone(),
        slow: all[1].clone(),
        blob: all[2].clone(),
        probe: Some(dir.join(PROBE)).filter(|p| p.is_file()),
        act: Some(dir.join(ACT)).filter(|p| p.is_file()),
    })
}

/// The repository root, as seen when this crate was compiled.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where cargo puts this build's artefacts: `CARGO_TARGET_DIR`, else two levels above the
/// running executable (`target/release/hearsay-bench`).
pub(crate) fn target_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(d.into());
    }
    let exe = std::env::current_exe()?;
    let profile = exe.parent().context("executable has no directory")?;
    // Test binaries live one level deeper (target/release/deps).
    let profile = if profile.ends_with("deps") {
        profile.parent().context("deps has no parent")?
    } else {
        profile
    };
    Ok(profile
        .parent()
        .context("profile dir has no parent")?
        .to_path_buf())
}

/// The components in `given` (if set), else builds them (a no-op when up to date).
pub(crate) fn locate(given: Option<&Path>) -> Result<Guests> {
    if let Some(dir) = given {
        return from_dir(dir).with_context(|| {
            format!(
                "{} does not hold all of {}",
                dir.display(),
                FILES.join(", ")
            )
        });
    }
    let target = target_dir()?.join("wasm-guests");
    let root = repo_root();
    if !root.join("handlers/Cargo.toml").is_file() {
        bail!(
            "the hearsay sources are not at {}: pass --wasm-dir with the built components ({})",
            root.display(),
            FILES.join(", ")
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for manifest in [
        "handlers/Cargo.toml",
        "runtime/bench/guests/Cargo.toml",
        "runtime/host/tests/guests/Cargo.toml",
    ] {
        eprintln!("[bench] building {manifest} for wasm32-wasip2 ...");
        let status = Command::new(&cargo)
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
            .arg("--manifest-path")
            .arg(root.join(manifest))
            .arg("--target-dir")
            .arg(&target)
            // The host build's flags are not meant for the wasm target.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .context("running cargo to build the wasm guests")?;
        if !status.success() {
            bail!("building {manifest} for wasm32-wasip2 failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)");
        }
    }
    let out = target.join("wasm32-wasip2/release");
    from_dir(&out)
        .with_context(|| format!("components missing in {} after the build", out.display()))
}
