//! AOF input: a Redis 7+ AOF directory (a manifest, one base file — RDB or commands — and
//! incremental command files), its manifest, or a single AOF file (Redis ≤ 6.2: commands, after
//! an RDB preamble with `aof-use-rdb-preamble yes`), recognised by content, not by name.
//!
//! ```text
//! appendonlydir/ ─ manifest ─▶ base (RDB: imported as a dump; commands: applied)
//!                             └▶ incr 1, incr 2 … (commands, in manifest order; history ignored)
//! ```
//!
//! The command part of the files is read with [`super::resp::CommandReader`] (annotations
//! accepted). Every file's bytes get one global offset each — the files laid end to end in load
//! order — so that one number says how far a chain was applied ([`Aof::locate`] turns it back into
//! a file and an offset there). [`scan`] reads the commands once before anything is applied: a
//! truncated last command or an unterminated `MULTI` at the end of the last file is dropped and
//! reported (as Redis does with `aof-load-truncated yes`), anywhere else it is an error naming the
//! file and the offset.

mod commands;
pub mod manifest;

pub use commands::{scan, AofCommands, Dropped, FileScan, Scan};

use crate::decode::Decoder;
use crate::error::DecodeError;
use crate::model::Item;
use crate::source::resp::CommandError;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why an AOF could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    /// A file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The manifest does not parse.
    #[error("{}: line {line}: {message}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Its line (1-based; 0 for the whole file).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A directory without a manifest, a manifest without files.
    #[error("{}: {message}", path.display())]
    Layout {
        /// The directory or manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The RDB part (a base file, a preamble) does not decode.
    #[error("{}: the RDB part: {source}", path.display())]
    Rdb {
        /// The file.
        path: PathBuf,
        /// The decoder's error (with its offset).
        source: DecodeError,
    },
    /// The commands do not read (the error names the file and the offset).
    #[error(transparent)]
    Commands(#[from] CommandError),
    /// A file that is not the last one ends inside a command or a `MULTI` block: Redis refuses
    /// to load it too ("the truncated file is not the last file").
    #[error("{}: offset {offset}: {what}, and it is not the last file of the AOF: Redis refuses to load it too (redis-check-aof --fix can cut it)", path.display())]
    TruncatedInside {
        /// The file.
        path: PathBuf,
        /// Where the incomplete command or block starts.
        offset: u64,
        /// What is incomplete.
        what: &'static str,
    },
    /// `--until` on an AOF without `#TS:` annotations.
    #[error("the AOF has no #TS: annotations (aof-timestamp-enabled yes writes them): it cannot be cut at a time")]
    NoTimestamps,
    /// `--until` earlier than the base: the base already holds later writes.
    #[error("--until {until} is before the AOF's base (written at {base}): the base already holds later writes, so the earliest point this AOF restores is {base}")]
    BeforeBase {
        /// The time asked for (Unix seconds).
        until: i64,
        /// When the base was written (Unix seconds).
        base: i64,
    },
    /// A resume offset that is not where a command starts.
    #[error("{}: offset {offset} is not where a command starts: the checkpoint is not of this AOF", path.display())]
    NotABoundary {
        /// The file.
        path: PathBuf,
        /// The offset.
        offset: u64,
    },
}

/// What a file of the chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The base (a rewrite's output, or a single AOF file).
    Base,
    /// An incremental file.
    Incr,
}

/// One file of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its path.
    pub path: PathBuf,
    /// Base or incremental.
    pub role: Role,
    /// Its size in bytes.
    pub len: u64,
    /// For a file in RDB format: where the RDB ends (after the EOF opcode and the checksum) and
    /// the commands, if any, start. `None` for a file of commands only.
    pub rdb_end: Option<u64>,
}

impl Part {
    /// Offset of the first command byte in the file.
    pub fn commands_start(&self) -> u64 {
        self.rdb_end.unwrap_or(0).min(self.len)
    }

    /// The file name (for messages).
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
    }
}

/// An AOF: its files in load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aof {
    /// What was given (a directory, a manifest, a file).
    pub path: PathBuf,
    /// The manifest, for a multi-part AOF.
    pub manifest: Option<PathBuf>,
    /// The base (when there is one) then the incremental files.
    pub parts: Vec<Part>,
    /// History files the manifest lists (not loaded).
    pub history: Vec<String>,
}

