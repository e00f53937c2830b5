//! Duplicate keys: the same key twice in one database of a dump.
//!
//! Redis refuses such a dump (`RDB has duplicated key '…' in DB n`), so every command refuses it too
//! unless a copy is chosen ([`DuplicatePolicy`]). [`scan`] finds the duplicates before a command
//! starts; [`DuplicateSelection`] then keeps the chosen copy in [`crate::filter::Filter`], which
//! every command consults, so `export`, `import`, `verify`, `report`, `filter` and `split` all see
//! the same copy.
//!
//! Memory: the scan keeps one 64-bit hash of (db, key) per key (8 bytes a key, the vector
//! reserved from the RESIZEDB hints that Redis writes), sorts them and looks for equal
//! neighbours. Only when some hashes repeat does a second pass collect the keys with those hashes
//! (bytes and offsets), which confirms real duplicates and rules out hash collisions.

use crate::error::DecodeError;
use crate::model::{Entry, Item};
use crate::source::Input;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// What to do with a key that appears more than once in one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicatePolicy {
    /// Refuse the dump, as Redis does (the default).
    #[default]
    Refuse,
    /// Keep the first copy in file order.
    First,
    /// Keep the last copy in file order (what a replay without the check would leave).
    Last,
}

/// One key found more than once in one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// Database number.
    pub db: u64,
    /// The key.
    pub key: Vec<u8>,
    /// Record offsets of every copy, in file order.
    pub offsets: Vec<u64>,
    /// The dump's own name of every copy, in file order: `key` itself, unless [`scan_names`]
    /// gave the keys other names (`--rename`).
    pub sources: Vec<Vec<u8>>,
}

impl std::fmt::Display for Duplicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let offsets: Vec<String> = self.offsets.iter().map(|o| format!("0x{o:x}")).collect();
        write!(
            f,
            "db {} key {} at offsets {}",
            self.db,
            crate::text::escape_bytes(&self.key),
            offsets.join(", ")
        )
    }
}

/// What [`scan`] found.
#[derive(Debug, Clone, Default)]
pub struct DuplicateScan {
    /// Keys read (every copy counted).
    pub keys: u64,
    /// The duplicated keys, in file order of their first copy.
    pub duplicates: Vec<Duplicate>,
    /// The offset where framing stopped early (a corrupt or truncated dump): only the keys before
    /// it were checked. The command's own pass reports that error, in file order with the others.
    pub stopped_at: Option<u64>,
}

impl DuplicateScan {
    /// Copies beyond the first, summed over the duplicated keys.
    pub fn extra_copies(&self) -> u64 {
        self.duplicates
            .iter()
            .map(|d| d.offsets.len() as u64 - 1)
            .sum()
    }
}

/// "1 key appears more than once" / "3 keys appear more than once".
pub fn count_keys(n: usize) -> String {
    if n == 1 {
        "1 key appears more than once".into()
    } else {
        format!("{n} keys appear more than once")
    }
}

fn key_hash(db: u64, key: &[u8]) -> u64 {
    // SipHash-1-3 with fixed keys: deterministic, and collisions are confirmed anyway
    let mut h = std::hash::DefaultHasher::new();
    db.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

/// Finds the keys that appear more than once in one database of the dump that `open` opens
/// (called once, or twice when some key hashes repeat). Records are framed, not decoded; the
/// checksum is not verified here (the command's own pass does that). A dump that stops framing
/// early is checked up to that point ([`DuplicateScan::stopped_at`]).
pub fn scan(open: impl FnMut() -> std::io::Result<Input>) -> Result<DuplicateScan, ScanError> {
    scan_names(open, |e| Some(std::borrow::Cow::Borrowed(&e.key)))
}

/// [`scan`] of the names keys will have: `name` gives an entry's (`None`: the key is left out),
/// so that keys renamed onto one name (`--rename`) are found as duplicates of it.
pub fn scan_names(
    mut open: impl FnMut() -> std::io::Result<Input>,
    name: impl for<'e> Fn(&'e Entry<'_>) -> Option<std::borrow::Cow<'e, [u8]>>,
) -> Result<DuplicateScan, ScanError> {
    let mut hashes: Vec<u64> = Vec::new();
    let first = open()?.decode(false, |item, _| -> Result<(), DecodeError> {
        match item {
            Item::ResizeDb { db_size, .. } => {
                // a hint: never reserve more than a few million at once on its word alone
                hashes.reserve(db_size.min(1 << 22) as usize);
            }
            Item::Entry(e) => {
                if let Some(n) = name(&e) {
                    hashes.push(key_hash(e.db, &n));
                }
            }
            _ => {}
        }
        Ok(())
    });
    let stopped_at = first.err().map(|e| e.offset());
    let keys = hashes.len() as u64;
    hashes.sort_unstable();
    let suspects: HashSet<u64> = hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(hashes);
    let mut out = DuplicateScan {
        keys,
        duplicates: Vec::new(),
        stopped_at,
    };
    if suspects.is_empty() {
        return Ok(out);
    }
    // second pass: the keys behind the repeated hashes, compared byte for byte
    let mut copies: HashMap<(u64, Vec<u8>), Vec<Copy>> = HashMap::new();
    let mut order: Vec<(u64, Vec<u8>)> = Vec::new();
    // stops where the first pass stopped, with the same error
    let _ = open()?.decode(false, |item, _| -> Result<(), DecodeError> {
        if let Item::Entry(e) = item {
            let Some(n) = name(&e) else { return Ok(()) };
            if suspects.contains(&key_hash(e.db, &n)) {
                let id = (e.db, n.to_vec());
                let offsets = copies.entry(id.clone()).or_default();
                if offsets.is_empty() {
                    order.push(id);
                }
                offsets.push((e.offset, e.key.to_vec()));
            }
        }
        Ok(())
    });
    for id in order {
        if let Some(copies) = copies.remove(&id).filter(|o| o.len() > 1) {
            let (offsets, sources) = copies.into_iter().unzip();
            out.duplicates.push(Duplicate {
                db: id.0,
                key: id.1,
                offsets,
                sources,
            });
        }
    }
    Ok(out)
}

/// A key found in more than one input of a multi-file import (`copies` in file order, at least
/// two files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossDuplicate {
    /// Database the key is written to.
    pub db: u64,
    /// The name the key is written under.
    pub key: Vec<u8>,
    /// `(input index, record offset)` of every copy.
    pub copies: Vec<(usize, u64)>,
}

