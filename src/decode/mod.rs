//! The streaming decoder: a state machine over the top-level records of a dump (format §1–§2).
//!
//! [`Decoder`] walks a byte slice (usually a memory map) and yields one [`Item`] at a time. A key
//! record's value is only *skipped* to find its raw span; [`Entry::value`] decodes it on demand.
//! The same record parser (`parse_item`) drives [`crate::source::StreamDecoder`] for pipes and
//! gzip input.

pub(crate) mod cursor;
mod entry;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod intset;
pub(crate) mod listpack;
pub mod module;
mod prefetch;
pub(crate) mod shape;
pub(crate) mod stream;
pub(crate) mod string;
pub(crate) mod summary;
pub(crate) mod value;
pub(crate) mod ziplist;
pub(crate) mod zipmap;

use crate::crc::crc64;
use crate::error::{DecodeError, ErrorKind, Result};
use crate::model::{Checksum, Dialect, Encoding, Entry, Item, Magic, ModuleId, Producer};
use cursor::Cursor;
use std::borrow::Cow;
use string::{read_bytes, read_count, read_len, read_string};

/// Newest `REDIS`-magic RDB version understood (Redis 8.8). RDB 14 adds types 27 and 28, whose
/// layouts are refused by name (format §16.4–16.5: not confirmed by Redis's source); every other
/// type and opcode of RDB 14 is the RDB 13 one.
pub const MAX_REDIS_VERSION: u32 = 14;
/// Valkey's own version range (`VALKEY080`…).
pub const VALKEY_VERSIONS: std::ops::RangeInclusive<u32> = 80..=81;

const LEGACY_SCRIPT_PREFIX: &[u8] = b"\xDB__lua_script__";

/// Prefix opcodes seen since the last key record (format §2: they attach to the next key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyPrefixes {
    expire_ms: Option<i64>,
    idle: Option<u64>,
    freq: Option<u8>,
    start: Option<u64>,
}

/// Decoder state carried between records. Small and cloneable, so the streaming reader can retry a
/// record after reading more input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct State {
    header: Option<(Magic, u32)>,
    db: u64,
    pending: KeyPrefixes,
    producer_version: Option<String>,
    valkey_aux: bool,
    enterprise: bool,
    finished: bool,
}

impl State {
    fn dialect(&self) -> Dialect {
        Dialect {
            valkey: matches!(self.header, Some((Magic::Valkey, _))),
        }
    }

    fn producer_note(&self) -> Option<String> {
        let who = self.producer();
        Some(match &self.producer_version {
            Some(v) => format!("{who} {v}"),
            None => who.to_string(),
        })
    }

    pub(crate) fn producer(&self) -> Producer {
        if self.enterprise {
            Producer::RedisEnterprise
        } else if self.valkey_aux || matches!(self.header, Some((Magic::Valkey, _))) {
            Producer::Valkey
        } else {
            Producer::Redis
        }
    }

    pub(crate) fn version(&self) -> Option<u32> {
        self.header.map(|h| h.1)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }
}

fn parse_header(c: &mut Cursor<'_>) -> Result<(Magic, u32)> {
    let head = c.rest().get(..9).ok_or_else(|| {
        c.err(ErrorKind::Truncated {
            what: "RDB header",
            needed: 9,
            remaining: c.remaining() as u64,
        })
    })?;
    let (magic, digits) = if head.starts_with(b"REDIS") {
        (Magic::Redis, &head[5..9])
    } else if head.starts_with(b"VALKEY") {
        (Magic::Valkey, &head[6..9])
    } else {
        return Err(c.err(ErrorKind::BadMagic(
            String::from_utf8_lossy(head).into_owned(),
        )));
    };
    let version = std::str::from_utf8(digits)
        .ok()
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u32>().ok())
        .ok_or_else(|| {
            c.err(ErrorKind::BadMagic(
                String::from_utf8_lossy(head).into_owned(),
            ))
        })?;
    let ok = match magic {
        Magic::Redis => (1..=MAX_REDIS_VERSION).contains(&version),
        Magic::Valkey => VALKEY_VERSIONS.contains(&version),
    };
    if !ok {
        return Err(c.err(ErrorKind::UnsupportedVersion(version)));
    }
    c.skip(9, "RDB header")?;
    Ok((magic, version))
}

