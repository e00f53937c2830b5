//! Before anything is written: which databases the dump reaches, whether the target is empty,
//! the cluster's layout (and that it covers every slot), and the keys that already exist there.

use super::config::ImportConfig;
use super::error::redis_err;
use super::error::ReplayError;
use super::target::Target;
use crate::model::Item;
use std::collections::BTreeSet;
use std::time::Duration;

/// Databases that entries passing the filter will be written to (mapped inputs only).
pub(super) fn prescan(data: &[u8], cfg: &ImportConfig) -> Result<BTreeSet<u64>, ReplayError> {
    let mut dbs = BTreeSet::new();
    for item in crate::Decoder::new(data).verify_checksum(false) {
        if let Item::Entry(e) = item? {
            if cfg.filter.matches_renamed(&e, &cfg.transform.name(&e.key)) {
                dbs.insert(cfg.db_map.get(&e.db).copied().unwrap_or(e.db));
            }
        }
    }
    Ok(dbs)
}

/// True when no database of the server holds a key (`INFO keyspace` lists none).
pub(super) fn target_is_empty(con: &mut redis::Connection) -> Result<bool, ReplayError> {
    Ok(super::target::keyspace(con)?.iter().all(|&(_, n)| n == 0))
}

/// A cluster's slot map (slot → shard index) and its primaries, from `CLUSTER SLOTS`.
pub(crate) fn cluster_layout(
    con: &mut redis::Connection,
    base: &Target,
) -> Result<(Vec<u16>, Vec<Target>), ReplayError> {
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(con)
        .map_err(redis_err("CLUSTER SLOTS"))?;
    let mut slots = vec![u16::MAX; 16384];
    let mut nodes: Vec<Target> = Vec::new();
    for r in &ranges {
        let redis::Value::Array(f) = r else { continue };
        let (
            Some(redis::Value::Int(a)),
            Some(redis::Value::Int(b)),
            Some(redis::Value::Array(primary)),
        ) = (f.first(), f.get(1), f.get(2))
        else {
            continue;
        };
        let host = match primary.first() {
            Some(redis::Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            _ => continue,
        };
        let host = if host.is_empty() {
            base.host.clone()
        } else {
            host
        };
        let Some(redis::Value::Int(port)) = primary.get(1) else {
            continue;
        };
        let idx = match nodes
            .iter()
            .position(|n| n.host == host && i64::from(n.port) == *port)
        {
            Some(i) => i,
            None => {
                nodes.push(base.at(host, *port as u16));
                nodes.len() - 1
            }
        };
        for s in (*a).max(0)..=(*b).min(16383) {
            slots[s as usize] = idx as u16;
        }
    }
    if let Some(s) = slots.iter().position(|&i| i == u16::MAX) {
        return Err(ReplayError::Config(format!(
            "the cluster does not serve every slot (slot {s} has no primary)"
        )));
    }
    Ok((slots, nodes))
}

/// Target databases that already hold keys: flushed under `--flush-target`; otherwise, with no
/// rule for them, returned as refusals (see [`conflict_error`]).
pub(super) fn check_conflicts(
    con: &mut redis::Connection,
    cluster: bool,
    dbs: &BTreeSet<u64>,
    cfg: &ImportConfig,
    resuming: bool,
) -> Result<Vec<String>, ReplayError> {
    let mut busy = Vec::new();
    for &db in dbs {
        if !cluster {
            redis::cmd("SELECT")
                .arg(db)
                .query::<()>(con)
                .map_err(redis_err("SELECT"))?;
        }
        let n: u64 = redis::cmd("DBSIZE")
            .query(con)
            .map_err(redis_err("DBSIZE"))?;
        if n == 0 {
            continue;
        }
        if let Some(slots) = &cfg.filter.slots {
            // another process may be writing the other slots: only keys of ours conflict
            if cfg.replace || cfg.skip_existing || resuming {
                continue;
            }
            let ours = keys_in_slots(con, cluster, slots)?;
            if ours > 0 {
                busy.push(format!(
                    "db{db} holds {} in --slots {}",
                    crate::text::count(ours, "key"),
                    slots.describe()
                ));
            }
            continue;
        }
        if cfg.flush_target {
            redis::cmd("FLUSHDB")
                .query::<()>(con)
                .map_err(redis_err("FLUSHDB"))?;
        } else if !(cfg.replace || cfg.skip_existing || resuming) {
            busy.push(format!("db{db} holds {}", crate::text::count(n, "key")));
        }
    }
    Ok(busy)
}

/// Keys of the selected database whose hash slot is in `slots`: `CLUSTER COUNTKEYSINSLOT` of each
/// slot on a cluster node (pipelined), a `SCAN` of the database otherwise (a standalone server
/// counts no slots).
fn keys_in_slots(
    con: &mut redis::Connection,
    cluster: bool,
    slots: &crate::cluster::SlotSet,
) -> Result<u64, ReplayError> {
    let mut n = 0u64;
    if cluster {
        let all: Vec<u16> = (0..crate::cluster::SLOTS)
            .filter(|&s| slots.contains(s))
            .collect();
        for chunk in all.chunks(1024) {
            let mut pipe = redis::pipe();
            for s in chunk {
                pipe.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(*s);
            }
            let counts: Vec<u64> = pipe
                .query(con)
                .map_err(redis_err("CLUSTER COUNTKEYSINSLOT"))?;
            n += counts.iter().sum::<u64>();
        }
        return Ok(n);
    }
    super::target::scan_keys(con, |keys| {
        n += keys.iter().filter(|k| slots.contains_key(k)).count() as u64
    })?;
    Ok(n)
}

/// The refusal of a target that holds keys or function libraries the dump would overwrite.
pub(super) fn conflict_error(refused: &[String]) -> ReplayError {
    ReplayError::Conflict(format!(
        "refusing to write into a non-empty target: {}; use --replace to overwrite, --skip-existing to keep the target's keys and libraries, or --flush-target to empty those databases first (nothing was written)",
        refused.join(", ")
    ))
}

/// The primaries now: a cluster's (from `CLUSTER SLOTS`), or the one the target resolves to.
pub(super) fn primaries_now(
    target: &Target,
    cluster: bool,
    limit: Duration,
) -> Result<Vec<Target>, ReplayError> {
    let pinned = target.pinned()?;
    if cluster {
        Ok(cluster_layout(&mut pinned.control(limit)?, &pinned)?.1)
    } else {
        Ok(vec![pinned])
    }
}
