//! `verify`: reads every key of the dump back from the target with ordinary commands (no DEBUG, so
//! it works on managed services) and compares type, value, key TTL and field TTLs.
//!
//! The reads are pipelined: the decoder hands keys in batches to a few connections per primary
//! (one set per primary on a cluster), each of which keeps a bounded window of read commands in
//! flight and compares the replies as they arrive (see `pipe` and `want`).

mod pipe;
mod resp;
mod want;

use super::error::ReplayError;
use super::routes::Routes;
use super::target::Target;
use crate::filter::Filter;
use crate::model::{escape_bytes, Item};
use crate::source::Input;
use pipe::{Feed, PipeConfig, Tally};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use want::{DumpStats, ReadLimits, Want};

/// Verify options.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Which keys.
    pub filter: Filter,
    /// Source db → target db.
    pub db_map: BTreeMap<u64, u64>,
    /// Allowed difference between the dump's and the target's key expiry, in ms.
    pub ttl_tolerance_ms: i64,
    /// Verify the dump's CRC64.
    pub verify_checksum: bool,
    /// Connections per primary.
    pub connections: usize,
    /// Most reply bytes (as expected from the dump) in flight per connection; one read larger
    /// than this still goes, alone.
    pub window_bytes: usize,
    /// Most elements one command reads (LRANGE, SMISMEMBER, ZRANGE, HMGET, XRANGE).
    pub chunk_elems: usize,
    /// About the most bytes one command reads (at most half the window); strings longer than
    /// this are read in GETRANGE pieces of this size.
    pub chunk_bytes: usize,
    /// A connection with reads in flight and no reply for this long fails the verify.
    pub timeout: Duration,
    /// The transforms the import applied (`--rename`, `--ttl-shift`…): the target is expected
    /// to hold each key as they made it.
    pub transform: crate::transform::Transform,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            filter: Filter::default(),
            db_map: BTreeMap::new(),
            ttl_tolerance_ms: 2000,
            verify_checksum: true,
            connections: 4,
            window_bytes: 4 << 20,
            chunk_elems: 1000,
            chunk_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
            transform: Default::default(),
        }
    }
}

/// What verify found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Keys compared and equal.
    pub matched: u64,
    /// (key, what differs), the first 1000 in dump order.
    pub mismatches: Vec<(String, String)>,
    /// Total mismatching keys.
    pub mismatched: u64,
    /// Keys not compared (filtered, expired or about to expire, empty collections).
    pub skipped: u64,
    /// Connections that read keys (per primary times primaries).
    pub connections: usize,
    /// Batches of keys handed to the connections.
    pub batches: u64,
    /// Read commands sent.
    pub commands: u64,
    /// Keys a cluster node redirected (MOVED/ASK) and that were read again where it said.
    pub redirected: u64,
    /// Most reply bytes (as expected from the dump) in flight on one connection at once.
    pub peak_window_bytes: usize,
    /// Keys whose `DUMP` payload equalled the dump's (one read and the expiry settled them).
    pub by_dump: u64,
    /// Keys whose `DUMP` payload differed and that were read again element by element.
    pub read_again: u64,
    /// Function libraries of the dump, each checked on every primary.
    pub libraries: usize,
    /// Primaries whose libraries were checked.
    pub primaries: usize,
    /// A library of the dump missing on a primary or different there, naming both.
    pub library_mismatches: Vec<String>,
}

/// Keys per batch handed to a connection.
const BATCH_KEYS: usize = 512;
/// Most dump bytes per batch (a single larger key goes alone).
const BATCH_BYTES: usize = 256 << 10;