/// Parses the next item at `c`, updating `st`. Returns `Eof` with `NotChecked(stored)` (or `Absent`)
/// and leaves checksum verification to the caller, who owns the bytes hashed so far.
pub(crate) fn parse_item<'a>(c: &mut Cursor<'a>, st: &mut State) -> Result<Item<'a>> {
    parse_item_inner(c, st).map_err(|e| {
        // Before the header is read nothing says who wrote the input (a VALKEY987 file was
        // reported as "[dump written by Redis]"), so only name the producer once it is known.
        let note = st.header.and(st.producer_note());
        e.with_producer(note.as_deref())
    })
}

fn parse_item_inner<'a>(c: &mut Cursor<'a>, st: &mut State) -> Result<Item<'a>> {
    let Some((magic, version)) = st.header else {
        let h = parse_header(c)?;
        st.header = Some(h);
        return Ok(Item::Header {
            magic: h.0,
            version: h.1,
        });
    };
    loop {
        let at = c.offset();
        let op = c.read_u8("record type")?;
        match op {
            0xff => {
                let checksum = if version >= 5 {
                    Checksum::NotChecked(c.read_u64_le("CRC64 trailer")?)
                } else {
                    Checksum::Absent
                };
                st.finished = true;
                return Ok(Item::Eof {
                    checksum,
                    offset: at,
                });
            }
            0xfe => {
                st.db = read_len(c, "SELECTDB db number")?;
                return Ok(Item::SelectDb { db: st.db });
            }
            0xfd => {
                st.pending.start.get_or_insert(at);
                st.pending.expire_ms = Some(i64::from(c.read_i32_le("EXPIRETIME seconds")?) * 1000);
            }
            0xfc => {
                st.pending.start.get_or_insert(at);
                st.pending.expire_ms = Some(c.read_i64_le("EXPIRETIME_MS")?);
            }
            0xfb => {
                return Ok(Item::ResizeDb {
                    db_size: read_len(c, "RESIZEDB db size")?,
                    expires_size: read_len(c, "RESIZEDB expires size")?,
                })
            }
            0xfa => return parse_aux(c, st),
            0xf9 => {
                st.pending.start.get_or_insert(at);
                st.pending.freq = Some(c.read_u8("FREQ")?);
            }
            0xf8 => {
                st.pending.start.get_or_insert(at);
                st.pending.idle = Some(read_len(c, "IDLE")?);
            }
            0xf7 => {
                let id = ModuleId(read_len(c, "module aux type id")?);
                let when_op = read_len(c, "module aux when opcode")?;
                if when_op != 2 {
                    return Err(DecodeError::invalid(
                        at,
                        "module aux",
                        format!("when opcode {when_op}, expected 2"),
                    ));
                }
                let when = read_len(c, "module aux when")?;
                let start = c.pos();
                let body_offset = c.offset();
                module::skip_opcodes(c)?;
                return Ok(Item::ModuleAux {
                    id,
                    when,
                    body_offset,
                    body: c.since(start),
                    offset: at,
                });
            }
            0xf6 => return parse_function_pre_ga(c),
            0xf5 => {
                return Ok(Item::Function {
                    code: read_bytes(c, "function library code")?,
                })
            }
            0xf4 => {
                return Ok(Item::SlotInfo {
                    slot: read_len(c, "SLOT_INFO slot")?,
                    size: read_len(c, "SLOT_INFO size")?,
                    expires_size: read_len(c, "SLOT_INFO expires size")?,
                })
            }
            0xf3 if magic == Magic::Valkey => {
                let job = read_bytes(c, "SLOT_IMPORT job name")?;
                let n = read_count(c, "SLOT_IMPORT range count", 2)?;
                let mut ranges = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    ranges.push((
                        read_len(c, "slot range start")?,
                        read_len(c, "slot range end")?,
                    ));
                }
                return Ok(Item::SlotImport { job, ranges });
            }
            0xf3 if version >= 13 => {
                // KEY_META (format §16.2): kept raw, it travels in front of the type byte of the
                // DUMP payload.
                st.pending.start.get_or_insert(at);
                let start = c.pos() - 1;
                skip_key_meta(c)?;
                let meta = c.since(start);
                let t = c.read_u8("type after KEY_META")?;
                return parse_entry(c, st, t, Some(meta));
            }
            0x6b | 0x79 if magic == Magic::Redis => {
                // Redis Enterprise RAM_LRU / SLOT_NUM: one length, no meaning for a replay (§15.1).
                st.enterprise = true;
                read_len(c, "Enterprise opcode operand")?;
            }
            0x65 | 0x66 if magic == Magic::Redis => {
                return Err(c.err_at(
                    c.pos() - 1,
                    ErrorKind::UnknownOpcode {
                        byte: op,
                        note:
                            ": Redis Enterprise GCAS/GFLAGS opcode, whose payload is undocumented",
                    },
                ))
            }
            t if Encoding::from_type(t, st.dialect()).is_some() => {
                return parse_entry(c, st, t, None)
            }
            6 => {
                return Err(c.err_at(
                    c.pos() - 1,
                    ErrorKind::UnknownOpcode {
                        byte: op,
                        note: ": pre-release (4.0 RC) module format",
                    },
                ))
            }
            _ => return Err(value::unknown_type(c, c.pos() - 1, op)),
        }
    }
}

