//! Junk from the network (issue 19): every bad datagram and stream is counted in
//! [`Swim::drop_stats`], but only the first warning per source and kind in a
//! [`WINDOW`] is logged, then one summary line. Log lines are captured with a test
//! subscriber on this thread; time is the harness's virtual clock.

use super::*;
use crate::loglimit::WINDOW;
use std::io;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// Collects what a fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("not poisoned");
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Runs `f` with every WARN-or-worse line logged on this thread captured; returns the lines.
fn warnings(f: impl FnOnce()) -> Vec<String> {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    out.lines()
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.contains(what)).count()
}

/// The `i`th junk datagram: an unknown message type, a foreign cluster label, or a ping cut
/// off after its map header, in turn.
fn junk(i: usize) -> Vec<u8> {
    match i % 3 {
        0 => vec![200, i as u8, 1, 2, 3],
        1 => [&[MessageType::HasLabel as u8, 4][..], b"evil", &[0]].concat(),
        _ => vec![MessageType::Ping as u8, 0x85],
    }
}

/// Feeds `n` junk datagrams from `from`, one a millisecond from the harness's start.
fn flood(h: &mut Harness, from: SocketAddr, n: usize) {
    for i in 0..n {
        let now = h.at(i as u64);
        h.swim.handle_packet(now, from, &junk(i));
    }
}

fn ping_from_peer(h: &mut Harness, now: Instant, from: SocketAddr, seq_no: u32) -> bool {
    let ping = Ping {
        seq_no,
        node: ME.into(),
        ..Ping::default()
    };
    h.send(now, from, vec![Message::Ping(ping)]);
    h.sent().iter().any(|(dst, msgs)| {
        *dst == from
            && msgs
                .iter()
                .any(|m| matches!(m, Message::Ack(a) if a.seq_no == seq_no))
    })
}

#[test]
fn thousands_of_junk_datagrams_log_a_handful_of_lines_and_are_all_counted() {
    let mut h = Harness::new();
    let (a, b) = (addr(9), addr(10));
    let lines = warnings(|| {
        flood(&mut h, a, 3000);
        flood(&mut h, b, 90);
        // The first window of the limiter is the core's next timer.
        assert_eq!(h.swim.poll_timeout(), Some(h.t0 + WINDOW));
        let later = h.at(3000) + WINDOW;
        h.swim.handle_timeout(later);
    });
    // One full line per source and kind, one summary per source and kind.
    assert_eq!(
        count(&lines, "memberlist: dropping packet"),
        6,
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "memberlist: suppressed"), 6, "{lines:#?}");
    assert_eq!(lines.len(), 12, "{lines:#?}");
    assert!(lines.iter().all(|l| l.contains("WARN")), "{lines:#?}");
    for kind in ["unknown-type", "label", "decode"] {
        let from_a = format!(
            "memberlist: suppressed 999 similar warnings from 10.0.0.9 ({kind}) in the last 10s"
        );
        let from_b = format!(
            "memberlist: suppressed 29 similar warnings from 10.0.0.10 ({kind}) in the last 10s"
        );
        assert_eq!(count(&lines, &from_a), 1, "{from_a}: {lines:#?}");
        assert_eq!(count(&lines, &from_b), 1, "{from_b}: {lines:#?}");
    }

    let stats = h.swim.drop_stats();
    assert_eq!(stats.total_packets(), 3000 + 90);
    assert_eq!(stats.packets(DropKind::UnknownType), 1030);
    assert_eq!(stats.packets(DropKind::Label), 1030);
    assert_eq!(stats.packets(DropKind::Decode), 1030);
    assert_eq!(stats.packets(DropKind::Decrypt), 0);
    assert_eq!(stats.suppressed_warnings(), 3 * 999 + 3 * 29);
    let entries = stats.entries();
    assert_eq!(entries[0], ("dropped_packets", 3090));
    // Every window is over: the limiter holds nothing and no longer sets the timeout.
    assert!(h.swim.warnings.is_empty());
    assert_eq!(h.swim.poll_timeout(), Some(h.t0 + FAR));
}

#[test]
fn a_well_formed_packet_is_still_answered_after_the_junk() {
    let mut h = Harness::new();
    let a = addr(9);
    let lines = warnings(|| {
        flood(&mut h, a, 3000);
        let now = h.at(3000);
        assert!(ping_from_peer(&mut h, now, a, 77), "the junk's source");
        assert!(ping_from_peer(&mut h, now, addr(2), 78), "another peer");
    });
    assert_eq!(
        count(&lines, "memberlist: dropping packet"),
        3,
        "{lines:#?}"
    );
    assert_eq!(h.swim.drop_stats().total_packets(), 3000);
}

#[test]
fn junk_after_the_window_is_logged_again_behind_its_summary() {
    let mut h = Harness::new();
    let a = addr(9);
    let lines = warnings(|| {
        for ms in 0..5 {
            h.swim.handle_packet(h.at(ms), a, &junk(0));
        }
        let later = h.t0 + WINDOW + SEC;
        h.swim.handle_packet(later, a, &junk(0));
    });
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].contains("memberlist: dropping packet"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains(
            "memberlist: suppressed 4 similar warnings from 10.0.0.9 (unknown-type) in the last 10s"
        ),
        "{lines:#?}"
    );
    assert!(
        lines[2].contains("memberlist: dropping packet"),
        "{lines:#?}"
    );
    assert_eq!(h.swim.drop_stats().packets(DropKind::UnknownType), 6);
}

#[test]
fn bad_parts_of_compounds_are_counted_and_logged_once() {
    let mut h = Harness::new();
    let a = addr(9);
    let good = encode_message(&Message::Nack(Nack { seq_no: 1 }));
    let pkt = encode_compound(&[good, vec![200, 1, 2]]);
    let lines = warnings(|| {
        for ms in 0..100 {
            h.swim.handle_packet(h.at(ms), a, &pkt);
        }
    });
    assert_eq!(count(&lines, "dropping part of a packet"), 1, "{lines:#?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let stats = h.swim.drop_stats();
    assert_eq!(stats.messages(), 100);
    assert_eq!(stats.total_packets(), 0);
}

#[test]
fn junk_streams_are_answered_counted_and_logged_once() {
    let mut h = Harness::new();
    let a = addr(9);
    let lines = warnings(|| {
        for ms in 0..100 {
            let outcome = h.swim.handle_stream(h.at(ms), a, &[200, 1, 2, 3]);
            assert!(matches!(outcome, StreamOutcome::Reply(_)), "{outcome:?}");
        }
    });
    assert_eq!(count(&lines, "failed to receive stream"), 1, "{lines:#?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(h.swim.drop_stats().streams(), 100);
    assert_eq!(h.swim.drop_stats().suppressed_warnings(), 99);
}

#[test]
fn pings_for_another_node_are_logged_once_per_window() {
    let mut h = Harness::new();
    let a = addr(9);
    let lines = warnings(|| {
        for ms in 0..50 {
            let ping = Ping {
                seq_no: ms as u32,
                node: "someone-else".into(),
                ..Ping::default()
            };
            h.send(h.at(ms), a, vec![Message::Ping(ping)]);
        }
    });
    assert_eq!(
        count(&lines, "got ping for unexpected node"),
        1,
        "{lines:#?}"
    );
    assert!(h.sent().is_empty(), "no ack for another node's ping");
}
