//! The keys an import wrote, kept as 64-bit hashes, so that the commands applied after it (a live
//! source's stream with `--follow`, an AOF's commands) can tell the snapshot's keys from keys the
//! target held before: under `--replace`, a command's first touch of a key that is neither the
//! snapshot's nor written by an earlier command deletes the target's own value first (in the same
//! `MULTI`), so that `RPUSH`, `SADD` or `INCR` build the source's value instead of adding to a
//! stranger's.
//!
//! Eight bytes per key (10 million keys: 80 MB), never the names. Two keys with one hash (about
//! one chance in 10^7 for 10^7 keys) make a foreign key look like the snapshot's: its value would
//! then be added to rather than replaced — the only inexactness, and the reason for a 64-bit hash
//! of the database and the name together rather than a shorter one.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// The hash of a key of database `db`, as [`KeyRecorder`] and [`KeySet`] use it.
pub fn key_hash(db: u64, key: &[u8]) -> u64 {
    // SipHash with fixed keys: the same hash in every run and on every machine
    let mut h = std::hash::DefaultHasher::new();
    db.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

/// Collects the hashes of the keys an import writes (from several producer threads).
#[derive(Debug, Default)]
pub struct KeyRecorder {
    hashes: Mutex<Vec<u64>>,
}

impl KeyRecorder {
    /// Adds the hashes a producer gathered (one lock per call, not per key).
    pub fn extend(&self, hashes: &mut Vec<u64>) {
        self.hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(hashes);
    }

    /// The set of everything recorded.
    pub fn finish(&self) -> KeySet {
        let v = std::mem::take(&mut *self.hashes.lock().unwrap_or_else(|e| e.into_inner()));
        KeySet::from_hashes(v)
    }
}

/// A set of key hashes: a sorted vector (8 bytes a key, no per-entry overhead).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    sorted: Vec<u64>,
}

impl KeySet {
    /// The set of these hashes.
    pub fn from_hashes(mut v: Vec<u64>) -> KeySet {
        v.sort_unstable();
        v.dedup();
        v.shrink_to_fit();
        KeySet { sorted: v }
    }

    /// Whether the key of this hash is in the set.
    pub fn contains(&self, hash: u64) -> bool {
        self.sorted.binary_search(&hash).is_ok()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

/// The keys that are the import's own: the snapshot's ([`KeySet`]) and those written by commands
/// since. A key outside both is met for the first time.
///
/// Built with [`Ours::foreign`], it remembers instead the keys the target held before the import
/// (less the snapshot's), each forgotten once met: its memory is bounded by what the target held,
/// not by how many keys a follow of days writes.
#[derive(Debug, Default)]
pub struct Ours {
    snapshot: KeySet,
    since: HashSet<u64>,
    /// The target's own keys not met yet ([`Ours::foreign`]).
    foreign: Option<HashSet<u64>>,
}

impl Ours {
    /// The snapshot's keys; none written by commands yet.
    pub fn new(snapshot: KeySet) -> Ours {
        Ours::with_touched(snapshot, HashSet::new())
    }

    /// The snapshot's keys and those commands touched already (a resumed stream).
    pub fn with_touched(snapshot: KeySet, since: HashSet<u64>) -> Ours {
        Ours {
            snapshot,
            since,
            foreign: None,
        }
    }

    /// The keys the target held before the import (`held`, hashes as [`key_hash`] makes them),
    /// and the snapshot's: a key is met "for the first time" only if the target held it and the
    /// snapshot did not replace it.
    pub fn foreign(snapshot: KeySet, held: HashSet<u64>) -> Ours {
        Ours {
            snapshot,
            since: HashSet::new(),
            foreign: Some(held),
        }
    }

    /// Records a key touched by a command; true when it was met for the first time (neither
    /// the snapshot's nor touched before).
    pub fn first_touch(&mut self, db: u64, key: &[u8]) -> bool {
        let h = key_hash(db, key);
        if self.snapshot.contains(h) {
            return false;
        }
        match &mut self.foreign {
            Some(held) => held.remove(&h),
            None => self.since.insert(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_once_and_the_snapshots_never() {
        let rec = KeyRecorder::default();
        rec.extend(&mut vec![key_hash(0, b"a"), key_hash(1, b"b")]);
        let mut ours = Ours::new(rec.finish());
        assert!(!ours.first_touch(0, b"a"));
        assert!(!ours.first_touch(1, b"b"));
        assert!(ours.first_touch(0, b"b"), "db is part of the key");
        assert!(!ours.first_touch(0, b"b"));
        assert!(ours.first_touch(2, b"a"));
    }

    #[test]
    fn foreign_keys_are_met_once_and_nothing_else_is() {
        let held = HashSet::from([key_hash(0, b"t"), key_hash(0, b"s")]);
        let mut ours = Ours::foreign(KeySet::from_hashes(vec![key_hash(0, b"s")]), held);
        assert!(!ours.first_touch(0, b"s"), "the snapshot replaced it");
        assert!(!ours.first_touch(0, b"new"), "the target never held it");
        assert!(ours.first_touch(0, b"t"));
        assert!(!ours.first_touch(0, b"t"));
    }
}
