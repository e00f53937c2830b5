//! What a target server is and supports (its version, the RDB version it reads, its limits and
//! modules), and the per-version rules drawn from it: the command forms it accepts and the
//! payload version with which it RESTOREs each type. Data and pure rules only, shared by the two
//! sinks that write commands: the RESP export (a target named by its release,
//! [`TargetInfo::for_release`]) and the importer (which reads it from the server,
//! `TargetInfo::probe` in `src/replay/target/`). Re-exported as `rdbkit::replay::TargetInfo`.

/// What the target is and supports, read once before the import.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    /// `redis_version` (or `valkey_version`) from `INFO server`.
    pub version: String,
    /// True for Valkey.
    pub valkey: bool,
    /// RDB version the target reads (format §15.4 table).
    pub rdb_version: u16,
    /// `proto-max-bulk-len`.
    pub bulk_limit: u64,
    /// True when `CONFIG GET` was refused and the default was assumed.
    pub bulk_limit_assumed: bool,
    /// Loaded module names (lower-case).
    pub modules: Vec<String>,
    /// Redis Enterprise (has RESTOREMODAUX).
    pub enterprise: bool,
    /// `cluster_enabled:1`.
    pub cluster: bool,
}

/// A release that [`TargetInfo::for_release`] does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target version {0:?}: expected a release such as 6.2, 7.0, 7.4, 8.2 or valkey-8.1")]
pub struct UnknownRelease(pub String);

impl TargetInfo {
    /// A target known only by its release, for output written without a connection:
    /// `6.2`, `7.0`, `7.4`, `8.2` (Redis, optionally `redis-` in front) or `valkey-8.1`.
    ///
    /// ```
    /// use rdbkit::commands::TargetInfo;
    /// let t = TargetInfo::for_release("7.0").unwrap();
    /// assert!(t.command_options().stream_v2 && !t.command_options().field_ttl);
    /// assert!(TargetInfo::for_release("valkey-8.1").unwrap().valkey);
    /// assert!(TargetInfo::for_release("seven").is_err());
    /// ```
    pub fn for_release(spec: &str) -> Result<TargetInfo, UnknownRelease> {
        let (valkey, version) = match spec.to_ascii_lowercase() {
            s if s.starts_with("valkey-") => (true, s["valkey-".len()..].to_string()),
            s if s.starts_with("redis-") => (false, s["redis-".len()..].to_string()),
            s => (false, s),
        };
        let mut parts = version.split('.');
        let well_formed = parts.clone().count() <= 3
            && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !well_formed || version.is_empty() {
            return Err(UnknownRelease(spec.to_string()));
        }
        Ok(TargetInfo {
            rdb_version: rdb_version_for(&version, valkey),
            version,
            valkey,
            bulk_limit: 512 << 20,
            bulk_limit_assumed: true,
            modules: Vec::new(),
            enterprise: false,
            cluster: false,
        })
    }
}

/// Redis release → RDB version it reads (librdb's table, format §15.4); newest first.
const REDIS_RDB: &[((u32, u32), u16)] = &[
    ((8, 8), 14),
    ((8, 6), 13),
    ((7, 4), 12),
    ((7, 2), 11),
    ((7, 0), 10),
    ((5, 0), 9),
    ((4, 0), 8),
    ((3, 2), 7),
    ((2, 6), 6),
    ((2, 4), 5),
];

/// The RDB version a server of this version reads; unknown or newer versions read as the newest
/// known.
///
/// ```
/// use rdbkit::commands::rdb_version_for;
/// assert_eq!(rdb_version_for("8.2.3", false), 12);
/// assert_eq!(rdb_version_for("7.0.15", false), 10);
/// assert_eq!(rdb_version_for("6.2.14", false), 9);
/// assert_eq!(rdb_version_for("99.0.0", false), 14);
/// assert_eq!(rdb_version_for("8.6.0", false), 13);
/// assert_eq!(rdb_version_for("9.0.0", true), 80);
/// assert_eq!(rdb_version_for("8.1.1", true), 11);
/// ```
pub fn rdb_version_for(version: &str, valkey: bool) -> u16 {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (maj, min) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if valkey {
        return if maj >= 9 { 80 } else { 11 };
    }
    REDIS_RDB
        .iter()
        .find(|((a, b), _)| (maj, min) >= (*a, *b))
        .map_or(if maj == 0 { REDIS_RDB[0].1 } else { 0 }, |r| r.1)
}

/// Highest type id a Redis server reading RDB `v` knows (format §4.1, §10.1).
fn redis_max_type(v: u16) -> u8 {
    match v {
        0..=6 => 13,
        7 | 8 => 14,
        9 => 15,
        10 => 19,
        11 => 21,
        12 => 25,
        _ => 26,
    }
}

/// The per-version rules that decide how a value can be written, shared by the importer and the
/// RESP export (`export --format resp --target-version`).
impl TargetInfo {
    /// True when the target's version has the command forms of Redis `maj.min`.
    pub fn at_least(&self, maj: u32, min: u32) -> bool {
        if self.valkey {
            // Valkey 7.2+ has everything Redis 7.2 has, and no hash field TTL commands before 9.0
            return (maj, min) <= (7, 2) || (self.rdb_version >= 80 && (maj, min) <= (7, 4));
        }
        let mut p = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (p.next().unwrap_or(0), p.next().unwrap_or(0)) >= (maj, min)
    }
    /// The command forms this target accepts, with the default chunk sizes (what it accepts
    /// per command also depends on its `proto-max-bulk-len`).
    pub fn command_options(&self) -> super::CommandOptions {
        super::CommandOptions {
            max_elements: 1024,
            max_bytes: (self.bulk_limit as usize).clamp(1024, 1 << 20),
            stream_v2: self.at_least(7, 0),
            field_ttl: self.at_least(7, 4),
            restore_version: self.rdb_version,
            can_restore: true,
            ..Default::default()
        }
    }

    /// True when the target has `FUNCTION LOAD` (Redis 7.0+, Valkey).
    pub fn has_functions(&self) -> bool {
        self.at_least(7, 0)
    }

    /// The footer version with which the target RESTOREs a value of RDB type `type_id` from a
    /// dump of `dump_version` (`dump_valkey`: written by Valkey), or `None` when it cannot read
    /// that type (or the key's metadata, `has_meta`).
    pub fn restore_version(
        &self,
        type_id: u8,
        has_meta: bool,
        dump_version: u16,
        dump_valkey: bool,
    ) -> Option<u16> {
        let (t, tv) = (type_id, self.rdb_version);
        if has_meta && (self.valkey || tv < 13) {
            return None;
        }
        let ok = if self.valkey {
            t <= 21 || (t == 22 && dump_valkey && tv >= 80)
        } else {
            t <= redis_max_type(tv) && !(t >= 22 && dump_valkey)
        };
        if !ok || t == 6 {
            return None;
        }
        // the footer only describes the envelope; a type the target knows loads the same way
        Some(if self.valkey && !dump_valkey {
            dump_version.min(11)
        } else {
            dump_version.min(tv)
        })
    }
}
