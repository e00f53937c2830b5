//! Commands from entries: an entry becomes plain commands (SET, RPUSH, SADD, ZADD, HSET, XADD +
//! XSETID/XGROUP/XCLAIM, PEXPIREAT, HPEXPIREAT) or a RESTORE, encoded straight into a RESP buffer
//! ([`Resp`]). One generator for the two sinks that write commands: `rdbkit export --format resp`
//! (`src/output/`) and the importer's command path (`src/replay/`), which both depend on this
//! module and not on each other. [`TargetInfo`] (`target.rs`) is what a target server accepts,
//! and the per-version rules both of them follow.

pub mod keys;
mod resp;
pub mod target;
pub use resp::Resp;
pub use target::{rdb_version_for, TargetInfo};

use crate::decode::module::ModuleData;
use crate::model::{ConsumerGroup, Elem, Entry, HashField, Stream, StreamId, Value};
use crate::payload;
use std::io::Write as _;

/// Library name from a FUNCTION LOAD shebang (`#!lua name=mylib …`).
pub fn library_name(code: &[u8]) -> Option<String> {
    let first = code.split(|&b| b == b'\n').next()?;
    let first = std::str::from_utf8(first).ok()?;
    first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("name="))
        .map(str::to_owned)
}

/// What the command generator may use on the target.
#[derive(Debug, Clone, Copy)]
pub struct CommandOptions {
    /// Most elements per variadic command (RPUSH, SADD, ZADD, HSET).
    pub max_elements: usize,
    /// Most argument bytes per command; also the largest string sent in one SET (bigger strings go
    /// as SET + APPEND chunks).
    pub max_bytes: usize,
    /// Target supports XSETID ENTRIESADDED/MAXDELETEDID and XGROUP CREATE ENTRIESREAD (7.0+).
    pub stream_v2: bool,
    /// Target supports hash field TTLs (HPEXPIREAT, 7.4+).
    pub field_ttl: bool,
    /// Footer version for RESTORE payloads of values that only RESTORE reproduces exactly.
    pub restore_version: u16,
    /// The target can RESTORE this entry's type and encoding (set per entry). When it cannot,
    /// values that only RESTORE reproduces exactly (a zset with a `-0` score, some streams) are
    /// written as the closest commands and counted in [`Losses`]; module values still go by
    /// RESTORE.
    pub can_restore: bool,
    /// On a target without hash field TTLs, write such hashes without them (leaving out the
    /// fields whose TTL has passed) instead of refusing them.
    pub drop_field_ttls: bool,
    /// Now, in Unix ms: with `drop_field_ttls`, fields expiring at or before it are left out.
    pub now_ms: i64,
    /// How RedisJSON documents (that rdbkit reads) are written.
    pub json: JsonWrite,
}

/// How a RedisJSON document is written as commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonWrite {
    /// `RESTORE` of the dump's payload (for a target whose JSON module reads it).
    Restore,
    /// `JSON.SET key $ <document>` (any RedisJSON 2.x or valkey-json).
    Set,
    /// `SET key <document>`: a string holding the document, for a target without a JSON module
    /// (`--json-as-string`).
    String,
}

impl Default for CommandOptions {
    fn default() -> Self {
        CommandOptions {
            max_elements: 1024,
            max_bytes: 1 << 20,
            stream_v2: true,
            field_ttl: true,
            restore_version: 12,
            can_restore: true,
            drop_field_ttls: false,
            now_ms: 0,
            json: JsonWrite::Set,
        }
    }
}

/// Why a value cannot be written with plain commands on this target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrepresentable {
    /// The hash has field TTLs and the target predates them.
    #[error(
        "hash field TTLs need Redis 7.4+ or Valkey 9+ on the target \
         (`--field-ttls drop` writes the hash without them)"
    )]
    FieldTtl,
    /// One element alone exceeds the per-command size limit.
    #[error("an element of {0} bytes exceeds the target's bulk length limit")]
    ElementTooLarge(usize),
}

