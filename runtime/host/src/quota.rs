//! [`SharedQuota`]: a capacity several handlers draw on together (a tenant's): at most so many
//! of their events running at once, their instances' linear memory together under a cap, and
//! the user events they emit under a rate.
//! It is on top of each handler's own limits and the agent-wide memory cap, never instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::budget::MemoryBudget;

/// A capacity shared by the handlers whose specs carry it.
#[derive(Debug)]
pub struct SharedQuota {
    name: String,
    instances: Option<(usize, Semaphore)>,
    memory: Option<MemoryBudget>,
    /// Events that waited for one of `instances`.
    waited: AtomicU64,
    /// Memory growths refused because `memory` was in use.
    memory_refusals: AtomicU64,
    /// Emitted events per second, with a burst of one second's worth: (rate, tokens, when the
    /// tokens were last topped up).
    emits: Option<(u32, Mutex<(f64, Instant)>)>,
    /// Emits refused for the rate.
    emit_refusals: AtomicU64,
}

/// What a [`SharedQuota`] holds now, for listings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUse {
    /// Events of its handlers running now.
    pub running: usize,
    /// Bytes of linear memory its handlers' live instances hold.
    pub memory: usize,
    /// Events that had to wait for a free instance, since the quota was made.
    pub waited: u64,
    /// Memory growths refused because the shared cap was in use, since the quota was made.
    pub memory_refusals: u64,
    /// Emits refused because of the rate, since the quota was made.
    pub emit_refusals: u64,
}

impl SharedQuota {
    /// A quota named `name` (in errors and logs: the tenant's name): at most `instances` events
    /// of its handlers at once, at most `memory` bytes of their instances' memory together;
    /// `None`: no limit of that kind.
    pub fn new(name: impl Into<String>, instances: Option<usize>, memory: Option<usize>) -> Self {
        SharedQuota {
            name: name.into(),
            instances: instances.map(|n| (n.max(1), Semaphore::new(n.max(1)))),
            memory: memory.map(MemoryBudget::new),
            waited: AtomicU64::new(0),
            memory_refusals: AtomicU64::new(0),
            emits: None,
            emit_refusals: AtomicU64::new(0),
        }
    }

    /// The same quota, with at most `per_second` user events emitted by its handlers each
    /// second (a burst of one second's worth).
    pub fn with_emit_rate(mut self, per_second: u32) -> Self {
        let rate = per_second.max(1);
        self.emits = Some((rate, Mutex::new((f64::from(rate), Instant::now()))));
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it holds now.
    pub fn usage(&self) -> QuotaUse {
        QuotaUse {
            running: self
                .instances
                .as_ref()
                .map_or(0, |(n, s)| n - s.available_permits()),
            memory: self.memory.as_ref().map_or(0, MemoryBudget::used),
            waited: self.waited.load(Ordering::Relaxed),
            memory_refusals: self.memory_refusals.load(Ordering::Relaxed),
            emit_refusals: self.emit_refusals.load(Ordering::Relaxed),
        }
    }

    /// Takes one emit from the rate; `Err` says why not.
    pub(crate) fn emit(&self) -> Result<(), String> {
        let Some((rate, bucket)) = &self.emits else {
            return Ok(());
        };
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let rate_f = f64::from(*rate);
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate_f).min(rate_f);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            Ok(())
        } else {
            self.emit_refusals.fetch_add(1, Ordering::Relaxed);
            Err(format!(
                "{:?} emits at most {rate} events per second (its events_per_second quota)",
                self.name
            ))
        }
    }

    /// Waits for one of its instances (at once without an instance limit); holding the permit
    /// runs one event.
    pub(crate) async fn instance(&self) -> Option<SemaphorePermit<'_>> {
        let (_, sem) = self.instances.as_ref()?;
        if let Ok(p) = sem.try_acquire() {
            return Some(p);
        }
        self.waited.fetch_add(1, Ordering::Relaxed);
        // The semaphore is never closed.
        sem.acquire().await.ok()
    }

    /// Charges `bytes` of memory; `Err` says why not (nothing charged).
    pub(crate) fn charge(&self, bytes: usize) -> Result<(), String> {
        match &self.memory {
            Some(m) if !m.charge(bytes) => {
                self.memory_refusals.fetch_add(1, Ordering::Relaxed);
                Err(format!(
                    "the memory quota of {} bytes of {:?} is in use by its other instances",
                    m.cap(),
                    self.name
                ))
            }
            _ => Ok(()),
        }
    }

    /// Returns `bytes` charged earlier.
    pub(crate) fn release(&self, bytes: usize) {
        if let Some(m) = &self.memory {
            m.release(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_shared_and_counted() {
        let q = SharedQuota::new("payments", None, Some(100));
        assert!(q.charge(70).is_ok());
        let e = q.charge(40).unwrap_err();
        assert!(e.contains("100 bytes") && e.contains("payments"), "{e}");
        q.release(70);
        assert!(q.charge(100).is_ok());
        assert_eq!(q.usage().memory, 100);
        assert_eq!(q.usage().memory_refusals, 1);
        let free = SharedQuota::new("x", None, None);
        assert!(free.charge(usize::MAX).is_ok());
    }

    #[test]
    fn emits_are_held_to_the_rate() {
        let q = SharedQuota::new("payments", None, None).with_emit_rate(3);
        let taken = (0..10).filter(|_| q.emit().is_ok()).count() as u64;
        // A burst of one second's worth, and what the loop's own time adds back (nothing, unless
        // the machine stalls this thread for a third of a second).
        assert!((3..=4).contains(&taken), "{taken}");
        assert_eq!(q.usage().emit_refusals, 10 - taken);
        let q = SharedQuota::new("payments", None, None).with_emit_rate(1);
        q.emit().unwrap();
        let e = q.emit().unwrap_err();
        assert!(
            e.contains("1 events per second") && e.contains("payments"),
            "{e}"
        );
        assert!(SharedQuota::new("x", None, None).emit().is_ok());
    }

    #[tokio::test]
    async fn instances_are_shared_and_waits_counted() {
        let q = SharedQuota::new("payments", Some(1), None);
        let first = q.instance().await.unwrap();
        assert_eq!(q.usage().running, 1);
        let waiting = q.instance();
        tokio::pin!(waiting);
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        drop(first);
        assert!(waiting.await.is_some());
        assert_eq!(q.usage().waited, 1);
        assert!(SharedQuota::new("x", None, None).instance().await.is_none());
    }

    /// Polls `f` once: `Some` if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
