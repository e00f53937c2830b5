//! Transforms applied to each selected key on its way out (`import`, `export`): new names
//! (`--rename`) and moved, capped or dropped TTLs (`--ttl-shift`, `--ttl-max`, `--drop-ttl`,
//! `--skip-expiring-within`). They run in one place, [`Transform::apply`], after the selection
//! ([`crate::filter::Filter`] matches the dump's own names) and before anything reads the key to
//! route or write it, so a renamed key's hash slot is its new name's.
//!
//! A value's bytes never name its key, so a rename changes only the key a record is written
//! under. Key TTLs are changed; hash field TTLs, inside the value, are not.
//!
//! ```
//! use rdbkit::transform::{Rename, Transform};
//! let t = Transform {
//!     renames: vec![Rename::parse("user:*=u:{*}").unwrap()],
//!     ..Default::default()
//! };
//! assert_eq!(t.rename(b"user:42").as_deref(), Some(&b"u:{42}"[..]));
//! assert_eq!(t.rename(b"order:7"), None);
//! ```

use crate::model::Entry;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One `--rename FROM=TO`: `FROM` is the key's name with `*` standing for any run of bytes (the
/// only wildcard); each `*` of `TO` is the text the `*` of the same rank in `FROM` matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    from: Vec<Vec<u8>>,
    to: Vec<Vec<u8>>,
}

impl Rename {
    /// Parses `FROM=TO` (split at the first `=` ; `TO` may hold fewer `*` than `FROM`, not more).
    pub fn parse(s: &str) -> Result<Rename, String> {
        Rename::from_bytes(s.as_bytes())
    }

    /// [`Rename::parse`] of a binary-safe `FROM=TO`.
    pub fn from_bytes(b: &[u8]) -> Result<Rename, String> {
        let s = String::from_utf8_lossy(b);
        let eq = b
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| format!("--rename {s:?}: give FROM=TO, such as 'old:*=new:*'"))?;
        let (from, to) = (&b[..eq], &b[eq + 1..]);
        if from.is_empty() {
            return Err(format!("--rename {s:?}: FROM is empty"));
        }
        let split =
            |p: &[u8]| -> Vec<Vec<u8>> { p.split(|&b| b == b'*').map(<[u8]>::to_vec).collect() };
        let (from, to) = (split(from), split(to));
        if to.len() > from.len() {
            return Err(format!(
                "--rename {s:?}: TO has {} '*' but FROM only {}: each '*' of TO is what a '*' of FROM matched",
                to.len() - 1,
                from.len() - 1
            ));
        }
        Ok(Rename { from, to })
    }

    /// The new name of `key`, when `FROM` matches it.
    pub fn apply(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut caps = Vec::with_capacity(self.from.len() - 1);
        if !capture(&self.from, key, &mut caps) {
            return None;
        }
        let mut out = Vec::with_capacity(key.len() + 8);
        for (i, lit) in self.to.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(caps[i - 1]);
            }
            out.extend_from_slice(lit);
        }
        Some(out)
    }
}

/// Matches `key` against literal parts separated by `*`, each `*` capturing as little as it can
/// while the rest still matches (backtracking; patterns are short and typed by hand).
fn capture<'k>(parts: &[Vec<u8>], key: &'k [u8], caps: &mut Vec<&'k [u8]>) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return key.is_empty();
    };
    let Some(after) = key.strip_prefix(first.as_slice()) else {
        return false;
    };
    if rest.is_empty() {
        return after.is_empty();
    }
    for n in 0..=after.len() {
        caps.push(&after[..n]);
        if capture(rest, &after[n..], caps) {
            return true;
        }
        caps.pop();
    }
    false
}

/// What the transforms do; the default does nothing.
#[derive(Debug, Clone, Default)]
pub struct Transform {
    /// `--rename`, first match wins.
    pub renames: Vec<Rename>,
    /// `--ttl-shift`: milliseconds added to every key TTL (negative: earlier).
    pub ttl_shift_ms: i64,
    /// `--ttl-max`: a key TTL ends at most this long after now.
    pub ttl_max_ms: Option<i64>,
    /// `--skip-expiring-within`: keys whose TTL ends sooner than this after now are left out.
    pub skip_expiring_within_ms: Option<i64>,
    /// `--drop-ttl`: keys matching one of these globs (the dump's names) keep no TTL.
    pub drop_ttl: Vec<Vec<u8>>,
}

/// What the transforms changed, for the summary.
#[derive(Debug, Default)]
pub struct TransformCounts {
    /// Keys written under a new name.
    pub renamed: AtomicU64,
    /// Key TTLs moved by `--ttl-shift`.
    pub ttl_shifted: AtomicU64,
    /// Key TTLs shortened by `--ttl-max`.
    pub ttl_capped: AtomicU64,
    /// Key TTLs removed by `--drop-ttl`.
    pub ttl_dropped: AtomicU64,
    /// Keys left out by `--skip-expiring-within`.
    pub skipped_expiring: AtomicU64,
}

