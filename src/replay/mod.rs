//! The replay importer: decodes a dump on one thread, plans each key (RESTORE of the raw bytes or
//! plain commands), and writes batches over several pipelined connections.
//!
//! ```text
//! mmap ─▶ Decoder ─▶ Planner ──batches (per key hash)──▶ conn 0 ─▶ target
//!                      │                                ▶ conn 1 ─▶ target
//!                      └─ control connection (conflict check, FUNCTION/SCRIPT LOAD, EXISTS)
//! acks ─▶ Shared (counts, per-key reports, checkpoint watermark)
//! ```

pub mod batch;
mod checkpoint;
pub mod code;
mod config;
pub mod conn;
mod error;
#[cfg(test)]
mod fake_target;
pub mod follow;
pub mod forecast;
pub mod keylist;
pub mod keyset;
mod ledger;
pub mod plan;
mod preflight;
mod produce;
mod redirect;
pub mod reply;
mod routes;
pub mod search;
mod shared;
pub mod target;
pub mod verify;
pub(crate) mod wire;

use checkpoint::{read_checkpoint, write_checkpoint, Checkpoint};
pub use config::{ConnConfig, ImportConfig, Mode, RateLimit, Skip, DEFAULT_MEMORY_BUDGET};
use error::in_dump;
pub use error::ReplayError;
pub use forecast::{forecast, Forecast, PrimaryForecast};
pub use ledger::{CodeReport, ImportSummary, Progress, Stats};
use preflight::{
    check_conflicts, cluster_layout, conflict_error, prescan, primaries_now, target_is_empty,
};
pub use produce::Source;
use produce::{produce, ProduceContext, Produced};
pub use shared::Shared;
pub use target::{rdb_version_for, Target, TargetInfo, TlsOptions};

