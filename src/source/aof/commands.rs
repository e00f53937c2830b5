//! The command part of an AOF's files: [`scan`] reads it once (statistics, where to stop), and
//! [`AofCommands`] streams it, from a global offset to another, to whoever applies it.

use super::{Aof, AofError, Role};
use crate::source::resp::{Command, CommandError, CommandReader, CommandSource, Entry};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;

type FileReader = CommandReader<BufReader<File>>;

/// Opens part `i` of `aof` at its first command.
fn open_part(aof: &Aof, i: usize) -> Result<FileReader, AofError> {
    let p = &aof.parts[i];
    let io = |e| AofError::Io {
        path: p.path.clone(),
        source: e,
    };
    let mut f = File::open(&p.path).map_err(io)?;
    let start = p.commands_start();
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let r = BufReader::with_capacity(1 << 20, f);
    Ok(CommandReader::new(r, p.path.display().to_string(), start).with_annotations())
}

fn select(db: u64) -> Command {
    Command {
        args: vec![b"SELECT".to_vec(), db.to_string().into_bytes()],
        len: 0,
    }
}

fn parse_db(c: &Command) -> Option<u64> {
    std::str::from_utf8(c.args.get(1)?).ok()?.parse().ok()
}

/// The commands of an AOF in load order, with global offsets (see the module of [`Aof`]). Each
/// file starts with a `SELECT 0` of no length (Redis loads each file with a new client, in db
/// 0); so does a resume, with the database in force there.
#[derive(Debug)]
pub struct AofCommands {
    aof: Aof,
    idx: usize,
    reader: Option<FileReader>,
    end: u64,
    pending: Option<Command>,
    ts: Option<i64>,
}

impl AofCommands {
    /// The commands from global offset `from` (where a command starts; anything up to the first
    /// command is the start) up to global offset `end` (from [`Scan::end`]).
    pub fn open(aof: &Aof, from: u64, end: u64) -> Result<Self, AofError> {
        let mut s = AofCommands {
            aof: aof.clone(),
            idx: 0,
            reader: None,
            end,
            pending: None,
            ts: None,
        };
        if aof.parts.is_empty() || from <= aof.commands_start() {
            return Ok(s);
        }
        let (i, local) = aof.locate(from);
        let mut r = open_part(aof, i)?;
        let mut db = 0;
        while r.position() < local {
            match r.next_command()? {
                Some(c) if c.is("SELECT") => db = parse_db(&c).unwrap_or(db),
                Some(_) => {}
                None => break,
            }
        }
        if r.position() != local {
            return Err(AofError::NotABoundary {
                path: aof.parts[i].path.clone(),
                offset: local,
            });
        }
        s.ts = r.last_timestamp();
        s.idx = i;
        s.reader = Some(r);
        s.pending = Some(select(db));
        Ok(s)
    }

    /// The next command, or an error naming the file and the offset.
    pub fn next_aof_command(&mut self) -> Result<Option<Command>, AofError> {
        loop {
            if let Some(c) = self.pending.take() {
                return Ok(Some(c));
            }
            if self.position() >= self.end {
                return Ok(None);
            }
            match &mut self.reader {
                None => {
                    if self.idx >= self.aof.parts.len() {
                        return Ok(None);
                    }
                    self.reader = Some(open_part(&self.aof, self.idx)?);
                    self.pending = Some(select(0));
                }
                // entry by entry: the end may be right after an annotation (a cut, a dropped tail)
                Some(r) => match r.next_entry()? {
                    Some(Entry::Command(c)) => return Ok(Some(c)),
                    Some(Entry::Annotation(_)) => self.ts = r.last_timestamp().or(self.ts),
                    None => {
                        self.reader = None;
                        self.idx += 1;
                    }
                },
            }
        }
    }
}

impl CommandSource for AofCommands {
    fn next_command(&mut self) -> Result<Option<Command>, CommandError> {
        self.next_aof_command().map_err(|e| match e {
            AofError::Commands(c) => c,
            other => CommandError::Io {
                name: self.aof.path.display().to_string(),
                offset: self.position(),
                source: std::io::Error::other(other.to_string()),
            },
        })
    }

    fn position(&self) -> u64 {
        let base = self.aof.part_start(self.idx);
        match (&self.reader, self.aof.parts.get(self.idx)) {
            (Some(r), _) => base + r.position(),
            (None, Some(p)) => base + p.commands_start(),
            (None, None) => base,
        }
    }

    fn recorded_at_ms(&self) -> Option<i64> {
        self.ts.map(|t| t.saturating_mul(1000))
    }
}

/// One file as the scan read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileScan {
    /// Its path.
    pub path: PathBuf,
    /// Base or incremental.
    pub role: Role,
    /// Its size.
    pub len: u64,
    /// Where its RDB part ends, for a file in RDB format.
    pub rdb_end: Option<u64>,
    /// Commands read in it (up to where applying stops).
    pub commands: u64,
}

