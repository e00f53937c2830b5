//! Value layouts by encoding (format §4): the cheap "skip" walk that finds where a value ends, and
//! the typed decode of a value's raw bytes. The count-only walk of `rdbkit info` is `summary.rs`.

use super::cursor::Cursor;
use super::string::{
    read_count, read_len, read_string, read_text_double, skip_string, skip_text_double, RdbString,
};
use super::{intset, listpack, module, stream, ziplist, zipmap};
use crate::error::{DecodeError, ErrorKind, Result};
use crate::model::{Dialect, Elem, Encoding, HashField, ModuleId, ModuleValue, Value};

/// Largest absolute field expiry Redis accepts (48 bits, `EB_EXPIRE_TIME_MAX`).
const EB_EXPIRE_TIME_MAX: u64 = 0x0000_FFFF_FFFF_FFFF;

/// Moves `c` past a value stored as `e` without decoding nested blobs. This is what finds the raw
/// span of every entry, so it only reads headers and lengths.
pub(crate) fn skip_value(c: &mut Cursor<'_>, e: Encoding) -> Result<()> {
    use Encoding::*;
    match e {
        String | HashZipmap | ListZiplist | SetIntset | ZsetZiplist | HashZiplist
        | HashListpack | ZsetListpack | SetListpack | HashListpackExPreGa => {
            skip_string(c, "value")
        }
        List | Set => {
            let n = read_count(c, "element count", 1)?;
            for _ in 0..n {
                skip_string(c, "element")?;
            }
            Ok(())
        }
        Zset => {
            let n = read_count(c, "zset size", 2)?;
            for _ in 0..n {
                skip_string(c, "zset member")?;
                skip_text_double(c)?;
            }
            Ok(())
        }
        Hash => {
            let n = read_count(c, "hash size", 2)?;
            for _ in 0..2 * n {
                skip_string(c, "hash field or value")?;
            }
            Ok(())
        }
        Zset2 => {
            let n = read_count(c, "zset size", 9)?;
            for _ in 0..n {
                skip_string(c, "zset member")?;
                c.skip(8, "zset score")?;
            }
            Ok(())
        }
        Module2 => {
            read_len(c, "module type id")?;
            module::skip_opcodes(c)
        }
        ListQuicklist => {
            let n = read_count(c, "quicklist node count", 1)?;
            for _ in 0..n {
                skip_string(c, "quicklist node")?;
            }
            Ok(())
        }
        ListQuicklist2 => {
            let n = read_count(c, "quicklist node count", 2)?;
            for _ in 0..n {
                read_len(c, "quicklist container")?;
                skip_string(c, "quicklist node")?;
            }
            Ok(())
        }
        StreamListpacks | StreamListpacks2 | StreamListpacks3 | StreamListpacks4 => {
            stream::parse(c, stream::gen_of(e), false).map(|_| ())
        }
        Hash2 => {
            let n = read_count(c, "hash size", 10)?;
            for _ in 0..n {
                skip_string(c, "hash field")?;
                skip_string(c, "hash value")?;
                c.skip(8, "field expiry")?;
            }
            Ok(())
        }
        HashMetadataPreGa | HashMetadata => {
            if e == HashMetadata {
                c.skip(8, "hash min expire")?;
            }
            let n = read_count(c, "hash size", 3)?;
            for _ in 0..n {
                read_len(c, "field ttl")?;
                skip_string(c, "hash field")?;
                skip_string(c, "hash value")?;
            }
            Ok(())
        }
        HashListpackEx => {
            c.skip(8, "hash min expire")?;
            skip_string(c, "value")
        }
    }
}

/// [`skip_value`] for type byte `t` read in dialect `d`: a type unknown there is an error.
pub(crate) fn skip_type(c: &mut Cursor<'_>, t: u8, d: Dialect) -> Result<()> {
    match Encoding::from_type(t, d) {
        Some(e) => skip_value(c, e),
        None => Err(unknown_type(c, c.pos(), t)),
    }
}