/// Skips the body of a KEY_META block (format §16.2) whose opcode byte was just read: the class
/// count, then per class its 4-byte spec and a module-style opcode stream.
pub(crate) fn skip_key_meta(c: &mut Cursor<'_>) -> Result<()> {
    let n = read_count(c, "KEY_META class count", 5)?;
    for _ in 0..n {
        c.skip(4, "KEY_META class spec")?;
        module::skip_opcodes(c)?;
    }
    Ok(())
}

fn parse_entry<'a>(
    c: &mut Cursor<'a>,
    st: &mut State,
    t: u8,
    meta: Option<&'a [u8]>,
) -> Result<Item<'a>> {
    let type_at = c.offset() - 1;
    let Some(encoding) = Encoding::from_type(t, st.dialect()) else {
        return Err(value::unknown_type(c, c.pos() - 1, t));
    };
    let key = read_bytes(c, "key")?;
    let value_offset = c.offset();
    let start = c.pos();
    value::skip_value(c, encoding).map_err(|e| e.with_key(&key))?;
    let p = std::mem::take(&mut st.pending);
    Ok(Item::Entry(Entry {
        db: st.db,
        key,
        type_id: t,
        expire_ms: p.expire_ms,
        idle: p.idle,
        freq: p.freq,
        meta,
        raw: c.since(start),
        offset: p.start.unwrap_or(type_at),
        value_offset,
        encoding,
    }))
}

/// FUNCTION_PRE_GA (246), written by Redis 7.0-rc1/rc2 and by redis-rdb-cli: library name, engine
/// name, a has-description length, the description when that is non-zero, then the code without a
/// shebang. Redis 7.0 GA still loads it (`rdb.c:rdbFunctionLoad`), dropping the description and
/// turning the rest into the FUNCTION2 payload `#!<engine> name=<name>\n<code>`; that is what we
/// yield. (Redis ≥ 7.2 refuses the record; corpus: redis-replicator/function.rdb and the
/// redis-rdb-cli dumps, which 7.0.15 loads.)
fn parse_function_pre_ga<'a>(c: &mut Cursor<'a>) -> Result<Item<'a>> {
    let name = read_bytes(c, "FUNCTION_PRE_GA library name")?;
    let engine = read_bytes(c, "FUNCTION_PRE_GA engine name")?;
    if read_len(c, "FUNCTION_PRE_GA has-description flag")? != 0 {
        read_bytes(c, "FUNCTION_PRE_GA description")?;
    }
    let body = read_bytes(c, "FUNCTION_PRE_GA code")?;
    let mut code = Vec::with_capacity(engine.len() + name.len() + body.len() + 9);
    code.extend_from_slice(b"#!");
    code.extend_from_slice(&engine);
    code.extend_from_slice(b" name=");
    code.extend_from_slice(&name);
    code.push(b'\n');
    code.extend_from_slice(&body);
    Ok(Item::Function {
        code: Cow::Owned(code),
    })
}

