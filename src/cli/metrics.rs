//! `import --metrics ADDR`: the importer's live counters in the Prometheus text format at
//! `GET /metrics`, for the whole run (keys, a follow's or an AOF's commands).
//!
//! The exposition format is `prometheus-client`'s (a [`Collector`] reads the counters the
//! importer already keeps, atomics, at each scrape). The HTTP side is a blocking listener on a
//! thread of its own: the import itself is synchronous (its runtime is inside the library), a
//! scrape is one short request, and an HTTP crate (hyper, axum) would bring a server stack for
//! one route. No lock is taken: every value is an atomic load.

use anyhow::{Context, Result};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rdbkit::replay::Stats;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What a follow (or an AOF's commands) has done, updated from its progress callback.
#[derive(Debug, Default)]
pub struct FollowCounters {
    /// Commands applied.
    pub commands: AtomicU64,
    /// Source offset applied.
    pub applied_offset: AtomicU64,
    /// Source offset received.
    pub received_offset: AtomicU64,
    /// Milliseconds since the target last had everything received.
    pub lag_ms: AtomicU64,
}

impl FollowCounters {
    /// Records a progress report; `caught_up` is when the target last had everything received
    /// (kept by the caller, whose callback runs on one task).
    pub fn update(
        &self,
        p: &rdbkit::replay::follow::FollowProgress,
        caught_up: &std::cell::Cell<Instant>,
    ) {
        self.commands.store(p.commands, Relaxed);
        self.applied_offset.store(p.applied_offset, Relaxed);
        self.received_offset.store(p.received_offset, Relaxed);
        if p.applied_offset >= p.received_offset {
            caught_up.set(Instant::now());
        }
        self.lag_ms
            .store(caught_up.get().elapsed().as_millis() as u64, Relaxed);
    }
}

/// The counters served.
#[derive(Debug, Default)]
pub struct Counters {
    /// The importer's (shared through `ImportConfig::stats`).
    pub stats: Arc<Stats>,
    /// The follow's.
    pub follow: FollowCounters,
}

static COUNTERS: OnceLock<Arc<Counters>> = OnceLock::new();

/// The counters being served, when `--metrics` was given (one import per process).
pub fn counters() -> Option<&'static Arc<Counters>> {
    COUNTERS.get()
}

impl Collector for Counters {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let f = &self.follow;
        let counters: [(&str, &str, u64); 13] = [
            ("keys_written", "Keys the target acknowledged", s.written()),
            (
                "keys_written_restore",
                "Keys written by RESTORE",
                s.written_restore.load(Relaxed),
            ),
            (
                "keys_written_commands",
                "Keys written by commands",
                s.written_commands.load(Relaxed),
            ),
            (
                "bytes_written",
                "RESP bytes of the batches the target acknowledged",
                s.bytes_written.load(Relaxed),
            ),
            (
                "dump_bytes_read",
                "Dump bytes decoded",
                s.bytes_read.load(Relaxed),
            ),
            (
                "keys_skipped",
                "Keys not written (filtered, expired, existing, …)",
                s.skipped.load(Relaxed),
            ),
            (
                "keys_failed",
                "Keys the target refused",
                s.failed.load(Relaxed),
            ),
            (
                "keys_in_doubt",
                "Keys sent and never acknowledged",
                s.in_doubt.load(Relaxed),
            ),
            (
                "redirections_moved",
                "Keys a cluster node answered MOVED for",
                s.moved.load(Relaxed),
            ),
            (
                "redirections_ask",
                "Keys a cluster node answered ASK for",
                s.asked.load(Relaxed),
            ),
            (
                "reconnects",
                "Reconnects of the data connections",
                s.reconnects.load(Relaxed),
            ),
            (
                "failovers",
                "Times the Sentinel primary moved",
                s.failovers.load(Relaxed),
            ),
            (
                "commands_applied",
                "Commands applied after the snapshot (--follow) or an AOF's base",
                f.commands.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(enc.encode_descriptor(
                &format!("rdbkit_{name}"),
                help,
                None,
                c.metric_type(),
            )?)?;
        }
        let lag_bytes = f
            .received_offset
            .load(Relaxed)
            .saturating_sub(f.applied_offset.load(Relaxed));
        let gauges: [(&str, &str, f64); 3] = [
            (
                "follow_lag_bytes",
                "Source stream bytes received and not yet applied",
                lag_bytes as f64,
            ),
            (
                "follow_lag_seconds",
                "Seconds since the target last had everything received",
                f.lag_ms.load(Relaxed) as f64 / 1000.0,
            ),
            (
                "follow_applied_offset",
                "Source replication (or AOF) offset applied",
                f.applied_offset.load(Relaxed) as f64,
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(
                &format!("rdbkit_{name}"),
                help,
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Serves the counters at `http://ADDR/metrics` until the process ends; returns the counters
/// the importer is to update.
pub fn serve(addr: &str) -> Result<Arc<Counters>> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("--metrics {addr}: cannot listen there"))?;
    let counters = Arc::new(Counters::default());
    let _ = COUNTERS.set(counters.clone());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(counters.clone()));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            // an accept that fails (out of descriptors) is skipped: the next may succeed
            for conn in listener.incoming().flatten() {
                // one scrape at a time: each is a few hundred bytes each way
                let _ = answer(conn, &registry);
            }
        })
        .context("starting the metrics thread")?;
    eprintln!("metrics: http://{}/metrics", addr);
    Ok(counters)
}

/// Reads one request (at most 8 KiB, 5 s) and answers it: the metrics for `GET /metrics`, 404
/// otherwise.
fn answer(mut conn: TcpStream, registry: &Registry) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, body) = if method == Some(b"GET") && path == Some(b"/metrics") {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, registry)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        ("200 OK", body)
    } else {
        ("404 Not Found", "GET /metrics\n".to_string())
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}