/// Type ids that Redis releases after RDB 13 write (format §16.4–16.7), with their names and the
/// release that introduced them. Their layouts are described only by third-party parsers (librdb
/// and others); no Redis source with `RDB_VERSION` 14 or later could be read, so they are refused
/// by name instead of decoded by a guess.
pub(crate) fn unconfirmed_type(t: u8) -> Option<(&'static str, &'static str)> {
    Some(match t {
        27 => ("RDB_TYPE_STREAM_LISTPACKS_5", "RDB 14, Redis 8.8"),
        28 => ("RDB_TYPE_ARRAY", "RDB 14, Redis 8.8"),
        29 => ("RDB_TYPE_HASH_TMPL_LP", "RDB 15"),
        30 => ("RDB_TYPE_HASH_TMPL_LP_REF", "RDB 15"),
        31 => ("RDB_TYPE_HASH_TMPL_ARRAY", "RDB 15"),
        32 => ("RDB_TYPE_HASH_TMPL_ARRAY_REF", "RDB 15"),
        33 => ("RDB_TYPE_GCRA", "Redis Enterprise builds"),
        _ => return None,
    })
}

/// The error for a type byte `t` that cannot be decoded, read at `pos` of `c`'s input.
pub(crate) fn unknown_type(c: &Cursor<'_>, pos: usize, t: u8) -> DecodeError {
    match unconfirmed_type(t) {
        Some((name, since)) => c.err_at(
            pos,
            ErrorKind::UnconfirmedType {
                byte: t,
                name,
                since,
            },
        ),
        None => c.err_at(pos, ErrorKind::UnknownOpcode { byte: t, note: "" }),
    }
}

/// Where LZF-compressed blobs are decompressed while their elements are borrowed.
pub(crate) trait BlobStore<'a> {
    /// `len` bytes that live as long as the value, or `None` (then the blob's elements are owned).
    fn alloc(&mut self, len: usize) -> Option<&'a mut [u8]>;
}

/// No arena: elements of compressed blobs are copied out ([`Entry::value`]).
pub(crate) struct NoStore;

impl<'a> BlobStore<'a> for NoStore {
    fn alloc(&mut self, _: usize) -> Option<&'a mut [u8]> {
        None
    }
}

/// A caller's scratch buffer, pre-sized by [`lzf_total`] and handed out in disjoint pieces.
pub(crate) struct Arena<'a> {
    rest: &'a mut [u8],
}

impl<'a> Arena<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Arena { rest: buf }
    }
}

impl<'a> BlobStore<'a> for Arena<'a> {
    fn alloc(&mut self, len: usize) -> Option<&'a mut [u8]> {
        if len > self.rest.len() {
            return None;
        }
        let (piece, rest) = std::mem::take(&mut self.rest).split_at_mut(len);
        self.rest = rest;
        Some(piece)
    }
}