fn parse_aux<'a>(c: &mut Cursor<'a>, st: &mut State) -> Result<Item<'a>> {
    let key = read_bytes(c, "AUX key")?;
    let value = read_string(c, "AUX value")?.to_bytes()?;
    match key.as_ref() {
        b"redis-ver" => st.producer_version = Some(String::from_utf8_lossy(&value).into_owned()),
        b"valkey-ver" => {
            st.valkey_aux = true;
            st.producer_version = Some(String::from_utf8_lossy(&value).into_owned());
        }
        k if k.starts_with(b"big-") || k.starts_with(b"bigdb-") => st.enterprise = true,
        b"lua" => return Ok(script(value)),
        k if k.len() == 58 && k.starts_with(LEGACY_SCRIPT_PREFIX) && k.ends_with(b"__\xDB") => {
            return Ok(script(value))
        }
        _ => {}
    }
    Ok(Item::Aux { key, value })
}

fn script(body: Cow<'_, [u8]>) -> Item<'_> {
    let sha1 = sha1_smol::Sha1::from(body.as_ref()).digest().to_string();
    Item::Script { body, sha1 }
}

/// A decoder over a whole dump held in memory or mapped.
///
/// Yields `Result<Item, DecodeError>` in file order and stops (returns `None`) after the first
/// error or after [`Item::Eof`].
///
/// ```
/// use rdbkit::{Decoder, Item};
/// let dump = rdbkit::testing::tiny_dump();
/// let mut keys = 0;
/// for item in Decoder::new(&dump) {
///     match item? {
///         Item::Entry(e) => { keys += 1; assert_eq!(e.db, 0); }
///         Item::Eof { checksum, .. } => assert!(matches!(checksum, rdbkit::Checksum::Verified(_))),
///         _ => {}
///     }
/// }
/// assert_eq!(keys, 1);
/// # Ok::<(), rdbkit::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    state: State,
    verify: bool,
    failed: bool,
    prefetch: prefetch::Prefetch,
}

impl<'a> Decoder<'a> {
    /// A decoder over a complete dump.
    pub fn new(data: &'a [u8]) -> Self {
        Decoder {
            data,
            pos: 0,
            state: State::default(),
            verify: true,
            failed: false,
            prefetch: Default::default(),
        }
    }

