//! Redis Cluster key slots: the CRC16 hash with `{hashtag}` rules, and slot ranges per shard
//! (equal splits, or the primaries of a `CLUSTER NODES` / `nodes.conf` listing).

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection), as Redis' `crc16.c`.
///
/// ```
/// assert_eq!(rdbkit::cluster::crc16(b"123456789"), 0x31C3);
/// ```
pub fn crc16(data: &[u8]) -> u16 {
    static TABLE: std::sync::OnceLock<[u16; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u16; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut crc = (i as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
            *slot = crc;
        }
        t
    });
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ table[usize::from(((crc >> 8) as u8) ^ b)]
    })
}

/// The hash slot of a key, as Redis' `keyHashSlot`: when the key holds a `{…}` with at least one
/// byte between the first `{` and the next `}`, only those bytes are hashed.
///
/// ```
/// use rdbkit::cluster::key_hash_slot;
/// assert_eq!(key_hash_slot(b"foo"), 12182);
/// // slots as `CLUSTER KEYSLOT` gives them (Redis 8.2)
/// assert_eq!(key_hash_slot(b"{user1000}.following"), 3443); // the tag `user1000` is hashed
/// assert_eq!(key_hash_slot(b"{}foo"), 9500); // empty tag: the whole key is hashed
/// ```
pub fn key_hash_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        match rest.iter().position(|&b| b == b'}') {
            Some(0) | None => None,
            Some(close) => Some(&rest[..close]),
        }
    });
    crc16(tagged.unwrap_or(key)) & (SLOTS - 1)
}

/// A set of hash slots (`--slots`): which keys one of several processes sharing the key space
/// takes. 16384 bits.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotSet {
    bits: Box<[u64; 256]>,
}

impl std::fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotSet({})", self.describe())
    }
}

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet {
            bits: Box::new([0; 256]),
        }
    }
}

impl SlotSet {
    /// The set of the inclusive `(first, last)` ranges (slots past 16383 are ignored).
    pub fn from_ranges(ranges: &[(u16, u16)]) -> SlotSet {
        let mut s = SlotSet::default();
        for &(a, b) in ranges {
            for slot in a..=b.min(SLOTS - 1) {
                s.bits[usize::from(slot >> 6)] |= 1 << (slot & 63);
            }
        }
        s
    }

    /// True when `slot` is in the set.
    #[inline]
    pub fn contains(&self, slot: u16) -> bool {
        slot < SLOTS && self.bits[usize::from(slot >> 6)] & (1 << (slot & 63)) != 0
    }

    /// True when the hash slot of `key` ([`key_hash_slot`]) is in the set.
    #[inline]
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.contains(key_hash_slot(key))
    }

    /// Number of slots in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True when the set holds no slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set as inclusive ranges, in order.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for slot in (0..SLOTS).filter(|&s| self.contains(s)) {
            match out.last_mut() {
                Some(r) if r.1 + 1 == slot => r.1 = slot,
                _ => out.push((slot, slot)),
            }
        }
        out
    }

    /// `0-5460,16000`: the ranges, for messages.
    pub fn describe(&self) -> String {
        let r: Vec<String> = self
            .ranges()
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        r.join(",")
    }
}