use crate::source::Input;
use batch::Batch;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Imports `sources` (decoded in parallel, one thread each) into `target`. `on_progress` is
/// called a few times per second from a background thread.
pub fn import(
    sources: Vec<Source>,
    target: Target,
    cfg: ImportConfig,
    on_progress: Box<dyn Fn(&Progress) + Send>,
) -> Result<ImportSummary, ReplayError> {
    let started = Instant::now();
    let rt = runtime()?;
    let pinned = target.pinned()?;
    let client = pinned.client()?;
    let limit = cfg.conn.reply_timeout;
    let info = probe(&rt, &target, &client, limit)?;
    let mut con = pinned.control(limit)?;
    let cluster = if info.cluster {
        Some(cluster_layout(&mut con, &pinned)?)
    } else {
        None
    };
    let names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
    let lens: Vec<Option<u64>> = sources.iter().map(|s| s.input.len_hint()).collect();
    let mut shared = Shared::new(target, &cfg, sources.len(), cluster.clone());
    shared.ledger.key_log = cfg.keys_file.clone().map(keylist::KeyLog::new);
    let shared = Arc::new(shared);
    if info.bulk_limit_assumed {
        shared.ledger.note(
            "the target refused CONFIG GET proto-max-bulk-len; assuming the 512 MB default".into(),
        );
    }

    // resume
    let saved = match &cfg.checkpoint {
        Some(p) => read_checkpoint(p)?,
        None => Vec::new(),
    };
    let mut resume = vec![0u64; sources.len()];
    let mut resumed_any = false;
    for c in &saved {
        let Some(i) = names.iter().position(|n| *n == c.name) else {
            continue;
        };
        if c.dump_len != lens[i] {
            return Err(ReplayError::Checkpoint(format!(
                "the checkpoint was written for a {:?}-byte {}, this one has {:?} bytes",
                c.dump_len, c.name, lens[i]
            )));
        }
        resume[i] = c.offset;
        resumed_any = true;
        // the watermark never goes below what an earlier run acknowledged
        shared.watermarks.advance(i, c.offset);
        shared.ledger.note(format!(
            "resuming {} after dump offset {} (keys after it are re-sent with REPLACE)",
            c.name, c.offset
        ));
    }
    // a checkpoint of this dump, even at offset 0, means an earlier run of this import wrote here
    let resuming = resumed_any;
    // written before anything else, so that a run killed at once still leaves one
    if let Some(p) = &cfg.checkpoint {
        let start: Vec<Checkpoint> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Checkpoint {
                name: name.clone(),
                dump_len: lens[i],
                offset: resume[i],
            })
            .collect();
        write_checkpoint(p, &start, 0)?;
    }
    let no_checkpoint = |e: ReplayError| {
        match (e, &cfg.checkpoint) {
        (ReplayError::Conflict(m), Some(p)) if !resuming => ReplayError::Conflict(format!(
            "{m}. No checkpoint was found at {} for this dump, so this is not a resume of an interrupted import (one is written as soon as an import starts): the keys on the target come from elsewhere",
            p.display()
        )),
        (e, _) => e,
    }
    };

    // conflicts: the databases of mapped inputs are checked before anything is written; streamed
    // inputs check each database when they first reach it. An empty target can refuse nothing
    // and has nothing to flush: the pass over the whole dump that finds its databases is skipped
    // (on a 1.26 GB dump it held the first write back by ~0.15 s), and each database is still
    // checked when first reached.
    let target_empty = !cfg.flush_target
        && match &cluster {
            None => target_is_empty(&mut con)?,
            Some((_, nodes)) => {
                let mut all = true;
                for node in nodes {
                    all &= target_is_empty(&mut node.control(limit)?)?;
                }
                all
            }
        };
    // A cluster has only db 0: the databases are needed to refuse the others up front.
    let mut dbs = BTreeSet::new();
    let mut dump_code = code::Code::default();
    let recreates = search::recreates(&info);
    let mut dump_indexes = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let data: &[u8] = match &s.input {
            Input::Mapped(m) => m,
            Input::Bytes(b) => b,
            Input::Stream(_) => continue,
        };
        let leading = code::Code::leading(data).map_err(|e| in_dump(e.into(), &s.name, lens[i]))?;
        dump_code.merge(&leading);
        if recreates {
            let (indexes, _) =
                search::leading(data).map_err(|e| in_dump(e.into(), &s.name, lens[i]))?;
            search::merge(&mut dump_indexes, indexes);
        }
        if !target_empty || cluster.is_some() {
            dbs.extend(prescan(data, &cfg).map_err(|e| in_dump(e, &s.name, lens[i]))?);
        }
    }
    if let (Some(_), Some(db)) = (&cluster, dbs.iter().find(|&&d| d != 0)) {
        return Err(ReplayError::Config(format!(
            "a Redis Cluster has only db 0; the dump has keys for db {db}: fold them with --db-map {db}:0 (nothing was written)"
        )));
    }
    let primaries: Vec<Target> = match &cluster {
        Some((_, nodes)) => nodes.clone(),
        None => vec![pinned.clone()],
    };
    // everything that refuses the import is found before anything is written
    let mut refused = code::conflicts(&dump_code, &primaries, &cfg, limit)?;
    let placement = search::Primaries {
        nodes: &primaries,
        slots: cluster.as_ref().map(|(s, _)| s.as_slice()),
    };
    refused.extend(search::conflicts(
        &dump_indexes,
        placement,
        &cfg,
        resuming,
        limit,
    )?);
    match &cluster {
        None => refused.extend(check_conflicts(&mut con, false, &dbs, &cfg, resuming)?),
        Some((_, nodes)) => {
            for node in nodes {
                let mut c = node.control(limit)?;
                refused.extend(check_conflicts(&mut c, true, &dbs, &cfg, resuming)?);
            }
        }
    }
    if !refused.is_empty() {
        return Err(no_checkpoint(conflict_error(&refused)));
    }
    let mut code_report = CodeReport::default();
    code::load(&dump_code, &primaries, &cfg, limit, &mut code_report)?;
    if cfg.flush_target && !code_report.replaced.is_empty() {
        shared.ledger.note(format!(
            "--flush-target replaced function libraries {} (a flush of a database keeps functions)",
            code_report.replaced.join(", ")
        ));
    }
    let code_report = Mutex::new(code_report);
    shared
        .checked_dbs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(dbs);

    let (senders, tasks) = start_connections(&rt, &shared, &cfg, &cluster);

    let watcher = watch_sentinels(&rt, &shared);

    // progress and checkpoints
    let total: Option<u64> = lens.iter().try_fold(0u64, |a, l| l.map(|l| a + l));
    let (done, done_rx) = std::sync::mpsc::channel::<()>();
    let snapshot = |shared: &Shared| -> Vec<Checkpoint> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| Checkpoint {
                name: name.clone(),
                dump_len: lens[i],
                offset: shared.watermark(i),
            })
            .collect()
    };
    let ctx = ProduceContext {
        cfg: &cfg,
        info: &info,
        shared: &shared,
        cluster: cluster.is_some(),
        resume: &resume,
        resuming,
        rt: rt.handle().clone(),
        primaries: &primaries,
        search_primaries: placement,
        code: &code_report,
    };
    let results = std::thread::scope(|scope| {
        let (shared_r, cfg_r, snap_r, single) = (&shared, &cfg, &snapshot, names.len() == 1);
        let ticker = scope.spawn(move || {
            let mut last_cp = Instant::now();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                done_rx.recv_timeout(Duration::from_millis(50))
            {
                let s = &shared_r.ledger.stats;
                on_progress(&Progress {
                    bytes_read: s.bytes_read.load(Relaxed),
                    total_bytes: if single { total } else { None },
                    written: s.written(),
                    skipped: s.skipped.load(Relaxed),
                    failed: s.failed.load(Relaxed),
                    elapsed: started.elapsed(),
                });
                if let Some(p) = &cfg_r.checkpoint {
                    if last_cp.elapsed() >= cfg_r.checkpoint_interval {
                        let _ = write_checkpoint(p, &snap_r(shared_r), s.written());
                        last_cp = Instant::now();
                    }
                }
            }
        });
        let ctx = &ctx;
        let producers: Vec<_> = sources
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let senders = senders.clone();
                scope.spawn(move || produce(ctx, i, s.input, senders))
            })
            .collect();
        // the connections see their input end when the last producer's senders drop
        drop(senders);
        let produced: Vec<Result<Produced, ReplayError>> = producers
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ReplayError::Internal("a decoder thread panicked".into()))
                })
            })
            .collect();
        let conns: Vec<Result<(), ReplayError>> = rt.block_on(async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or_else(|e| {
                    Err(ReplayError::Internal(format!("connection task: {e}")))
                }));
            }
            out
        });
        drop(done);
        let _ = ticker.join();
        (produced, conns)
    });
    let (produced, conns) = results;
    if let Some(w) = watcher {
        w.abort();
    }
    // the first real cause wins: a connection's fatal error explains a producer's "stopped"
    let mut cause = conns.into_iter().find_map(Result::err);
    let mut module_aux = Vec::new();
    let mut aux_kept: BTreeMap<String, u64> = BTreeMap::new();
    let mut indexes = Vec::new();
    let mut search_unread: Vec<String> = Vec::new();
    for (i, p) in produced.into_iter().enumerate() {
        match p {
            Ok(p) => {
                dump_code.merge(&p.code);
                module_aux.extend(p.module_aux);
                for (m, n) in p.aux_unsupported {
                    *aux_kept.entry(m).or_default() += n;
                }
                search::merge(&mut indexes, p.search);
                search_unread.extend(p.search_unread);
            }
            Err(e) => {
                cause.get_or_insert(no_checkpoint(in_dump(e, &names[i], lens[i])));
            }
        }
    }
    for (m, n) in aux_kept {
        // RediSearch's: said below (recreated by FT.CREATE, or named as not recreated)
        if m == search::AUX_TYPE && recreates && search_unread.is_empty() {
            continue;
        }
        module_aux.push(format!(
            "{m}: {} of module-wide data (what the module saves beside its keys) not restored: only Redis Enterprise can load it (RESTOREMODAUX); the {m} keys are written like any other",
            crate::text::count(n, "aux record")
        ));
    }
    // the indexes, after the keys (each primary indexes its documents as it learns the index);
    // before the final checkpoint, so that a run stopped here is resumed and creates them
    let mut search_report = search::SearchReport::default();
    if recreates && cause.is_none() && !indexes.is_empty() {
        // the layout of now: a failover or a reshard may have moved primaries or slots
        let now = shared.target.pinned().and_then(|p| match &cluster {
            Some(_) => cluster_layout(&mut p.control(limit)?, &p).map(|(s, n)| (Some(s), n)),
            None => Ok((None, vec![p])),
        });
        if let Err(e) = now.and_then(|(slots, nodes)| {
            let at = search::Primaries {
                nodes: &nodes,
                slots: slots.as_deref(),
            };
            search::recreate(&indexes, at, &cfg, resuming, limit, &mut search_report)
        }) {
            search_report
                .errors
                .push(format!("recreating the indexes: {e}"));
        }
    }
    let unrecreated: Vec<String> = indexes
        .iter()
        .filter(|_| !recreates)
        .map(|i| i.name.clone())
        .chain(
            search_unread
                .iter()
                .map(|e| format!("(definitions not read: {e})")),
        )
        .collect();
    if !unrecreated.is_empty() && !info.enterprise {
        module_aux.push(format!(
            "{}: search indexes not recreated on the target: {} (their definitions and FT.CREATE \
             arguments: rdbkit info --json, search_indexes)",
            crate::decode::module::search::AUX_TYPE,
            unrecreated.join(", ")
        ));
    }
    if cause.is_none() {
        if let Some(p) = &cfg.checkpoint {
            let mut cps = snapshot(&shared);
            for (c, len) in cps.iter_mut().zip(&lens) {
                c.offset = len.unwrap_or(c.offset);
            }
            write_checkpoint(p, &cps, shared.ledger.stats.written())?;
        }
    } else if let Some(p) = &cfg.checkpoint {
        // what was acknowledged stays acknowledged: a rerun resumes after it
        let _ = write_checkpoint(p, &snapshot(&shared), shared.ledger.stats.written());
    }
    let mut code_report = code_report.into_inner().unwrap_or_else(|e| e.into_inner());
    let failovers = shared
        .target
        .sentinel
        .as_ref()
        .map(|s| s.failovers())
        .unwrap_or_default();
    for f in &failovers {
        shared
            .ledger
            .note(format!("failover: the primary moved {f}"));
    }
    // a failover or a reshard may have brought primaries that lack the code: check again
    if cause.is_none()
        && !dump_code.libraries.is_empty()
        && (cluster.is_some() || !failovers.is_empty())
    {
        match primaries_now(&shared.target, cluster.is_some(), limit) {
            Ok(now) => {
                let mut again = CodeReport::default();
                match code::load(&dump_code, &now, &cfg, limit, &mut again) {
                    Ok(()) if !again.loaded.is_empty() || !again.replaced.is_empty() => {
                        shared.ledger.note(format!(
                            "function libraries loaded again on primaries that changed during the import: {}",
                            [again.loaded, again.replaced].concat().join(", ")
                        ))
                    }
                    Ok(()) => {}
                    Err(e) => code_report.errors.push(format!("after the import: {e}")),
                }
                code_report.errors.extend(again.errors);
            }
            Err(e) => code_report.errors.push(format!(
                "could not check the function libraries on the primaries after the import: {e}"
            )),
        }
    }
    let (moved, asked) = (
        shared.ledger.stats.moved.load(Relaxed),
        shared.ledger.stats.asked.load(Relaxed),
    );
    if moved + asked > 0 {
        shared.ledger.note(format!(
            "cluster redirections followed: {moved} MOVED, {asked} ASK"
        ));
    }
    let mut summary = shared.ledger.summary(
        info,
        code_report,
        module_aux,
        started.elapsed(),
        cfg.skip_modules,
        primaries.len(),
    );
    summary.search = search_report;
    match cause {
        None => Ok(summary),
        Some(cause) => Err(ReplayError::Interrupted {
            cause: Box::new(cause),
            summary: Box::new(summary),
        }),
    }
}

