//! `hearsay agent` with bad input: every case ends with one clear error line on stderr and a
//! non-zero exit, naming what was wrong (the file and key, the flag, the address).

mod agent_support;

use agent_support::{agent_error, free_port, scratch};
use std::net::{TcpListener, UdpSocket};

#[test]
fn unknown_and_malformed_flags() {
    let e = agent_error(&["-nodes=a"]);
    assert!(e.contains("flag provided but not defined: -nodes"), "{e}");
    let e = agent_error(&["--retry-max=many"]);
    assert!(e.contains("-retry-max") && e.contains("many"), "{e}");
    let e = agent_error(&["-node"]);
    assert!(e.contains("-node needs a value"), "{e}");
    let e = agent_error(&["-profile=moon", "-bind=127.0.0.1:0"]);
    assert!(e.contains("unknown profile \"moon\""), "{e}");
    let e = agent_error(&["-discover"]);
    assert!(e.contains("-discover needs a value"), "{e}");
}

#[test]
fn iface_must_name_an_interface_with_the_bind_address() {
    let e = agent_error(&["-iface=no-such-if0", "-rpc-addr=127.0.0.1:0"]);
    assert!(
        e.contains("Invalid network interface: no such network interface: no-such-if0"),
        "{e}"
    );
    let e = agent_error(&["-iface=lo", "-bind=192.0.2.1:0", "-rpc-addr=127.0.0.1:0"]);
    assert!(
        e.contains("Interface 'lo' has no '192.0.2.1' address"),
        "{e}"
    );
}

#[test]
fn bad_config_files_name_the_file_and_key() {
    let dir = scratch("badconf");
    let unknown = dir.join("unknown.json");
    std::fs::write(&unknown, r#"{"node_name":"a","retry_intervall":"5s"}"#).unwrap();
    let e = agent_error(&[&format!("-config-file={}", unknown.display())]);
    assert!(
        e.contains(&unknown.display().to_string()) && e.contains("unknown key \"retry_intervall\""),
        "{e}"
    );

    let typed = dir.join("typed.toml");
    std::fs::write(&typed, "node_name = \"a\"\nretry_max_attempts = \"3\"\n").unwrap();
    let e = agent_error(&["--config-file", &typed.display().to_string()]);
    assert!(
        e.contains(&typed.display().to_string())
            && e.contains("\"retry_max_attempts\"")
            && e.contains("must be an integer"),
        "{e}"
    );

    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\"node_name\": ").unwrap();
    let e = agent_error(&[&format!("-config-file={}", broken.display())]);
    assert!(
        e.contains(&broken.display().to_string()) && e.contains("invalid JSON"),
        "{e}"
    );

    // In a directory, the bad file is named, not the directory.
    let conf_d = dir.join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::write(conf_d.join("a.json"), r#"{"node_name":"a"}"#).unwrap();
    std::fs::write(conf_d.join("b.toml"), "[tags]\nrole = 7\n").unwrap();
    let e = agent_error(&[&format!("-config-dir={}", conf_d.display())]);
    assert!(e.contains("b.toml") && e.contains("\"tags.role\""), "{e}");

    let e = agent_error(&["-config-file=/nonexistent/hearsay.json"]);
    assert!(e.contains("/nonexistent/hearsay.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn busy_port_names_the_address() {
    // Hold both the TCP and the UDP side of a port.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let _udp = UdpSocket::bind(("127.0.0.1", port));
    let addr = format!("127.0.0.1:{port}");
    let e = agent_error(&[
        "-node=busy",
        &format!("-bind={addr}"),
        "-rpc-addr=127.0.0.1:0",
    ]);
    assert!(e.contains(&addr) && e.contains("in use"), "{e}");
}

#[test]
fn busy_rpc_port_names_the_address() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let e = agent_error(&[
        "-node=busy-rpc",
        "-bind=127.0.0.1:0",
        &format!("-rpc-addr={addr}"),
    ]);
    assert!(e.contains(&addr) && e.contains("in use"), "{e}");
}

#[test]
fn unreachable_join_names_the_address_and_why() {
    let dead = format!("127.0.0.1:{}", free_port());
    let e = agent_error(&[
        "-node=lonely",
        "-bind=127.0.0.1:0",
        "-rpc-addr=127.0.0.1:0",
        &format!("-join={dead}"),
    ]);
    assert!(e.contains(&dead) && e.contains("refused"), "{e}");
}

#[test]
fn retry_join_gives_up_after_retry_max() {
    let dead = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["agent".to_owned()];
    args.extend(
        [
            "-node=patient",
            "-bind=127.0.0.1:0",
            "-rpc-addr=127.0.0.1:0",
            &format!("-retry-join={dead}"),
            "-retry-max=2",
            "-retry-interval=1s",
        ]
        .map(String::from),
    );
    let f = agent_support::run_to_end(&args);
    assert!(!f.success);
    let lines: Vec<&str> = f.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", f.stderr);
    assert!(
        lines[0].contains("giving up after 3 attempts") && lines[0].contains(&dead),
        "{}",
        lines[0]
    );
    // The first try and two retries, each logged.
    let tries = f.stdout.matches("Joining cluster (retry_join)").count();
    assert_eq!(tries, 3, "{}", f.stdout);
}

/// A command line argument that is not UTF-8 is one error line and status 1, not a panic.
#[test]
fn an_argument_that_is_not_utf8_is_one_error_line() {
    use std::os::unix::ffi::OsStrExt as _;
    let out = std::process::Command::new(agent_support::BIN)
        .args(["query", "-rpc-addr=127.0.0.1:1", "name"])
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        r#"Error: argument "\xFF" is not valid UTF-8"#
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