/// Parses one `--slots` value: `A-B` (inclusive), a single slot `N`, or `i/n`, the `i`-th
/// (0-based, as Kubernetes' `JOB_COMPLETION_INDEX`) of `n` equal contiguous parts of 0..16383
/// ([`equal_shards`]: the first `16384 % n` parts get one slot more).
///
/// ```
/// use rdbkit::cluster::parse_slot_range;
/// assert_eq!(parse_slot_range("0-5460"), Ok((0, 5460)));
/// assert_eq!(parse_slot_range("42"), Ok((42, 42)));
/// assert_eq!(parse_slot_range("1/3"), Ok((5462, 10922)));
/// assert!(parse_slot_range("3/3").is_err());
/// assert!(parse_slot_range("16384").is_err());
/// assert!(parse_slot_range("9-2").is_err());
/// ```
pub fn parse_slot_range(spec: &str) -> Result<(u16, u16), String> {
    let s = spec.trim();
    let num = |v: &str, what: &str| -> Result<u32, String> {
        v.trim().parse::<u32>().map_err(|_| {
            format!("bad --slots {spec:?}: {what} {v:?} is not a number (give A-B, N or i/n)")
        })
    };
    let slot = |v: &str| -> Result<u16, String> {
        let n = num(v, "slot")?;
        u16::try_from(n)
            .ok()
            .filter(|&n| n < SLOTS)
            .ok_or_else(|| format!("bad --slots {spec:?}: slot {n} is past 16383"))
    };
    if let Some((i, n)) = s.split_once('/') {
        let (i, n) = (num(i, "part")?, num(n, "part count")?);
        if n == 0 || n > u32::from(SLOTS) {
            return Err(format!(
                "bad --slots {spec:?}: the part count must be 1 to 16384"
            ));
        }
        if i >= n {
            return Err(format!(
                "bad --slots {spec:?}: parts are numbered 0 to {} (0-based, as JOB_COMPLETION_INDEX)",
                n - 1
            ));
        }
        // the i-th of equal_shards(n), without building all n
        let (base, extra) = (u32::from(SLOTS) / n, u32::from(SLOTS) % n);
        let first = i * base + i.min(extra);
        let last = first + base + u32::from(i < extra) - 1;
        return Ok((first as u16, last as u16));
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (slot(a)?, slot(b)?);
        if a > b {
            return Err(format!("bad --slots {spec:?}: an empty range ({a} > {b})"));
        }
        return Ok((a, b));
    }
    let v = slot(s)?;
    Ok((v, v))
}

/// One shard of a cluster: a name and the inclusive slot ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// A label for the shard: the node id from `nodes.conf`, or `shard-N`.
    pub name: String,
    /// The node's address from `nodes.conf` (`ip:port@cport`), if known.
    pub addr: Option<String>,
    /// Inclusive `(first, last)` slot ranges.
    pub ranges: Vec<(u16, u16)>,
}

impl Shard {
    /// The node's host and port, from its address (`ip:port@cport`; `[v6]:port`).
    ///
    /// ```
    /// let s = &rdbkit::cluster::parse_nodes("07c3 10.0.0.5:30001@40001 master - 0 0 1 connected 0-16383").unwrap()[0];
    /// assert_eq!(s.host_port(), Some(("10.0.0.5".to_string(), 30001)));
    /// ```
    pub fn host_port(&self) -> Option<(String, u16)> {
        let addr = self.addr.as_deref()?.split('@').next()?;
        let (host, port) = addr.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some((host.to_string(), port.parse().ok()?))
    }

    /// True when `slot` lies in one of the shard's ranges.
    pub fn owns(&self, slot: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }
}

/// `n` shards with equal contiguous slot ranges, as `redis-cli --cluster create` assigns them
/// (the first `16384 % n` shards get one slot more).
///
/// ```
/// let s = rdbkit::cluster::equal_shards(3);
/// assert_eq!(s[0].ranges, vec![(0, 5461)]);
/// assert_eq!(s[1].ranges, vec![(5462, 10922)]);
/// assert_eq!(s[2].ranges, vec![(10923, 16383)]);
/// ```
pub fn equal_shards(n: u16) -> Vec<Shard> {
    let n = n.clamp(1, SLOTS);
    let (base, extra) = (SLOTS / n, SLOTS % n);
    let mut first = 0u16;
    (0..n)
        .map(|i| {
            let len = base + u16::from(i < extra);
            let last = first + len - 1;
            let s = Shard {
                name: format!("shard-{i}"),
                addr: None,
                ranges: vec![(first, last)],
            };
            first = last.wrapping_add(1);
            s
        })
        .collect()
}

/// A slot lookup table built from shards: `owner(slot)` is the shard index.
#[derive(Debug, Clone)]
pub struct SlotMap {
    owner: Vec<Option<u16>>,
}

impl SlotMap {
    /// Builds the table; fails when two shards claim the same slot.
    pub fn new(shards: &[Shard]) -> Result<SlotMap, String> {
        let mut owner = vec![None; usize::from(SLOTS)];
        for (i, s) in shards.iter().enumerate() {
            for &(a, b) in &s.ranges {
                for slot in a..=b {
                    let o = &mut owner[usize::from(slot)];
                    if let Some(prev) = *o {
                        return Err(format!(
                            "slot {slot} is claimed by both {} and {}",
                            shards[usize::from(prev)].name,
                            s.name
                        ));
                    }
                    *o = Some(i as u16);
                }
            }
        }
        Ok(SlotMap { owner })
    }

