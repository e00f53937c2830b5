//! The export sink: selected keys as JSON lines or as RESP commands (`rdbkit export`).
//!
//! An [`Exporter`] formats chunks of items into [`Formatted`] output, on worker threads for mapped
//! input ([`crate::source::Input::decode_chunks`]); an [`ExportWriter`] writes the outputs in file
//! order and stitches the RESP stream together: a `SELECT` goes before the first key whose
//! database differs from the previous key's, which for the first key of a chunk depends on the
//! chunks before it, so the worker leaves that one out and the writer puts it in where needed.

use super::report::memory::Limits;
use crate::commands::{
    entry_commands, CommandOptions, JsonWrite, Losses, Resp, TargetInfo, Unrepresentable,
};
use crate::filter::Filter;
use crate::source::{Chunk, ChunkWorker};
use crate::{DecodeError, Item};
use std::io::Write;

/// What the export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per key ([`super::json::entry`]).
    Jsonl,
    /// RESP commands for `redis-cli --pipe` ([`crate::commands`]).
    Resp,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The dump does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A key has no commands on the target (`--field-ttls refuse`, say).
    #[error("key {key}: {reason}")]
    Unrepresentable {
        /// The key, escaped for printing.
        key: String,
        /// What the commands cannot express.
        reason: Unrepresentable,
    },
    /// Writing the output failed (by the caller's merge function, through [`ExportWriter`]).
    #[error(transparent)]
    Write(std::io::Error),
}

/// The output of a run of consecutive items: formatted bytes and counts. In RESP, a `SELECT` for
/// the first key with commands is left out (see the module comment): [`ExportWriter`] puts it in
/// at `first_db`'s offset when the database changed since the previous output.
#[derive(Debug, Default)]
pub struct Formatted {
    /// The formatted bytes (JSON lines or RESP commands).
    pub resp: Resp,
    /// Keys written.
    pub keys: u64,
    /// Empty collections skipped (RESP: Redis drops them on load; there is no command for them).
    pub empty: u64,
    /// RESP commands written.
    pub commands: u64,
    /// Database of the first key with commands, and where in `resp.buf` its commands start.
    pub first_db: Option<(u64, usize)>,
    /// Database of the last key with commands.
    pub last_db: Option<u64>,
    /// What the commands could not carry to the target.
    pub losses: Losses,
    /// Function libraries left out: the target has no `FUNCTION LOAD`.
    pub functions_skipped: u64,
}

/// Formats chunks of items into [`Formatted`] outputs: the keys that `filter` (and `min_size`)
/// select, and in RESP the function libraries and Lua scripts of an unfiltered export.
#[derive(Debug)]
pub struct Exporter {
    /// JSON lines or RESP.
    pub format: ExportFormat,
    /// The keys to write.
    pub filter: Filter,
    /// Leave out keys whose estimated memory ([`Limits::estimate`]) is below this.
    pub min_size: Option<u64>,
    /// The memory model's settings for `min_size`.
    pub limits: Limits,
    /// The server the RESP output is for (`None`: the newest Redis).
    pub target: Option<TargetInfo>,
    /// Write hashes without their field TTLs on a target without them, instead of refusing them.
    pub drop_field_ttls: bool,
    /// Now, in Unix ms (fields whose TTL has passed are left out with `drop_field_ttls`).
    pub now_ms: i64,
    /// `--rename`, `--ttl-shift`… applied to each selected key.
    pub transform: crate::transform::Transform,
    /// What `transform` changed.
    pub transformed: std::sync::Arc<crate::transform::TransformCounts>,
    /// Write RedisJSON documents as strings (`SET`) instead of `JSON.SET`.
    pub json_as_string: bool,
}

impl Exporter {
    /// Command options for an entry of `type_id` from a dump of RDB `version`.
    fn options(&self, version: Option<u32>, type_id: u8, has_meta: bool) -> CommandOptions {
        let dump_version = version.map_or(CommandOptions::default().restore_version, |v| {
            v.min(u32::from(u16::MAX)) as u16
        });
        let json = if self.json_as_string {
            JsonWrite::String
        } else {
            JsonWrite::Set
        };
        let base = CommandOptions {
            drop_field_ttls: self.drop_field_ttls,
            now_ms: self.now_ms,
            json,
            ..CommandOptions::default()
        };
        let Some(t) = &self.target else {
            return CommandOptions {
                restore_version: dump_version,
                ..base
            };
        };
        // Valkey's own RDB versions start at 80 (Valkey 8 writes Redis's 11 and its types)
        let restore = t.restore_version(type_id, has_meta, dump_version, dump_version >= 80);
        CommandOptions {
            restore_version: restore.unwrap_or(dump_version.min(t.rdb_version)),
            can_restore: restore.is_some(),
            drop_field_ttls: self.drop_field_ttls,
            now_ms: self.now_ms,
            json,
            ..t.command_options()
        }
    }
}

impl ChunkWorker for Exporter {
    /// Scratch for decompressed blobs.
    type State = Vec<u8>;
    type Out = Formatted;
    type Error = ExportError;

    fn state(&self) -> Vec<u8> {
        Vec::new()
    }

    fn output(&self) -> Formatted {
        Formatted::default()
    }

