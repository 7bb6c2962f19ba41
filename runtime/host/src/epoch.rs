//! The epoch clock: advances the engine's epoch every tick while guests run, and sleeps once
//! none has run for [`PARK_AFTER`] ticks, so an agent whose handlers are idle has no thread
//! waking 100 times a second, and one whose handlers are busy pays no wake-up per event.
//!
//! Deadlines stay exact: a store's deadline is armed relative to the epoch when its guest is
//! entered ([`crate::invoke`]), and the clock ticks from the moment the first guest is entered.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Idle ticks (no guest entered, none running) before the ticker parks: 1 s at the default
/// 10 ms tick.
pub(crate) const PARK_AFTER: u32 = 100;

/// Shared between the workers (which mark guest code running) and the ticker thread.
#[derive(Default)]
pub(crate) struct EpochClock {
    state: Mutex<ClockState>,
    wake: Condvar,
}

#[derive(Default)]
struct ClockState {
    /// Workers inside guest code (instantiating or handling).
    running: usize,
    /// Guests entered so far (wrapping): the ticker tells idle ticks by it.
    entered: u64,
    /// The ticker is waiting for a guest, not ticking.
    parked: bool,
    stop: bool,
}

/// Marks guest code running until dropped.
pub(crate) struct Running<'a> {
    clock: &'a EpochClock,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.clock.lock().running -= 1;
    }
}

impl EpochClock {
    fn lock(&self) -> MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Guest code is about to run: the clock ticks until every such guard is dropped.
    pub(crate) fn running(&self) -> Running<'_> {
        let mut s = self.lock();
        s.running += 1;
        s.entered = s.entered.wrapping_add(1);
        if s.parked {
            self.wake.notify_one();
        }
        Running { clock: self }
    }

    /// The ticker thread's body: calls `advance` every `tick` while guest code runs, and for
    /// [`PARK_AFTER`] ticks after the last guest, until [`EpochClock::stop`].
    pub(crate) fn run(&self, tick: Duration, mut advance: impl FnMut()) {
        let mut s = self.lock();
        // Parked from the start: no guest has run yet.
        let (mut seen, mut idle) = (s.entered, PARK_AFTER);
        loop {
            if s.stop {
                return;
            }
            if s.running == 0 && s.entered == seen {
                idle += 1;
            } else {
                idle = 0;
            }
            seen = s.entered;
            if idle > PARK_AFTER {
                s.parked = true;
                while s.running == 0 && !s.stop {
                    s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                s.parked = false;
                seen = s.entered;
                idle = 0;
                continue;
            }
            drop(s);
            std::thread::sleep(tick);
            advance();
            s = self.lock();
        }
    }

    /// Ends [`EpochClock::run`] (after its current tick).
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    #[cfg(test)]
    fn parked(&self) -> bool {
        self.lock().parked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    /// Waits (at most 10 s) until `cond` holds.
    fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn ticks_while_guests_run_and_parks_when_idle() {
        let clock = Arc::new(EpochClock::default());
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let (clock, ticks) = (clock.clone(), ticks.clone());
            std::thread::spawn(move || {
                clock.run(Duration::from_millis(1), || {
                    ticks.fetch_add(1, Ordering::Relaxed);
                })
            })
        };
        until("parked at start", || clock.parked());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            0,
            "ticked with no guest running"
        );

        let a = clock.running();
        let b = clock.running();
        until("three ticks", || ticks.load(Ordering::Relaxed) >= 3);
        drop(a);
        let now = ticks.load(Ordering::Relaxed);
        until("ticks go on while one guest still runs", || {
            ticks.load(Ordering::Relaxed) > now
        });
        drop(b);
        // It ticks on for PARK_AFTER idle ticks, then parks.
        until("parked again", || clock.parked());
        assert!(ticks.load(Ordering::Relaxed) >= PARK_AFTER as usize);
        let parked_at = ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            parked_at,
            "ticked while parked"
        );

        let _c = clock.running();
        until("ticking again", || {
            ticks.load(Ordering::Relaxed) > parked_at
        });
        clock.stop();
        ticker.join().unwrap();
    }

    #[test]
    fn stop_ends_a_parked_ticker() {
        let clock = Arc::new(EpochClock::default());
        let ticker = {
            let clock = clock.clone();
            std::thread::spawn(move || clock.run(Duration::from_secs(3600), || {}))
        };
        until("parked", || clock.parked());
        clock.stop();
        ticker.join().unwrap();
    }
}