    /// Turns CRC64 verification on (default) or off.
    pub fn verify_checksum(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    /// Total input length.
    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// True for empty input.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// RDB version, once the header was read.
    pub fn version(&self) -> Option<u32> {
        self.state.version()
    }

    /// Who wrote the dump, as far as the items read so far tell.
    pub fn producer(&self) -> Producer {
        self.state.producer()
    }

    /// A decoder that continues at `pos` of `data` with the state the decoder that framed `data`
    /// had there (between records, so nothing pending): how chunk workers re-read the records of
    /// their span.
    pub(crate) fn resume(data: &'a [u8], pos: usize, state: State) -> Self {
        Decoder {
            data,
            pos,
            state,
            verify: false,
            failed: false,
            prefetch: prefetch::Prefetch::off(),
        }
    }

    /// The state between records, for [`Decoder::resume`].
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// The next item, `Ok(None)` at the end (after `Eof`) or after an error.
    pub fn next_item(&mut self) -> Result<Option<Item<'a>>> {
        if self.failed || self.state.finished {
            return Ok(None);
        }
        let mut c = Cursor::new(
            self.data.get(self.pos..).unwrap_or_default(),
            self.pos as u64,
        );
        self.prefetch.ahead(self.data, self.pos);
        let res = parse_item(&mut c, &mut self.state);
        match res {
            Ok(mut item) => {
                self.pos += c.pos();
                if let Item::Eof { checksum, offset } = &mut item {
                    let body_end = *offset as usize + 1;
                    *checksum = check_trailer(*checksum, self.verify, *offset + 1, || {
                        crc64(0, self.data.get(..body_end).unwrap_or_default())
                    })
                    .map_err(|e| {
                        self.failed = true;
                        e.with_producer(self.state.producer_note().as_deref())
                    })?;
                }
                Ok(Some(item))
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Resolves a stored trailer: zero means "written without checksum"; otherwise compare.
pub(crate) fn check_trailer(
    stored: Checksum,
    verify: bool,
    trailer_offset: u64,
    compute: impl FnOnce() -> u64,
) -> Result<Checksum> {
    match stored {
        Checksum::NotChecked(0) => Ok(Checksum::Disabled),
        Checksum::NotChecked(v) if verify => {
            let found = compute();
            if found == v {
                Ok(Checksum::Verified(v))
            } else {
                Err(DecodeError::new(
                    trailer_offset,
                    ErrorKind::ChecksumMismatch { expected: v, found },
                ))
            }
        }
        other => Ok(other),
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Result<Item<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

impl std::iter::FusedIterator for Decoder<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{put_len, put_string, RdbWriter};

    /// A FUNCTION_PRE_GA (246) record as Redis 7.0-rc1/rc2 wrote it.
    fn pre_ga(name: &[u8], engine: &[u8], desc: Option<&[u8]>, code: &[u8]) -> Vec<u8> {
        let mut b = vec![0xf6];
        put_string(&mut b, name);
        put_string(&mut b, engine);
        match desc {
            Some(d) => {
                put_len(&mut b, 1);
                put_string(&mut b, d);
            }
            None => put_len(&mut b, 0),
        }
        put_string(&mut b, code);
        b
    }

    #[test]
    fn function_pre_ga_is_translated_like_redis_7_0() {
        let code = b"redis.register_function('f', function() return 1 end)";
        let mut w = RdbWriter::new(10);
        w.bytes(&pre_ga(b"lib2", b"LUA", None, code))
            .bytes(&pre_ga(b"lib1", b"LUA", Some(b"a description"), code))
            .select_db(0)
            .string_key(b"k", b"v", None);
        let dump = w.finish();
        let items: Vec<Item<'_>> = Decoder::new(&dump).collect::<Result<_>>().unwrap();
        let codes: Vec<&[u8]> = items
            .iter()
            .filter_map(|i| match i {
                Item::Function { code } => Some(code.as_ref()),
                _ => None,
            })
            .collect();
        let want = |lib: &str| {
            let mut v = format!("#!LUA name={lib}\n").into_bytes();
            v.extend_from_slice(code);
            v
        };
        assert_eq!(codes, vec![&want("lib2")[..], &want("lib1")[..]]);
        assert!(items
            .iter()
            .any(|i| matches!(i, Item::Entry(e) if e.key.as_ref() == b"k")));
        assert!(matches!(
            items.last(),
            Some(Item::Eof {
                checksum: Checksum::Verified(_),
                ..
            })
        ));
    }

    #[test]
    fn truncated_function_pre_ga_is_a_truncation_error() {
        let rec = pre_ga(b"lib", b"LUA", Some(b"d"), b"return 1");
        for cut in 1..rec.len() {
            let mut input = b"REDIS0010".to_vec();
            input.extend_from_slice(&rec[..cut]);
            let err = Decoder::new(&input)
                .find_map(|i| i.err())
                .expect("a cut record must fail");
            assert!(err.is_truncation(), "cut {cut}: {err}");
        }
    }

    #[test]
    fn header_errors_do_not_guess_the_producer() {
        for input in [
            &b"VALKEY987\xff"[..],
            b"REDIS0099\xff",
            b"NOTANRDB!",
            b"REDI",
        ] {
            let err = Decoder::new(input).next().unwrap().unwrap_err();
            assert_eq!(err.offset(), 0);
            assert!(!err.to_string().contains("written by"), "{err}");
        }
        // once the header is known the producer is named
        let err = Decoder::new(b"VALKEY080\x66")
            .find_map(|i| i.err())
            .unwrap();
        assert!(
            err.to_string().contains("[dump written by Valkey]"),
            "{err}"
        );
    }
}
