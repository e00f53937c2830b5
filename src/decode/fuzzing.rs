//! Entry points for the cargo-fuzz targets in `fuzz/` and their seed extractor. Not a stable API.
//!
//! Each walker of a nested encoding is wrapped in a function that takes the blob as `&[u8]` and
//! drains it completely, so a target only has to hand over the fuzzer's bytes. [`blobs`] cuts the
//! nested blobs out of a decoded entry's value bytes, to seed the per-encoding targets from real
//! dumps.

use super::cursor::Cursor;
use super::string::{lzf_decompress, read_bytes, read_count, read_len, read_string, RdbString};
use super::{intset, listpack, module, stream, value, ziplist, zipmap};
use crate::error::Result;
use crate::model::{Dialect, Elem, Encoding, Entry, Stream, Value};

/// Reads an element's logical bytes, so nothing is left undecoded.
fn touch(e: Elem<'_>) -> Result<()> {
    std::hint::black_box(e.to_bytes());
    Ok(())
}

/// Walks a whole listpack blob. Returns the element count.
pub fn listpack(blob: &[u8]) -> Result<usize> {
    listpack::walk(&mut Cursor::blob(blob, 0), &mut touch)
}

/// Walks a whole ziplist blob. Returns the entry count.
pub fn ziplist(blob: &[u8]) -> Result<usize> {
    ziplist::walk(&mut Cursor::blob(blob, 0), &mut touch)
}

/// Walks a whole intset blob. Returns the member count.
pub fn intset(blob: &[u8]) -> Result<usize> {
    intset::walk(&mut Cursor::blob(blob, 0), &mut touch)
}

/// Walks a whole zipmap blob. Returns the pair count.
pub fn zipmap(blob: &[u8]) -> Result<usize> {
    zipmap::walk(&mut Cursor::blob(blob, 0), &mut touch)
}

/// The stream value layouts, by type id.
pub const STREAM_TYPES: [u8; 4] = [15, 19, 21, 26];

/// The stream layout of type `type_id` (other types read as the newest, 26).
fn stream_gen(type_id: u8) -> stream::Gen {
    Encoding::from_type(type_id, Dialect::default()).map_or(stream::Gen::V4, stream::gen_of)
}

/// Parses a stream value of type `type_id` (15, 19, 21 or 26) with every node listpack decoded.
/// Returns the stream and the bytes it took (trailing bytes are left to the caller).
pub fn stream(type_id: u8, raw: &[u8]) -> Result<(Stream<'_>, usize)> {
    let mut c = Cursor::blob(raw, 0);
    let s = stream::parse(&mut c, stream_gen(type_id), true)?;
    Ok((s, c.pos()))
}

/// Skips a stream value the cheap way (node listpacks not decoded). Returns the bytes it took.
pub fn stream_skip(type_id: u8, raw: &[u8]) -> Result<usize> {
    let mut c = Cursor::blob(raw, 0);
    stream::parse(&mut c, stream_gen(type_id), false)?;
    Ok(c.pos())
}

/// Decodes one stream node listpack whose master ID is the 16-byte big-endian key `master`, by
/// wrapping it in a minimal type-15 stream value (one node, length 0, no groups). Returns the
/// number of live entries.
pub fn stream_node(master: &[u8; 16], lp: &[u8]) -> Result<usize> {
    let mut v = Vec::with_capacity(lp.len() + 32);
    v.push(1); // one node
    crate::write::put_string(&mut v, master);
    crate::write::put_string(&mut v, lp);
    v.extend_from_slice(&[0, 0, 0, 0]); // length, last id, no groups
    let mut c = Cursor::blob(&v, 0);
    let s = stream::parse(&mut c, stream::Gen::V1, true)?;
    Ok(s.entries.len())
}

/// Skips a module opcode stream (a module value after its type id, or a module aux body).
/// Returns the bytes it took, EOF marker included.
pub fn module_skip(body: &[u8]) -> Result<usize> {
    let mut c = Cursor::blob(body, 0);
    module::skip_opcodes(&mut c)?;
    Ok(c.pos())
}