/// What the commands written could not carry to the target, counted for a report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Losses {
    /// Hash fields written without their TTL ([`CommandOptions::drop_field_ttls`]).
    pub field_ttls_dropped: u64,
    /// Hash fields left out because their TTL had passed ([`CommandOptions::drop_field_ttls`]).
    pub expired_fields: u64,
    /// Streams whose entries-added, max-deleted-entry-id and groups' entries-read were not
    /// written: targets before Redis 7.0 have no command for them.
    pub stream_metadata: u64,
    /// Streams written as the closest commands although only RESTORE reproduces them exactly
    /// (see the README), because the target cannot RESTORE them.
    pub streams_inexact: u64,
    /// Sorted sets whose `-0` scores were written as `0` (the target cannot RESTORE them).
    pub negative_zero: u64,
    /// JSON documents written as strings ([`JsonWrite::String`]).
    pub json_as_string: u64,
}

impl Losses {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Losses) {
        self.field_ttls_dropped += other.field_ttls_dropped;
        self.expired_fields += other.expired_fields;
        self.stream_metadata += other.stream_metadata;
        self.streams_inexact += other.streams_inexact;
        self.negative_zero += other.negative_zero;
        self.json_as_string += other.json_as_string;
    }

    /// One line per kind of loss, for a report.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.field_ttls_dropped > 0 || self.expired_fields > 0 {
            let expired = match self.expired_fields {
                0 => String::new(),
                n => format!(", {n} fields whose TTL had passed left out"),
            };
            lines.push(format!(
                "{} hash fields written without their TTL{expired} (--field-ttls drop)",
                self.field_ttls_dropped
            ));
        }
        if self.stream_metadata > 0 {
            lines.push(format!(
                "{} streams without entries-added, max-deleted-entry-id and groups' entries-read \
                 (no command sets them before Redis 7.0)",
                self.stream_metadata
            ));
        }
        if self.streams_inexact > 0 {
            lines.push(format!(
                "{} streams written as the closest commands: only RESTORE, which the target cannot \
                 read for them, reproduces them exactly",
                self.streams_inexact
            ));
        }
        if self.negative_zero > 0 {
            lines.push(format!(
                "{} sorted sets with -0 scores written as 0 (only RESTORE keeps -0)",
                self.negative_zero
            ));
        }
        if self.json_as_string > 0 {
            lines.push(format!(
                "{} JSON documents written as strings holding the document (--json-as-string)",
                self.json_as_string
            ));
        }
        lines
    }
}

/// Writes `items` as `CMD key a b c…` commands, split by element count and bytes.
fn chunked<T>(
    out: &mut Resp,
    [cmd, key]: [&[u8]; 2],
    items: &[T],
    args_per_item: usize,
    size: impl Fn(&T) -> usize,
    mut write: impl FnMut(&mut Resp, &T),
    o: &CommandOptions,
) -> Result<usize, Unrepresentable> {
    let mut n = 0;
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        let mut bytes = 0;
        while j < items.len() && j - i < o.max_elements {
            let s = size(&items[j]);
            if s > o.max_bytes {
                return Err(Unrepresentable::ElementTooLarge(s));
            }
            if j > i && bytes + s > o.max_bytes {
                break;
            }
            bytes += s;
            j += 1;
        }
        out.begin(2 + (j - i) * args_per_item);
        out.arg(cmd);
        out.arg(key);
        for it in &items[i..j] {
            write(out, it);
        }
        n += 1;
        i = j;
    }
    Ok(n)
}