    /// The index of the shard serving `slot`, if any.
    pub fn owner(&self, slot: u16) -> Option<usize> {
        self.owner
            .get(usize::from(slot))
            .copied()
            .flatten()
            .map(usize::from)
    }

    /// Slots no shard serves.
    pub fn unassigned(&self) -> usize {
        self.owner.iter().filter(|o| o.is_none()).count()
    }
}

/// Parses a `CLUSTER NODES` output or a `nodes.conf` file: one shard per primary (`master` flag)
/// that serves slots, in file order. Slot entries are `N` or `A-B`; migration entries (`[N->-id]`,
/// `[N-<-id]`) are skipped; `vars …` lines and replicas are ignored.
///
/// ```
/// let conf = "\
/// 07c3… 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
/// 67ed… 127.0.0.1:30002@40002 master - 0 0 2 connected 5461-10922 16000
/// 29ac… 127.0.0.1:30004@40004 slave 07c3… 0 0 1 connected
/// vars currentEpoch 6 lastVoteEpoch 0
/// ";
/// let shards = rdbkit::cluster::parse_nodes(conf).unwrap();
/// assert_eq!(shards.len(), 2);
/// assert_eq!(shards[1].ranges, vec![(5461, 10922), (16000, 16000)]);
/// ```
pub fn parse_nodes(text: &str) -> Result<Vec<Shard>, String> {
    let mut shards = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields[0] == "vars" {
            continue;
        }
        if fields.len() < 8 {
            return Err(format!(
                "line {}: expected `<id> <addr> <flags> <master> <ping> <pong> <epoch> <state> [slots…]`",
                n + 1
            ));
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if !flags.contains(&"master") || flags.contains(&"fail") || flags.contains(&"noaddr") {
            continue;
        }
        let mut ranges = Vec::new();
        for spec in &fields[8..] {
            if spec.starts_with('[') {
                continue;
            }
            let parse = |s: &str| -> Result<u16, String> {
                s.parse::<u16>()
                    .ok()
                    .filter(|&v| v < SLOTS)
                    .ok_or_else(|| format!("line {}: bad slot {s:?}", n + 1))
            };
            let (a, b) = match spec.split_once('-') {
                Some((a, b)) => (parse(a)?, parse(b)?),
                None => {
                    let v = parse(spec)?;
                    (v, v)
                }
            };
            if a > b {
                return Err(format!("line {}: empty slot range {spec}", n + 1));
            }
            ranges.push((a, b));
        }
        if !ranges.is_empty() {
            shards.push(Shard {
                name: fields[0].to_string(),
                addr: Some(fields[1].to_string()),
                ranges,
            });
        }
    }
    if shards.is_empty() {
        return Err("no primary with slots found".into());
    }
    Ok(shards)
}

/// A run of slots owned by one dump of a sharded backup ([`shard_ranges`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRun {
    /// Index of the dump.
    pub file: usize,
    /// First slot of the run holding a key of the dump.
    pub first: u16,
    /// Last slot of the run holding a key of the dump.
    pub last: u16,
    /// Keys of the dump in the run.
    pub keys: u64,
}

