//! `hearsay agent -dev` needs no other flag; `-help` documents every flag; `-log-json` writes
//! JSON lines; SIGTERM without `leave_on_terminate` stops without leaving (status 1, as Serf).

mod agent_support;

use agent_support::{run_to_end, start_agent};

#[test]
fn dev_mode_starts_with_no_other_flag() {
    // -rpc-addr only so that a concurrent test or a real agent on 7373 cannot matter.
    let mut n = start_agent(&["-dev".into(), "-rpc-addr=127.0.0.1:0".into()]);
    n.expect_line("==> hearsay agent running!");
    let bind = n.expect_line("                      Bind addr:");
    assert!(bind.contains("'127.0.0.1:"), "{bind}");
    let profile = n.expect_line("                        Profile:");
    assert!(profile.ends_with("local"), "{profile}");
    n.expect_line("==> Log data will now stream in");
    n.signal("INT");
    assert!(
        n.wait_exit(),
        "a -dev agent did not leave cleanly on SIGINT"
    );
}

#[test]
fn sigterm_stops_without_leaving_and_json_logs() {
    let mut n = start_agent(&[
        "-node=j".into(),
        "-bind=127.0.0.1:0".into(),
        "-rpc-addr=127.0.0.1:0".into(),
        "-log-json".into(),
    ]);
    // The first log lines (the node meeting itself) come before the banner.
    let line = n.expect_line("{");
    assert!(
        line.contains("\"level\":\"INFO\"") && line.ends_with('}'),
        "{line}"
    );
    n.expect_line("==> Log data will now stream in");
    n.signal("TERM");
    n.expect_line("==> Caught signal: terminated");
    assert!(
        !n.wait_exit(),
        "SIGTERM without leave_on_terminate must exit 1"
    );
    assert!(!n
        .seen()
        .iter()
        .any(|l| l.contains("Gracefully shutting down")));
}

#[test]
fn help_documents_every_flag() {
    let f = run_to_end(&["agent".into(), "-help".into()]);
    assert!(f.success);
    for flag in [
        "-bind",
        "-advertise",
        "-config-file",
        "-config-dir",
        "-encrypt",
        "-keyring-file",
        "-join",
        "-retry-join",
        "-retry-interval",
        "-retry-max",
        "-replay",
        "-log-level",
        "-log-json",
        "-node",
        "-profile",
        "-protocol",
        "-rejoin",
        "-rpc-addr",
        "-rpc-auth",
        "-rpc-max-connections",
        "-snapshot",
        "-tag",
        "-tags-file",
        "-disable-compression",
        "-broadcast-timeout",
        "-leave-on-terminate",
        "-skip-leave-on-interrupt",
        "-dev",
        "-role",
    ] {
        assert!(
            f.stdout.contains(&format!("  {flag}")),
            "-help lacks {flag}"
        );
    }
}