/// Appends the commands that recreate `entry` (whose decoded value is `value`) to `out`; returns
/// how many commands were written (0 when nothing of the value is left to write), and counts in
/// `losses` what they could not carry. The caller selects the database.
pub fn entry_commands(
    out: &mut Resp,
    entry: &Entry<'_>,
    value: &Value<'_>,
    o: &CommandOptions,
    losses: &mut Losses,
) -> Result<usize, Unrepresentable> {
    let key: &[u8] = &entry.key;
    let kept: Vec<HashField<'_>>;
    let mut value = value;
    let without_ttls;
    if let Value::Hash(fields) = value {
        if !o.field_ttl && fields.iter().any(|f| f.expire_ms.is_some()) {
            if !o.drop_field_ttls {
                return Err(Unrepresentable::FieldTtl);
            }
            let expired = |f: &HashField<'_>| f.expire_ms.is_some_and(|ms| ms <= o.now_ms);
            losses.expired_fields += fields.iter().filter(|f| expired(f)).count() as u64;
            kept = fields
                .iter()
                .filter(|f| !expired(f))
                .map(|f| {
                    losses.field_ttls_dropped += u64::from(f.expire_ms.is_some());
                    HashField {
                        expire_ms: None,
                        ..f.clone()
                    }
                })
                .collect();
            if kept.is_empty() {
                return Ok(0);
            }
            without_ttls = Value::Hash(kept);
            value = &without_ttls;
        }
    }
    let mut n = match value {
        Value::String(s) => string_commands(out, key, s, o),
        Value::List(v) => chunked(
            out,
            [b"RPUSH", key],
            v,
            1,
            Elem::len,
            |r, e| r.arg_elem(e),
            o,
        )?,
        Value::Set(v) => chunked(
            out,
            [b"SADD", key],
            v,
            1,
            Elem::len,
            |r, e| r.arg_elem(e),
            o,
        )?,
        // ZADD turns a -0 score into 0; only RESTORE reproduces it
        Value::SortedSet(v)
            if o.can_restore && v.iter().any(|(_, s)| *s == 0.0 && s.is_sign_negative()) =>
        {
            return Ok(restore_command(out, entry, o))
        }
        Value::SortedSet(v) => {
            if v.iter().any(|(_, s)| *s == 0.0 && s.is_sign_negative()) {
                losses.negative_zero += 1;
            }
            chunked(
                out,
                [b"ZADD", key],
                v,
                2,
                |(m, _)| m.len() + 24,
                |r, (m, s)| {
                    r.arg_f64(*s);
                    r.arg_elem(m);
                },
                o,
            )?
        }
        Value::Hash(v) => {
            let mut n = chunked(
                out,
                [b"HSET", key],
                v,
                2,
                |f| f.field.len() + f.value.len(),
                |r, f| {
                    r.arg_elem(&f.field);
                    r.arg_elem(&f.value);
                },
                o,
            )?;
            n += field_ttl_commands(out, key, v, o)?;
            n
        }
        Value::Stream(s) => {
            let loaded = Loaded::new(s);
            let missing = missing_pending(s);
            if stream_inexact(s, &loaded, &missing, o).is_some() {
                if o.can_restore {
                    return Ok(restore_command(out, entry, o));
                }
                losses.streams_inexact += 1;
            }
            if !o.stream_v2 && s.entries_added.is_some() {
                losses.stream_metadata += 1;
            }
            stream_commands(out, key, s, &loaded, &missing, o)
        }
        Value::Module(m) => match (o.json, crate::decode::module::decode(m)) {
            (JsonWrite::Set, Ok(Some(ModuleData::Json(d)))) => {
                out.cmd(&[b"JSON.SET", key, b"$", d.text.as_bytes()]);
                1
            }
            (JsonWrite::String, Ok(Some(ModuleData::Json(d)))) => {
                losses.json_as_string += 1;
                out.cmd(&[b"SET", key, d.text.as_bytes()]);
                1
            }
            _ => return Ok(restore_command(out, entry, o)),
        },
    };
    if let Some(ms) = entry.expire_ms {
        out.begin(3);
        out.arg(b"PEXPIREAT");
        out.arg(key);
        out.arg_int(ms);
        n += 1;
    }
    Ok(n)
}

/// `RESTORE key ttl payload [ABSTTL]` for values that only RESTORE can carry exactly.
fn restore_command(out: &mut Resp, entry: &Entry<'_>, o: &CommandOptions) -> usize {
    out.begin(if entry.expire_ms.is_some() { 5 } else { 4 });
    out.arg(b"RESTORE");
    out.arg(&entry.key);
    out.arg_int(entry.expire_ms.unwrap_or(0));
    out.arg(&payload::for_entry(entry, o.restore_version));
    if entry.expire_ms.is_some() {
        out.arg(b"ABSTTL");
    }
    1
}

fn string_commands(out: &mut Resp, key: &[u8], s: &Elem<'_>, o: &CommandOptions) -> usize {
    let bytes = s.to_bytes();
    let mut chunks = bytes.chunks(o.max_bytes.max(1));
    let first = chunks.next().unwrap_or_default();
    out.cmd(&[b"SET", key, first]);
    1 + chunks
        .map(|c| {
            out.cmd(&[b"APPEND", key, c]);
        })
        .count()
}

