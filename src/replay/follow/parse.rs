//! The source's stream read into ops: `SELECT` followed, `MULTI`/`EXEC` gathered into one op,
//! `PING` and `REPLCONF` consumed (a `GETACK` answered), relative expirations made absolute,
//! `--db` and `--db-map` applied.

use super::{FollowConfig, Op};
use crate::source::replica::ReplicaProgress;
use crate::source::resp::{Command, CommandSource};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Millisecond Unix time now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Most ops in one chunk handed to the dispatcher.
const CHUNK_OPS: usize = 512;
/// … and at most about this many bytes of arguments.
const CHUNK_BYTES: usize = 1 << 20;

/// The ops read and not yet handed on: passed in chunks, not one by one, because at a few
/// hundred thousand commands a second the hand-over (a channel send, a wake-up of the
/// dispatcher, a share of the memory budget) cost more than the command itself. A chunk goes
/// when it is full or as soon as nothing more has arrived from the source, so it never waits
/// for later commands.
struct Chunk<'a> {
    ops: Vec<Op>,
    bytes: usize,
    tx: &'a async_channel::Sender<Vec<Op>>,
    budget: &'a super::Budget,
}

impl Chunk<'_> {
    fn push(&mut self, o: Op) {
        self.bytes += o.bytes();
        self.ops.push(o);
    }

    fn full(&self) -> bool {
        self.ops.len() >= CHUNK_OPS || self.bytes >= CHUNK_BYTES
    }

    /// Hands the chunk on with its share of the budget; false once the follow has ended.
    fn send(&mut self) -> bool {
        if self.ops.is_empty() {
            return true;
        }
        if self.bytes > 0 {
            let Some(permit) = self.budget.take(self.bytes) else {
                return false;
            };
            for o in self.ops.iter_mut().filter(|o| !o.cmds.is_empty()) {
                o.budget = Some(permit.clone());
            }
        }
        self.bytes = 0;
        let ops = std::mem::replace(&mut self.ops, Vec::with_capacity(CHUNK_OPS));
        self.tx.send_blocking(ops).is_ok()
    }
}

/// Reads commands into ops until the stream ends or `until` is passed.
pub(super) fn parse<S: CommandSource>(
    reader: S,
    live: &ReplicaProgress,
    cfg: &FollowConfig,
    ops: &async_channel::Sender<Vec<Op>>,
    counts: &Counts,
    budget: &super::Budget,
) -> Result<(), String> {
    let mut chunk = Chunk {
        ops: Vec::with_capacity(CHUNK_OPS),
        bytes: 0,
        tx: ops,
        budget,
    };
    let r = parse_into(reader, live, cfg, &mut chunk, counts);
    // what was read before the end goes on (a send refused means the follow has ended)
    chunk.send();
    r
}

