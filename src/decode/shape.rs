//! The shape of a stored value: the sizes of the blobs and nodes it is written as, read from its raw
//! bytes without decoding them. The memory model sizes a server's structures from these.
//!
//! Each function returns `None` when the bytes do not have the expected layout (callers then fall
//! back to sizing from the decoded value).

use super::cursor::Cursor;
use super::string::{read_count, read_len, read_string, RdbString};
use crate::error::Result;
use crate::model::Encoding;

/// Logical (uncompressed) length of the RDB string at `c`; 0 for an integer-encoded one.
fn string_len(c: &mut Cursor<'_>) -> Result<u64> {
    Ok(match read_string(c, "blob")? {
        RdbString::Raw(b) => b.len() as u64,
        RdbString::Lzf { len, .. } => len,
        RdbString::Int(_) => 0,
    })
}

/// The byte size of the one listpack a single-blob value is stored as (hash, zset and set
/// listpacks; the listpack after the minimum expiry of a listpack hash with field TTLs).
pub(crate) fn listpack_len(encoding: Encoding, raw: &[u8]) -> Option<u64> {
    let mut c = Cursor::blob(raw, 0);
    if encoding == Encoding::HashListpackEx {
        c.skip(8, "hash min expire").ok()?;
    }
    string_len(&mut c).ok()
}

/// (container, bytes) per node of a quicklist-2 list: container 1 is a plain node, 2 a listpack.
pub(crate) fn quicklist2_nodes(raw: &[u8]) -> Option<Vec<(u64, u64)>> {
    let mut c = Cursor::blob(raw, 0);
    let n = read_count(&mut c, "quicklist node count", 2).ok()?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let container = read_len(&mut c, "quicklist container").ok()?;
        out.push((container, string_len(&mut c).ok()?));
    }
    Some(out)
}

/// (master ID as its 16-byte key, listpack bytes) per node of a stream.
pub(crate) fn stream_nodes(raw: &[u8]) -> Option<Vec<([u8; 16], u64)>> {
    let mut c = Cursor::blob(raw, 0);
    let n = read_count(&mut c, "stream listpack count", 2).ok()?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let id = match read_string(&mut c, "stream node key").ok()? {
            RdbString::Raw(k) => k.try_into().unwrap_or([0; 16]),
            _ => [0; 16],
        };
        out.push((id, string_len(&mut c).ok()?));
    }
    Some(out)
}