/// Total decompressed size of the LZF blobs of a blob-encoded value (0 when it has none or its
/// headers do not parse: the decode itself then reports the error).
pub(crate) fn lzf_total(e: Encoding, raw: &[u8]) -> usize {
    use Encoding::*;
    if !matches!(
        e,
        HashZipmap
            | ListZiplist
            | SetIntset
            | ZsetZiplist
            | HashZiplist
            | ListQuicklist
            | HashListpack
            | ZsetListpack
            | ListQuicklist2
            | SetListpack
            | HashListpackExPreGa
            | HashListpackEx
    ) {
        return 0;
    }
    let mut c = Cursor::blob(raw, 0);
    let mut total = 0u64;
    let mut add = |c: &mut Cursor<'_>| -> Result<()> {
        if let RdbString::Lzf { data, len, .. } = read_string(c, "blob")? {
            // Only lengths the data can expand to (lzf_decompress rejects the rest), so the arena
            // stays within LZF_MAX_RATIO × the value's size whatever the headers announce.
            if len <= (data.len() as u64).saturating_mul(super::string::LZF_MAX_RATIO) {
                total = total.saturating_add(len);
            }
        }
        Ok(())
    };
    let _ = (|| -> Result<()> {
        match e {
            HashZipmap | ListZiplist | SetIntset | ZsetZiplist | HashZiplist | HashListpack
            | ZsetListpack | SetListpack | HashListpackExPreGa => add(&mut c),
            HashListpackEx => {
                c.skip(8, "min expire")?;
                add(&mut c)
            }
            ListQuicklist | ListQuicklist2 => {
                let n = read_count(&mut c, "nodes", 1)?;
                for _ in 0..n {
                    if e == ListQuicklist2 {
                        read_len(&mut c, "container")?;
                    }
                    add(&mut c)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    })();
    usize::try_from(total).unwrap_or(0)
}

/// Walks the blob stored as the RDB string at `c` with `$walk`, collecting elements. Borrowed
/// blobs yield borrowed elements; LZF blobs are decompressed into the store (elements borrow
/// them) or, without room there, into a temporary buffer (elements owned).
macro_rules! blob_elems {
    ($c:expr, $store:expr, $module:ident, $what:expr) => {{
        let c: &mut Cursor<'a> = $c;
        let at = c.offset();
        let s = read_string(c, $what)?;
        let mut out: Vec<Elem<'a>> = Vec::new();
        match s {
            RdbString::Raw(b) => {
                out.reserve($module::len_hint(b));
                let base = c.offset() - b.len() as u64;
                $module::walk(&mut Cursor::blob(b, base), &mut |e| {
                    out.push(e);
                    Ok(())
                })?;
            }
            RdbString::Lzf { data, len, offset } => match $store.alloc(len as usize) {
                Some(dst) => {
                    super::string::lzf_decompress_into(data, dst, offset)?;
                    let dst: &'a [u8] = dst;
                    out.reserve($module::len_hint(dst));
                    $module::walk(&mut Cursor::lzf_blob(dst, at), &mut |e| {
                        out.push(e);
                        Ok(())
                    })?;
                }
                None => {
                    let owned = s.to_bytes()?;
                    $module::walk(&mut Cursor::lzf_blob(&owned, at), &mut |e: Elem<'_>| {
                        out.push(e.into_owned());
                        Ok(())
                    })?;
                }
            },
            RdbString::Int(_) => {
                return Err(DecodeError::invalid(
                    at,
                    $what,
                    "blob is an integer-encoded string",
                ))
            }
        }
        out
    }};
}

pub(super) fn score_of(e: &Elem<'_>, at: u64) -> Result<f64> {
    let v = match e {
        Elem::Int(i) => *i as f64,
        Elem::Bytes(b) => super::string::parse_double(b).ok_or_else(|| {
            DecodeError::invalid(
                at,
                "zset score",
                format!("not a number: {}", crate::text::escape_bytes(b)),
            )
        })?,
    };
    if v.is_nan() {
        return Err(DecodeError::invalid(at, "zset score", "NaN score"));
    }
    Ok(v)
}

fn pairs<'a>(
    elems: Vec<Elem<'a>>,
    at: u64,
    what: &'static str,
) -> Result<impl Iterator<Item = (Elem<'a>, Elem<'a>)>> {
    if elems.len() % 2 != 0 {
        return Err(DecodeError::invalid(
            at,
            what,
            format!("{} elements, expected pairs", elems.len()),
        ));
    }
    let mut it = elems.into_iter();
    Ok(std::iter::from_fn(move || Some((it.next()?, it.next()?))))
}

fn field_expiry(ttl: u64, at: u64) -> Result<Option<i64>> {
    if ttl > EB_EXPIRE_TIME_MAX {
        return Err(DecodeError::invalid(
            at,
            "hash field TTL",
            format!("{ttl} exceeds the 48-bit maximum"),
        ));
    }
    Ok(Some(ttl as i64))
}

/// [`decode_value`] for type byte `t` read in dialect `d`: a type unknown there is an error at
/// `offset`.
pub(crate) fn decode_type<'a, S: BlobStore<'a>>(
    t: u8,
    raw: &'a [u8],
    offset: u64,
    d: Dialect,
    store: &mut S,
) -> Result<Value<'a>> {
    match Encoding::from_type(t, d) {
        Some(e) => decode_value(e, raw, offset, store),
        None => Err(Cursor::blob(raw, offset).err(ErrorKind::UnknownOpcode { byte: t, note: "" })),
    }
}

