//! Large responses over real QUIC on loopback: bodies arrive intact and are handed out in
//! bounded chunks, aborted responses fail alone, limits produce their errors, garbage headers
//! are rejected, and connections are reused and time out when idle.

mod quic_common;

use hearsay_net::quic::{QuicEndpoint, QuicError};
use quic_common::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_16mib_responses_arrive_intact_in_bounded_chunks() {
    let mut cfg = config("origin");
    cfg.max_chunk = 16 << 10;
    cfg.stream_window = 256 << 10;
    let (origin, mut incoming) = QuicEndpoint::bind(cfg).unwrap();
    let target = origin.advert();
    let mut senders = Vec::new();
    for i in 1..=3u8 {
        let (node, _rx) = bind(&format!("r{i}"));
        senders.push(tokio::spawn(async move {
            let _keep = _rx;
            let h = header(&format!("r{i}"), 1, Some(16 * MIB));
            send_pattern(&node, &target, h, i, 16 * MIB, 50_000).await
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut resp = next(&mut incoming).await;
        readers.push(tokio::spawn(async move {
            let seed = seed_of(&resp.header.from);
            let got = read_pattern(&mut resp, seed).await;
            (resp.header.from.clone(), resp.peer, got)
        }));
    }
    let mut sent = std::collections::HashMap::new();
    for (i, s) in senders.into_iter().enumerate() {
        sent.insert(format!("r{}", i + 1), s.await.unwrap().unwrap());
    }
    let mut names = Vec::new();
    for r in readers {
        let (from, _peer, got) = r.await.unwrap();
        let got = got.unwrap();
        assert_eq!(got.bytes, 16 * MIB, "{from}");
        assert!(got.pattern_ok, "{from}: body differs from the pattern");
        assert_eq!(got.sha256, sent[&from], "{from}: sha256 differs");
        assert!(
            got.largest_chunk <= 16 << 10,
            "{from}: chunk of {}",
            got.largest_chunk
        );
        assert!(
            got.chunks >= 16 * MIB / (16 << 10),
            "{from}: {} chunks",
            got.chunks
        );
        names.push(from);
    }
    names.sort();
    assert_eq!(names, ["r1", "r2", "r3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_report_the_responders_fingerprint() {
    let (origin, mut incoming) = bind("origin");
    let (node, _rx) = bind("r4");
    let to = origin.advert();
    let send = tokio::spawn(async move {
        send_pattern(&node, &to, header("r4", 1, None), 4, 1000, 100).await?;
        Ok::<_, QuicError>(node.fingerprint())
    });
    let mut resp = next(&mut incoming).await;
    let got = read_pattern(&mut resp, 4).await.unwrap();
    assert_eq!(got.bytes, 1000);
    assert_eq!(resp.peer, send.await.unwrap().unwrap());
    assert_eq!(resp.header, header("r4", 1, None));
}

/// Four responders: one drops its writer mid-body (stream reset), one closes its whole
/// endpoint mid-body (connection lost); the other two complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_response_fails_alone() {
    let (origin, mut incoming) = bind("origin");
    let target = origin.advert();
    // Set once the originator has read from the aborting responders, so the abort happens
    // mid-body, after the header was delivered.
    let started: Vec<Arc<Notify>> = (0..2).map(|_| Arc::new(Notify::new())).collect();
    let mut senders = Vec::new();
    for i in 1..=4u8 {
        let (node, _rx) = bind(&format!("r{i}"));
        let go = started.get(i as usize - 1).cloned();
        senders.push(tokio::spawn(async move {
            let _keep = _rx;
            let h = header(&format!("r{i}"), 1, Some(4 * MIB));
            match (i, go) {
                (1 | 2, Some(go)) => {
                    let mut w = node.open_response(&target, &h).await?;
                    w.write(&vec![pattern(i, 0); 1000]).await?;
                    tokio::time::timeout(WAIT, go.notified())
                        .await
                        .expect("reader started");
                    if i == 1 {
                        drop(w);
                    } else {
                        node.close();
                    }
                    Ok(node)
                }
                _ => send_pattern(&node, &target, h, i, 4 * MIB, 40_000)
                    .await
                    .map(|_| node),
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..4 {
        let mut resp = next(&mut incoming).await;
        let started = started.clone();
        readers.push(tokio::spawn(async move {
            let seed = seed_of(&resp.header.from);
            if seed <= 2 {
                let first = resp.body.chunk().await;
                assert!(matches!(first, Ok(Some(_))), "{first:?}");
                started[seed as usize - 1].notify_one();
                let mut rest = Ok(Some(bytes::Bytes::new()));
                while let Ok(Some(_)) = rest {
                    rest = resp.body.chunk().await;
                }
                (seed, rest.map(|_| 0))
            } else {
                (seed, read_pattern(&mut resp, seed).await.map(|r| r.bytes))
            }
        }));
    }
    for r in readers {
        let (seed, outcome) = r.await.unwrap();
        match seed {
            1 => {
                let e = outcome.unwrap_err();
                assert!(matches!(e, QuicError::Reset { code: 10, .. }), "{e}");
                assert!(e.to_string().contains("aborted by the responder"), "{e}");
            }
            2 => {
                let e = outcome.unwrap_err();
                assert!(matches!(e, QuicError::ConnectionLost { .. }), "{e}");
            }
            _ => assert_eq!(outcome.unwrap(), 4 * MIB, "r{seed}"),
        }
    }
    // The endpoints lived until every reader finished, so only the aborts ended streams.
    for s in senders {
        drop(s.await.unwrap().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_response_limit_fails_that_response_with_its_size() {
    let mut cfg = config("origin");
    cfg.limits.max_response = MIB;
    let (origin, mut incoming) = QuicEndpoint::bind(cfg).unwrap();
    let to = origin.advert();

    // Counted: no declared length, 2 MiB sent.
    let (node, _rx) = bind("r1");
    let send = tokio::spawn(async move {
        send_pattern(&node, &to, header("r1", 1, None), 1, 2 * MIB, 32 << 10).await
    });
    let mut resp = next(&mut incoming).await;
    let e = read_pattern(&mut resp, 1).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, QuicError::ResponseLimit { limit, received, .. } if limit == MIB && received > MIB),
        "{msg}"
    );
    assert!(
        msg.contains("per-response limit of 1048576 bytes (received at least"),
        "{msg}"
    );
    let se = send.await.unwrap().unwrap_err().to_string();
    assert!(se.contains("per-response limit"), "{se}");

    // Declared: refused before any body is read.
    let (node, _rx2) = bind("r2");
    let send = tokio::spawn(async move {
        send_pattern(
            &node,
            &to,
            header("r2", 1, Some(3 * MIB)),
            2,
            3 * MIB,
            32 << 10,
        )
        .await
    });
    let mut resp = next(&mut incoming).await;
    let e = resp.body.chunk().await.unwrap_err().to_string();
    assert!(
        e.contains("per-response limit of 1048576 bytes (declared 3145728 bytes)"),
        "{e}"
    );
    assert!(send.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_query_limit_fails_the_response_that_crosses_it() {
    let mut cfg = config("origin");
    cfg.limits.max_response = 4 * MIB;
    cfg.limits.max_query_total = 3 * MIB;
    let (origin, mut incoming) = QuicEndpoint::bind(cfg).unwrap();
    let to = origin.advert();
    let mut senders = Vec::new();
    // Two responses of 2 MiB to query 1 (4 MiB > 3 MiB), one of 2 MiB to query 2.
    for (i, q) in [(1u8, 1u32), (2, 1), (3, 2)] {
        let (node, _rx) = bind(&format!("r{i}"));
        senders.push(tokio::spawn(async move {
            let _keep = _rx;
            send_pattern(
                &node,
                &to,
                header(&format!("r{i}"), q, None),
                i,
                2 * MIB,
                32 << 10,
            )
            .await
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut resp = next(&mut incoming).await;
        readers.push(tokio::spawn(async move {
            let seed = seed_of(&resp.header.from);
            (resp.header.query_id, read_pattern(&mut resp, seed).await)
        }));
    }
    let mut query1_failed = 0;
    let mut query1_bytes = 0;
    for r in readers {
        match r.await.unwrap() {
            (2, got) => assert_eq!(got.unwrap().bytes, 2 * MIB, "query 2 is unaffected"),
            (_, Ok(got)) => query1_bytes += got.bytes,
            (_, Err(e)) => {
                let msg = e.to_string();
                assert!(
                    matches!(e, QuicError::QueryLimit { limit, total, .. } if limit == 3 * MIB && total > 3 * MIB),
                    "{msg}"
                );
                assert!(msg.contains("per-query limit of 3145728 bytes"), "{msg}");
                query1_failed += 1;
            }
        }
    }
    assert!(query1_failed >= 1, "no query-1 response hit the limit");
    assert!(query1_bytes <= 3 * MIB);
    for s in senders {
        let _ = s.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_headers_are_rejected_and_the_connection_keeps_working() {
    let mut cfg = config("origin");
    cfg.limits.max_header = 64;
    let (origin, mut incoming) = QuicEndpoint::bind(cfg).unwrap();
    let to = origin.advert();
    let (node, _rx) = bind("r1");

    let (mut raw, mut verdict) = node.open_raw_stream(&to).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    raw.finish().unwrap();
    let v = tokio::time::timeout(WAIT, verdict.read_to_end(64))
        .await
        .unwrap();
    assert!(
        matches!(v, Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(c))) if c.into_inner() == 1),
        "garbage header not rejected: {v:?}"
    );

    // A header over the 64-byte limit: the writer learns why.
    let long = "n".repeat(100);
    let e = send_pattern(&node, &to, header(&long, 1, None), 1, 10, 10)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rejected the header"), "{e}");

    assert!(!arrives_within(&mut incoming, Duration::from_millis(300)).await);
    let send = tokio::spawn(async move {
        send_pattern(&node, &to, header("r1", 1, None), 1, 5000, 1000).await
    });
    let mut resp = next(&mut incoming).await;
    assert_eq!(resp.header.from, "r1");
    assert_eq!(read_pattern(&mut resp, 1).await.unwrap().bytes, 5000);
    send.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_length_is_enforced_on_both_sides() {
    let (origin, mut incoming) = bind("origin");
    let to = origin.advert();
    let (node, _rx) = bind("r1");
    let mut w = node
        .open_response(&to, &header("r1", 1, Some(100)))
        .await
        .unwrap();
    w.write(&[pattern(1, 0); 50]).await.unwrap();
    let mut resp = next(&mut incoming).await;
    let first = resp.body.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let e = w.write(&[0; 51]).await.unwrap_err();
    assert!(
        matches!(
            e,
            QuicError::DeclaredLength {
                declared: 100,
                written: 101
            }
        ),
        "{e}"
    );
    // Finishing short is refused and resets the stream: the reader sees an abort, not a
    // complete 50-byte body.
    let e = w.finish().await.unwrap_err();
    assert!(
        matches!(
            e,
            QuicError::DeclaredLength {
                declared: 100,
                written: 50
            }
        ),
        "{e}"
    );
    let mut outcome = resp.body.chunk().await;
    while let Ok(Some(_)) = outcome {
        outcome = resp.body.chunk().await;
    }
    assert!(
        matches!(outcome, Err(QuicError::Reset { .. })),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_and_close_when_idle() {
    let mut cfg = config("origin");
    cfg.idle_timeout = Duration::from_millis(500);
    let (origin, mut incoming) = QuicEndpoint::bind(cfg).unwrap();
    let to = origin.advert();
    let mut ncfg = config("r1");
    ncfg.idle_timeout = Duration::from_millis(500);
    let (node, _rx) = QuicEndpoint::bind(ncfg).unwrap();
    for q in 1..=3 {
        let (n, to2) = (node.clone(), to);
        let send = tokio::spawn(async move {
            send_pattern(&n, &to2, header("r1", q, None), 1, 1000, 1000).await
        });
        let mut resp = next(&mut incoming).await;
        read_pattern(&mut resp, 1).await.unwrap();
        send.await.unwrap().unwrap();
        assert_eq!(
            node.open_connections(),
            1,
            "response {q} used a new connection"
        );
        assert_eq!(origin.open_connections(), 1);
    }
    let mut waited = 0;
    while node.open_connections() > 0 || origin.open_connections() > 0 {
        assert!(waited < 200, "idle connection never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    // The next response dials again.
    let send = tokio::spawn(async move {
        send_pattern(&node, &to, header("r1", 9, None), 1, 1000, 1000).await
    });
    let mut resp = next(&mut incoming).await;
    assert_eq!(read_pattern(&mut resp, 1).await.unwrap().bytes, 1000);
    send.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responder_learns_when_nobody_takes_its_response() {
    // The originator drops one response unread: the writer hears "dropped".
    let (origin, mut incoming) = bind("origin");
    let to = origin.advert();
    let (node, _rx) = bind("r1");
    let n = node.clone();
    let send =
        tokio::spawn(
            async move { send_pattern(&n, &to, header("r1", 1, None), 1, 1000, 100).await },
        );
    drop(next(&mut incoming).await);
    let e = send.await.unwrap().unwrap_err().to_string();
    assert!(e.contains("the originator dropped the response"), "{e}");

    // The originator is not receiving at all: the writer hears that.
    drop(incoming);
    let e = send_pattern(&node, &to, header("r1", 2, None), 1, 1000, 100)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not receiving responses"), "{e}");
}