fn parse_into<S: CommandSource>(
    mut reader: S,
    live: &ReplicaProgress,
    cfg: &FollowConfig,
    chunk: &mut Chunk,
    counts: &Counts,
) -> Result<(), String> {
    let (skipped, split, foreign) = (&counts.skipped, &counts.split, &counts.foreign);
    let mut ours = cfg
        .replace_foreign
        .as_ref()
        .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner())));
    let mut db = 0u64;
    let mut block: Option<Op> = None;
    let mut mixed = false;
    loop {
        if reader.position() >= cfg.until.load(Relaxed) || cfg.abort.load(Relaxed) {
            return Ok(());
        }
        // nothing more has arrived: what was read goes now, not with later commands
        if (chunk.full() || reader.position() >= live.received_offset()) && !chunk.send() {
            return Ok(());
        }
        let Some(c) = reader.next_command().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let end = reader.position();
        let start = end - c.len;
        let op = |db, cmds, block| Op {
            start,
            end,
            db,
            cmds,
            block,
            asking: false,
            redirects: 0,
            budget: None,
        };
        let out = if c.is("PING") {
            Some(op(db, Vec::new(), false))
        } else if c.is("SELECT") {
            let to = c
                .args
                .get(1)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(db);
            let out = match block.as_mut() {
                // Redis 7.2+ writes a block's SELECT after its MULTI: the block's database
                Some(b) if b.cmds.is_empty() => {
                    b.db = to;
                    None
                }
                // a block on several databases: selected inside it, and its own selected back
                // after it (the writer's idea of the connection's database)
                Some(b) => {
                    if to != db {
                        b.cmds.push(select(to, cfg));
                        mixed = true;
                    }
                    None
                }
                None => Some(op(to, Vec::new(), false)),
            };
            db = to;
            out
        } else if c.is("REPLCONF") {
            if c.args
                .get(1)
                .is_some_and(|a| a.eq_ignore_ascii_case(b"GETACK"))
            {
                live.ack_now();
            }
            Some(op(db, Vec::new(), false))
        } else if c.is("MULTI") {
            block = Some(op(db, Vec::new(), true));
            mixed = false;
            None
        } else if c.is("EXEC") {
            block.take().map(|mut b| {
                if std::mem::take(&mut mixed) {
                    b.cmds.push(select(b.db, cfg));
                }
                b.end = end;
                b
            })
        } else {
            // an AOF says when the command was recorded (`#TS:`); a live stream runs now
            let args = absolute_ttl(c, reader.recorded_at_ms().unwrap_or_else(now_ms));
            match block.as_mut() {
                Some(b) => {
                    b.cmds.push(args);
                    None
                }
                None => Some(op(db, vec![args], false)),
            }
        };
        if let Some(mut o) = out {
            if !o.cmds.is_empty() && !cfg.dbs.is_empty() && !cfg.dbs.contains(&o.db) {
                skipped.fetch_add(o.cmds.len() as u64, Relaxed);
                o.cmds.clear();
            }
            if !cfg.keys.is_empty() && !o.cmds.is_empty() {
                let before = o.cmds.len();
                o.cmds = std::mem::take(&mut o.cmds)
                    .into_iter()
                    .filter_map(|c| match by_key_filter(c, &cfg.keys) {
                        Filtered::Keep(c) => Some(c),
                        Filtered::Drop => None,
                        Filtered::Split(c, name) => {
                            split.record(name, c.is_some());
                            c
                        }
                    })
                    .collect();
                skipped.fetch_add((before - o.cmds.len()) as u64, Relaxed);
            }
            if !cfg.renames.is_empty() && !o.cmds.is_empty() {
                let before = o.cmds.len();
                o.cmds = std::mem::take(&mut o.cmds)
                    .into_iter()
                    .filter_map(|c| match rename_keys(c, &cfg.renames) {
                        Ok((c, n)) => {
                            counts.renamed.fetch_add(n, Relaxed);
                            Some(c)
                        }
                        Err(name) => {
                            split.record(name, false);
                            None
                        }
                    })
                    .collect();
                skipped.fetch_add((before - o.cmds.len()) as u64, Relaxed);
            }
            o.db = target_db(o.db, cfg);
            if let Some(ours) = ours.as_mut() {
                foreign.fetch_add(replace_first_touched(&mut o, ours), Relaxed);
            }
            chunk.push(o);
        }
    }
}

/// `--replace` for commands: the keys `o` touches for the first time that are not the
/// snapshot's are deleted first, in the same `MULTI` (the op becomes a block), so that the
/// command builds the source's value rather than adding to one the target held before the
/// import. Returns how many `UNLINK`s were added. `o`'s commands name target databases.
fn replace_first_touched(o: &mut Op, ours: &mut crate::replay::keyset::Ours) -> u64 {
    let mut db = o.db;
    let mut first: Vec<(u64, Vec<u8>)> = Vec::new();
    for c in &o.cmds {
        if c[0].eq_ignore_ascii_case(b"SELECT") {
            db = c
                .get(1)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(db);
            continue;
        }
        for i in touched_positions(c) {
            if ours.first_touch(db, &c[i]) {
                first.push((db, c[i].clone()));
            }
        }
    }
    if first.is_empty() {
        return 0;
    }
    let n = first.len() as u64;
    let mut pre = Vec::with_capacity(first.len() + 2);
    let mut at = o.db;
    for (db, key) in first {
        if db != at {
            pre.push(vec![b"SELECT".to_vec(), db.to_string().into_bytes()]);
            at = db;
        }
        // one key per UNLINK: a cluster refuses a command on keys of several slots
        pre.push(vec![b"UNLINK".to_vec(), key]);
    }
    if at != o.db {
        pre.push(vec![b"SELECT".to_vec(), o.db.to_string().into_bytes()]);
    }
    pre.append(&mut o.cmds);
    o.cmds = pre;
    o.block = true;
    n
}

