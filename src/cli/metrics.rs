//! `import --metrics ADDR`: the importer's live counters in the Prometheus text format at
//! `GET /metrics`, for the whole run (keys, a follow's or an AOF's commands); `--metrics-file
//! PATH`: their final values, written at the end.
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
    /// Target connections made anew (Sentinel: after a failover or a broken link).
    pub reconnects: AtomicU64,
    /// New primaries named by the sentinels.
    pub failovers: AtomicU64,
    /// Times the link to the live source broke and was continued by partial resync.
    pub source_reconnects: AtomicU64,
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
        self.reconnects.store(p.reconnects, Relaxed);
        self.failovers.store(p.failovers, Relaxed);
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

/// What a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (named `…_total`).
    Counter,
    /// Any value.
    Gauge,
}

/// One value: name (without `rdbkit_` and `_total`), help, kind, value.
pub type Sample = (&'static str, &'static str, Kind, f64);

impl Counters {
    /// Every value, read now (atomic loads; the same for a scrape and for `--metrics-file`).
    pub fn samples(&self) -> Vec<Sample> {
        use Kind::{Counter, Gauge};
        let s = &self.stats;
        let f = &self.follow;
        let n = |a: &AtomicU64| a.load(Relaxed) as f64;
        let lag_bytes = f
            .received_offset
            .load(Relaxed)
            .saturating_sub(f.applied_offset.load(Relaxed));
        vec![
            (
                "keys_written",
                "Keys the target acknowledged",
                Counter,
                s.written() as f64,
            ),
            (
                "keys_written_restore",
                "Keys written by RESTORE",
                Counter,
                n(&s.written_restore),
            ),
            (
                "keys_written_commands",
                "Keys written by commands",
                Counter,
                n(&s.written_commands),
            ),
            (
                "bytes_written",
                "RESP bytes of the batches the target acknowledged",
                Counter,
                n(&s.bytes_written),
            ),
            (
                "dump_bytes_read",
                "Dump bytes decoded",
                Counter,
                n(&s.bytes_read),
            ),
            (
                "keys_skipped",
                "Keys not written (filtered, expired, existing, …)",
                Counter,
                n(&s.skipped),
            ),
            (
                "keys_failed",
                "Keys the target refused",
                Counter,
                n(&s.failed),
            ),
            (
                "keys_in_doubt",
                "Keys sent and never acknowledged",
                Counter,
                n(&s.in_doubt),
            ),
            (
                "redirections_moved",
                "Keys a cluster node answered MOVED for",
                Counter,
                n(&s.moved),
            ),
            (
                "redirections_ask",
                "Keys a cluster node answered ASK for",
                Counter,
                n(&s.asked),
            ),
            (
                "reconnects",
                "Target connections made anew (the keys' and a follow's)",
                Counter,
                n(&s.reconnects) + n(&f.reconnects),
            ),
            (
                "failovers",
                "Times the Sentinel primary moved (during the keys and a follow)",
                Counter,
                n(&s.failovers) + n(&f.failovers),
            ),
            (
                "source_reconnects",
                "Times the link to the live source broke and was continued by partial resync",
                Counter,
                n(&f.source_reconnects),
            ),
            (
                "commands_applied",
                "Commands applied after the snapshot (--follow) or an AOF's base",
                Counter,
                n(&f.commands),
            ),
            (
                "follow_lag_bytes",
                "Source stream bytes received and not yet applied",
                Gauge,
                lag_bytes as f64,
            ),
            (
                "follow_lag_seconds",
                "Seconds since the target last had everything received",
                Gauge,
                n(&f.lag_ms) / 1000.0,
            ),
            (
                "follow_applied_offset",
                "Source replication (or AOF) offset applied",
                Gauge,
                n(&f.applied_offset),
            ),
        ]
    }

    /// The values in the Prometheus text format (0.0.4), as node_exporter's textfile collector
    /// reads it: `# HELP`, `# TYPE`, then the sample (counters named `…_total`).
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (name, help, kind, v) in self.samples() {
            let (name, kind) = match kind {
                Kind::Counter => (format!("rdbkit_{name}_total"), "counter"),
                Kind::Gauge => (format!("rdbkit_{name}"), "gauge"),
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

impl Collector for Counters {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, kind, v) in self.samples() {
            let name = format!("rdbkit_{name}");
            match kind {
                Kind::Counter => {
                    let c = ConstCounter::new(v as u64);
                    c.encode(enc.encode_descriptor(&name, help, None, c.metric_type())?)?;
                }
                Kind::Gauge => {
                    let g = ConstGauge::new(v);
                    g.encode(enc.encode_descriptor(&name, help, None, g.metric_type())?)?;
                }
            }
        }
        Ok(())
    }
}

/// The counters the importer updates, kept for `--metrics` and `--metrics-file` (one import per
/// process): served at `http://ADDR/metrics` when `addr` is given.
pub fn install(addr: Option<&str>) -> Result<Arc<Counters>> {
    if let Some(c) = COUNTERS.get() {
        return Ok(c.clone());
    }
    let counters = Arc::new(Counters::default());
    if let Some(addr) = addr {
        serve(addr, counters.clone())?;
    }
    let _ = COUNTERS.set(counters.clone());
    Ok(counters)
}

/// `--metrics-file PATH`: the final values, written whole (temporary file beside it, then
/// rename), as node_exporter's textfile collector expects. Zeros when the import stopped before
/// counting.
pub fn write_file(path: &std::path::Path) -> Result<()> {
    let body = counters()
        .map(|c| c.text())
        .unwrap_or_else(|| Counters::default().text());
    super::summary::write_atomically(path, body.as_bytes(), "the metrics file")
}

/// Serves `counters` at `http://ADDR/metrics` until the process ends.
fn serve(addr: &str, counters: Arc<Counters>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("--metrics {addr}: cannot listen there"))?;
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
    Ok(())
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
