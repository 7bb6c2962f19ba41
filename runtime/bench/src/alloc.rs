//! A counting global allocator: the live heap bytes of this process, so the simulator can
//! say how many bytes each member entry costs without the noise of RSS (freed pages that
//! the allocator keeps, the join storm's transient peak).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting what is live.
pub(crate) struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static CHUNKS: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// What glibc's malloc really takes for a request: an 8-byte header, 16-byte granules,
/// 32 bytes at least.
fn chunk(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

// SAFETY: every call forwards to `System` with the same arguments and returns its result;
// only relaxed atomic counters are added, which neither allocate nor unwind.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
            CHUNKS.fetch_add(chunk(l.size()), Ordering::Relaxed);
            BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
            CHUNKS.fetch_add(chunk(l.size()), Ordering::Relaxed);
            BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        CHUNKS.fetch_sub(chunk(l.size()), Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            LIVE.fetch_add(new, Ordering::Relaxed);
            CHUNKS.fetch_sub(chunk(l.size()), Ordering::Relaxed);
            CHUNKS.fetch_add(chunk(new), Ordering::Relaxed);
        }
        q
    }
}

/// Live heap now: requested bytes, bytes with malloc's per-block overhead, and blocks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Heap {
    pub bytes: usize,
    pub chunk_bytes: usize,
    pub blocks: usize,
}

impl Heap {
    /// The counters now.
    pub(crate) fn now() -> Self {
        Self {
            bytes: LIVE.load(Ordering::Relaxed),
            chunk_bytes: CHUNKS.load(Ordering::Relaxed),
            blocks: BLOCKS.load(Ordering::Relaxed),
        }
    }

    /// Growth since `base` (saturating).
    pub(crate) fn since(self, base: Heap) -> Heap {
        Heap {
            bytes: self.bytes.saturating_sub(base.bytes),
            chunk_bytes: self.chunk_bytes.saturating_sub(base.chunk_bytes),
            blocks: self.blocks.saturating_sub(base.blocks),
        }
    }
}
