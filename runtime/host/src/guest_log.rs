//! Guest log hygiene: turns what a (possibly hostile) WebAssembly guest passes to the host's
//! `log(level, message)` import into something safe to put in the agent's own log.
//!
//! Two independent pieces:
//! - [`sanitize`] makes one guest message exactly one printable, bounded log line, so a guest
//!   cannot forge agent log lines (`\n`, `\r`), hide text (bidi controls), drive the terminal
//!   (ANSI escapes), or write megabytes in one call.
//! - [`LogBudget`] / [`EventLog`] rate-limit how many lines a handler may log (per second across
//!   all its events, and per event), counting what was suppressed so one summary line can say so.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How one input char is written to the log line.
#[derive(Clone, Copy)]
enum Escaped {
    /// Safe as is.
    Plain(char),
    /// A backslash followed by this ASCII letter (or a second backslash).
    Short(char),
    /// `\u{XXXX}` with lower-case hex.
    Unicode(char),
}

impl Escaped {
    fn of(c: char) -> Escaped {
        match c {
            '\\' => Escaped::Short('\\'),
            '\n' => Escaped::Short('n'),
            '\r' => Escaped::Short('r'),
            '\t' => Escaped::Short('t'),
            c if needs_unicode_escape(c) => Escaped::Unicode(c),
            c => Escaped::Plain(c),
        }
    }

    /// Bytes this piece takes in the output; known before writing so a piece is never split.
    fn len(self) -> usize {
        match self {
            Escaped::Plain(c) => c.len_utf8(),
            Escaped::Short(_) => 2,
            // `\u{` + hex digits + `}`
            Escaped::Unicode(c) => 4 + hex_digits(c as u32),
        }
    }

