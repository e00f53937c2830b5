//! The producer: decodes one input, plans each key into a batch (RESTORE or commands) and hands
//! full batches to the connections, within the memory budget and `--rate-limit`.

use super::batch::Batch;
use super::code;
use super::config::ImportConfig;
use super::error::ReplayError;
use super::ledger::CodeReport;
use super::plan::Planner;
use super::preflight::{check_conflicts, conflict_error};
use super::shared::Shared;
use super::target::Target;
use super::target::TargetInfo;
use crate::model::Item;
use crate::source::Input;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x100000001b3)
    })
}

/// One dump to import: a name (for checkpoints and messages) and its bytes.
#[derive(Debug)]
pub struct Source {
    /// Display name, usually the path.
    pub name: String,
    /// The opened input.
    pub input: Input,
}

/// What one producer thread did besides planning keys.
#[derive(Debug, Default)]
pub(super) struct Produced {
    /// Libraries and scripts met in a streamed input (mapped inputs' are loaded up front).
    pub(super) code: code::Code,
    pub(super) module_aux: Vec<String>,
    /// Module aux records per module that the target has no command for.
    pub(super) aux_unsupported: BTreeMap<String, u64>,
    /// RediSearch index definitions read from such records (recreated after the keys on a
    /// target with the search module, named as not recreated on one without).
    pub(super) search: Vec<crate::decode::module::search::Index>,
    /// Why definitions of such records could not be read.
    pub(super) search_unread: Vec<String>,
}

/// What the producer threads of one import share: its configuration, the target, the state
/// shared with the connections, where to resume.
pub(super) struct ProduceContext<'r> {
    pub(super) cfg: &'r ImportConfig,
    pub(super) info: &'r TargetInfo,
    pub(super) shared: &'r Arc<Shared>,
    /// A cluster target (keys routed by `Shared::routes`).
    pub(super) cluster: bool,
    pub(super) resume: &'r [u64],
    pub(super) resuming: bool,
    /// The connections' runtime, through which the producer waits for room in the budget.
    pub(super) rt: tokio::runtime::Handle,
    /// Where function libraries and scripts go: every primary.
    pub(super) primaries: &'r [Target],
    /// Where search indexes go (a cluster's by the slot of their name).
    pub(super) search_primaries: super::search::Primaries<'r>,
    /// What happened to the code of streamed inputs.
    pub(super) code: &'r Mutex<CodeReport>,
}