/// Decodes the value bytes `raw` (stored as `e`, found at absolute `offset`) into a typed value.
pub(crate) fn decode_value<'a, S: BlobStore<'a>>(
    e: Encoding,
    raw: &'a [u8],
    offset: u64,
    store: &mut S,
) -> Result<Value<'a>> {
    use Encoding::*;
    let mut cur = Cursor::blob(raw, offset);
    let c = &mut cur;
    let at = offset;
    let v = match e {
        String => Value::String(read_string(c, "string value")?.to_elem()?),
        List | Set => {
            let n = read_count(c, "element count", 1)?;
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                v.push(read_string(c, "element")?.to_elem()?);
            }
            if e == List {
                Value::List(v)
            } else {
                Value::Set(v)
            }
        }
        Zset | Zset2 => {
            let n = read_count(c, "zset size", 2)?;
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let m = read_string(c, "zset member")?.to_elem()?;
                let score_at = c.offset();
                let s = if e == Zset {
                    read_text_double(c)?
                } else {
                    c.read_f64_le("zset score")?
                };
                if s.is_nan() {
                    return Err(DecodeError::invalid(score_at, "zset score", "NaN score"));
                }
                v.push((m, s));
            }
            Value::SortedSet(v)
        }
        Hash => {
            let n = read_count(c, "hash size", 2)?;
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let field = read_string(c, "hash field")?.to_elem()?;
                let value = read_string(c, "hash value")?.to_elem()?;
                v.push(HashField {
                    field,
                    value,
                    expire_ms: None,
                });
            }
            Value::Hash(v)
        }
        Module2 => {
            let id = ModuleId(read_len(c, "module type id")?);
            let start = c.pos();
            let offset = c.offset();
            module::skip_opcodes(c)?;
            Value::Module(ModuleValue {
                id,
                body: c.since(start),
                offset,
            })
        }
        HashZipmap | HashZiplist | HashListpack => {
            let elems = match e {
                HashZipmap => blob_elems!(c, store, zipmap, "zipmap"),
                HashZiplist => blob_elems!(c, store, ziplist, "ziplist"),
                _ => blob_elems!(c, store, listpack, "listpack"),
            };
            let v = pairs(elems, at, "hash")?
                .map(|(field, value)| HashField {
                    field,
                    value,
                    expire_ms: None,
                })
                .collect();
            Value::Hash(v)
        }
        ListZiplist => Value::List(blob_elems!(c, store, ziplist, "ziplist")),
        SetIntset => Value::Set(blob_elems!(c, store, intset, "intset")),
        SetListpack => Value::Set(blob_elems!(c, store, listpack, "listpack")),
        ZsetZiplist | ZsetListpack => {
            let elems = if e == ZsetZiplist {
                blob_elems!(c, store, ziplist, "ziplist")
            } else {
                blob_elems!(c, store, listpack, "listpack")
            };
            let mut v = Vec::with_capacity(elems.len() / 2);
            for (m, s) in pairs(elems, at, "zset")? {
                v.push((m, score_of(&s, at)?));
            }
            Value::SortedSet(v)
        }
        ListQuicklist => {
            let n = read_count(c, "quicklist node count", 1)?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.extend(blob_elems!(c, store, ziplist, "quicklist ziplist node"));
            }
            Value::List(v)
        }
        ListQuicklist2 => {
            let n = read_count(c, "quicklist node count", 2)?;
            let mut v = Vec::new();
            for _ in 0..n {
                let cat = c.offset();
                match read_len(c, "quicklist container")? {
                    1 => {
                        let s = read_string(c, "quicklist plain node")?;
                        if s.is_empty() {
                            return Err(DecodeError::invalid(cat, "quicklist", "empty plain node"));
                        }
                        v.push(s.to_elem()?);
                    }
                    2 => v.extend(blob_elems!(c, store, listpack, "quicklist listpack node")),
                    k => {
                        return Err(DecodeError::invalid(
                            cat,
                            "quicklist",
                            format!("container {k} is neither 1 (plain) nor 2 (packed)"),
                        ))
                    }
                }
            }
            Value::List(v)
        }
        StreamListpacks | StreamListpacks2 | StreamListpacks3 | StreamListpacks4 => {
            Value::Stream(Box::new(stream::parse(c, stream::gen_of(e), true)?))
        }
        Hash2 => {
            let n = read_count(c, "hash size", 10)?;
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let field = read_string(c, "hash field")?.to_elem()?;
                let value = read_string(c, "hash value")?.to_elem()?;
                let e = c.read_i64_le("field expiry")?;
                v.push(HashField {
                    field,
                    value,
                    expire_ms: (e != -1).then_some(e),
                });
            }
            Value::Hash(v)
        }
        HashMetadataPreGa | HashMetadata => {
            let min = if e == HashMetadata {
                let m = c.read_u64_le("hash min expire")?;
                if m > EB_EXPIRE_TIME_MAX {
                    return Err(
                        c.invalid("hash min expire", format!("{m} exceeds the 48-bit maximum"))
                    );
                }
                m
            } else {
                0
            };
            let n = read_count(c, "hash size", 3)?;
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let tat = c.offset();
                let ttl = read_len(c, "field ttl")?;
                let field = read_string(c, "hash field")?.to_elem()?;
                let value = read_string(c, "hash value")?.to_elem()?;
                let expire_ms = match ttl {
                    0 => None,
                    t24 if e == HashMetadata => field_expiry(t24.saturating_add(min) - 1, tat)?,
                    abs => field_expiry(abs, tat)?,
                };
                v.push(HashField {
                    field,
                    value,
                    expire_ms,
                });
            }
            Value::Hash(v)
        }
        HashListpackExPreGa | HashListpackEx => {
            if e == HashListpackEx {
                c.skip(8, "hash min expire")?;
            }
            let elems = blob_elems!(c, store, listpack, "listpack");
            if elems.len() % 3 != 0 {
                return Err(DecodeError::invalid(
                    at,
                    "hash listpack",
                    format!("{} elements, expected triples", elems.len()),
                ));
            }
            let mut v = Vec::with_capacity(elems.len() / 3);
            let mut it = elems.into_iter();
            while let (Some(field), Some(value), Some(ttl)) = (it.next(), it.next(), it.next()) {
                let expire_ms = match ttl {
                    Elem::Int(0) => None,
                    Elem::Int(ms) if ms > 0 => field_expiry(ms as u64, at)?,
                    other => {
                        return Err(DecodeError::invalid(
                            at,
                            "hash field TTL",
                            format!("bad TTL element {other:?}"),
                        ))
                    }
                };
                v.push(HashField {
                    field,
                    value,
                    expire_ms,
                });
            }
            Value::Hash(v)
        }
    };
    if !c.is_empty() {
        return Err(c.invalid(
            "value",
            format!("{} unread bytes after the value", c.remaining()),
        ));
    }
    Ok(v)
}