    fn write_to(self, out: &mut String) {
        match self {
            Escaped::Plain(c) => out.push(c),
            Escaped::Short(c) => {
                out.push('\\');
                out.push(c);
            }
            Escaped::Unicode(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
}

/// Chars that could break the line, drive a terminal, or reorder displayed text.
fn needs_unicode_escape(c: char) -> bool {
    c.is_control() // C0, DEL, C1 (includes U+0085 NEL)
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{0085}')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Number of digits `{:x}` prints for `n`.
fn hex_digits(n: u32) -> usize {
    let bits = 32 - n.leading_zeros() as usize;
    bits.div_ceil(4).max(1)
}

/// Escapes one guest message so it is exactly one printable log line, keeping at most `max` bytes of
/// the escaped text (cut at a char boundary) and, when cut, appending `…[N more bytes]` where N is how many bytes of the ORIGINAL message were not shown.
pub(crate) fn sanitize(message: &str, max: usize) -> String {
    // Capacity is bounded by `max`, never by the (guest-controlled) message length.
    let mut out = String::with_capacity(max.min(message.len()));
    for (at, c) in message.char_indices() {
        let piece = Escaped::of(c);
        if out.len() + piece.len() > max {
            // Stop reading here: the rest of the input is only counted, never scanned.
            let _ = write!(out, "…[{} more bytes]", message.len() - at);
            return out;
        }
        piece.write_to(&mut out);
    }
    out
}

/// Token units per whole token: integer nanotokens keep the refill exact (no float drift).
const UNITS_PER_TOKEN: u64 = 1_000_000_000;

/// Token bucket state, guarded by the budget's mutex.
#[derive(Debug)]
struct Bucket {
    /// Available tokens, in `UNITS_PER_TOKEN` units.
    units: u64,
    /// Latest instant seen; refills are measured from here. `None` until the first call.
    last: Option<Instant>,
}

/// Per-handler log budget shared by all of a handler's events (thread-safe: events of one handler may run concurrently on several threads).
#[derive(Debug)]
pub(crate) struct LogBudget {
    per_second: u32,
    per_event: u32,
    bucket: Mutex<Bucket>,
    suppressed: AtomicU64,
}

impl LogBudget {
    /// `per_second`: lines a handler may log per second across all its events (token bucket, burst = per_second); `per_event`: lines one event may log in total.
    pub(crate) fn new(per_second: u32, per_event: u32) -> LogBudget {
        LogBudget {
            per_second,
            per_event,
            // Starts full so a handler's first burst is allowed up to `per_second` lines.
            bucket: Mutex::new(Bucket {
                units: capacity_units(per_second),
                last: None,
            }),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether one more line of the event `event` may be written at `now`; counts a refused line as suppressed (in `event` and in the handler's total).
    pub(crate) fn admit(&self, now: Instant, event: &mut EventLog) -> bool {
        // Checked first so a line the event may not write does not spend a handler token.
        let admitted = event.written < self.per_event && self.take_token(now);
        if admitted {
            event.written += 1;
        } else {
            event.suppressed = event.suppressed.saturating_add(1);
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Lines suppressed over the handler's life.
    pub(crate) fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }

    /// Refills the bucket up to `now` and takes one token if there is one.
    fn take_token(&self, now: Instant) -> bool {
        // A panic elsewhere while holding the lock leaves the bucket consistent enough to keep
        // rate limiting; refusing to log forever would be worse.
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut bucket, now);
        if bucket.units >= UNITS_PER_TOKEN {
            bucket.units -= UNITS_PER_TOKEN;
            true
        } else {
            false
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let Some(last) = bucket.last else {
            bucket.last = Some(now);
            return;
        };
        // A `now` earlier than `last` refills nothing, and `last` is kept so the same interval is
        // never credited twice.
        if now <= last {
            return;
        }
        let elapsed_ns = now.duration_since(last).as_nanos();
        // nanoseconds * lines/second = nanotokens
        let gained = elapsed_ns.saturating_mul(u128::from(self.per_second));
        let cap = capacity_units(self.per_second);
        let units = (u128::from(bucket.units) + gained).min(u128::from(cap));
        bucket.units = u64::try_from(units).unwrap_or(cap); // never fails: units <= cap
        bucket.last = Some(now);
    }
}

/// Bucket capacity (burst = `per_second` lines) in token units; `u32::MAX * 1e9` fits in `u64`.
fn capacity_units(per_second: u32) -> u64 {
    u64::from(per_second) * UNITS_PER_TOKEN
}

/// One event's log accounting (lives in the event's store data).
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    written: u32,
    suppressed: u32,
}

impl EventLog {
    /// Lines of this event that were admitted.
    #[cfg(test)]
    pub(crate) fn written(&self) -> u32 {
        self.written
    }

    /// Lines of this event that were refused.
    #[cfg(test)]
    pub(crate) fn suppressed(&self) -> u32 {
        self.suppressed
    }

    /// The one summary line to log when the event ends, if anything was suppressed, e.g.
    /// "suppressed 1234 guest log lines (budget: 100 per event, 50 per second per handler)".
    pub(crate) fn summary(&self, budget: &LogBudget) -> Option<String> {
        (self.suppressed > 0).then(|| {
            format!(
                "suppressed {} guest log lines (budget: {} per event, {} per second per handler)",
                self.suppressed, budget.per_event, budget.per_second
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn assert_one_printable_line(s: &str) {
        assert!(
            !s.contains('\n') && !s.contains('\r'),
            "line break in {s:?}"
        );
        assert!(!s.chars().any(char::is_control), "control char in {s:?}");
        assert!(!s.chars().any(needs_unicode_escape), "unsafe char in {s:?}");
    }

    #[test]
    fn escapes_line_breaks_controls_and_backslash() {
        let cases = [
            ("a\nb", "a\\nb"),
            ("a\r\nb", "a\\r\\nb"),
            ("a\tb", "a\\tb"),
            ("\x1b[31mred", "\\u{1b}[31mred"),
            ("a\u{2028}b", "a\\u{2028}b"),
            ("a\u{2029}b", "a\\u{2029}b"),
            ("a\u{85}b", "a\\u{85}b"),
            ("abc\u{202e}def", "abc\\u{202e}def"),
            ("x\u{2066}y", "x\\u{2066}y"),
            ("del\x7f", "del\\u{7f}"),
            ("nul\0", "nul\\u{0}"),
            ("back\\slash", "back\\\\slash"),
        ];
        for (input, want) in cases {
            let got = sanitize(input, 1024);
            assert_eq!(got, want, "input {input:?}");
            assert_one_printable_line(&got);
        }
    }

    #[test]
    fn every_char_class_ends_up_printable() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert_one_printable_line(&sanitize(&all, usize::MAX));
    }

    #[test]
    fn plain_and_non_ascii_text_pass_unchanged() {
        for s in ["hello world", "café é", "日本語のログ", "emoji 🦀 ok", ""] {
            assert_eq!(sanitize(s, 1024), s);
        }
    }

    #[test]
    fn escaping_is_unambiguous() {
        assert_ne!(sanitize("a\nb", 100), sanitize("a\\nb", 100));
        assert_ne!(sanitize("a\u{1b}b", 100), sanitize("a\\u{1b}b", 100));
    }

    #[test]
    fn huge_message_is_cut_with_exact_remaining_count() {
        let message = "x".repeat(100_000_000);
        let got = sanitize(&message, 4096);
        let suffix = format!("…[{} more bytes]", 100_000_000 - 4096);
        assert!(got.ends_with(&suffix), "{}", &got[4000..]);
        assert_eq!(got.len(), 4096 + suffix.len());
        assert!(got[..4096].bytes().all(|b| b == b'x'));
    }

    #[test]
    fn fitting_message_has_no_suffix() {
        assert_eq!(sanitize("abcd", 4), "abcd");
        assert_eq!(sanitize("abcde", 4), "abcd…[1 more bytes]");
    }

    #[test]
    fn cut_never_splits_an_escape_sequence() {
        let got = sanitize(&"\n".repeat(1000), 7);
        assert_eq!(got, "\\n\\n\\n…[997 more bytes]");

        let got = sanitize(&"\u{202e}".repeat(10), 15);
        assert_eq!(got, "\\u{202e}…[27 more bytes]");
    }

    #[test]
    fn cut_never_splits_a_multibyte_char() {
        // é is 2 bytes: max 5 keeps two of them (4 bytes), 196 of 200 original bytes are left.
        assert_eq!(sanitize(&"é".repeat(100), 5), "éé…[196 more bytes]");
        assert_eq!(sanitize("日本", 2), "…[6 more bytes]");
    }

    #[test]
    fn per_event_limit_and_summary() {
        let budget = LogBudget::new(1000, 3);
        let now = Instant::now();
        let mut first = EventLog::default();
        let admitted: Vec<bool> = (0..5).map(|_| budget.admit(now, &mut first)).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        assert_eq!((first.written(), first.suppressed()), (3, 2));
        assert_eq!(
            first.summary(&budget).as_deref(),
            Some("suppressed 2 guest log lines (budget: 3 per event, 1000 per second per handler)")
        );

        let mut second = EventLog::default();
        assert_eq!(second.summary(&budget), None);
        for _ in 0..3 {
            assert!(
                budget.admit(now, &mut second),
                "second event has its own allowance"
            );
        }
        assert!(!budget.admit(now, &mut second));
        assert_eq!(budget.suppressed(), 3, "handler total spans events");
    }

    #[test]
    fn per_second_burst_then_continuous_refill() {
        let budget = LogBudget::new(10, u32::MAX);
        let t0 = Instant::now();
        let mut event = EventLog::default();
        let burst = (0..100).filter(|_| budget.admit(t0, &mut event)).count();
        assert_eq!(burst, 10);

        let t1 = t0 + Duration::from_millis(500);
        let later = (0..100).filter(|_| budget.admit(t1, &mut event)).count();
        assert_eq!(later, 5);
        assert_eq!(event.written(), 15);
        assert_eq!(budget.suppressed(), 185);
    }

    #[test]
    fn suppressed_totals_across_events() {
        let budget = LogBudget::new(2, 100);
        let now = Instant::now();
        let (mut a, mut b) = (EventLog::default(), EventLog::default());
        for _ in 0..4 {
            budget.admit(now, &mut a);
            budget.admit(now, &mut b);
        }
        assert_eq!(a.written() + b.written(), 2);
        assert_eq!(
            u64::from(a.suppressed() + b.suppressed()),
            budget.suppressed()
        );
        assert_eq!(budget.suppressed(), 6);
    }

    #[test]
    fn zero_budgets_admit_nothing() {
        let now = Instant::now();
        for budget in [LogBudget::new(0, 100), LogBudget::new(100, 0)] {
            let mut event = EventLog::default();
            assert!(!budget.admit(now, &mut event));
            assert!(!budget.admit(now + Duration::from_secs(60), &mut event));
            assert_eq!(event.suppressed(), 2);
        }
    }

    #[test]
    fn concurrent_admits_never_exceed_per_second() {
        let budget = Arc::new(LogBudget::new(10, u32::MAX));
        let now = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = Arc::clone(&budget);
                std::thread::spawn(move || {
                    let mut event = EventLog::default();
                    for _ in 0..100 {
                        budget.admit(now, &mut event);
                    }
                    event.written()
                })
            })
            .collect();
        let total: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 10);
        assert_eq!(budget.suppressed(), 390);
    }

    #[test]
    fn time_going_backwards_grants_nothing_extra() {
        let base = Instant::now();
        let t10 = base + Duration::from_secs(10);
        let budget = LogBudget::new(10, u32::MAX);
        let mut event = EventLog::default();
        assert_eq!(
            (0..20).filter(|_| budget.admit(t10, &mut event)).count(),
            10
        );

        // Earlier instant: no refill, no panic.
        let t5 = base + Duration::from_secs(5);
        assert_eq!((0..20).filter(|_| budget.admit(t5, &mut event)).count(), 0);

        // Refill is measured from the latest instant seen, not from the earlier one.
        let t10_5 = t10 + Duration::from_millis(500);
        assert_eq!(
            (0..20).filter(|_| budget.admit(t10_5, &mut event)).count(),
            5
        );
    }

    #[test]
    fn poisoned_lock_keeps_working() {
        let budget = Arc::new(LogBudget::new(5, 100));
        let poisoner = Arc::clone(&budget);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.bucket.lock().unwrap();
            panic!("poison the bucket");
        })
        .join();
        let mut event = EventLog::default();
        assert!(budget.admit(Instant::now(), &mut event));
    }
}