fn field_ttl_commands(
    out: &mut Resp,
    key: &[u8],
    fields: &[HashField<'_>],
    o: &CommandOptions,
) -> Result<usize, Unrepresentable> {
    let mut with_ttl: Vec<&HashField<'_>> =
        fields.iter().filter(|f| f.expire_ms.is_some()).collect();
    with_ttl.sort_by_key(|f| f.expire_ms);
    let mut n = 0;
    for group in with_ttl.chunk_by(|a, b| a.expire_ms == b.expire_ms) {
        for part in group.chunks(o.max_elements.max(1)) {
            out.begin(5 + part.len());
            out.arg(b"HPEXPIREAT");
            out.arg(key);
            out.arg_int(part[0].expire_ms.unwrap_or(0));
            out.arg(b"FIELDS");
            out.arg_int(part.len() as i64);
            for f in part {
                out.arg_elem(&f.field);
            }
            n += 1;
        }
    }
    Ok(n)
}

fn id_arg(out: &mut Resp, id: StreamId) {
    let mut tmp = [0u8; 48];
    let mut w = &mut tmp[..];
    let _ = write!(w, "{}-{}", id.ms, id.seq);
    let n = 48 - w.len();
    out.arg(&tmp[..n]);
}

const ID_ZERO: StreamId = StreamId { ms: 0, seq: 0 };
const ID_MAX: StreamId = StreamId {
    ms: u64::MAX,
    seq: u64::MAX,
};

/// A stream's metadata as a server holds it once it has loaded the dump. Streams written before
/// RDB type 19 do not record it; Redis's loader (rdb.c, `rdbLoadObject`) then takes the recorded
/// length as entries-added, 0-0 as max-deleted-entry-id, the first live entry as first ID (the
/// largest ID when there is none) and estimates each group's entries-read.
struct Loaded {
    entries_added: u64,
    max_deleted: StreamId,
    first_id: StreamId,
    /// Per group: entries-read as Redis holds it (-1 = unknown), or `None` for a recorded value
    /// no command accepts (above `i64::MAX` but not the "unknown" marker).
    entries_read: Vec<Option<i64>>,
}

impl Loaded {
    fn new(s: &Stream<'_>) -> Loaded {
        let mut l = match (s.entries_added, s.max_deleted_id, s.first_id) {
            (Some(entries_added), Some(max_deleted), Some(first_id)) => Loaded {
                entries_added,
                max_deleted,
                first_id,
                entries_read: Vec::new(),
            },
            _ => Loaded {
                entries_added: s.length,
                max_deleted: ID_ZERO,
                first_id: s.entries.first().map_or(ID_MAX, |e| e.id),
                entries_read: Vec::new(),
            },
        };
        l.entries_read = s
            .groups
            .iter()
            .map(|g| match g.entries_read {
                Some(ConsumerGroup::ENTRIES_READ_UNKNOWN) => Some(-1),
                Some(r) => i64::try_from(r).ok(),
                None => Some(l.estimate_entries_read(s, g.last_delivered)),
            })
            .collect();
        l
    }

    /// Redis's `streamEstimateDistanceFromFirstEverEntry`, which the loader applies to the groups
    /// of streams written before RDB type 19; -1 is "unknown".
    fn estimate_entries_read(&self, s: &Stream<'_>, id: StreamId) -> i64 {
        // the C code computes in unsigned 64 bits and returns a long long
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return 0;
        }
        if s.length == 0 && id <= s.last_id {
            return added;
        }
        if id != ID_ZERO && id < self.max_deleted {
            return -1;
        }
        match id.cmp(&s.last_id) {
            std::cmp::Ordering::Equal => return added,
            std::cmp::Ordering::Greater => return -1,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted == ID_ZERO || self.max_deleted < self.first_id {
            let before_first = self.entries_added.wrapping_sub(s.length) as i64;
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return before_first,
                std::cmp::Ordering::Equal => return before_first.wrapping_add(1),
                std::cmp::Ordering::Greater => {}
            }
        }
        -1
    }
}

