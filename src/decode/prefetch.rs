//! Software prefetch for the record loop.
//!
//! Splitting a dump into records is a chain of dependent loads: where the next record starts is
//! only known once this one's lengths are read. On a mapped dump larger than the caches every
//! record header is then a cache miss that the hardware prefetcher does not hide (records are
//! skipped over, not streamed through): measured on the 291 MB D1 bench dump, the record loop
//! took 112 ms, 78 ms with the lines ahead prefetched (`cargo run --release --example frame_time`).
//! The parallel decode does not need it: a worker reads a region right after hashing it.

/// How far ahead of the read position lines are requested, in bytes.
const DISTANCE: usize = 4096;
/// Most lines requested per record, so a long skip (a big value) costs a bounded amount.
const MAX_LINES: usize = 4;
const LINE: usize = 64;

/// Requests the cache lines up to [`DISTANCE`] bytes past the read position, each once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefetch {
    /// Lines before this offset were requested already.
    until: usize,
    /// Off where the data is known to be in the cache (a chunk worker re-reading a span it has
    /// just hashed).
    off: bool,
}

impl Prefetch {
    pub(crate) fn off() -> Self {
        Prefetch {
            until: 0,
            off: true,
        }
    }

    #[inline]
    pub(crate) fn ahead(&mut self, data: &[u8], pos: usize) {
        if self.off {
            return;
        }
        let want = pos.saturating_add(DISTANCE).min(data.len());
        let mut at = self.until.max(pos);
        let mut lines = 0;
        while at < want && lines < MAX_LINES {
            touch(data, at);
            at += LINE;
            lines += 1;
        }
        self.until = at;
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn touch(data: &[u8], at: usize) {
    if let Some(b) = data.get(at) {
        // a hint only: no architectural effect, never faults
        safe_arch::prefetch_t0(b);
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn touch(_: &[u8], _: usize) {}