/// The slot ranges each dump of a sharded backup owns, from `counts[file][slot]` (keys of each
/// dump per slot): walking the slots in order, the slots that hold keys of one dump only form
/// runs; a run sandwiched between two runs of one other dump, with fewer keys than either, is an
/// island (keys left behind by an interrupted reshard) and belongs to the dump around it; then
/// neighbouring runs of one dump join. A dump owns the slots from the first to the last of each
/// of its runs; slots that hold keys of several dumps belong to the run they lie in.
///
/// ```
/// use rdbkit::cluster::shard_ranges;
/// let mut counts = vec![vec![0u32; 16384]; 2];
/// for s in [1, 5, 9, 100] { counts[0][s] = 3; }
/// counts[1][50] = 1; // one key of dump 1 amid dump 0's slots: an island
/// for s in [9000, 9100] { counts[1][s] = 2; }
/// let runs = shard_ranges(&counts);
/// assert_eq!(runs.len(), 2);
/// assert_eq!((runs[0].file, runs[0].first, runs[0].last), (0, 1, 100));
/// assert_eq!((runs[1].file, runs[1].first, runs[1].last), (1, 9000, 9100));
/// ```
pub fn shard_ranges(counts: &[Vec<u32>]) -> Vec<SlotRun> {
    let mut runs: Vec<SlotRun> = Vec::new();
    for slot in 0..SLOTS {
        let mut holders = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.get(usize::from(slot)).is_some_and(|n| *n > 0));
        let (Some((file, c)), None) = (holders.next(), holders.next()) else {
            continue;
        };
        let n = u64::from(c[usize::from(slot)]);
        match runs.last_mut() {
            Some(r) if r.file == file => {
                r.last = slot;
                r.keys += n;
            }
            _ => runs.push(SlotRun {
                file,
                first: slot,
                last: slot,
                keys: n,
            }),
        }
    }
    loop {
        let island = (1..runs.len().saturating_sub(1)).find(|&i| {
            let (a, r, b) = (&runs[i - 1], &runs[i], &runs[i + 1]);
            a.file == b.file && a.file != r.file && r.keys < a.keys.min(b.keys)
        });
        let Some(i) = island else { break };
        let b = runs[i + 1];
        let a = &mut runs[i - 1];
        a.last = b.last;
        a.keys += b.keys;
        runs.drain(i..=i + 1);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_parts_cover_every_slot_once() {
        for n in [1u32, 2, 3, 7, 16383, 16384] {
            let mut seen = vec![0u8; usize::from(SLOTS)];
            for i in 0..n {
                let (a, b) = parse_slot_range(&format!("{i}/{n}")).unwrap();
                for s in a..=b {
                    seen[usize::from(s)] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "n = {n}");
        }
        for n in [3u16, 7] {
            for (i, shard) in equal_shards(n).iter().enumerate() {
                assert_eq!(parse_slot_range(&format!("{i}/{n}")), Ok(shard.ranges[0]));
            }
        }
        let set = SlotSet::from_ranges(&[(0, 5), (6, 6), (100, 100)]);
        assert_eq!(set.describe(), "0-6,100");
        assert_eq!(set.len(), 8);
        assert!(set.contains_key(b"{}foo") == set.contains(9500));
        for bad in ["16384", "5/5", "x-1", "", "2-1", "1/0", "0/16385"] {
            let e = parse_slot_range(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn redis_test_vectors() {
        // crc16.c's check value and slots from the Redis Cluster specification and test suite
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_hash_slot(b"foo"), 12182);
        assert_eq!(key_hash_slot(b"bar"), 5061);
        assert_eq!(key_hash_slot(b"123456789"), 12739);
        assert_eq!(key_hash_slot(b""), 0);
        assert_eq!(
            key_hash_slot(b"{user1000}.following"),
            key_hash_slot(b"{user1000}.followers")
        );
        assert_eq!(
            key_hash_slot(b"{user1000}.following"),
            key_hash_slot(b"user1000")
        );
        // CLUSTER KEYSLOT on Redis 8.2
        assert_eq!(key_hash_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_hash_slot(b"{}foo"), 9500);
        assert_eq!(key_hash_slot(b"foo{}"), 5542);
        assert_eq!(key_hash_slot(b"{}"), 15257);
        assert_eq!(key_hash_slot(b"{bar"), 4015);
        // only the first `{` counts; `{}` hashes the whole key; `}` before `{` is plain text
        assert_eq!(key_hash_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 16383);
        assert_eq!(key_hash_slot(b"foo{{bar}}zap"), key_hash_slot(b"{bar"));
        assert_eq!(key_hash_slot(b"foo{bar}{zap}"), key_hash_slot(b"bar"));
        assert_eq!(key_hash_slot(b"}foo{"), crc16(b"}foo{") & 16383);
    }

    #[test]
    fn equal_split_covers_every_slot_once() {
        for n in [1u16, 2, 3, 5, 7, 16384] {
            let shards = equal_shards(n);
            assert_eq!(shards.len(), usize::from(n));
            let m = SlotMap::new(&shards).unwrap();
            assert_eq!(m.unassigned(), 0);
        }
    }

    #[test]
    fn nodes_conf_overlap_is_an_error() {
        let conf = "a 1:1@2 master - 0 0 1 connected 0-100\nb 1:2@3 master - 0 0 2 connected 100\n";
        let shards = parse_nodes(conf).unwrap();
        assert!(SlotMap::new(&shards).is_err());
        assert!(parse_nodes("a 1:1@2 master - 0 0 1 connected 5-x\n").is_err());
        assert!(parse_nodes("a 1:1@2 slave b 0 0 1 connected\n").is_err());
    }
}
