//! `rdbkit info SHARD… --cluster`: a set of per-shard dumps checked as one cluster backup.
//!
//! A dump owns the slot ranges its keys form ([`rdbkit::cluster::shard_ranges`]: runs of slots
//! holding keys of that dump only, an island of another dump's keys inside a run belonging to
//! the run); its keys in slots another dump owns are orphans (left behind by an interrupted
//! reshard); keys found in more than one dump are duplicates. Memory: 16 bytes per key (a hash
//! of db and key, and the dump's index) and a count per slot and dump; the keys behind repeated
//! hashes are compared byte for byte in a second pass.

use super::InfoArgs;
use anyhow::{bail, Context, Result};
use rdbkit::cluster::{key_hash_slot, shard_ranges, SlotRun, SLOTS};
use rdbkit::source::Input;
use rdbkit::text::escape_bytes;
use rdbkit::Item;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

/// Keys listed per kind.
const LISTED: usize = 10;

/// A key (db, name) and the dumps holding it.
type Holders = ((u64, Vec<u8>), Vec<usize>);

fn key_hash(db: u64, key: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    db.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

/// `a-b` or `a`.
fn range(a: u16, b: u16) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// Runs `info --cluster` on `files`.
pub fn run(a: &InfoArgs, files: &[&Path]) -> Result<()> {
    let open = |f: &Path| Input::open(f).with_context(|| format!("opening {}", f.display()));
    if files.iter().any(|f| f.as_os_str() == "-") {
        bail!(super::super::Usage(
            "info --cluster reads each dump twice: give files, not stdin".into()
        ));
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let n = files.len();
    let mut counts = vec![vec![0u32; usize::from(SLOTS)]; n];
    let mut keys = vec![0u64; n];
    let mut other_db = vec![0u64; n];
    let mut hashes: Vec<(u64, u32)> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        open(f)?
            .decode(!a.input.no_checksum, |item, _| -> Result<()> {
                if let Item::Entry(e) = item {
                    keys[i] += 1;
                    if e.db != 0 {
                        other_db[i] += 1;
                    }
                    counts[i][usize::from(key_hash_slot(&e.key))] += 1;
                    hashes.push((key_hash(e.db, &e.key), i as u32));
                }
                Ok(())
            })
            .with_context(|| f.display().to_string())?;
    }
    let runs = shard_ranges(&counts);
    let mut owner: Vec<Option<usize>> = vec![None; usize::from(SLOTS)];
    for r in &runs {
        for s in r.first..=r.last {
            owner[usize::from(s)] = Some(r.file);
        }
    }
    // slots with keys outside every run (held by several dumps): the dump with most keys there
    for (s, o) in owner.iter_mut().enumerate() {
        if o.is_none() {
            let best = (0..n).filter(|&f| counts[f][s] > 0).max_by(|&x, &y| {
                counts[x][s].cmp(&counts[y][s]).then(y.cmp(&x)) // ties: the earlier dump
            });
            *o = best;
        }
    }
    hashes.sort_unstable();
    let suspects: HashSet<u64> = hashes
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1)
        .map(|w| w[0].0)
        .collect();
    drop(hashes);
    // second pass: orphans, and the keys behind repeated hashes
    let mut orphans = vec![0u64; n];
    let mut orphan_list: Vec<(usize, Vec<u8>, u16, Option<usize>)> = Vec::new();
    let mut seen: BTreeMap<(u64, Vec<u8>), Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        open(f)?
            .decode(false, |item, _| -> Result<()> {
                if let Item::Entry(e) = item {
                    let slot = key_hash_slot(&e.key);
                    let o = owner[usize::from(slot)];
                    if o != Some(i) {
                        orphans[i] += 1;
                        if orphan_list.len() < LISTED {
                            orphan_list.push((i, e.key.to_vec(), slot, o));
                        }
                    }
                    if !suspects.is_empty() && suspects.contains(&key_hash(e.db, &e.key)) {
                        seen.entry((e.db, e.key.to_vec())).or_default().push(i);
                    }
                }
                Ok(())
            })
            .with_context(|| f.display().to_string())?;
    }
    let dups: Vec<Holders> = seen
        .into_iter()
        .filter(|(_, fs)| {
            let mut d = fs.clone();
            d.dedup();
            d.len() > 1
        })
        .collect();
    let uncovered: Vec<(u16, u16)> = {
        let mut v: Vec<(u16, u16)> = Vec::new();
        for s in 0..SLOTS {
            if owner[usize::from(s)].is_none() {
                match v.last_mut() {
                    Some(r) if r.1 + 1 == s => r.1 = s,
                    _ => v.push((s, s)),
                }
            }
        }
        v
    };
    let runs_of = |f: usize| -> Vec<&SlotRun> { runs.iter().filter(|r| r.file == f).collect() };
    let mut problems = Vec::new();
    let total_orphans: u64 = orphans.iter().sum();
    if total_orphans > 0 {
        problems.push(format!(
            "{} in slots their dump does not own",
            rdbkit::output::count(total_orphans, "key")
        ));
    }
    if !dups.is_empty() {
        problems.push(format!(
            "{} in more than one dump",
            rdbkit::output::count(dups.len() as u64, "key")
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if keys[i] > 0 && runs_of(i).is_empty() {
            problems.push(format!(
                "{name} owns no slot range (all its keys are orphans)"
            ));
        }
        if other_db[i] > 0 {
            problems.push(format!(
                "{name} has {} outside db 0 (a cluster has only db 0)",
                rdbkit::output::count(other_db[i], "key")
            ));
        }
    }
    let name_of = |o: Option<usize>| o.map_or("no dump".to_string(), |f| names[f].clone());
    let out = if a.json {
        let shards: Vec<_> = (0..n)
            .map(|i| {
                json!({
                    "file": names[i],
                    "keys": keys[i],
                    "ranges": runs_of(i).iter().map(|r| json!([r.first, r.last])).collect::<Vec<_>>(),
                    "orphans": orphans[i],
                    "keys_outside_db0": other_db[i],
                })
            })
            .collect();
        let v = json!({
            "shards": shards,
            "uncovered": uncovered.iter().map(|(x, y)| json!([x, y])).collect::<Vec<_>>(),
            "uncovered_slots": uncovered.iter().map(|(x, y)| u64::from(y - x) + 1).sum::<u64>(),
            "orphans": total_orphans,
            "orphan_keys": orphan_list.iter().map(|(f, k, s, o)| json!({
                "file": names[*f], "key": rdbkit::text::bytes_json(k), "slot": s,
                "owner": o.map(|o| names[o].clone()),
            })).collect::<Vec<_>>(),
            "duplicates": dups.len(),
            "duplicate_keys": dups.iter().take(LISTED).map(|((db, k), fs)| json!({
                "db": db, "key": rdbkit::text::bytes_json(k),
                "files": fs.iter().map(|f| names[*f].clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "consistent": problems.is_empty(),
            "problems": problems,
        });
        serde_json::to_string_pretty(&v)? + "\n"
    } else {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cluster backup: {} dumps, {} keys",
            n,
            keys.iter().sum::<u64>()
        );
        for i in 0..n {
            let rs: Vec<String> = runs_of(i).iter().map(|r| range(r.first, r.last)).collect();
            let _ = writeln!(
                s,
                "{}: {} keys, owns slots {}; {} orphan keys",
                names[i],
                keys[i],
                if rs.is_empty() {
                    "(none)".into()
                } else {
                    rs.join(",")
                },
                orphans[i]
            );
        }
        let gaps: Vec<String> = uncovered.iter().map(|&(x, y)| range(x, y)).collect();
        let _ = writeln!(
            s,
            "slots in no dump's range: {} ({}; no key shows their owner)",
            uncovered
                .iter()
                .map(|(x, y)| u64::from(y - x) + 1)
                .sum::<u64>(),
            if gaps.is_empty() {
                "none".into()
            } else if gaps.len() > LISTED {
                format!(
                    "{} … and {} more gaps",
                    gaps[..LISTED].join(","),
                    gaps.len() - LISTED
                )
            } else {
                gaps.join(",")
            }
        );
        let _ = writeln!(s, "orphans: {total_orphans}");
        for (f, k, slot, o) in &orphan_list {
            let _ = writeln!(
                s,
                "  {}: {} (slot {slot}, owned by {})",
                names[*f],
                escape_bytes(k),
                name_of(*o)
            );
        }
        let _ = writeln!(s, "duplicates between dumps: {}", dups.len());
        for ((db, k), fs) in dups.iter().take(LISTED) {
            let fs: Vec<&str> = fs.iter().map(|f| names[*f].as_str()).collect();
            let _ = writeln!(s, "  db {db} {}: in {}", escape_bytes(k), fs.join(", "));
        }
        if problems.is_empty() {
            let _ = writeln!(
                s,
                "consistent: every key in a slot its dump owns, no key in two dumps"
            );
        }
        s
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())?;
    if !problems.is_empty() {
        bail!(
            "the dumps are not one consistent cluster backup: {}",
            problems.join("; ")
        );
    }
    Ok(())
}
