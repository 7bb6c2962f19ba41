//! run-on-event: runs an operator-approved command for each user event, the event's payload on
//! its standard input (Serf's classic `event-handlers = ["user:deploy=deploy.sh"]`, without a
//! shell and with the whole argv fixed by the operator).
//!
//! The command is the granted command named `$COMMAND` (`grants.env`; default `run`), e.g.
//! `grants = { commands = { run = ["/usr/local/bin/deploy.sh"] } }`. It runs with an empty
//! environment in `/`, and is killed at the event's deadline (the handler's timeout). Its exit
//! status is logged; when it fails, the first lines of its stderr are logged too, and the event
//! ends with an error (counted as a handler error). Other events are ignored.

use hearsay_sdk::commands::{self, CommandError, Output};
use hearsay_sdk::{Event, Handler, UserEvent};

struct RunOnEvent;

/// How many lines of a failed command's stderr are logged.
const STDERR_LINES: usize = 10;

/// How `out` ended, in words.
fn ending(out: &Output) -> String {
    match (out.status, out.signal) {
        (Some(s), _) => format!("exit status {s}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "no exit status".into(),
    }
}

/// The first `n` lines of `text`, and whether there were more.
fn head(text: &str, n: usize) -> (Vec<&str>, bool) {
    let mut lines = text.lines();
    let first: Vec<&str> = lines.by_ref().take(n).collect();
    (first, lines.next().is_some())
}

fn run(event: &UserEvent) -> Result<(), String> {
    let name = match std::env::var("COMMAND") {
        Ok(n) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => "run".to_owned(),
    };
    let out = match commands::run(&name, Some(&event.payload)) {
        Ok(out) => out,
        Err(CommandError::NotGranted) => {
            return Err(format!(
                "no command {name:?} is granted (grants.commands = {{ {name} = [\"/path/to/program\", \"arg\"...] }})"
            ))
        }
        Err(CommandError::Failed(cause)) => {
            return Err(format!("command {name:?} did not start: {cause}"))
        }
    };
    let what = format!(
        "user event {} ({} bytes): {name}: {}",
        event.name,
        event.payload.len(),
        ending(&out)
    );
    if out.success() {
        hearsay_sdk::info(&what);
        return Ok(());
    }
    let stderr = out.stderr_text();
    let (lines, more) = head(&stderr, STDERR_LINES);
    let mut message = what.clone();
    if lines.is_empty() {
        message.push_str("; no stderr");
    } else {
        message.push_str("; stderr:");
        for l in &lines {
            message.push_str("\n  ");
            message.push_str(l);
        }
        if more || out.truncated {
            message.push_str("\n  ...");
        }
    }
    hearsay_sdk::error(&message);
    Err(what)
}

impl Handler for RunOnEvent {
    fn handle(event: Event) -> Result<(), String> {
        match event {
            Event::User(u) => run(&u).map_err(|e| format!("run-on-event: {e}")),
            _ => Ok(()),
        }
    }
}

hearsay_sdk::export!(RunOnEvent);

#[cfg(test)]
mod tests {
    use super::head;

    #[test]
    fn head_cuts() {
        assert_eq!(head("a\nb\nc\n", 2), (vec!["a", "b"], true));
        assert_eq!(head("a\nb\n", 2), (vec!["a", "b"], false));
        assert_eq!(head("", 2), (vec![], false));
    }
}