/// Verifies every key of `input` on `target`.
pub fn verify(
    input: Input,
    target: &Target,
    cfg: &VerifyConfig,
) -> Result<VerifyReport, ReplayError> {
    let pinned = target.pinned()?;
    let mut c = pinned.control(cfg.timeout)?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut c)
        .map_err(|e| ReplayError::Redis(e.to_string()))?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("0")
        .trim()
        .to_string();
    let rdb = super::rdb_version_for(&version, false);
    let cluster = redis::cmd("INFO")
        .arg("cluster")
        .query::<String>(&mut c)
        .is_ok_and(|i| i.contains("cluster_enabled:1"));
    let (slots, nodes) = if cluster {
        super::cluster_layout(&mut c, &pinned)?
    } else {
        (vec![0; 16384], vec![pinned.clone()])
    };
    drop(c);
    let routes = Arc::new(Routes::new(slots, nodes));
    let limits = ReadLimits {
        chunk_elems: cfg.chunk_elems.max(1),
        // a chunk fits in half the window, so that reads of big values still overlap
        chunk_bytes: cfg.chunk_bytes.min(cfg.window_bytes / 2).max(1),
        hfe: rdb >= 12,
        pexpiretime: rdb >= 10,
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        tol: cfg.ttl_tolerance_ms,
    };
    let pcfg = PipeConfig {
        window_bytes: cfg.window_bytes.max(1),
        window_commands: 8192,
        timeout: cfg.timeout,
        cluster,
    };
    let per_node = cfg.connections.max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Config(format!("tokio runtime: {e}")))?;

    let stats = Arc::new(DumpStats::default());
    // connections: `per_node` per primary, sharing the primary's batch queue
    let (follow_tx, follow_rx) = tokio::sync::mpsc::channel(1024);
    let follower = cluster.then(|| {
        rt.spawn(pipe::follower(
            follow_rx,
            routes.clone(),
            pinned.clone(),
            pcfg,
            stats.clone(),
        ))
    });
    let mut queues = Vec::new();
    let mut tasks = Vec::new();
    for node in &routes.nodes {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Want>>(per_node * 2);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        queues.push(tx);
        for _ in 0..per_node {
            let (node, rx, follow) = (node.clone(), rx.clone(), follow_tx.clone());
            let stats = stats.clone();
            tasks.push(rt.spawn(async move {
                let mut stream = pipe::connect(&node, pcfg.timeout).await?;
                let mut tally = Tally::default();
                let mut feed = Feed::Queue(rx);
                pipe::drive(
                    &mut stream,
                    &node.display(),
                    &mut feed,
                    &pcfg,
                    &stats,
                    &mut tally,
                    Some(&follow),
                    &mut Vec::new(),
                )
                .await?;
                Ok::<Tally, ReplayError>(tally)
            }));
        }
    }
    drop(follow_tx);

    let mut report = VerifyReport {
        connections: tasks.len(),
        ..VerifyReport::default()
    };
    let mut building: Vec<(Vec<Want>, usize)> = routes
        .nodes
        .iter()
        .map(|_| (Vec::with_capacity(BATCH_KEYS), 0))
        .collect();
    let mut seq = 0u64;
    let mut dump_code = super::code::Code::default();
    let mut scratch = Vec::new();
    // a connection that stopped (its error is collected below) closes its queue
    let stopped = || ReplayError::Config("a verify connection stopped".into());
    let decoded = input.decode(cfg.verify_checksum, |item, _| -> Result<(), ReplayError> {
        let mut e = match item {
            Item::Entry(e) => e,
            Item::Function { code } => {
                dump_code.add_library(&code);
                return Ok(());
            }
            _ => return Ok(()),
        };
        let counts = crate::transform::TransformCounts::default();
        if !cfg.filter.matches_renamed(&e, &cfg.transform.name(&e.key))
            || !(cfg.transform.is_identity() || cfg.transform.apply(&mut e, limits.now, &counts))
            || e.expire_ms
                .is_some_and(|ms| ms <= limits.now + cfg.ttl_tolerance_ms)
        {
            report.skipped += 1;
            return Ok(());
        }
        // a value other than a string whose payload fits in a chunk is compared by DUMP, unless
        // its type's payloads keep differing on this target; it is decoded only if the payload
        // differs, but checked now as a decode would (the same errors), and empty collections
        // are left out. A string's GET costs the server less than its DUMP, and is one read too.
        // Type ids 22 and 23 mean one thing in Redis dumps and another in Valkey's: the same bytes
        // could stand for two values, so those keys are always read by elements.
        let by_dump = e.value_type() != crate::ValueType::String
            && !matches!(e.type_id, 22 | 23)
            && Want::dump_len(&e) <= limits.chunk_bytes
            && stats.worth_it(e.type_id);
        let v = if by_dump {
            if e.summary_in(&mut scratch)?.empty {
                report.skipped += 1;
                return Ok(());
            }
            None
        } else {
            let v = e.value()?;
            if v.is_empty() {
                report.skipped += 1;
                return Ok(());
            }
            Some(v)
        };
        let db = target
            .db
            .filter(|_| cfg.db_map.is_empty())
            .unwrap_or_else(|| cfg.db_map.get(&e.db).copied().unwrap_or(e.db));
        if cluster && db != 0 {
            return Err(ReplayError::Config(format!(
                "a Redis Cluster has only db 0; this dump has keys in db {}: fold them with --db-map {}:0",
                e.db, e.db
            )));
        }
        let node = if cluster { routes.shard(crate::cluster::key_hash_slot(&e.key)) } else { 0 };
        let w = match &v {
            Some(v) => Want::new(seq, db, &e, v, limits),
            None => Want::dumped(seq, db, &e, limits),
        };
        seq += 1;
        let (batch, bytes) = &mut building[node];
        *bytes += e.raw.len() + e.key.len();
        batch.push(w);
        if batch.len() >= BATCH_KEYS || *bytes >= BATCH_BYTES {
            let full = std::mem::replace(batch, Vec::with_capacity(BATCH_KEYS));
            *bytes = 0;
            queues[node].blocking_send(full).map_err(|_| stopped())?;
        }
        Ok(())
    });
    let mut first_err = decoded.err();
    if first_err.is_none() {
        for (node, (batch, _)) in building.into_iter().enumerate() {
            if !batch.is_empty() && queues[node].blocking_send(batch).is_err() {
                first_err = Some(stopped());
            }
        }
    }
    drop(queues);
    let mut tally = Tally::default();
    let results = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        if let Some(f) = follower {
            out.push(f.await);
        }
        out
    });
    for r in results {
        match r {
            Ok(Ok(t)) => tally.merge(t),
            Ok(Err(e)) => {
                // a connection's own failure explains a decoder that found its queue closed
                if first_err
                    .as_ref()
                    .is_none_or(|f| f.to_string() == stopped().to_string())
                {
                    first_err = Some(e);
                }
            }
            Err(e) => {
                first_err = first_err.or(Some(ReplayError::Config(format!("verify task: {e}"))))
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    // libraries belong to each primary: a cluster does not copy them between shards
    report.library_mismatches = super::code::differences(&dump_code, &routes.nodes, cfg.timeout)?;
    report.libraries = dump_code.libraries.len();
    report.primaries = routes.nodes.len();
    report.matched = tally.matched;
    report.mismatched = tally.mismatched;
    let listed: Vec<(u64, Vec<u8>, String)> = tally.mismatches.into_values().collect();
    let types = name_types(&listed, &routes, cluster, cfg.timeout);
    report.mismatches = listed
        .into_iter()
        .zip(types)
        .map(|((db, key, why), t)| {
            let why = want::type_differs(&why, t.as_deref()).unwrap_or(why);
            (format!("db{db} {}", escape_bytes(&key)), why)
        })
        .collect();
    report.batches = tally.batches;
    report.commands = tally.commands;
    report.redirected = tally.redirected;
    report.peak_window_bytes = tally.peak_bytes;
    (report.by_dump, report.read_again) = stats.totals();
    Ok(report)
}

/// The target's type of each listed key whose read answered WRONGTYPE (None for the others, or
/// when the question fails: the verdict stands without the name).
fn name_types(
    listed: &[(u64, Vec<u8>, String)],
    routes: &Routes,
    cluster: bool,
    timeout: Duration,
) -> Vec<Option<String>> {
    let mut cons: BTreeMap<usize, redis::Connection> = BTreeMap::new();
    listed
        .iter()
        .map(|(db, key, why)| {
            want::type_differs(why, None)?;
            let node = if cluster {
                routes.shard(crate::cluster::key_hash_slot(key))
            } else {
                0
            };
            if let std::collections::btree_map::Entry::Vacant(v) = cons.entry(node) {
                v.insert(routes.nodes[node].control(timeout).ok()?);
            }
            let con = cons.get_mut(&node)?;
            if !cluster {
                redis::cmd("SELECT").arg(db).query::<()>(con).ok()?;
            }
            redis::cmd("TYPE").arg(key).query::<String>(con).ok()
        })
        .collect()
}
