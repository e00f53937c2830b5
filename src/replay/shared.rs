//! What the producers and the connections of one import share: the target, the ledger of keys,
//! the watermarks for the checkpoint, the cluster routes, the memory budget and buffer pool, the
//! stop flag and the Sentinel epoch.

use super::batch;
use super::checkpoint::Watermarks;
use super::config::ImportConfig;
use super::config::RateLimit;
use super::error::ReplayError;
use super::ledger::Ledger;
use super::routes::Routes;
use super::target::Target;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// State shared by the planner and the connections.
pub struct Shared {
    pub(crate) target: Target,
    pub(crate) wait_replicas: Option<(u32, Duration)>,
    /// What became of every key.
    pub(crate) ledger: Ledger,
    pub(crate) skip_existing: bool,
    /// Cluster: hash slot → shard, updated by MOVED.
    pub(crate) routes: Option<Routes>,
    /// What a checkpoint may say is done.
    pub(crate) watermarks: Watermarks,
    pub(crate) stop: AtomicBool,
    /// Bumped by the Sentinel watcher when the primary moves: connections drop their session,
    /// reconnect to the new primary and rewrite their recent batches.
    pub(crate) primary_epoch: tokio::sync::watch::Sender<u64>,
    /// Target databases whose conflict check is done (by the prescan or the first input that
    /// reached them), so that inputs sharing a database do not refuse each other.
    pub(crate) checked_dbs: Mutex<HashSet<u64>>,
    pub(super) rate: Option<Mutex<RateLimiter>>,
    pub(crate) next_batch: AtomicU64,
    /// Buffers of acknowledged batches, reused by new ones.
    pub(crate) pool: batch::BufferPool,
    /// Bounds the encoded commands queued and in flight.
    pub(crate) memory: Arc<batch::MemoryBudget>,
    /// Sentinel: bytes of acknowledged batches each connection may keep for a rewrite after a
    /// failover (its share of the other part of `--buffer-mb`).
    pub(crate) retain_per_conn: usize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("target", &self.target.display())
            .finish()
    }
}

impl Shared {
    pub(crate) fn new(
        target: Target,
        cfg: &ImportConfig,
        files: usize,
        cluster: Option<(Vec<u16>, Vec<Target>)>,
    ) -> Shared {
        let (skip_existing, wait_replicas, rate) =
            (cfg.skip_existing, cfg.conn.wait_replicas, cfg.rate_limit);
        // Sentinel: half of the budget keeps acknowledged batches for a failover rewrite, split
        // between the connections; the other half bounds what is queued and in flight
        let budget = cfg.memory_budget;
        let (memory, retain_per_conn) = if target.sentinel.is_some() && cfg.conn.rewrite_batches > 0
        {
            (budget - budget / 2, budget / 2 / cfg.connections.max(1))
        } else {
            (budget, 0)
        };
        Shared {
            ledger: Ledger::new(skip_existing, cfg.stats.clone().unwrap_or_default()),
            pool: batch::BufferPool::default(),
            memory: batch::MemoryBudget::new(memory),
            retain_per_conn,
            routes: cluster.map(|(slots, nodes)| Routes::new(slots, nodes)),
            target,
            wait_replicas,
            skip_existing,
            watermarks: Watermarks::new(files),
            stop: AtomicBool::new(false),
            primary_epoch: tokio::sync::watch::Sender::new(0),
            checked_dbs: Mutex::default(),
            next_batch: AtomicU64::new(1),
            rate: rate.map(|limit| {
                Mutex::new(RateLimiter {
                    limit,
                    tokens: 0.0,
                    last: Instant::now(),
                })
            }),
        }
    }

    /// Waits as `--rate-limit` requires before a batch goes out.
    pub(super) fn throttle(&self, keys: usize, bytes: usize) {
        if let Some(r) = &self.rate {
            let wait = r
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(keys, bytes);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }

    /// Offset in input `file` below which every key is acknowledged or skipped.
    pub fn watermark(&self, file: usize) -> u64 {
        self.watermarks.watermark(file)
    }

    pub(crate) fn fatal(&self, message: String) -> ReplayError {
        self.stop.store(true, Relaxed);
        ReplayError::Fatal { message }
    }

    pub(crate) fn gave_up(&self, conn: usize, attempts: u32, why: &str) -> ReplayError {
        self.stop.store(true, Relaxed);
        ReplayError::GaveUp {
            conn,
            attempts,
            why: why.to_string(),
            offset: self.watermark(0),
        }
    }
}

#[derive(Debug)]
pub(super) struct RateLimiter {
    pub(super) limit: RateLimit,
    pub(super) tokens: f64,
    pub(super) last: Instant,
}

impl RateLimiter {
    /// How long to wait before spending `keys`/`bytes`.
    fn take(&mut self, keys: usize, bytes: usize) -> Duration {
        let (rate, cost) = match self.limit {
            RateLimit::Keys(r) => (r, keys as f64),
            RateLimit::Bytes(r) => (r, bytes as f64),
        };
        let now = Instant::now();
        // at most one second of burst
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(rate);
        self.last = now;
        self.tokens -= cost;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}
