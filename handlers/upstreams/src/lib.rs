//! upstreams: keeps a load balancer's list of backends in step with the cluster.
//!
//! On every event it gets (member joins, leaves, failures, tag updates, reaps; a tick if its
//! filter has `every:`), it renders the alive members that carry the tag `service:$SERVICE`
//! (the convention of `hearsay_sdk::services`) into `$FILE` in `$FORMAT`:
//!
//! - `lines`: one `ip:port` per line, sorted;
//! - `nginx`: `upstream $SERVICE { server ip:port; ... }`; with no backend, one placeholder
//!   `server 127.0.0.1:1 down;` (nginx refuses an empty upstream block; requests get 502);
//! - `haproxy`: a `backend $SERVICE` section of `server NODE ip:port check` lines.
//!
//! `$FILE` must lie in a writable directory granted to the handler. It is replaced atomically
//! (a temporary file beside it, then a rename) and only when its content changes; then the
//! granted command `reload` runs, if there is one. A reload that fails is tried again on the next
//! event (a marker file `.NAME.reload` beside `$FILE` remembers it). Environment (`grants.env`):
//! `SERVICE` and `FILE` required, `FORMAT` (default `lines`).

mod render;

use hearsay_sdk::commands::{self, CommandError};
use hearsay_sdk::{services, Event, Handler};
use render::Format;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

struct Upstreams;

/// What the environment says.
struct Settings {
    service: String,
    format: Format,
    file: PathBuf,
}

/// The environment variable `name`, if set.
fn var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not UTF-8")),
    }
}

fn required(name: &str) -> Result<String, String> {
    var(name)?.ok_or_else(|| format!("{name} is not set (grants.env = {{ {name} = \"...\" }})"))
}

fn settings() -> Result<Settings, String> {
    let service = required("SERVICE")?;
    render::check_service(&service)?;
    let format = Format::parse(&var("FORMAT")?.unwrap_or_else(|| "lines".into()))?;
    let file = PathBuf::from(required("FILE")?);
    if file.file_name().is_none() || file.parent().is_none() {
        return Err(format!("FILE={:?} does not name a file", file.display()));
    }
    Ok(Settings {
        service,
        format,
        file,
    })
}

/// `.NAME.SUFFIX` beside `file`.
fn beside(file: &Path, suffix: &str) -> PathBuf {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    file.with_file_name(format!(".{name}.{suffix}"))
}

/// A hint for an I/O error on `path`: most come from a missing grant.
fn io_error(what: &str, path: &Path, e: std::io::Error) -> String {
    format!(
        "cannot {what} {}: {e} (is its directory granted writable, grants.write_dirs = [\"HOST:GUEST\"]?)",
        path.display()
    )
}

/// Replaces `file` with `text` atomically: a temporary file in the same directory, synced,
/// then renamed over it.
fn write_atomically(file: &Path, text: &str) -> Result<(), String> {
    let tmp = beside(file, "tmp");
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .map_err(|e| io_error("write", &tmp, e))
        .and_then(|()| std::fs::rename(&tmp, file).map_err(|e| io_error("replace", file, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The first `n` lines of `text`, joined by ` | `.
fn first_lines(text: &str, n: usize) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Runs the granted `reload` command, if there is one. The marker file says a reload is owed:
/// it is made before the run and removed once one succeeds (or none is granted).
fn reload(marker: &Path) -> Result<(), String> {
    std::fs::write(marker, b"").map_err(|e| io_error("write", marker, e))?;
    let done = match commands::run("reload", None) {
        Err(CommandError::NotGranted) => {
            hearsay_sdk::debug("no `reload` command granted: nothing to reload");
            Ok(())
        }
        Err(CommandError::Failed(cause)) => Err(format!(
            "the reload command did not start: {cause} (tried again on the next event)"
        )),
        Ok(out) if out.success() => {
            hearsay_sdk::info("ran reload: exit status 0");
            Ok(())
        }
        Ok(out) => Err(format!(
            "the reload command failed ({}; tried again on the next event): {}",
            match (out.status, out.signal) {
                (Some(s), _) => format!("exit status {s}"),
                (None, Some(sig)) => format!("signal {sig}"),
                (None, None) => "no status".into(),
            },
            first_lines(&out.stderr_text(), 5)
        )),
    };
    if done.is_ok() {
        std::fs::remove_file(marker).map_err(|e| io_error("remove", marker, e))?;
    }
    done
}

fn update() -> Result<(), String> {
    let s = settings()?;
    let endpoints = services::endpoints(&s.service, &hearsay_sdk::members());
    let text = render::render(s.format, &s.service, &endpoints);
    let marker = beside(&s.file, "reload");
    let current = match std::fs::read_to_string(&s.file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("read", &s.file, e)),
    };
    if current.as_deref() == Some(text.as_str()) {
        if !marker.exists() {
            hearsay_sdk::debug(&format!("{} unchanged", s.file.display()));
            return Ok(());
        }
        hearsay_sdk::info(&format!(
            "{} unchanged, but its last reload failed: reloading again",
            s.file.display()
        ));
        return reload(&marker);
    }
    write_atomically(&s.file, &text)?;
    let list: Vec<&str> = endpoints.iter().map(|e| e.addr.as_str()).collect();
    hearsay_sdk::info(&format!(
        "wrote {}: {}",
        s.file.display(),
        match list.len() {
            0 => format!("no member offers service:{}", s.service),
            1 => format!("1 backend of service:{}: {}", s.service, list[0]),
            n => format!("{n} backends of service:{}: {}", s.service, list.join(" ")),
        }
    ));
    reload(&marker)
}

impl Handler for Upstreams {
    fn handle(event: Event) -> Result<(), String> {
        // Any event is a reason to look: the members are read now, not from the event, and an
        // unchanged file is left alone.
        let _ = event;
        update().map_err(|e| format!("upstreams: {e}"))
    }
}

hearsay_sdk::export!(Upstreams);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beside_names() {
        assert_eq!(
            beside(Path::new("/out/upstreams.conf"), "tmp"),
            Path::new("/out/.upstreams.conf.tmp")
        );
    }

    #[test]
    fn first_lines_skip_blanks() {
        assert_eq!(first_lines("a\n\nb\nc\nd", 2), "a | b");
    }
}