/// Decodes one input and hands its batches to the connections.
pub(super) fn produce(
    ctx: &ProduceContext<'_>,
    file: usize,
    input: Input,
    senders: Vec<async_channel::Sender<Batch>>,
) -> Result<Produced, ReplayError> {
    let (cfg, info, shared) = (ctx.cfg, ctx.info, ctx.shared);
    let n = senders.len();
    let mut out = Produced::default();
    let mut con = shared.target.pinned()?.control(cfg.conn.reply_timeout)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut planner = Planner::new(
        cfg,
        info,
        shared,
        now,
        ctx.resume.get(file).copied().unwrap_or(0),
    );
    planner.resuming = ctx.resuming;
    if cfg.skip_existing {
        let mut c = shared.target.pinned()?.control(cfg.conn.reply_timeout)?;
        planner.exists = Some(Box::new(move |db, key| {
            let _ = redis::cmd("SELECT").arg(db).query::<()>(&mut c);
            // an unanswerable check counts as "exists": never overwrite on doubt
            redis::cmd("EXISTS")
                .arg(key)
                .query::<u64>(&mut c)
                .map_or(true, |n| n > 0)
        }));
    }
    let mut open: Vec<Option<Batch>> = (0..n).map(|_| None).collect();
    let mut seen_dbs: HashSet<u64> = HashSet::new();
    let send = |slot: &mut Option<Batch>, i: usize| -> Result<(), ReplayError> {
        if let Some(b) = slot.take() {
            if b.keys.is_empty() {
                shared.watermarks.close(&b);
                return Ok(());
            }
            shared.throttle(b.keys.len(), b.bytes.len());
            let mut b = b;
            let permit = shared
                .memory
                .acquire(&ctx.rt, b.bytes.capacity(), || shared.stop.load(Relaxed))
                .ok_or(ReplayError::Stopped)?;
            b.permit = Some(Arc::new(permit));
            senders[i]
                .send_blocking(b)
                .map_err(|_| ReplayError::Stopped)?;
        }
        Ok(())
    };
    let stopped = || ReplayError::Stopped;
    let code_loaded = !matches!(input, Input::Stream(_));
    let load_streamed = |c: &code::Code| -> Result<(), ReplayError> {
        let mut report = ctx.code.lock().unwrap_or_else(|e| e.into_inner());
        code::load(c, ctx.primaries, cfg, cfg.conn.reply_timeout, &mut report)
    };
    let mut planned = 0u64;
    let mut recorded: Vec<u64> = Vec::new();
    input.decode(cfg.verify_checksum, |item, pos| -> Result<(), ReplayError> {
        if file == 0 {
            shared.ledger.stats.bytes_read.store(pos, Relaxed);
        }
        if shared.stop.load(Relaxed) {
            return Err(stopped());
        }
        let search_defs = crate::decode::module::search::of_item(&item);
        match item {
            Item::Header { magic, version } => {
                planner.dump_version = version.min(u32::from(u16::MAX)) as u16;
                planner.dump_valkey = magic == crate::Magic::Valkey;
            }
            Item::Entry(mut e) => {
                // the selection reads the dump's names; the transforms come after it
                let selected = match super::plan::select(cfg, file, &mut e, now) {
                    Ok(selected) => selected,
                    Err(skip) => {
                        shared.ledger.skip(skip, None);
                        return Ok(());
                    }
                };
                let db = shared
                    .target
                    .db
                    .filter(|_| cfg.db_map.is_empty())
                    .unwrap_or_else(|| cfg.db_map.get(&e.db).copied().unwrap_or(e.db));
                if seen_dbs.insert(db) && selected {
                    // held while checking, so no other input writes to `db` before the check
                    let mut checked = shared.checked_dbs.lock().unwrap_or_else(|e| e.into_inner());
                    if checked.insert(db) {
                        let busy = check_conflicts(&mut con, ctx.cluster, &BTreeSet::from([db]), cfg, ctx.resuming)?;
                        if !busy.is_empty() {
                            return Err(conflict_error(&busy));
                        }
                    }
                }
                let i = match &shared.routes {
                    Some(_) if db != 0 => {
                        return Err(ReplayError::Config(format!(
                            "a Redis Cluster has only db 0; this dump has keys in db {}: fold them with --db-map {}:0",
                            e.db, e.db
                        )))
                    }
                    Some(routes) => routes.shard(crate::cluster::key_hash_slot(&e.key)),
                    None => (fnv1a(&e.key) % n as u64) as usize,
                };
                if open[i].as_ref().is_some_and(|b| b.db != db) {
                    send(&mut open[i], i)?;
                }
                let b = open[i].get_or_insert_with(|| {
                    let mut b = Batch::in_buffer(shared.next_batch.fetch_add(1, Relaxed), db, !ctx.cluster, shared.pool.take());
                    b.file = file;
                    b
                });
                if b.start_offset == 0 {
                    b.start_offset = e.offset.max(1);
                    shared.watermarks.open_batch(file, b.start_offset);
                }
                planner.plan(&e, b, selected)?;
                // the snapshot's keys, as a following command stream sees them (expired ones
                // are not written: a command on such a name meets a foreign key, if any)
                if cfg.record_keys.is_some() && selected && !e.is_expired_at(now) {
                    recorded.push(crate::replay::keyset::key_hash(db, &e.key));
                    if recorded.len() >= 1 << 16 {
                        if let Some(r) = &cfg.record_keys {
                            r.extend(&mut recorded);
                        }
                    }
                }
                planned = e.value_offset + e.raw.len() as u64;
                if Planner::batch_full(b) {
                    // the planned end moves per batch, not per key (a lock per key cost 2% of a
                    // D1 import); until then the watermark lags, which is safe
                    shared.watermarks.advance(file, planned);
                    send(&mut open[i], i)?;
                }
            }
            // a mapped input's code was loaded before any key; a streamed input meets its code
            // before its first key, so nothing of it is written yet if the code conflicts
            Item::Function { code } if !code_loaded => {
                let mut one = code::Code::default();
                one.add_library(&code);
                load_streamed(&one)?;
                out.code.merge(&one);
            }
            Item::Script { body, .. } if !code_loaded => {
                let mut one = code::Code::default();
                one.add_script(&body);
                load_streamed(&one)?;
                out.code.merge(&one);
            }
            Item::ModuleAux { id, when, body, .. } => {
                let name = id.name();
                let w = if when == 1 { "before" } else { "after" };
                if info.enterprise {
                    let ver = planner.dump_version.min(info.rdb_version);
                    let mut p = body.to_vec();
                    p.extend_from_slice(&ver.to_le_bytes());
                    let crc = crate::crc64(0, &p);
                    p.extend_from_slice(&crc.to_le_bytes());
                    let r = redis::cmd("RESTOREMODAUX")
                        .arg(&name)
                        .arg(id.encver())
                        .arg(w)
                        .arg(p)
                        .query::<redis::Value>(&mut con);
                    if let Err(err) = r {
                        out.module_aux.push(format!("{name}/{} {w}: {err}", id.encver()));
                    }
                } else {
                    match search_defs {
                        Some(Ok(v)) => {
                            // a streamed input meets its indexes before its first key (mapped
                            // ones were checked before any write): refused like its keys
                            if !code_loaded && super::search::recreates(info) {
                                let busy = super::search::conflicts(&v, ctx.search_primaries, cfg, ctx.resuming, cfg.conn.reply_timeout)?;
                                if !busy.is_empty() {
                                    return Err(conflict_error(&busy));
                                }
                            }
                            super::search::merge(&mut out.search, v);
                        }
                        Some(Err(e)) => out.search_unread.push(e.to_string()),
                        None => {}
                    }
                    *out.aux_unsupported.entry(name).or_default() += 1;
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    shared.watermarks.advance(file, planned);
    if let Some(r) = &cfg.record_keys {
        r.extend(&mut recorded);
    }
    for line in planner.losses.describe() {
        shared.ledger.note(line);
    }
    for (i, slot) in open.iter_mut().enumerate() {
        send(slot, i)?;
    }
    Ok(out)
}
