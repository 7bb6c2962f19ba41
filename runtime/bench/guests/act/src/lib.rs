//! act: the benchmark's handler that acts through a granted capability, then logs. What it does
//! per user event is set by its environment (`grants.env`), so one component serves every job:
//!
//! - `ACT=write`, `TARGET=/out/f`: writes `x\n` to TARGET (a writable directory grant), as serf's
//!   `echo x > FILE` does;
//! - `ACT=http`, `TARGET=http://127.0.0.1:PORT/...`: a GET (`hearsay_sdk::http::get`; an `http`
//!   grant) that must answer 200;
//! - `ACT=command`, `TARGET=true`: runs the granted command of that name (`/bin/true`), which must
//!   exit 0;
//! - `ACT=none`: nothing (the log line alone, as the `echo` handler).
//!
//! Then it logs `user event NAME did ACT` (the bench times the handler to this line); a failed
//! call is the event's error instead, and no line is logged.

use hearsay_sdk::{Event, Handler};

struct Act;

fn act(what: &str, target: &str) -> Result<(), String> {
    match what {
        "write" => std::fs::write(target, b"x\n").map_err(|e| format!("write {target}: {e}")),
        "http" => {
            let r = hearsay_sdk::http::get(target).map_err(|e| format!("GET {target}: {e}"))?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("GET {target}: status {}", r.status))
            }
        }
        "command" => {
            let out = hearsay_sdk::commands::run(target, None)
                .map_err(|e| format!("run {target}: {e:?}"))?;
            if out.success() {
                Ok(())
            } else {
                Err(format!("run {target}: status {:?}", out.status))
            }
        }
        "none" => Ok(()),
        other => Err(format!("unknown ACT {other:?}")),
    }
}

impl Handler for Act {
    fn handle(event: Event) -> Result<(), String> {
        let Event::User(u) = event else {
            return Ok(());
        };
        let what = std::env::var("ACT").unwrap_or_default();
        let target = std::env::var("TARGET").unwrap_or_default();
        act(&what, &target)?;
        // The bench times the handler to this line.
        hearsay_sdk::info(&format!("user event {} did {what}", u.name));
        Ok(())
    }
}

hearsay_sdk::export!(Act);