/// Finds the keys that more than one of the inputs `opens` opens hold (each called once, or
/// twice when some key hashes repeat across inputs). `name` gives an entry's database and name as
/// written (`None`: left out). 16 bytes a key while looking; a key repeated within one input is
/// [`scan`]'s concern and not reported here. When an input cannot be read whole (truncated,
/// corrupt) nothing is reported: the damage is the caller's to report first, by the pass that
/// reads it (the import names the file and offset), not overlaps that may be its artefacts.
pub fn scan_across<O: FnMut() -> std::io::Result<Input>>(
    opens: &mut [O],
    name: impl for<'e> Fn(&'e Entry<'_>) -> Option<(u64, std::borrow::Cow<'e, [u8]>)>,
) -> Result<Vec<CrossDuplicate>, ScanError> {
    let mut hashes: Vec<(u64, u32)> = Vec::new();
    for (i, open) in opens.iter_mut().enumerate() {
        let read = open()?.decode(false, |item, _| -> Result<(), DecodeError> {
            if let Item::Entry(e) = item {
                if let Some((db, n)) = name(&e) {
                    hashes.push((key_hash(db, &n), i as u32));
                }
            }
            Ok(())
        });
        if read.is_err() {
            return Ok(Vec::new());
        }
    }
    hashes.sort_unstable();
    hashes.dedup();
    let suspects: HashSet<u64> = hashes
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[0].0)
        .collect();
    drop(hashes);
    if suspects.is_empty() {
        return Ok(Vec::new());
    }
    let mut copies: HashMap<(u64, Vec<u8>), Vec<InputCopy>> = HashMap::new();
    let mut order: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, open) in opens.iter_mut().enumerate() {
        let _ = open()?.decode(false, |item, _| -> Result<(), DecodeError> {
            if let Item::Entry(e) = item {
                let Some((db, n)) = name(&e) else {
                    return Ok(());
                };
                if suspects.contains(&key_hash(db, &n)) {
                    let id = (db, n.to_vec());
                    let c = copies.entry(id.clone()).or_default();
                    if c.is_empty() {
                        order.push(id);
                    }
                    c.push((i, e.offset));
                }
            }
            Ok(())
        });
    }
    Ok(order
        .into_iter()
        .filter_map(|id| {
            let c = copies.remove(&id)?;
            let first = c.first()?.0;
            c.iter()
                .any(|(f, _)| *f != first)
                .then_some(CrossDuplicate {
                    db: id.0,
                    key: id.1,
                    copies: c,
                })
        })
        .collect())
}

/// One copy of a key in a multi-input import: the input's index and the record's offset.
type InputCopy = (usize, u64);

/// One copy of a key: its record's offset and the dump's name of it.
type Copy = (u64, Vec<u8>);

/// Why [`scan`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The input could not be opened again.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The copies a [`DuplicatePolicy`] drops, for [`crate::filter::Filter`].
#[derive(Debug, Clone, Default)]
pub struct DuplicateSelection {
    /// Record offset → (db, key) of the copies left out.
    dropped: HashMap<u64, Vec<(u64, Vec<u8>)>>,
}