/// Decompresses LZF `data` that must expand to exactly `len` bytes.
pub fn lzf(data: &[u8], len: u64) -> Result<Vec<u8>> {
    lzf_decompress(data, len, 0)
}

/// Reads one RDB string (raw, integer or LZF form) at the start of `data` and returns its logical
/// bytes and the bytes it took.
pub fn rdb_string(data: &[u8]) -> Result<(Vec<u8>, usize)> {
    let mut c = Cursor::blob(data, 0);
    let s = read_string(&mut c, "string")?;
    Ok((s.to_bytes()?.into_owned(), c.pos()))
}

/// Decodes the value bytes `raw` of type `type_id` as [`Entry::value`] does.
pub fn decode_value(type_id: u8, raw: &[u8], valkey: bool) -> Result<Value<'_>> {
    value::decode_type(type_id, raw, 0, Dialect { valkey }, &mut value::NoStore)
}

/// Skips the value at the start of `raw` as the file decoder does. Returns the bytes it took.
pub fn skip_value(type_id: u8, raw: &[u8], valkey: bool) -> Result<usize> {
    let mut c = Cursor::blob(raw, 0);
    value::skip_type(&mut c, type_id, Dialect { valkey })?;
    Ok(c.pos())
}

/// An entry holding the value bytes `raw` of type `type_id` (empty key, db 0, no prefixes), so a
/// target can call [`Entry::value`] and [`Entry::value_in`] on arbitrary values. `None` when
/// `type_id` is not a type in that dialect (the decoder would refuse the record).
pub fn entry(type_id: u8, raw: &[u8], valkey: bool) -> Option<Entry<'_>> {
    let encoding = Encoding::from_type(type_id, Dialect { valkey })?;
    Some(Entry {
        db: 0,
        key: std::borrow::Cow::Borrowed(b""),
        type_id,
        expire_ms: None,
        idle: None,
        freq: None,
        meta: None,
        raw,
        offset: 0,
        value_offset: 0,
        encoding,
    })
}

/// True when the entry's type id has a Valkey meaning that differs from Redis's (22, `HASH_2`):
/// the dialect flag that [`entry`] needs to read its value bytes the same way.
pub fn entry_is_valkey(e: &Entry<'_>) -> bool {
    e.encoding() == Encoding::Hash2
}

/// What a blob cut out by [`blobs`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A ziplist.
    Ziplist,
    /// A listpack.
    Listpack,
    /// An intset.
    Intset,
    /// A zipmap.
    Zipmap,
    /// A stream node: 16-byte master key, then the node listpack.
    StreamNode,
    /// An LZF-encoded RDB string (`0xC3 clen ulen data`).
    LzfString,
    /// A module opcode stream (after the module type id).
    Module,
}

/// Cuts the nested blobs out of the value bytes `raw` of type `type_id` (decompressed when they
/// were stored LZF-compressed; the compressed string is returned too). Best effort: stops quietly
/// at the first malformed part.
pub fn blobs(type_id: u8, raw: &[u8], valkey: bool) -> Vec<(BlobKind, Vec<u8>)> {
    let mut out = Vec::new();
    let _ = cut_blobs(type_id, raw, valkey, &mut out);
    out
}

/// Reads one RDB string holding a blob of `kind`; records it (and its LZF form, if any).
fn blob_string(
    c: &mut Cursor<'_>,
    kind: BlobKind,
    out: &mut Vec<(BlobKind, Vec<u8>)>,
) -> Result<()> {
    let start = c.pos();
    let s = read_string(c, "blob")?;
    if let RdbString::Lzf { .. } = s {
        out.push((BlobKind::LzfString, c.since(start).to_vec()));
    }
    out.push((kind, s.to_bytes()?.into_owned()));
    Ok(())
}