/// The keys `reader`'s commands touch before offset `until`, in target databases, as `--replace`
/// counts them (see `replace_first_touched`): what a resumed command stream has already made
/// the import's own. Commands of databases left out by `--db`, and keys outside `--key`, are not
/// applied and so not counted.
pub fn touched_before<S: CommandSource>(
    mut reader: S,
    cfg: &FollowConfig,
    until: u64,
) -> Result<std::collections::HashSet<u64>, String> {
    let mut db = 0u64;
    let mut seen = std::collections::HashSet::new();
    while reader.position() < until {
        let Some(c) = reader.next_command().map_err(|e| e.to_string())? else {
            break;
        };
        if c.is("SELECT") {
            db = c
                .args
                .get(1)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(db);
            continue;
        }
        if !cfg.dbs.is_empty() && !cfg.dbs.contains(&db) {
            continue;
        }
        let to = target_db(db, cfg);
        for i in touched_positions(&c.args) {
            let key = &c.args[i];
            if cfg.keys.is_empty() || cfg.keys.iter().any(|g| crate::filter::glob_match(g, key)) {
                // the name the import wrote it under
                let key = cfg
                    .renames
                    .iter()
                    .find_map(|r| r.apply(key))
                    .unwrap_or_else(|| key.clone());
                seen.insert(crate::replay::keyset::key_hash(to, &key));
            }
        }
    }
    Ok(seen)
}

/// The target database of source database `db`.
fn target_db(db: u64, cfg: &FollowConfig) -> u64 {
    match cfg.target_db.filter(|_| cfg.db_map.is_empty()) {
        Some(t) => t,
        None => cfg.db_map.get(&db).copied().unwrap_or(db),
    }
}

/// `SELECT` of the target database of source database `db`, inside a block.
fn select(db: u64, cfg: &FollowConfig) -> Vec<Vec<u8>> {
    vec![
        b"SELECT".to_vec(),
        target_db(db, cfg).to_string().into_bytes(),
    ]
}

/// What the parser counts for the summary.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Commands left out by `--db` and `--key`.
    pub(super) skipped: AtomicU64,
    /// Commands split by `--key`.
    pub(super) split: SplitByFilter,
    /// `UNLINK`s added by `--replace` (see [`replace_first_touched`]).
    pub(super) foreign: AtomicU64,
    /// Keys of commands written under a new name (`--rename`).
    pub(super) renamed: AtomicU64,
}