/// Pending entries whose stream entry is gone (deleted or trimmed after delivery), sorted. A
/// server keeps them, but `XCLAIM` claims only entries that exist: they are added for the claim
/// and removed again.
fn missing_pending(s: &Stream<'_>) -> Vec<StreamId> {
    let mut ids: Vec<StreamId> = s
        .groups
        .iter()
        .flat_map(|g| g.pending.iter().map(|p| p.id))
        .filter(|id| s.entries.binary_search_by(|e| e.id.cmp(id)).is_err())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Why the commands cannot rebuild this stream exactly as a server loading the dump holds it
/// (`None`: they can). Only `RESTORE` reproduces such a stream.
fn stream_inexact(
    s: &Stream<'_>,
    l: &Loaded,
    missing: &[StreamId],
    o: &CommandOptions,
) -> Option<&'static str> {
    let live = s.entries.len() as u64;
    let first_live = s.entries.first().map(|e| e.id);
    if live != s.length {
        return Some("its recorded length differs from its entries");
    }
    if s.entries.iter().any(|e| e.fields.is_empty()) {
        return Some("an entry without fields");
    }
    if s.entries.last().is_some_and(|e| e.id > s.last_id) {
        return Some("its last ID is below its last entry");
    }
    if missing.first() == Some(&ID_ZERO) {
        return Some("a pending entry with ID 0-0");
    }
    let pending = s.groups.iter().flat_map(|g| g.pending.iter());
    if pending
        .clone()
        .any(|p| p.delivery_time < 0 || p.delivery_count > i64::MAX as u64)
    {
        return Some("a pending entry's delivery time or count");
    }
    if !o.stream_v2 {
        return None;
    }
    // commands leave the first live entry as first ID (0-0 when there is none)
    if l.first_id != first_live.unwrap_or(ID_ZERO) {
        return Some("its recorded first entry ID");
    }
    if l.entries_added < live || l.entries_added > i64::MAX as u64 {
        return Some("its entries-added");
    }
    if l.max_deleted > s.last_id {
        return Some("its max-deleted-entry-id is above its last ID");
    }
    if l.entries_read.iter().any(Option::is_none) {
        return Some("a group's entries-read");
    }
    // XDEL of a placeholder inside the stream sets max-deleted-entry-id, which XSETID can raise or
    // lower but not reset to 0-0
    if l.max_deleted == ID_ZERO && missing.iter().any(|id| first_live.is_some_and(|f| *id > f)) {
        return Some("pending entries deleted from a stream that records no deletion");
    }
    None
}

/// Field name of the placeholder entries added for pending entries whose entry is gone.
const PLACEHOLDER_FIELD: &[u8] = b"rdbkit-placeholder";