impl DuplicateSelection {
    /// The copies that `policy` leaves out of the dump scanned as `found` (`Refuse` drops none:
    /// the caller refuses the dump instead).
    pub fn new(found: &DuplicateScan, policy: DuplicatePolicy) -> Self {
        let mut dropped: HashMap<u64, Vec<(u64, Vec<u8>)>> = HashMap::new();
        for d in &found.duplicates {
            let keep = match policy {
                DuplicatePolicy::Refuse => continue,
                DuplicatePolicy::First => d.offsets.first(),
                DuplicatePolicy::Last => d.offsets.last(),
            };
            for o in d.offsets.iter().filter(|&o| Some(o) != keep) {
                dropped.entry(*o).or_default().push((d.db, d.key.clone()));
            }
        }
        DuplicateSelection { dropped }
    }

    /// Adds the selection of another input (a multi-file import): copies are named by offset,
    /// database and key, so selections of different files do not mix up.
    pub fn extend(&mut self, other: DuplicateSelection) {
        for (o, ids) in other.dropped {
            self.dropped.entry(o).or_default().extend(ids);
        }
    }

    /// False for a copy that the policy leaves out.
    #[inline]
    pub fn keeps(&self, e: &Entry<'_>) -> bool {
        if self.dropped.is_empty() {
            return true;
        }
        match self.dropped.get(&e.offset) {
            Some(ids) => !ids
                .iter()
                .any(|(db, k)| *db == e.db && k.as_slice() == e.key.as_ref()),
            None => true,
        }
    }

    /// Number of copies left out.
    pub fn dropped(&self) -> usize {
        self.dropped.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::RdbWriter;

    fn dump() -> Vec<u8> {
        let mut w = RdbWriter::new(12);
        w.select_db(0)
            .resize_db(4, 0)
            .string_key(b"a", b"1", None)
            .string_key(b"dup", b"first", None)
            .string_key(b"b", b"2", None)
            .string_key(b"dup", b"second", None)
            .select_db(1)
            .string_key(b"dup", b"other db", None);
        w.finish()
    }

    fn values(d: &[u8], sel: &DuplicateSelection) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
        crate::Decoder::new(d)
            .filter_map(|i| match i.unwrap() {
                Item::Entry(e) if sel.keeps(&e) => {
                    let v = match e.value().unwrap() {
                        crate::Value::String(s) => s.to_bytes().into_owned(),
                        _ => unreachable!(),
                    };
                    Some((e.db, e.key.to_vec(), v))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn finds_duplicates_per_db_and_selects_a_copy() {
        let d = dump();
        let found = scan(|| Ok(Input::Bytes(d.clone()))).unwrap();
        assert_eq!(found.keys, 5);
        assert_eq!(found.duplicates.len(), 1, "{:?}", found.duplicates);
        let dup = &found.duplicates[0];
        assert_eq!((dup.db, dup.key.as_slice()), (0, &b"dup"[..]));
        assert_eq!(dup.offsets.len(), 2);
        assert!(dup.offsets[0] < dup.offsets[1]);
        assert_eq!(found.extra_copies(), 1);

        let first = DuplicateSelection::new(&found, DuplicatePolicy::First);
        let last = DuplicateSelection::new(&found, DuplicatePolicy::Last);
        assert_eq!(first.dropped(), 1);
        let v = |sel: &DuplicateSelection| -> Vec<Vec<u8>> {
            values(&d, sel)
                .into_iter()
                .filter(|(db, k, _)| *db == 0 && k == b"dup")
                .map(|(_, _, v)| v)
                .collect()
        };
        assert_eq!(v(&first), vec![b"first".to_vec()]);
        assert_eq!(v(&last), vec![b"second".to_vec()]);
        // the key of db 1 is not a duplicate and is always kept
        assert!(values(&d, &last).contains(&(1, b"dup".to_vec(), b"other db".to_vec())));
        assert_eq!(
            DuplicateSelection::new(&found, DuplicatePolicy::Refuse).dropped(),
            0
        );
    }

    #[test]
    fn no_duplicates_means_one_pass_and_nothing_dropped() {
        let mut w = RdbWriter::new(12);
        w.select_db(0);
        for i in 0..1000 {
            w.string_key(format!("k{i}").as_bytes(), b"v", None);
        }
        let d = w.finish();
        let mut opened = 0;
        let found = scan(|| {
            opened += 1;
            Ok(Input::Bytes(d.clone()))
        })
        .unwrap();
        assert_eq!((found.keys, found.duplicates.len(), opened), (1000, 0, 1));
    }
}