/// Commands whose keys fell on both sides of `--key`: how many, and the first few names.
#[derive(Debug, Default)]
pub(super) struct SplitByFilter {
    /// Cut to their matching keys.
    pub(super) cut: AtomicU64,
    /// Left out, by command name (only the parser thread writes it).
    pub(super) left_out: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl SplitByFilter {
    fn record(&self, name: String, cut: bool) {
        if cut {
            self.cut.fetch_add(1, Relaxed);
        } else {
            *self
                .left_out
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(name)
                .or_default() += 1;
        }
    }
}

enum Filtered {
    Keep(Vec<Vec<u8>>),
    Drop,
    /// Some keys match, some do not: the command with only the matching keys when it can be
    /// cut (`DEL`, `UNLINK`, `TOUCH`, `MSET`), else nothing; and its name.
    Split(Option<Vec<Vec<u8>>>, String),
}

/// Every key a command reads or writes (the sources of `SUNIONSTORE` and its destination), by the
/// servers' key specifications ([`crate::commands::keys`]); none for a command they cannot place
/// (unknown, or a module's the table lacks).
fn touched_positions(args: &[Vec<u8>]) -> Vec<usize> {
    crate::commands::keys::key_positions(args).unwrap_or_default()
}

/// `--rename` on one command: each of its keys under the name the first matching rule gives,
/// with how many were renamed; `Err(name)` when its keys cannot be placed (left out, reported).
fn rename_keys(
    mut args: Vec<Vec<u8>>,
    renames: &[crate::transform::Rename],
) -> Result<(Vec<Vec<u8>>, u64), String> {
    if args[0].eq_ignore_ascii_case(b"SELECT") {
        return Ok((args, 0));
    }
    let Some(keys) = crate::commands::keys::key_positions(&args) else {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        return Err(format!("{name} (keys not known, so not renamed)"));
    };
    let mut n = 0;
    for i in keys {
        if let Some(new) = renames.iter().find_map(|r| r.apply(&args[i])) {
            args[i] = new;
            n += 1;
        }
    }
    Ok((args, n))
}

/// `--key` on one command (the globs the snapshot's keys were filtered by).
fn by_key_filter(args: Vec<Vec<u8>>, globs: &[Vec<u8>]) -> Filtered {
    let Some(keys) = crate::commands::keys::key_positions(&args) else {
        // keys that cannot be placed cannot be filtered: left out, and reported by name
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        return Filtered::Split(None, format!("{name} (keys not known)"));
    };
    if keys.is_empty() {
        // a command on no key (FLUSHDB, FUNCTION LOAD) is applied
        return Filtered::Keep(args);
    }
    let hit = |i: &usize| {
        globs
            .iter()
            .any(|g| crate::filter::glob_match(g, &args[*i]))
    };
    let n = keys.iter().filter(|i| hit(i)).count();
    if n == keys.len() {
        return Filtered::Keep(args);
    }
    if n == 0 {
        return Filtered::Drop;
    }
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let step = match name.as_str() {
        "DEL" | "UNLINK" | "TOUCH" => 1,
        "MSET" => 2,
        _ => return Filtered::Split(None, name),
    };
    let mut cut = vec![args[0].clone()];
    for kv in args[1..].chunks(step) {
        if globs.iter().any(|g| crate::filter::glob_match(g, &kv[0])) {
            cut.extend(kv.iter().cloned());
        }
    }
    Filtered::Split(Some(cut), name)
}

/// Relative expirations become absolute, so that a TTL does not grow by the time the command
/// waited (Redis 6.2 replicates `EXPIRE`, `SETEX`, `SET … EX` as sent; 7.0 already sends
/// `PEXPIREAT` and `PXAT`). `now` is when the command is read from the stream.
pub fn absolute_ttl(c: Command, now: i64) -> Vec<Vec<u8>> {
    let num = |a: &[u8]| -> Option<i64> { std::str::from_utf8(a).ok()?.parse().ok() };
    let at = |v: i64, unit: i64| (now + v.saturating_mul(unit)).to_string().into_bytes();
    let mut args = c.args;
    // only names of up to 7 letters matter here: the rest pass without an allocation
    if args[0].len() > 7 {
        return args;
    }
    let name = args[0].to_ascii_uppercase();
    match name.as_slice() {
        b"EXPIRE" | b"PEXPIRE" if args.len() >= 3 => {
            if let Some(v) = num(&args[2]) {
                let unit = if name == b"EXPIRE" { 1000 } else { 1 };
                args[0] = b"PEXPIREAT".to_vec();
                args[2] = at(v, unit);
            }
        }
        b"SETEX" | b"PSETEX" if args.len() == 4 => {
            if let Some(v) = num(&args[2]) {
                let unit = if name == b"SETEX" { 1000 } else { 1 };
                let value = args.pop().unwrap_or_default();
                let key = std::mem::take(&mut args[1]);
                args = vec![b"SET".to_vec(), key, value, b"PXAT".to_vec(), at(v, unit)];
            }
        }
        b"SET" | b"GETEX" => {
            let first = if name == b"SET" { 3 } else { 2 };
            for i in first..args.len().saturating_sub(1) {
                let unit = if args[i].eq_ignore_ascii_case(b"EX") {
                    1000
                } else if args[i].eq_ignore_ascii_case(b"PX") {
                    1
                } else {
                    continue;
                };
                if let Some(v) = num(&args[i + 1]) {
                    args[i] = b"PXAT".to_vec();
                    args[i + 1] = at(v, unit);
                }
                break;
            }
        }
        _ => {}
    }
    args
}

/// Which key routes a command in a cluster: most commands name it first; a few later.
pub(super) fn routing_key(args: &[Vec<u8>]) -> Option<&[u8]> {
    match crate::commands::keys::key_positions(args) {
        Some(keys) => keys.first().map(|&i| args[i].as_slice()),
        // a command the table does not know: its first argument, and a MOVED corrects it
        None => args.get(1).map(Vec::as_slice),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Command {
        Command {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            len: 0,
        }
    }

    fn strs(v: Vec<Vec<u8>>) -> Vec<String> {
        v.into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn relative_ttls_become_absolute() {
        let now = 1_000_000;
        assert_eq!(
            strs(absolute_ttl(cmd(&["expire", "k", "10"]), now)),
            ["PEXPIREAT", "k", "1010000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["PEXPIRE", "k", "5", "NX"]), now)),
            ["PEXPIREAT", "k", "1000005", "NX"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["SETEX", "k", "2", "v"]), now)),
            ["SET", "k", "v", "PXAT", "1002000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["set", "k", "v", "px", "7", "GET"]), now)),
            ["set", "k", "v", "PXAT", "1000007", "GET"]
        );
        // a value that reads "EX" is not an option
        assert_eq!(
            strs(absolute_ttl(cmd(&["SET", "EX", "EX", "EX", "3"]), now)),
            ["SET", "EX", "EX", "PXAT", "1003000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["PEXPIREAT", "k", "99"]), now)),
            ["PEXPIREAT", "k", "99"]
        );
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_first_touched_key_is_unlinked_in_the_same_block() {
        use crate::replay::keyset::{key_hash, KeySet, Ours};
        let mut ours = Ours::new(KeySet::from_hashes(vec![key_hash(0, b"snap")]));
        let mut o = Op {
            start: 0,
            end: 1,
            db: 0,
            cmds: vec![v(&["SUNIONSTORE", "d", "snap", "x"])],
            block: false,
            asking: false,
            redirects: 0,
            budget: None,
        };
        assert_eq!(replace_first_touched(&mut o, &mut ours), 2);
        assert!(o.block);
        assert_eq!(
            o.cmds,
            vec![
                v(&["UNLINK", "d"]),
                v(&["UNLINK", "x"]),
                v(&["SUNIONSTORE", "d", "snap", "x"])
            ]
        );
        // touched once: never again; another database is another key
        let mut o2 = Op {
            cmds: vec![
                v(&["RPUSH", "d", "1"]),
                v(&["SELECT", "3"]),
                v(&["SET", "d", "1"]),
            ],
            ..o.clone()
        };
        o2.block = false;
        assert_eq!(replace_first_touched(&mut o2, &mut ours), 1);
        assert_eq!(
            o2.cmds,
            vec![
                v(&["SELECT", "3"]),
                v(&["UNLINK", "d"]),
                v(&["SELECT", "0"]),
                v(&["RPUSH", "d", "1"]),
                v(&["SELECT", "3"]),
                v(&["SET", "d", "1"])
            ]
        );
    }

    #[test]
    fn key_filter_keeps_drops_and_cuts_commands() {
        let globs = vec![b"keep:*".to_vec()];
        let f = |a: &[&str]| by_key_filter(v(a), &globs);
        assert!(matches!(f(&["SET", "keep:a", "1"]), Filtered::Keep(_)));
        assert!(matches!(f(&["SET", "drop:a", "1"]), Filtered::Drop));
        assert!(matches!(f(&["FLUSHDB"]), Filtered::Keep(_)));
        match f(&["DEL", "keep:a", "drop:b", "keep:c"]) {
            Filtered::Split(Some(c), name) => {
                assert_eq!(c, v(&["DEL", "keep:a", "keep:c"]));
                assert_eq!(name, "DEL");
            }
            _ => panic!("DEL not cut"),
        }
        match f(&["mset", "drop:a", "1", "keep:b", "2"]) {
            Filtered::Split(Some(c), _) => assert_eq!(c, v(&["mset", "keep:b", "2"])),
            _ => panic!("MSET not cut"),
        }
        assert!(matches!(
            f(&["RENAME", "drop:a", "keep:b"]),
            Filtered::Split(None, n) if n == "RENAME"
        ));
        assert!(matches!(
            f(&["EVAL", "s", "2", "keep:a", "keep:b", "drop:argv"]),
            Filtered::Keep(_)
        ));
        // a result computed from a key left out would differ on the target: reported, not applied
        assert!(matches!(
            f(&["BITOP", "AND", "keep:d", "x"]),
            Filtered::Split(None, n) if n == "BITOP"
        ));
        assert!(matches!(
            f(&["ZUNIONSTORE", "keep:d", "2", "keep:a", "drop:b", "WEIGHTS", "1", "2"]),
            Filtered::Split(None, n) if n == "ZUNIONSTORE"
        ));
        assert!(matches!(
            f(&["SUNIONSTORE", "keep:d", "keep:a", "keep:b"]),
            Filtered::Keep(_)
        ));
        assert!(matches!(
            f(&["SORT", "keep:a", "BY", "drop:*", "STORE", "drop:d"]),
            Filtered::Split(None, n) if n == "SORT"
        ));
        assert!(matches!(
            f(&["NOSUCHCOMMAND", "keep:a"]),
            Filtered::Split(None, n) if n == "NOSUCHCOMMAND (keys not known)"
        ));
    }
}
