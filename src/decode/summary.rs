//! The summary walk behind `rdbkit info`: a value checked as [`decode_value`] checks it, counted
//! without collecting the elements of its blobs.

use super::cursor::Cursor;
use super::string::{read_count, read_len, read_string, RdbString};
use super::value::{decode_value, score_of, BlobStore};
use super::{intset, listpack, ziplist};
use crate::error::{DecodeError, Result};
use crate::model::{Elem, Encoding, ModuleId, Value};

/// Like [`blob_elems!`], but hands each element to `$visit` instead of collecting them; returns
/// the element count. Same walk, same errors.
macro_rules! blob_visit {
    ($c:expr, $store:expr, $module:ident, $what:expr, $visit:expr) => {{
        let c: &mut Cursor<'a> = $c;
        let at = c.offset();
        let s = read_string(c, $what)?;
        match s {
            RdbString::Raw(b) => {
                let base = c.offset() - b.len() as u64;
                $module::walk(&mut Cursor::blob(b, base), $visit)?
            }
            RdbString::Lzf { data, len, offset } => match $store.alloc(len as usize) {
                Some(dst) => {
                    super::string::lzf_decompress_into(data, dst, offset)?;
                    $module::walk(&mut Cursor::lzf_blob(dst, at), $visit)?
                }
                None => {
                    let owned = s.to_bytes()?;
                    $module::walk(&mut Cursor::lzf_blob(&owned, at), $visit)?
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
    }};
}

/// What `rdbkit info` needs of a value, without building it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValueSummary {
    /// [`Value::len`].
    pub len: usize,
    /// [`Value::is_empty`].
    pub empty: bool,
    /// The module type of a module value.
    pub module: Option<ModuleId>,
}

impl ValueSummary {
    fn of(v: &Value<'_>) -> Self {
        ValueSummary {
            len: v.len(),
            empty: v.is_empty(),
            module: match v {
                Value::Module(m) => Some(m.id),
                _ => None,
            },
        }
    }
}

/// Checks a value as [`decode_value`] does (the same errors, in the same order) and summarises it,
/// without collecting the elements of the blob encodings most values use (listpacks, ziplists,
/// intsets, quicklists): building and dropping those vectors was a fifth of `rdbkit info` on D1.
/// Other layouts are decoded with [`decode_value`]. The test `summary_matches_decode` holds the two
/// together on every test and corpus dump and on mutations of them.
pub(crate) fn summarize_value<'a, S: BlobStore<'a>>(
    e: Encoding,
    raw: &'a [u8],
    offset: u64,
    store: &mut S,
) -> Result<ValueSummary> {
    use Encoding::*;
    let mut cur = Cursor::blob(raw, offset);
    let c = &mut cur;
    let at = offset;
    let mut ignore = |_: Elem<'_>| Ok(());
    let pairs_of = |n: usize, what: &'static str| {
        if n % 2 != 0 {
            return Err(DecodeError::invalid(
                at,
                what,
                format!("{n} elements, expected pairs"),
            ));
        }
        Ok(n / 2)
    };
    let len = match e {
        String => {
            read_string(c, "string value")?.to_elem()?;
            1
        }
        ListZiplist => blob_visit!(c, store, ziplist, "ziplist", &mut ignore),
        SetIntset => blob_visit!(c, store, intset, "intset", &mut ignore),
        SetListpack => blob_visit!(c, store, listpack, "listpack", &mut ignore),
        HashZiplist => pairs_of(
            blob_visit!(c, store, ziplist, "ziplist", &mut ignore),
            "hash",
        )?,
        HashListpack => pairs_of(
            blob_visit!(c, store, listpack, "listpack", &mut ignore),
            "hash",
        )?,
        ZsetZiplist | ZsetListpack => {
            // decode_value checks the scores after the whole walk and the pairing
            let (mut i, mut bad_score) = (0usize, None);
            let mut check = |e: Elem<'_>| {
                if i % 2 == 1 && bad_score.is_none() {
                    bad_score = score_of(&e, at).err();
                }
                i += 1;
                Ok(())
            };
            let n = if e == ZsetZiplist {
                blob_visit!(c, store, ziplist, "ziplist", &mut check)
            } else {
                blob_visit!(c, store, listpack, "listpack", &mut check)
            };
            let n = pairs_of(n, "zset")?;
            if let Some(e) = bad_score {
                return Err(e);
            }
            n
        }
        ListQuicklist => {
            let n = read_count(c, "quicklist node count", 1)?;
            let mut len = 0;
            for _ in 0..n {
                len += blob_visit!(c, store, ziplist, "quicklist ziplist node", &mut ignore);
            }
            len
        }
        ListQuicklist2 => {
            let n = read_count(c, "quicklist node count", 2)?;
            let mut len = 0;
            for _ in 0..n {
                let cat = c.offset();
                match read_len(c, "quicklist container")? {
                    1 => {
                        let s = read_string(c, "quicklist plain node")?;
                        if s.is_empty() {
                            return Err(DecodeError::invalid(cat, "quicklist", "empty plain node"));
                        }
                        s.to_elem()?;
                        len += 1;
                    }
                    2 => {
                        len +=
                            blob_visit!(c, store, listpack, "quicklist listpack node", &mut ignore)
                    }
                    k => {
                        return Err(DecodeError::invalid(
                            cat,
                            "quicklist",
                            format!("container {k} is neither 1 (plain) nor 2 (packed)"),
                        ))
                    }
                }
            }
            len
        }
        _ => return decode_value(e, raw, offset, store).map(|v| ValueSummary::of(&v)),
    };
    if !c.is_empty() {
        return Err(c.invalid(
            "value",
            format!("{} unread bytes after the value", c.remaining()),
        ));
    }
    Ok(ValueSummary {
        len,
        // strings are never empty in the `Value::is_empty` sense; the rest here are collections
        empty: e != String && len == 0,
        module: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::value::{lzf_total, Arena};
    use crate::model::Item;
    use crate::Decoder;
    use std::path::Path;

    fn compare(e: Encoding, raw: &[u8], offset: u64, what: &str) {
        let run = |summary: bool| {
            let total = lzf_total(e, raw);
            let mut scratch = vec![0u8; total];
            let mut store = Arena::new(&mut scratch);
            if summary {
                summarize_value(e, raw, offset, &mut store).map_err(|e| e.to_string())
            } else {
                decode_value(e, raw, offset, &mut store)
                    .map(|v| ValueSummary::of(&v))
                    .map_err(|e| e.to_string())
            }
        };
        assert_eq!(run(true), run(false), "{what}");
    }

    /// `summarize_value` (what `rdbkit info` uses) and `decode_value` agree on every value of the
    /// test and corpus dumps, and on byte flips and cuts of each value: the same summary or the
    /// same error.
    #[test]
    fn summary_matches_decode() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = crate::testing::rdb_files(&root.join("testdata"), u64::MAX);
        if let Some(corpus) = crate::testing::corpus_dir() {
            files.extend(crate::testing::rdb_files(&corpus, u64::MAX));
        }
        assert!(!files.is_empty());
        let (mut values, mut mutants) = (0usize, 0usize);
        let mut rng = crate::testing::XorShift::default();
        for f in &files {
            let data = std::fs::read(f).unwrap();
            for item in Decoder::new(&data).verify_checksum(false) {
                let Ok(Item::Entry(e)) = item else { continue };
                let what = format!("{} key {:?}", f.display(), e.key);
                compare(e.encoding(), e.raw, e.value_offset, &what);
                values += 1;
                // a few mutations per value: byte flips, and a cut
                let mut raw = e.raw.to_vec();
                for _ in 0..raw.len().min(6) {
                    let seed = rng.next_u64();
                    let at = (seed % raw.len() as u64) as usize;
                    let old = raw[at];
                    raw[at] ^= (seed >> 32) as u8 | 1;
                    compare(e.encoding(), &raw, e.value_offset, &what);
                    raw[at] = old;
                    compare(e.encoding(), &raw[..at], e.value_offset, &what);
                    mutants += 2;
                }
            }
        }
        assert!(values > 100, "{values} values");
        eprintln!("{} dumps, {values} values, {mutants} mutants", files.len());
    }
}
