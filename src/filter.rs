//! Key selection shared by export, import and reports: databases, Redis-style key globs, types.

use crate::cluster::SlotSet;
use crate::dups::DuplicateSelection;
use crate::model::{Entry, ValueType};
use std::sync::Arc;

/// Which entries a command works on. Empty lists mean "all".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Databases to keep.
    pub dbs: Vec<u64>,
    /// Key patterns (Redis `KEYS`/`SCAN MATCH` glob syntax); a key matching any is kept.
    pub keys: Vec<Vec<u8>>,
    /// Types to keep.
    pub types: Vec<ValueType>,
    /// Copies of duplicated keys left out (`--duplicates first|last`); not a selection rule of
    /// its own, so [`Filter::is_empty`] ignores it.
    pub duplicates: Option<Arc<DuplicateSelection>>,
    /// When set, only the records starting at these offsets (`verify --sample`: a random sample
    /// of the keys the other rules keep).
    pub sample: Option<Arc<std::collections::HashSet<u64>>>,
    /// `--slots`: only keys whose hash slot is in the set. The slot is that of the name the key
    /// is written under: [`Filter::matches`] takes the dump's name, [`Filter::matches_renamed`]
    /// another (`--rename`).
    pub slots: Option<Arc<SlotSet>>,
}

impl Filter {
    /// True when the entry passes every configured rule.
    ///
    /// ```
    /// let f = rdbkit::filter::Filter { keys: vec![b"user:*".to_vec()], ..Default::default() };
    /// let dump = rdbkit::testing::tiny_dump();
    /// let e = rdbkit::Decoder::new(&dump)
    ///     .find_map(|i| match i.unwrap() { rdbkit::Item::Entry(e) => Some(e), _ => None })
    ///     .unwrap();
    /// assert!(!f.matches(&e));
    /// ```
    pub fn matches(&self, e: &Entry<'_>) -> bool {
        self.selects(e) && self.in_slots(&e.key)
    }

    /// [`Filter::matches`] for a key written under `name` (`--rename`): the dump's name is
    /// selected by `--db`/`--key`/`--type`, the slot is that of `name`.
    pub fn matches_renamed(&self, e: &Entry<'_>, name: &[u8]) -> bool {
        self.selects(e) && self.in_slots(name)
    }

    /// Every rule but `--slots` (those that read the dump's own names).
    pub fn selects(&self, e: &Entry<'_>) -> bool {
        (self.dbs.is_empty() || self.dbs.contains(&e.db))
            && (self.types.is_empty() || self.types.contains(&e.value_type()))
            && (self.keys.is_empty() || self.keys.iter().any(|p| glob_match(p, &e.key)))
            && self.duplicates.as_ref().is_none_or(|d| d.keeps(e))
            && self.sample.as_ref().is_none_or(|s| s.contains(&e.offset))
    }

    /// True when the hash slot of `name` is in `--slots` (or no `--slots` was given).
    #[inline]
    pub fn in_slots(&self, name: &[u8]) -> bool {
        self.slots.as_ref().is_none_or(|s| s.contains_key(name))
    }

    /// True when no rule on the keys' databases, names or types is set. `--slots` is not counted:
    /// it divides the key space between processes, and the records outside the databases
    /// (function libraries, scripts) go with every part.
    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty() && self.keys.is_empty() && self.types.is_empty()
    }
}

/// Redis' glob matching (`util.c:stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes, on
/// bytes. Hand-written because users expect exactly the semantics of `KEYS`/`SCAN MATCH`, which
/// path-oriented glob crates do not give (they treat `/` and leading dots specially).
///
/// ```
/// use rdbkit::filter::glob_match;
/// assert!(glob_match(b"user:*", b"user:42"));
/// assert!(glob_match(b"h?llo", b"hallo"));
/// assert!(glob_match(b"h[^e]llo", b"hallo"));
/// assert!(!glob_match(b"h[a-b]llo", b"hello"));
/// ```
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    // iterative matcher with single-star backtracking: linear in practice, no recursion depth issues
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, s[i]) {
                        if matched {
                            p = next;
                            i += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[p] == b'['`; returns (matched, index after `]`).
fn class_match(pattern: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = p + 1;
    let negate = pattern.get(j) == Some(&b'^');
    if negate {
        j += 1;
    }
    let mut matched = false;
    loop {
        let pc = *pattern.get(j)?;
        if pc == b']' {
            break;
        }
        if pc == b'\\' && j + 1 < pattern.len() {
            if pattern[j + 1] == c {
                matched = true;
            }
            j += 2;
        } else if pattern.get(j + 1) == Some(&b'-')
            && j + 2 < pattern.len()
            && pattern[j + 2] != b']'
        {
            let (a, b) = (pc.min(pattern[j + 2]), pc.max(pattern[j + 2]));
            if (a..=b).contains(&c) {
                matched = true;
            }
            j += 3;
        } else {
            if pc == c {
                matched = true;
            }
            j += 1;
        }
    }
    Some((matched != negate, j + 1))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn redis_glob_semantics() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"*", b"a/b.c"));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(glob_match(b"\\*x", b"*x"));
        assert!(!glob_match(b"\\*x", b"ax"));
        assert!(glob_match(b"[a-c]?", b"bz"));
        assert!(glob_match(b"[c-a]?", b"bz"));
        assert!(!glob_match(b"[^a-c]?", b"bz"));
        assert!(glob_match(b"k\xff*", b"k\xff\x00"));
        assert!(!glob_match(b"abc", b"ab"));
        assert!(!glob_match(b"[abc", b"a"));
    }
}
