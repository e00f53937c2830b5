//! What an import is asked to do: the options of [`ImportConfig`] and of each data connection
//! ([`ConnConfig`]), and the reasons a key is not written ([`Skip`]).

use crate::filter::Filter;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How keys are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// RESTORE where the target can take it, commands otherwise (decided per key).
    #[default]
    Auto,
    /// RESTORE only; keys the target cannot RESTORE are reported.
    Restore,
    /// Plain commands only (module values still go by RESTORE).
    Commands,
}

/// Reasons a key is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// Excluded by `--db`/`--key`/`--type`.
    Filtered,
    /// TTL already passed.
    Expired,
    /// Acknowledged in an earlier run (checkpoint).
    Checkpoint,
    /// Empty collection (Redis does not keep those).
    Empty,
    /// Exists on the target and `--skip-existing` was given.
    Existing,
    /// Module value whose module the target lacks.
    ModuleMissing,
    /// The target cannot represent the value (e.g. field TTLs before 7.4).
    Unrepresentable,
    /// Its TTL ends soon and `--skip-expiring-within` was given.
    ExpiringSoon,
    /// Its hash slot (of the name it is written under) is not in `--slots`: another process's.
    OutsideSlots,
    /// Another input of the import holds the key too, and that copy is the one written
    /// (`--replace`: the last input's; `--skip-existing`: the first's).
    CopyInOtherInput,
}

impl Skip {
    /// Name for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Skip::Filtered => "filtered",
            Skip::Expired => "expired",
            Skip::Checkpoint => "done in an earlier run (checkpoint)",
            Skip::Empty => "empty collection",
            Skip::Existing => "exists on target (--skip-existing)",
            Skip::ModuleMissing => "module missing on target",
            Skip::Unrepresentable => "not representable on target",
            Skip::ExpiringSoon => "expiring soon (--skip-expiring-within)",
            Skip::OutsideSlots => "outside --slots",
            Skip::CopyInOtherInput => "another input's copy is written",
        }
    }
}

/// Import options.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Which keys.
    pub filter: Filter,
    /// Source db → target db.
    pub db_map: BTreeMap<u64, u64>,
    /// RESTORE / commands / auto.
    pub mode: Mode,
    /// Overwrite existing keys.
    pub replace: bool,
    /// Keep existing keys, count them.
    pub skip_existing: bool,
    /// Empty the target databases that will be written first.
    pub flush_target: bool,
    /// Missing modules are expected: their keys are skipped without failing the run.
    pub skip_modules: bool,
    /// On a target without hash field TTLs, write such hashes without them (counted) instead of
    /// refusing them.
    pub drop_field_ttls: bool,
    /// On a target without a JSON module, write RedisJSON documents as strings holding the
    /// document instead of skipping them.
    pub json_as_string: bool,
    /// Parallel data connections.
    pub connections: usize,
    /// Data-plane limits.
    pub conn: ConnConfig,
    /// Resume file.
    pub checkpoint: Option<PathBuf>,
    /// How often the resume file is rewritten.
    pub checkpoint_interval: Duration,
    /// Throttle for a primary that serves traffic during the import.
    pub rate_limit: Option<RateLimit>,
    /// Verify the dump's CRC64.
    pub verify_checksum: bool,
    /// Most bytes of encoded commands held at once (queued, in flight, kept for a rewrite after
    /// failover); one value larger than this still goes, alone.
    pub memory_budget: usize,
    /// Where the whole lists of failed, not-written and in-doubt keys go (created when the first
    /// key is reported); without it only the first 1000 of each are kept, in the summary.
    pub keys_file: Option<PathBuf>,
    /// Records the hash of every key the import writes (see [`crate::replay::keyset`]): the
    /// commands that follow the snapshot (`--follow`, an AOF's) need it under `--replace`.
    pub record_keys: Option<std::sync::Arc<crate::replay::keyset::KeyRecorder>>,
    /// `--rename`, `--ttl-shift`… applied to each selected key before it is routed and written.
    pub transform: crate::transform::Transform,
    /// What [`ImportConfig::transform`] changed.
    pub transformed: std::sync::Arc<crate::transform::TransformCounts>,
    /// The live counters the import updates, when the caller wants to read them during the run
    /// (metrics); `None`: the import keeps its own.
    pub stats: Option<std::sync::Arc<crate::replay::Stats>>,
    /// `(input index, record offset)` of the copies of keys held by several inputs that are not
    /// written (another input's copy is: `--replace` the last's, `--skip-existing` the first's).
    pub other_input_copies: Option<std::sync::Arc<std::collections::HashSet<(usize, u64)>>>,
}

/// Default [`ImportConfig::memory_budget`].
pub const DEFAULT_MEMORY_BUDGET: usize = 32 << 20;

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            filter: Filter::default(),
            db_map: BTreeMap::new(),
            mode: Mode::Auto,
            replace: false,
            skip_existing: false,
            flush_target: false,
            skip_modules: false,
            drop_field_ttls: false,
            json_as_string: false,
            connections: 2,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            conn: ConnConfig::default(),
            checkpoint: None,
            checkpoint_interval: Duration::from_secs(2),
            rate_limit: None,
            verify_checksum: true,
            keys_file: None,
            record_keys: None,
            transform: Default::default(),
            transformed: Default::default(),
            stats: None,
            other_input_copies: None,
        }
    }
}

/// `--rate-limit`: a token bucket over keys or bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimit {
    /// Keys per second.
    Keys(f64),
    /// Dump bytes per second.
    Bytes(f64),
}

/// Data-plane limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    /// Most commands in flight per connection.
    pub window_commands: usize,
    /// Most bytes in flight per connection.
    pub window_bytes: usize,
    /// A connection with commands in flight and no reply for this long is considered dead.
    pub reply_timeout: Duration,
    /// Reconnect attempts in a row before giving up.
    pub max_attempts: u32,
    /// Acknowledged batches kept per connection and written again after a failover (a primary
    /// can lose its last acknowledged writes when a replica that had not received them takes over).
    pub rewrite_batches: usize,
    /// `WAIT <n> <timeout>` after each batch: acknowledged then means replicated to `n` replicas.
    pub wait_replicas: Option<(u32, Duration)>,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            window_commands: 20_000,
            window_bytes: 16 << 20,
            reply_timeout: Duration::from_secs(30),
            max_attempts: 10,
            rewrite_batches: 256,
            wait_replicas: None,
        }
    }
}