/// The target's version, limits, modules and layout (`INFO`, `CONFIG GET`, `MODULE LIST`), asked
/// within `limit`.
fn probe(
    rt: &tokio::runtime::Runtime,
    target: &Target,
    client: &redis::Client,
    limit: Duration,
) -> Result<TargetInfo, ReplayError> {
    rt.block_on(async {
        let probe = async {
            let mut con = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| target.failure("", &e))?;
            TargetInfo::probe(&mut con).await.map_err(|e| match e {
                ReplayError::Connect(m) => target.failure("", &m),
                e => e,
            })
        };
        tokio::time::timeout(limit, probe).await.map_err(|_| {
            ReplayError::Connect(format!(
                "{}: no answer to INFO within {limit:?}",
                target.display()
            ))
        })?
    })
}

/// Sentinel: notices a failover even when the old primary keeps accepting writes for a while (it
/// is demoted only after the replica is promoted; those writes would be lost): the sentinels are
/// asked every 200 ms, and a new primary bumps [`Shared::primary_epoch`].
fn watch_sentinels(
    rt: &tokio::runtime::Runtime,
    shared: &Arc<Shared>,
) -> Option<tokio::task::JoinHandle<()>> {
    shared.target.sentinel.as_ref().map(|_| {
        let shared = shared.clone();
        rt.spawn(async move {
            // each move of the primary is counted (metrics) as the connections see it
            let mut moved = shared.primary_epoch.subscribe();
            let count = async {
                while moved.changed().await.is_ok() {
                    shared.ledger.stats.failovers.fetch_add(1, Relaxed);
                }
            };
            tokio::join!(watch_primary(&shared.target, &shared.primary_epoch), count);
        })
    })
}

