//! Running an operator-approved command (`grants.commands`): the operator's whole argv, an
//! empty environment, no shell, `/` as working directory, its own process group, output cut at
//! a cap, and the whole group killed when the event's task drops the run (its deadline passed).

use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The most bytes kept of a command's stdout, and of its stderr.
pub(crate) const OUTPUT_CAP: usize = 64 << 10;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finished {
    pub status: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
}

/// Kills the command's process group unless the command was seen to end first.
struct GroupGuard {
    pgid: Option<rustix::process::Pid>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// Reads `from` to its end, keeping the first [`OUTPUT_CAP`] bytes; whether more came.
async fn read_capped(from: Option<impl AsyncRead + Unpin>) -> (Vec<u8>, bool) {
    let Some(mut from) = from else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut cut = false;
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = OUTPUT_CAP - kept.len();
                kept.extend_from_slice(&buf[..n.min(room)]);
                // Read on past the cap, so the command never blocks on a full pipe.
                cut |= n > room;
            }
        }
    }
}

/// Runs `argv` (program, arguments) with `stdin`, and waits for it and its output pipes to end.
/// Dropping the future kills the command's whole process group. `Err` says why it did not start.
pub(crate) async fn run(argv: &[String], stdin: Option<Vec<u8>>) -> Result<Finished, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "the granted command is empty".to_owned())?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .current_dir("/")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    let mut guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32)),
    };
    let feed = {
        let pipe = child.stdin.take();
        async move {
            if let (Some(mut pipe), Some(bytes)) = (pipe, stdin) {
                // A command that does not read its stdin closes the pipe: not an error.
                let _ = pipe.write_all(&bytes).await;
            }
        }
    };
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let ((), (stdout, cut_out), (stderr, cut_err), status) =
        tokio::join!(feed, read_capped(out), read_capped(err), child.wait());
    let status = status.map_err(|e| format!("{program}: waiting: {e}"))?;
    // It ended by itself: what it left running in its group is the operator's business.
    guard.pgid = None;
    use std::os::unix::process::ExitStatusExt;
    Ok(Finished {
        status: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        truncated: cut_out || cut_err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn runs_with_stdin_empty_env_and_caps_output() {
        let f = run(
            &argv(&[
                "/bin/sh",
                "-c",
                "cat; env | wc -l; pwd; echo oops >&2; exit 3",
            ]),
            Some(b"in\n".to_vec()),
        )
        .await
        .unwrap();
        assert_eq!(f.status, Some(3));
        // `sh` itself sets PWD (and maybe SHLVL, _): only what the shell adds.
        let out = String::from_utf8(f.stdout).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "in");
        assert!(lines[1].trim().parse::<u32>().unwrap() <= 3, "{out}");
        assert_eq!(lines[2], "/");
        assert_eq!(f.stderr, b"oops\n");
        assert!(!f.truncated);

        let big = run(&argv(&["/bin/sh", "-c", "head -c 1000000 /dev/zero"]), None)
            .await
            .unwrap();
        assert_eq!(big.stdout.len(), OUTPUT_CAP);
        assert!(big.truncated);
        assert_eq!(big.status, Some(0));
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_and_a_signal_is_reported() {
        let e = run(&argv(&["/nonexistent/prog"]), None).await.unwrap_err();
        assert!(e.contains("/nonexistent/prog"), "{e}");
        let f = run(&argv(&["/bin/sh", "-c", "kill -TERM $$"]), None)
            .await
            .unwrap();
        assert_eq!((f.status, f.signal), (None, Some(15)));
    }

    #[tokio::test]
    async fn dropping_the_run_kills_the_whole_group() {
        let dir = std::env::temp_dir().join(format!("hearsay-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("pid");
        // A child in the background (the group's other member) writes its pid and sleeps.
        let script = format!("sleep 600 & echo $! > {}; wait", pidfile.display());
        let cmd = argv(&["/bin/sh", "-c", &script]);
        let wait_pid = async {
            loop {
                if let Ok(s) = std::fs::read_to_string(&pidfile) {
                    if let Ok(p) = s.trim().parse::<i32>() {
                        return p;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        let mut running = Box::pin(run(&cmd, None));
        let pid = tokio::select! {
            _ = &mut running => None,
            p = tokio::time::timeout(std::time::Duration::from_secs(10), wait_pid) => p.ok(),
        };
        drop(running);
        let pid = pid.expect("the background sleep wrote its pid");
        // Killed with its group: gone (or a zombie, reaped by init) within a bounded wait.
        let mut gone = false;
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(gone, "the background child {pid} outlived the dropped run");
    }
}
