//! A responder process killed mid-stream (no CONNECTION_CLOSE ever sent) fails only its own
//! response, once the originator's idle timeout notices; two other responses complete. The
//! responder is this test binary run again as a child on the ignored `child_responder` test.

mod quic_common;

use hearsay_net::quic::{QuicAdvert, QuicEndpoint, QuicError};
use quic_common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGET_ENV: &str = "HEARSAY_QUIC_CHILD_TARGET";

/// Streams an endless body to the advert in `HEARSAY_QUIC_CHILD_TARGET` until it is killed
/// (or, so it always stops by itself, for at most [`WAIT`]). Does nothing without the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by responder_killed_mid_stream_fails_alone"]
async fn child_responder() {
    let Ok(target) = std::env::var(TARGET_ENV) else {
        return;
    };
    let to = QuicAdvert::parse(&target).unwrap();
    let (node, _rx) = bind("child");
    let mut w = node
        .open_response(&to, &header("child", 1, None))
        .await
        .unwrap();
    let started = Instant::now();
    let block = vec![0xabu8; 16 << 10];
    while started.elapsed() < WAIT {
        if w.write(&block).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_killed_mid_stream_fails_alone() {
    let mut cfg = config("origin");
    cfg.idle_timeout = Duration::from_secs(2);
    let (origin, mut incoming) = QuicEndpoint::bind(cfg).unwrap();
    let to = origin.advert();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_responder", "--ignored", "--nocapture"])
        .env(TARGET_ENV, to.to_tag_value())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut dying = next(&mut incoming).await;
    assert_eq!(dying.header.from, "child");
    while dying.body.received() < 256 << 10 {
        assert!(dying.body.chunk().await.unwrap().is_some());
    }

    let mut senders = Vec::new();
    for i in 1..=2u8 {
        let (node, _rx) = bind(&format!("r{i}"));
        senders.push(tokio::spawn(async move {
            let _keep = _rx;
            send_pattern(
                &node,
                &to,
                header(&format!("r{i}"), 1, None),
                i,
                2 << 20,
                30_000,
            )
            .await
        }));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let dead = tokio::spawn(async move {
        loop {
            match dying.body.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    });
    for _ in 0..2 {
        let mut resp = next(&mut incoming).await;
        let seed = seed_of(&resp.header.from);
        let got = read_pattern(&mut resp, seed).await.unwrap();
        assert_eq!(got.bytes, 2 << 20);
        assert!(got.pattern_ok);
    }
    for s in senders {
        s.await.unwrap().unwrap();
    }
    let outcome = tokio::time::timeout(WAIT, dead).await.unwrap().unwrap();
    let e = outcome.unwrap_err();
    assert!(matches!(e, QuicError::ConnectionLost { .. }), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
}