impl TransformCounts {
    /// One line per transform that changed something (`3 keys renamed`…).
    pub fn describe(&self) -> Vec<String> {
        let c = |a: &AtomicU64| a.load(Relaxed);
        let count = crate::text::count;
        [
            (c(&self.renamed), "renamed (--rename)"),
            (c(&self.ttl_shifted), "with their TTL moved (--ttl-shift)"),
            (c(&self.ttl_capped), "with their TTL shortened (--ttl-max)"),
            (c(&self.ttl_dropped), "with their TTL removed (--drop-ttl)"),
            (
                c(&self.skipped_expiring),
                "left out, expiring soon (--skip-expiring-within)",
            ),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{} {what}", count(n, "key")))
        .collect()
    }
}

impl Transform {
    /// True when no transform is asked for.
    pub fn is_identity(&self) -> bool {
        self.renames.is_empty()
            && self.ttl_shift_ms == 0
            && self.ttl_max_ms.is_none()
            && self.skip_expiring_within_ms.is_none()
            && self.drop_ttl.is_empty()
    }

    /// The new name of `key` (the first `--rename` that matches), if any.
    pub fn rename(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.renames.iter().find_map(|r| r.apply(key))
    }

    /// The name `key` is written under.
    pub fn name<'k>(&self, key: &'k [u8]) -> Cow<'k, [u8]> {
        match self.rename(key) {
            Some(n) => Cow::Owned(n),
            None => Cow::Borrowed(key),
        }
    }

    /// Transforms a selected entry in place, counting in `counts`; false when it is to be left
    /// out (`--skip-expiring-within`). `now_ms`: Unix milliseconds now.
    pub fn apply(&self, e: &mut Entry<'_>, now_ms: i64, counts: &TransformCounts) -> bool {
        if let Some(at) = e.expire_ms {
            if self
                .drop_ttl
                .iter()
                .any(|g| crate::filter::glob_match(g, &e.key))
            {
                e.expire_ms = None;
                counts.ttl_dropped.fetch_add(1, Relaxed);
            } else {
                let mut at = at;
                if self.ttl_shift_ms != 0 {
                    at = at.saturating_add(self.ttl_shift_ms);
                    counts.ttl_shifted.fetch_add(1, Relaxed);
                }
                if let Some(max) = self.ttl_max_ms {
                    let cap = now_ms.saturating_add(max);
                    if at > cap {
                        at = cap;
                        counts.ttl_capped.fetch_add(1, Relaxed);
                    }
                }
                // a key already expired stays so (the caller leaves it out as expired)
                if let Some(within) = self.skip_expiring_within_ms {
                    if at > now_ms && at <= now_ms.saturating_add(within) {
                        counts.skipped_expiring.fetch_add(1, Relaxed);
                        return false;
                    }
                }
                e.expire_ms = Some(at);
            }
        }
        if let Some(n) = self.rename(&e.key) {
            e.key = Cow::Owned(n);
            counts.renamed.fetch_add(1, Relaxed);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Rename {
        Rename::parse(s).unwrap()
    }

    #[test]
    fn renames_capture_each_star() {
        assert_eq!(r("a:*=b:*").apply(b"a:1"), Some(b"b:1".to_vec()));
        assert_eq!(r("a:*=b:*").apply(b"xa:1"), None);
        assert_eq!(r("exact=other").apply(b"exact"), Some(b"other".to_vec()));
        assert_eq!(r("exact=other").apply(b"exact2"), None);
        assert_eq!(
            r("*:*:v1=*:v2:*").apply(b"t:42:v1"),
            Some(b"t:v2:42".to_vec())
        );
        assert_eq!(r("s:*:x=*").apply(b"s:a:x:x"), Some(b"a:x".to_vec()));
        assert_eq!(r("*=pre:*").apply(b""), Some(b"pre:".to_vec()));
        assert_eq!(r("k*=k").apply(b"kkk"), Some(b"k".to_vec()));
        assert!(Rename::parse("a=*").is_err());
        assert!(Rename::parse("nothing").is_err());
        assert!(Rename::parse("=x").is_err());
    }

    #[test]
    fn first_rename_that_matches_wins() {
        let t = Transform {
            renames: vec![r("a:b:*=first:*"), r("a:*=second:*")],
            ..Default::default()
        };
        assert_eq!(t.rename(b"a:b:1"), Some(b"first:1".to_vec()));
        assert_eq!(t.rename(b"a:c"), Some(b"second:c".to_vec()));
        assert_eq!(&*t.name(b"z"), b"z");
    }
}