    fn work(
        &self,
        scratch: &mut Vec<u8>,
        chunk: Chunk<'_, '_>,
        p: &mut Formatted,
    ) -> Result<(), ExportError> {
        for (item, _) in chunk.items {
            match item {
                Item::Entry(e) if self.filter.matches_renamed(e, &self.transform.name(&e.key)) => {
                    let changed;
                    let e = if self.transform.is_identity() {
                        e
                    } else {
                        let mut t = e.clone();
                        if !self.transform.apply(&mut t, self.now_ms, &self.transformed) {
                            continue;
                        }
                        changed = t;
                        &changed
                    };
                    let v = e.value_in(scratch)?;
                    if self
                        .min_size
                        .is_some_and(|min| self.limits.estimate(e, &v).bytes < min)
                    {
                        continue;
                    }
                    p.keys += 1;
                    match self.format {
                        ExportFormat::Jsonl => {
                            super::json::entry(&mut p.resp.buf, e, &v);
                            p.resp.buf.push(b'\n');
                        }
                        // Redis skips empty collections on load; there is no command for them
                        ExportFormat::Resp if v.is_empty() => p.empty += 1,
                        ExportFormat::Resp => {
                            match p.last_db {
                                None => p.first_db = Some((e.db, p.resp.buf.len())),
                                Some(db) if db != e.db => {
                                    select(&mut p.resp, e.db);
                                    p.commands += 1;
                                }
                                Some(_) => {}
                            }
                            p.last_db = Some(e.db);
                            let opts = self.options(chunk.version, e.type_id, e.meta.is_some());
                            p.commands += entry_commands(&mut p.resp, e, &v, &opts, &mut p.losses)
                                .map_err(|reason| ExportError::Unrepresentable {
                                key: crate::text::escape_bytes(&e.key),
                                reason,
                            })? as u64;
                        }
                    }
                }
                Item::Function { .. }
                    if self.format == ExportFormat::Resp
                        && self.filter.is_empty()
                        && self.target.as_ref().is_some_and(|t| !t.has_functions()) =>
                {
                    p.functions_skipped += 1;
                }
                Item::Function { code }
                    if self.format == ExportFormat::Resp && self.filter.is_empty() =>
                {
                    p.resp.cmd(&[b"FUNCTION", b"LOAD", b"REPLACE", code]);
                    p.commands += 1;
                }
                Item::Script { body, .. }
                    if self.format == ExportFormat::Resp && self.filter.is_empty() =>
                {
                    p.resp.cmd(&[b"SCRIPT", b"LOAD", body]);
                    p.commands += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn select(resp: &mut Resp, db: u64) {
    resp.begin(2);
    resp.arg(b"SELECT");
    resp.arg_int(db as i64);
}

/// An output's buffer is kept for reuse up to this capacity.
const KEEP_BUFFER: usize = 2 << 20;

/// What an export wrote, summed over its [`Formatted`] outputs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportTotals {
    /// Keys written.
    pub keys: u64,
    /// Empty collections skipped (RESP).
    pub empty: u64,
    /// RESP commands written, `SELECT`s included.
    pub commands: u64,
    /// What the commands could not carry to the target.
    pub losses: Losses,
    /// Function libraries left out: the target has no `FUNCTION LOAD`.
    pub functions_skipped: u64,
}

/// Writes [`Formatted`] outputs in file order to `out`, putting in the `SELECT`s that the
/// outputs left out, and sums their counts.
#[derive(Debug)]
pub struct ExportWriter<W: Write> {
    out: W,
    /// The database of the last key written.
    current_db: Option<u64>,
    /// Scratch for a `SELECT` command.
    selects: Resp,
    totals: ExportTotals,
}

impl<W: Write> ExportWriter<W> {
    /// A writer to `out`.
    pub fn new(out: W) -> Self {
        ExportWriter {
            out,
            current_db: None,
            selects: Resp::default(),
            totals: ExportTotals::default(),
        }
    }

    /// Writes `p` (the next output in file order) and drains it for reuse.
    pub fn write(&mut self, p: &mut Formatted) -> std::io::Result<()> {
        let buf = &p.resp.buf;
        match p.first_db {
            Some((db, at)) if self.current_db != Some(db) => {
                self.selects.buf.clear();
                select(&mut self.selects, db);
                self.out.write_all(&buf[..at])?;
                self.out.write_all(&self.selects.buf)?;
                self.out.write_all(&buf[at..])?;
                self.totals.commands += 1;
            }
            _ => self.out.write_all(buf)?,
        }
        if p.last_db.is_some() {
            self.current_db = p.last_db;
        }
        let t = &mut self.totals;
        t.keys += p.keys;
        t.empty += p.empty;
        t.commands += p.commands;
        t.losses.add(&p.losses);
        t.functions_skipped += p.functions_skipped;
        p.resp.buf.clear();
        p.resp.buf.shrink_to(KEEP_BUFFER);
        *p = Formatted {
            resp: std::mem::take(&mut p.resp),
            ..Formatted::default()
        };
        Ok(())
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// What was written so far.
    pub fn totals(&self) -> ExportTotals {
        self.totals
    }
}