/// A tail left out because Redis would leave it out (`aof-load-truncated yes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The file (the last one).
    pub path: PathBuf,
    /// Where the dropped bytes start in it.
    pub offset: u64,
    /// How many bytes are dropped.
    pub bytes: u64,
    /// What they hold.
    pub what: &'static str,
}

impl std::fmt::Display for Dropped {
    /// `FILE offset N: B bytes (WHAT) left out, as Redis does with aof-load-truncated yes`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} offset {}: {} bytes ({}) left out, as Redis does with aof-load-truncated yes",
            self.path.display(),
            self.offset,
            self.bytes,
            self.what
        )
    }
}

/// What reading the commands found. Counts cover what is applied: up to [`Scan::end`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The files.
    pub files: Vec<FileScan>,
    /// Commands per upper-cased name.
    pub commands: BTreeMap<String, u64>,
    /// Databases that commands other than `SELECT`, `MULTI`, `EXEC` ran in.
    pub dbs: BTreeSet<u64>,
    /// The first and the last `#TS:` annotation (Unix seconds).
    pub first_ts: Option<i64>,
    /// See `first_ts`.
    pub last_ts: Option<i64>,
    /// A truncated tail left out.
    pub dropped: Option<Dropped>,
    /// With `until`: the annotation the commands stop at (its time and global offset), when one
    /// is later than `until`.
    pub cut: Option<(i64, u64)>,
    /// Global offset where applying stops.
    pub end: u64,
}

impl Scan {
    /// Commands applied in all.
    pub fn total(&self) -> u64 {
        self.commands.values().sum()
    }
}

/// Reads every command of `aof` once, up to the first `#TS:` annotation later than `until` (Unix
/// seconds; as `redis-check-aof --truncate-to-timestamp` cuts). See the module documentation for
/// what a truncated tail does.
pub fn scan(aof: &Aof, until: Option<i64>) -> Result<Scan, AofError> {
    let mut s = Scan {
        end: aof.end(),
        ..Default::default()
    };
    let last = aof.parts.len().saturating_sub(1);
    'parts: for (i, p) in aof.parts.iter().enumerate() {
        let base = aof.part_start(i);
        s.files.push(FileScan {
            path: p.path.clone(),
            role: p.role,
            len: p.len,
            rdb_end: p.rdb_end,
            commands: 0,
        });
        let mut r = open_part(aof, i)?;
        let mut db = 0u64;
        // an open MULTI block: where it starts, and its commands (counted once it is closed)
        let mut block: Option<(u64, Vec<String>)> = None;
        let mut counted = 0u64;
        let stop = loop {
            let e = match r.next_entry() {
                Ok(e) => e,
                Err(CommandError::Truncated { offset, .. }) => {
                    let at = block.as_ref().map_or(offset, |b| b.0);
                    break Some((at, "a truncated last command"));
                }
                Err(e) => return Err(e.into()),
            };
            match e {
                None => match &block {
                    Some((at, _)) => break Some((*at, "a MULTI block without its EXEC")),
                    None => break None,
                },
                Some(Entry::Annotation(a)) => {
                    let Some(t) = a.ts else { continue };
                    if until.is_some_and(|u| t > u) {
                        let at = block.as_ref().map_or(a.offset, |b| b.0);
                        if p.role == Role::Base {
                            return Err(AofError::BeforeBase {
                                until: until.unwrap_or_default(),
                                base: t,
                            });
                        }
                        s.cut = Some((t, base + at));
                        s.end = base + at;
                        s.files[i].commands = counted;
                        break 'parts;
                    }
                    s.first_ts.get_or_insert(t);
                    s.last_ts = Some(t);
                }
                Some(Entry::Command(c)) => {
                    let name = c.name();
                    if c.is("SELECT") {
                        db = parse_db(&c).unwrap_or(db);
                    } else if !c.is("MULTI") && !c.is("EXEC") {
                        s.dbs.insert(db);
                    }
                    if c.is("MULTI") && block.is_none() {
                        block = Some((r.position() - c.len, vec![name]));
                    } else if let Some((_, names)) = &mut block {
                        names.push(name);
                        if c.is("EXEC") {
                            for n in block.take().map(|b| b.1).unwrap_or_default() {
                                counted += 1;
                                *s.commands.entry(n).or_default() += 1;
                            }
                        }
                    } else {
                        counted += 1;
                        *s.commands.entry(name).or_default() += 1;
                    }
                }
            }
        };
        s.files[i].commands = counted;
        if let Some((at, what)) = stop {
            if i != last {
                return Err(AofError::TruncatedInside {
                    path: p.path.clone(),
                    offset: at,
                    what,
                });
            }
            s.dropped = Some(Dropped {
                path: p.path.clone(),
                offset: at,
                bytes: p.len - at,
                what,
            });
            s.end = base + at;
        }
    }
    if until.is_some() && s.first_ts.is_none() && s.cut.is_none() {
        return Err(AofError::NoTimestamps);
    }
    if let (Some(u), Some(b)) = (until, aof.rdb_base()) {
        if let Some(t) = super::rdb_ctime(&b.path)? {
            if u < t {
                return Err(AofError::BeforeBase { until: u, base: t });
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