/// Writes `s` as XADD per entry, XGROUP CREATE (with ENTRIESREAD on 7.0+: -1 keeps "unknown"),
/// XGROUP CREATECONSUMER, XCLAIM … FORCE JUSTID for the pending entries, and XSETID (with
/// ENTRIESADDED and MAXDELETEDID on 7.0+) last, once the entries are final. Values no command
/// accepts are brought within range (the caller decides beforehand whether that is acceptable).
fn stream_commands(
    out: &mut Resp,
    key: &[u8],
    s: &Stream<'_>,
    l: &Loaded,
    missing: &[StreamId],
    o: &CommandOptions,
) -> usize {
    let mut n = 0;
    let first_live = s.entries.first().map(|e| e.id);
    let missing: Vec<StreamId> = missing
        .iter()
        .copied()
        .filter(|id| *id != ID_ZERO)
        .collect();
    let mut ghosts = missing.iter().copied().peekable();
    let xadd = |out: &mut Resp, id: StreamId, fields: &[(Elem<'_>, Elem<'_>)]| {
        out.begin(3 + 2 * fields.len().max(1));
        out.arg(b"XADD");
        out.arg(key);
        id_arg(out, id);
        if fields.is_empty() {
            out.arg(PLACEHOLDER_FIELD);
            out.arg(b"");
        }
        for (f, v) in fields {
            out.arg_elem(f);
            out.arg_elem(v);
        }
    };
    for e in &s.entries {
        while let Some(g) = ghosts.next_if(|g| *g < e.id) {
            xadd(out, g, &[]);
            n += 1;
        }
        xadd(out, e.id, &e.fields);
        n += 1;
    }
    for g in ghosts {
        xadd(out, g, &[]);
        n += 1;
    }
    if s.entries.is_empty() && missing.is_empty() {
        // an empty stream: create it through a throw-away group (works for any last ID, unlike
        // XADD … MAXLEN 0), then remove the group
        out.cmd(&[
            b"XGROUP",
            b"CREATE",
            key,
            b"rdbkit-tmp-group",
            b"0",
            b"MKSTREAM",
        ]);
        out.cmd(&[b"XGROUP", b"DESTROY", key, b"rdbkit-tmp-group"]);
        n += 2;
    }
    for (g, read) in s.groups.iter().zip(&l.entries_read) {
        out.begin(if o.stream_v2 { 7 } else { 5 });
        out.arg(b"XGROUP");
        out.arg(b"CREATE");
        out.arg(key);
        out.arg(&g.name);
        id_arg(out, g.last_delivered);
        if o.stream_v2 {
            out.arg(b"ENTRIESREAD");
            out.arg_int(read.unwrap_or(-1));
        }
        n += 1;
        for c in &g.consumers {
            out.cmd(&[b"XGROUP", b"CREATECONSUMER", key, &g.name, &c.name]);
            n += 1;
        }
        // one XCLAIM per run of pending entries with the same consumer, time and count
        let claimable = |p: &&crate::model::PendingEntry| p.id != ID_ZERO;
        let pending: Vec<_> = g.pending.iter().filter(claimable).collect();
        let same = |a: &&crate::model::PendingEntry, b: &&crate::model::PendingEntry| {
            (a.consumer, a.delivery_time, a.delivery_count)
                == (b.consumer, b.delivery_time, b.delivery_count)
        };
        for run in pending.chunk_by(same) {
            let Some(c) = run[0].consumer.and_then(|c| g.consumers.get(c)) else {
                continue;
            };
            for part in run.chunks(o.max_elements.max(1)) {
                out.begin(11 + part.len());
                for a in [&b"XCLAIM"[..], key, &g.name, &c.name, b"0"] {
                    out.arg(a);
                }
                for p in part {
                    id_arg(out, p.id);
                }
                out.arg(b"TIME");
                out.arg_int(part[0].delivery_time);
                out.arg(b"RETRYCOUNT");
                out.arg_int(part[0].delivery_count.min(i64::MAX as u64) as i64);
                out.arg(b"FORCE");
                out.arg(b"JUSTID");
                n += 1;
            }
        }
    }
    // the placeholders go again: those before the first entry by XTRIM, which leaves
    // max-deleted-entry-id alone, the others by XDEL
    let (head, inner): (Vec<StreamId>, Vec<StreamId>) = missing
        .iter()
        .partition(|id| first_live.is_none_or(|f| **id < f));
    if !head.is_empty() {
        match first_live {
            Some(f) => {
                out.begin(5);
                out.arg(b"XTRIM");
                out.arg(key);
                out.arg(b"MINID");
                out.arg(b"=");
                id_arg(out, f);
            }
            None => out.cmd(&[b"XTRIM", key, b"MAXLEN", b"=", b"0"]),
        }
        n += 1;
    }
    for part in inner.chunks(o.max_elements.max(1)) {
        out.begin(2 + part.len());
        out.arg(b"XDEL");
        out.arg(key);
        for id in part {
            id_arg(out, *id);
        }
        n += 1;
    }
    let last_id = s.last_id.max(s.entries.last().map_or(ID_ZERO, |e| e.id));
    if o.stream_v2 {
        out.begin(7);
        out.arg(b"XSETID");
        out.arg(key);
        id_arg(out, last_id);
        out.arg(b"ENTRIESADDED");
        out.arg_int(
            l.entries_added
                .max(s.entries.len() as u64)
                .min(i64::MAX as u64) as i64,
        );
        out.arg(b"MAXDELETEDID");
        id_arg(out, l.max_deleted.min(last_id));
    } else {
        out.begin(3);
        out.arg(b"XSETID");
        out.arg(key);
        id_arg(out, last_id);
    }
    n + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Consumer, PendingEntry, StreamEntry};

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 1 }
    }

    fn stream(ids: &[u64], v2: bool) -> Stream<'static> {
        Stream {
            entries: ids
                .iter()
                .map(|&ms| StreamEntry {
                    id: id(ms),
                    fields: vec![(Elem::from(&b"f"[..]), Elem::Int(ms as i64))],
                })
                .collect(),
            length: ids.len() as u64,
            last_id: id(*ids.last().unwrap_or(&0)),
            first_id: v2.then(|| id(ids[0])),
            max_deleted_id: v2.then_some(ID_ZERO),
            entries_added: v2.then_some(ids.len() as u64),
            ..Default::default()
        }
    }

    fn group(last: u64, read: Option<u64>, pending: &[u64]) -> ConsumerGroup<'static> {
        ConsumerGroup {
            name: b"g"[..].into(),
            last_delivered: id(last),
            entries_read: read,
            pending: pending
                .iter()
                .map(|&ms| PendingEntry {
                    id: id(ms),
                    delivery_time: 1_700_000_000_000,
                    delivery_count: 2,
                    consumer: Some(0),
                })
                .collect(),
            consumers: vec![Consumer {
                name: b"c"[..].into(),
                seen_time: 0,
                active_time: 0,
                pending: pending.iter().map(|&ms| id(ms)).collect(),
            }],
        }
    }

    fn commands(s: &Stream<'_>) -> String {
        let (l, missing) = (Loaded::new(s), missing_pending(s));
        assert_eq!(
            stream_inexact(s, &l, &missing, &CommandOptions::default()),
            None
        );
        let mut out = Resp::default();
        stream_commands(&mut out, b"k", s, &l, &missing, &CommandOptions::default());
        // the arguments, space separated (an empty one vanishes), one command a line
        let text = String::from_utf8(out.buf).unwrap();
        let mut lines = Vec::new();
        for part in text.split('*').filter(|p| !p.is_empty()) {
            let words: Vec<&str> = part
                .split("\r\n")
                .skip(1)
                .filter(|w| !w.starts_with('$') && !w.is_empty())
                .collect();
            lines.push(words.join(" "));
        }
        lines.join("\n")
    }

    #[test]
    fn unknown_entries_read_stays_unknown() {
        let mut s = stream(&[1, 2, 3], true);
        s.groups
            .push(group(2, Some(ConsumerGroup::ENTRIES_READ_UNKNOWN), &[]));
        let c = commands(&s);
        assert!(c.contains("XGROUP CREATE k g 2-1 ENTRIESREAD -1"), "{c}");
    }

    #[test]
    fn old_streams_get_the_loaders_estimates() {
        // Redis's loader: entries-added = length, and each group's entries-read estimated
        let mut s = stream(&[1, 2, 3], false);
        s.groups.push(group(3, None, &[]));
        s.groups.push(group(0, None, &[]));
        s.groups.push(group(1, None, &[]));
        s.groups.push(group(2, None, &[]));
        let l = Loaded::new(&s);
        assert_eq!(l.entries_read, vec![Some(3), Some(0), Some(1), Some(-1)]);
        assert_eq!((l.entries_added, l.first_id), (3, id(1)));
        // an empty old stream: the loader's first ID is the largest one, which commands cannot set
        let empty = stream(&[], false);
        let l = Loaded::new(&empty);
        assert_eq!(l.first_id, ID_MAX);
        assert!(stream_inexact(&empty, &l, &[], &CommandOptions::default()).is_some());
    }

    #[test]
    fn pending_entries_of_gone_entries_are_claimed_through_placeholders() {
        let mut s = stream(&[3, 5], true);
        s.max_deleted_id = Some(id(4));
        s.entries_added = Some(5);
        s.groups.push(group(5, Some(5), &[1, 3, 4]));
        let c = commands(&s);
        let want = [
            "XADD k 1-1 rdbkit-placeholder",
            "XADD k 3-1 f 3",
            "XADD k 4-1 rdbkit-placeholder",
            "XADD k 5-1 f 5",
            "XGROUP CREATE k g 5-1 ENTRIESREAD 5",
            "XGROUP CREATECONSUMER k g c",
            "XCLAIM k g c 0 1-1 3-1 4-1 TIME 1700000000000 RETRYCOUNT 2 FORCE JUSTID",
            "XTRIM k MINID = 3-1",
            "XDEL k 4-1",
            "XSETID k 5-1 ENTRIESADDED 5 MAXDELETEDID 4-1",
        ];
        assert_eq!(c, want.join("\n"));
        // the same deletion in a stream that records none cannot be reproduced
        s.max_deleted_id = Some(ID_ZERO);
        let (l, missing) = (Loaded::new(&s), missing_pending(&s));
        assert!(stream_inexact(&s, &l, &missing, &CommandOptions::default()).is_some());
    }
}