/// False when the value's header proves it holds at least one element; true when it may be an
/// empty collection (the caller then decodes it to know). Lets the importer skip decoding almost
/// every value on the RESTORE path.
#[cfg(feature = "import")]
pub(crate) fn may_be_empty(e: Encoding, raw: &[u8]) -> bool {
    use Encoding::*;
    let mut c = Cursor::blob(raw, 0);
    let res = (|| -> Result<bool> {
        let blob_nonempty =
            |c: &mut Cursor<'_>, at: std::ops::Range<usize>, zero_ok: bool| -> Result<bool> {
                Ok(match read_string(c, "blob")? {
                    RdbString::Raw(b) => b.get(at).is_some_and(|h| {
                        let n = h.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x));
                        n != 0 && (zero_ok || n != 65535)
                    }),
                    // writers compress only blobs over 20 bytes; empty blobs are 7 (listpack), 11
                    // (ziplist) or 8 (intset) bytes
                    RdbString::Lzf { len, .. } => len > 20,
                    RdbString::Int(_) => false,
                })
            };
        Ok(!match e {
            HashListpack | ZsetListpack | SetListpack | HashListpackExPreGa => {
                blob_nonempty(&mut c, 4..6, false)?
            }
            HashListpackEx => {
                c.skip(8, "min expire")?;
                blob_nonempty(&mut c, 4..6, false)?
            }
            ListZiplist | ZsetZiplist | HashZiplist => blob_nonempty(&mut c, 8..10, false)?,
            SetIntset => blob_nonempty(&mut c, 4..8, true)?,
            // zipmaps (Redis ≤ 2.4) are rare: decode them
            HashZipmap => false,
            List | Set | Zset | Hash | Zset2 | HashMetadataPreGa | Hash2 => {
                read_len(&mut c, "count")? > 0
            }
            HashMetadata => {
                c.skip(8, "min expire")?;
                read_len(&mut c, "count")? > 0
            }
            _ => false,
        })
    })();
    res.unwrap_or(true)
}