impl Aof {
    /// The base when it is in RDB format (imported as a dump, then its commands, if any, follow).
    pub fn rdb_base(&self) -> Option<&Part> {
        self.parts
            .first()
            .filter(|p| p.role == Role::Base && p.rdb_end.is_some())
    }

    /// Global offset of the first byte of part `i`.
    pub fn part_start(&self, i: usize) -> u64 {
        self.parts[..i.min(self.parts.len())]
            .iter()
            .map(|p| p.len)
            .sum()
    }

    /// Global offset of the first command (after an RDB base's RDB).
    pub fn commands_start(&self) -> u64 {
        self.parts.first().map_or(0, |p| p.commands_start())
    }

    /// Global offset of the end of the last file.
    pub fn end(&self) -> u64 {
        self.part_start(self.parts.len())
    }

    /// The file and the offset in it of a global offset (the end of the chain is the end of the
    /// last file).
    pub fn locate(&self, global: u64) -> (usize, u64) {
        let mut start = 0;
        for (i, p) in self.parts.iter().enumerate() {
            if global < start + p.len || i + 1 == self.parts.len() {
                return (i, global.saturating_sub(start));
            }
            start += p.len;
        }
        (0, 0)
    }

    /// `file offset` of a global offset, for messages.
    pub fn describe(&self, global: u64) -> String {
        let (i, off) = self.locate(global);
        match self.parts.get(i) {
            Some(p) => format!("{} offset {off}", p.name()),
            None => format!("offset {global}"),
        }
    }

    /// An identifier of this AOF (its files and their sizes up to the base): written in the
    /// checkpoint and the target's offset marker, so that a resume of another AOF is refused.
    pub fn id(&self) -> String {
        let names: Vec<String> = self.parts.iter().map(|p| p.name()).collect();
        let mut h = sha1_smol::Sha1::new();
        h.update(names.join("\n").as_bytes());
        if let Some(b) = self.parts.first() {
            h.update(&b.len.to_le_bytes());
        }
        format!("aof-{}", &h.digest().to_string()[..16])
    }
}

/// Reads what `path` is. `Ok(None)` when it is not an AOF (an RDB file — also one with an unused
/// AOF preamble flag and nothing after it —, stdin, a gzip file); an error when it is an AOF
/// that cannot be read, or a directory without a manifest.
pub fn detect(path: &Path) -> Result<Option<Aof>, AofError> {
    let io = |e| AofError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    if path.as_os_str() == "-" {
        return Ok(None);
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // not there: the caller's own open says so
        Err(_) => return Ok(None),
    };
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            let small = std::fs::metadata(&e).is_ok_and(|m| m.is_file() && m.len() <= 1 << 20);
            if small && looks_like_manifest_file(&e) {
                return from_manifest(path, &e).map(Some);
            }
        }
        return Err(AofError::Layout {
            path: path.to_path_buf(),
            message: "is a directory without an AOF manifest (a file of `file <name> seq <n> type <b|i|h>` lines): give a dump file, an AOF file or an AOF directory".into(),
        });
    }
    if !meta.is_file() {
        return Ok(None);
    }
    let mut head = [0u8; 9];
    let n = read_head(path, &mut head).map_err(io)?;
    let head = &head[..n];
    if head.starts_with(b"*") || head.starts_with(b"#TS:") {
        return Ok(Some(single(path, meta.len(), None)));
    }
    if head.starts_with(b"REDIS") {
        if !rdb_says_preamble(path)? {
            return Ok(None);
        }
        let end = rdb_end(path)?;
        if end >= meta.len() {
            return Ok(None);
        }
        return Ok(Some(single(path, meta.len(), Some(end))));
    }
    if meta.len() <= 1 << 20 && looks_like_manifest_file(path) {
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        return from_manifest(dir, path).map(Some);
    }
    Ok(None)
}

fn single(path: &Path, len: u64, rdb_end: Option<u64>) -> Aof {
    Aof {
        path: path.to_path_buf(),
        manifest: None,
        parts: vec![Part {
            path: path.to_path_buf(),
            role: Role::Base,
            len,
            rdb_end,
        }],
        history: Vec::new(),
    }
}