fn cut_blobs(t: u8, raw: &[u8], valkey: bool, out: &mut Vec<(BlobKind, Vec<u8>)>) -> Result<()> {
    let c = &mut Cursor::blob(raw, 0);
    match t {
        0 => {
            if let RdbString::Lzf { .. } = read_string(c, "string")? {
                out.push((BlobKind::LzfString, raw.to_vec()));
            }
        }
        9 => blob_string(c, BlobKind::Zipmap, out)?,
        10 | 12 | 13 => blob_string(c, BlobKind::Ziplist, out)?,
        11 => blob_string(c, BlobKind::Intset, out)?,
        16 | 17 | 20 => blob_string(c, BlobKind::Listpack, out)?,
        23 if !valkey => blob_string(c, BlobKind::Listpack, out)?,
        25 => {
            c.skip(8, "hash min expire")?;
            blob_string(c, BlobKind::Listpack, out)?;
        }
        14 => {
            let n = read_count(c, "quicklist node count", 1)?;
            for _ in 0..n {
                blob_string(c, BlobKind::Ziplist, out)?;
            }
        }
        18 => {
            let n = read_count(c, "quicklist node count", 2)?;
            for _ in 0..n {
                match read_len(c, "quicklist container")? {
                    2 => blob_string(c, BlobKind::Listpack, out)?,
                    _ => {
                        read_string(c, "quicklist plain node")?;
                    }
                }
            }
        }
        7 => {
            read_len(c, "module type id")?;
            out.push((BlobKind::Module, c.rest().to_vec()));
        }
        15 | 19 | 21 | 26 => {
            let n = read_count(c, "stream listpack count", 2)?;
            for _ in 0..n {
                let key = read_bytes(c, "stream node key")?;
                let start = c.pos();
                let lp = read_string(c, "stream listpack")?;
                if let RdbString::Lzf { .. } = lp {
                    out.push((BlobKind::LzfString, c.since(start).to_vec()));
                }
                let mut node = key.into_owned();
                node.extend_from_slice(&lp.to_bytes()?);
                out.push((BlobKind::StreamNode, node));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads `data` as a RedisJSON value's opcode stream (encoding version 2 or 3, by the first
/// byte's low bit): a document or an error, never a panic.
pub fn module_json(data: &[u8]) -> Result<Option<u64>> {
    let Some((&v, body)) = data.split_first() else {
        return Ok(None);
    };
    let encver = if v & 1 == 0 { 3 } else { 2 };
    super::module::json::read(body, 1, encver).map(|d| Some(d.mem_usage))
}

/// Reads `data` as the opcode stream of one of RedisBloom's types (chosen by the first byte, the
/// encoding version by the second): its parameters or an error, never a panic.
pub fn module_bloom(data: &[u8]) -> Result<Option<u64>> {
    use super::module::bloom::*;
    use super::module::ModuleData as D;
    let [t, v, body @ ..] = data else {
        return Ok(None);
    };
    let encver = u32::from(*v % 6);
    let d = match t % 5 {
        0 => D::Bloom(BloomFilter::read(body, 2, encver)?),
        1 => D::Cuckoo(CuckooFilter::read(body, 2, encver)?),
        2 => D::Cms(CountMinSketch::read(body, 2, encver)?),
        3 => D::TopK(TopK::read(body, 2, encver)?),
        _ => D::TDigest(TDigest::read(body, 2, encver)?),
    };
    let _ = d.params();
    Ok(Some(d.mem_usage()))
}

/// Reads `data` as RediSearch's aux opcode stream (encoding version 23, or 24 when the first
/// byte is odd, which is refused): the index definitions, each turned into its `FT.CREATE`
/// arguments and its `info` forms, or an error, never a panic.
pub fn module_search(data: &[u8]) -> Result<Option<u64>> {
    use super::module::search;
    let Some((&v, body)) = data.split_first() else {
        return Ok(None);
    };
    let indexes = search::read(body, 1, search::ENCVER + u32::from(v & 1))?;
    let mut n = 0u64;
    for i in &indexes {
        n += i.create_args().map_or(0, |a| a.len() as u64);
        n += i.to_text().len() as u64 + i.follow_up().len() as u64;
        let _ = i.to_json();
    }
    Ok(Some(n))
}