/// Asks the sentinels of `target` every 200 ms which primary they name, and bumps `epoch` when
/// it changes. Runs until its task is aborted.
pub(crate) async fn watch_primary(target: &Target, epoch: &tokio::sync::watch::Sender<u64>) {
    let mut last = target.sentinel.as_ref().and_then(|s| s.current());
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = target.clone();
        let now = tokio::task::spawn_blocking(move || t.resolve().ok())
            .await
            .ok()
            .flatten();
        if now.is_some() && now != last {
            last = now;
            epoch.send_modify(|e| *e += 1);
        }
    }
}

/// The runtime of an import or a follow: two workers (the connections and their timers; the
/// decoding runs on threads of its own).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ReplayError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Internal(format!("tokio runtime: {e}")))
}

/// The data plane: `cfg.connections` connections to one primary, or one per cluster shard (keys
/// routed by hash slot). Returns the queues the producers fill and the connections' tasks.
#[allow(clippy::type_complexity)]
fn start_connections(
    rt: &tokio::runtime::Runtime,
    shared: &Arc<Shared>,
    cfg: &ImportConfig,
    cluster: &Option<(Vec<u16>, Vec<Target>)>,
) -> (
    Vec<async_channel::Sender<Batch>>,
    Vec<tokio::task::JoinHandle<Result<(), ReplayError>>>,
) {
    if let Some((_, nodes)) = &cluster {
        shared.ledger.note(format!(
            "cluster target: {} primaries, keys routed by hash slot",
            nodes.len()
        ));
    }
    let nodes: Vec<Option<Target>> = match &cluster {
        Some((_, nodes)) => nodes.iter().cloned().map(Some).collect(),
        None => vec![None; cfg.connections.max(1)],
    };
    // A batch holds whole keys, so any connection to one primary may write it: the connections
    // of one primary share a queue, each taking a batch when its window has room. A connection
    // blocked in a WAIT (Sentinel) or on a slow reply then only stops taking batches, and the
    // others keep the primary busy; with a queue per connection, the producer would stall on
    // the blocked one's full queue. A cluster has one queue per shard (keys routed by slot).
    let queues = if cluster.is_some() { nodes.len() } else { 1 };
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..queues)
        .map(|_| async_channel::bounded::<Batch>(4 * nodes.len().div_ceil(queues)))
        .unzip();
    let mut tasks = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.into_iter().enumerate() {
        let rx = receivers[i % queues].clone();
        tasks.push(rt.spawn(conn::run(i, rx, shared.clone(), cfg.conn, node)));
    }
    drop(receivers);
    (senders, tasks)
}