fn read_head(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn looks_like_manifest_file(path: &Path) -> bool {
    let mut head = vec![0u8; 4096];
    match read_head(path, &mut head) {
        Ok(n) => manifest::looks_like_manifest(&head[..n]),
        Err(_) => false,
    }
}

fn from_manifest(dir: &Path, manifest_path: &Path) -> Result<Aof, AofError> {
    let text = std::fs::read(manifest_path).map_err(|e| AofError::Io {
        path: manifest_path.to_path_buf(),
        source: e,
    })?;
    let m = manifest::parse(manifest_path, &text)?;
    let mut parts = Vec::new();
    let files = m
        .base
        .iter()
        .map(|b| (b, Role::Base))
        .chain(m.incr.iter().map(|i| (i, Role::Incr)));
    for (name, role) in files {
        let path = dir.join(name);
        let len = std::fs::metadata(&path)
            .map_err(|e| AofError::Io {
                path: path.clone(),
                source: e,
            })?
            .len();
        let mut head = [0u8; 5];
        let n = read_head(&path, &mut head).map_err(|e| AofError::Io {
            path: path.clone(),
            source: e,
        })?;
        let rdb_end = if &head[..n] == b"REDIS" {
            Some(rdb_end(&path)?)
        } else {
            None
        };
        parts.push(Part {
            path,
            role,
            len,
            rdb_end,
        });
    }
    if parts.is_empty() {
        return Err(AofError::Layout {
            path: manifest_path.to_path_buf(),
            message: "the manifest lists no base and no incremental file".into(),
        });
    }
    Ok(Aof {
        path: dir.to_path_buf(),
        manifest: Some(manifest_path.to_path_buf()),
        parts,
        history: m.history,
    })
}

fn mapped(path: &Path) -> Result<super::Input, AofError> {
    super::Input::open(path).map_err(|e| AofError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

fn with_bytes<T>(
    path: &Path,
    f: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
) -> Result<T, AofError> {
    let r = match mapped(path)? {
        super::Input::Mapped(m) => f(&m),
        super::Input::Bytes(b) => f(&b),
        // a regular file that is gzip: not an AOF Redis could load
        super::Input::Stream(_) => {
            return Err(AofError::Layout {
                path: path.to_path_buf(),
                message: "a compressed file inside an AOF".into(),
            })
        }
    };
    r.map_err(|source| AofError::Rdb {
        path: path.to_path_buf(),
        source,
    })
}

/// True when the RDB's aux fields say it is an AOF preamble (`aof-preamble 1`): only then can
/// commands follow it. Read from the first records only.
fn rdb_says_preamble(path: &Path) -> Result<bool, AofError> {
    let r = with_bytes(path, |data| {
        let mut d = Decoder::new(data).verify_checksum(false);
        while let Some(item) = d.next_item()? {
            match item {
                Item::Header { .. } => {}
                Item::Aux { key, value } => {
                    if key.as_ref() == b"aof-preamble" {
                        return Ok(value.as_ref() != b"0");
                    }
                }
                _ => return Ok(false),
            }
        }
        Ok(false)
    });
    // an RDB that does not decode is for the dump path to report
    Ok(r.unwrap_or(false))
}

/// Where the RDB at the start of `path` ends (after its EOF opcode and checksum).
pub fn rdb_end(path: &Path) -> Result<u64, AofError> {
    with_bytes(path, |data| {
        let mut d = Decoder::new(data).verify_checksum(false);
        let mut version = 0;
        while let Some(item) = d.next_item()? {
            match item {
                Item::Header { version: v, .. } => version = v,
                Item::Eof { offset, .. } => {
                    return Ok(offset + 1 + if version >= 5 { 8 } else { 0 })
                }
                _ => {}
            }
        }
        Ok(data.len() as u64)
    })
}

/// The `ctime` aux field of the RDB at the start of `path` (Unix seconds), when it has one.
pub fn rdb_ctime(path: &Path) -> Result<Option<i64>, AofError> {
    with_bytes(path, |data| {
        let mut d = Decoder::new(data).verify_checksum(false);
        while let Some(item) = d.next_item()? {
            match item {
                Item::Header { .. } => {}
                Item::Aux { key, value } if key.as_ref() == b"ctime" => {
                    return Ok(std::str::from_utf8(&value)
                        .ok()
                        .and_then(|v| v.parse().ok()));
                }
                Item::Aux { .. } => {}
                _ => break,
            }
        }
        Ok(None)
    })
}
