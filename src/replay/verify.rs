//! `verify`: reads every key of the dump back from the target with ordinary commands (no DEBUG, so
//! it works on managed services) and compares type, value, key TTL and field TTLs.

use super::{ReplayError, Target};
use crate::filter::Filter;
use crate::model::{escape_bytes, Elem, Entry, Item, Value, ValueType};
use crate::source::Input;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Elements fetched per command when reading collections.
const CHUNK: usize = 1000;

/// Verify options.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Which keys.
    pub filter: Filter,
    /// Source db → target db.
    pub db_map: BTreeMap<u64, u64>,
    /// Allowed difference between the dump's and the target's key expiry, in ms.
    pub ttl_tolerance_ms: i64,
    /// Verify the dump's CRC64.
    pub verify_checksum: bool,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            filter: Filter::default(),
            db_map: BTreeMap::new(),
            ttl_tolerance_ms: 2000,
            verify_checksum: true,
        }
    }
}

/// What verify found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Keys compared and equal.
    pub matched: u64,
    /// (key, what differs), first 1000.
    pub mismatches: Vec<(String, String)>,
    /// Total mismatching keys.
    pub mismatched: u64,
    /// Keys not compared (filtered, expired or about to expire, empty collections).
    pub skipped: u64,
}

type Con = redis::Connection;

/// A connection for one key's reads; `asking` (the key's slot is being imported by this node)
/// puts `ASKING` before every command, as a cluster node requires.
struct Link<'c> {
    con: &'c mut Con,
    asking: bool,
}

fn q<T: redis::FromRedisValue>(c: &mut Link<'_>, cmd: &redis::Cmd) -> Result<T, String> {
    let res = if c.asking {
        redis::pipe()
            .cmd("ASKING")
            .ignore()
            .add_command(cmd.clone())
            .query::<(T,)>(c.con)
            .map(|(t,)| t)
    } else {
        cmd.query(c.con)
    };
    res.map_err(|e| match e.redirect_node() {
        // the text of the server's reply, which the caller recognises to follow the cluster
        Some((addr, slot)) if e.kind() == redis::ErrorKind::Moved => format!("MOVED {slot} {addr}"),
        Some((addr, slot)) => format!("ASK {slot} {addr}"),
        None => e.to_string(),
    })
}

/// Control connections that find a key: the one server, or a cluster's primaries routed by hash
/// slot, with the slot map read again when a node redirects.
struct Router {
    base: Target,
    timeout: std::time::Duration,
    /// Cluster: slot → index into `nodes`.
    slots: Option<Vec<u16>>,
    nodes: Vec<Target>,
    conns: Vec<Option<Con>>,
    /// Connections to the nodes named by ASK, by address.
    asked: HashMap<String, Con>,
}

impl Router {
    fn new(base: Target, first: Con, cluster: bool) -> Result<Router, ReplayError> {
        let mut r = Router {
            base,
            timeout: std::time::Duration::from_secs(30),
            slots: None,
            nodes: Vec::new(),
            conns: vec![Some(first)],
            asked: HashMap::new(),
        };
        if cluster {
            r.refresh()?;
        }
        Ok(r)
    }

    /// Reads `CLUSTER SLOTS` again (from the first node that answers).
    fn refresh(&mut self) -> Result<(), ReplayError> {
        let mut last = None;
        for c in self.conns.iter_mut().flatten() {
            match super::cluster_layout(c, &self.base) {
                Ok((slots, nodes)) => {
                    let conns = self.conns.drain(..).flatten().collect::<Vec<_>>();
                    self.conns = nodes.iter().map(|_| None).collect();
                    // keep one open connection to ask again next time
                    if let Some(c) = conns.into_iter().next() {
                        self.conns.push(Some(c));
                    }
                    self.slots = Some(slots);
                    self.nodes = nodes;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ReplayError::Config("no cluster node to ask".into())))
    }

    fn con(&mut self, key: &[u8]) -> Result<&mut Con, ReplayError> {
        let i = match &self.slots {
            None => 0,
            Some(s) => usize::from(s[usize::from(crate::cluster::key_hash_slot(key))]),
        };
        if self.conns[i].is_none() {
            self.conns[i] = Some(self.nodes[i].control(self.timeout)?);
        }
        Ok(self.conns[i].as_mut().expect("connected above"))
    }

    /// A connection to the node at `addr` (`host:port`).
    fn at(&mut self, addr: &str) -> Result<&mut Con, ReplayError> {
        if !self.asked.contains_key(addr) {
            let (host, port) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
                .ok_or_else(|| ReplayError::Protocol(format!("bad node address {addr:?}")))?;
            let c = self.base.at(host, port).control(self.timeout)?;
            self.asked.insert(addr.to_string(), c);
        }
        Ok(self.asked.get_mut(addr).expect("inserted above"))
    }
}

fn bytes_of(e: &Elem<'_>) -> Vec<u8> {
    e.to_bytes().into_owned()
}

fn parse_score(s: &[u8]) -> Option<f64> {
    crate::decode::string::parse_double(s)
}

/// Compares one key; `Ok(None)` when equal, `Ok(Some(why))` when not.
/// What the target's version offers.
#[derive(Clone, Copy)]
struct Caps {
    /// HPEXPIRETIME (7.4+).
    hfe: bool,
    /// PEXPIRETIME (7.0+); older servers answer with PTTL.
    pexpiretime: bool,
}

fn check_key(
    c: &mut Link<'_>,
    e: &Entry<'_>,
    v: &Value<'_>,
    tol: i64,
    caps: Caps,
    now: i64,
) -> Result<Option<String>, String> {
    let hfe = caps.hfe;
    let key: &[u8] = &e.key;
    let t: String = q(c, redis::cmd("TYPE").arg(key))?;
    let want = match e.value_type() {
        ValueType::Module => match v {
            Value::Module(m) => m.id.name(),
            _ => "module".into(),
        },
        other => other.name().to_string(),
    };
    if t == "none" {
        return Ok(Some("missing on target".into()));
    }
    if t != want {
        return Ok(Some(format!("type {t} on target, {want} in dump")));
    }
    let diff = match v {
        Value::String(s) => {
            let got: Vec<u8> = q(c, redis::cmd("GET").arg(key))?;
            (got != bytes_of(s))
                .then(|| format!("string value differs ({} vs {} bytes)", got.len(), s.len()))
        }
        Value::List(items) => {
            let n: usize = q(c, redis::cmd("LLEN").arg(key))?;
            if n != items.len() {
                Some(format!(
                    "list length {n} on target, {} in dump",
                    items.len()
                ))
            } else {
                let mut diff = None;
                for (ci, chunk) in items.chunks(CHUNK).enumerate() {
                    let start = ci * CHUNK;
                    let got: Vec<Vec<u8>> = q(
                        c,
                        redis::cmd("LRANGE")
                            .arg(key)
                            .arg(start)
                            .arg(start + chunk.len() - 1),
                    )?;
                    if let Some(i) = chunk.iter().zip(&got).position(|(a, b)| bytes_of(a) != *b) {
                        diff = Some(format!("list element {} differs", start + i));
                        break;
                    }
                }
                diff
            }
        }
        Value::Set(items) => {
            let n: usize = q(c, redis::cmd("SCARD").arg(key))?;
            let want: HashSet<Vec<u8>> = items.iter().map(bytes_of).collect();
            if n != want.len() {
                Some(format!("set size {n} on target, {} in dump", want.len()))
            } else {
                let mut diff = None;
                for chunk in items.chunks(CHUNK) {
                    let mut cmd = redis::cmd("SMISMEMBER");
                    cmd.arg(key);
                    for m in chunk {
                        cmd.arg(bytes_of(m));
                    }
                    let got: Vec<u8> = q(c, &cmd)?;
                    if got.contains(&0) {
                        diff = Some("set member missing on target".into());
                        break;
                    }
                }
                diff
            }
        }
        Value::SortedSet(items) => {
            let n: usize = q(c, redis::cmd("ZCARD").arg(key))?;
            if n != items.len() {
                Some(format!("zset size {n} on target, {} in dump", items.len()))
            } else {
                let want: HashMap<Vec<u8>, f64> =
                    items.iter().map(|(m, s)| (bytes_of(m), *s)).collect();
                let mut diff = None;
                let mut start = 0;
                while start < n && diff.is_none() {
                    let got: Vec<(Vec<u8>, Vec<u8>)> = q(
                        c,
                        redis::cmd("ZRANGE")
                            .arg(key)
                            .arg(start)
                            .arg(start + CHUNK - 1)
                            .arg("WITHSCORES"),
                    )?;
                    for (m, s) in &got {
                        let ok = want.get(m).is_some_and(|w| parse_score(s) == Some(*w));
                        if !ok {
                            diff = Some(format!("zset member {} differs", escape_bytes(m)));
                            break;
                        }
                    }
                    start += CHUNK;
                }
                diff
            }
        }
        Value::Hash(fields) => {
            let n: usize = q(c, redis::cmd("HLEN").arg(key))?;
            let live: Vec<_> = fields
                .iter()
                .filter(|f| f.expire_ms.is_none_or(|x| x > now + tol))
                .collect();
            let expiring = fields.len() - live.len();
            if n < live.len() || n > fields.len() {
                Some(format!(
                    "hash has {n} fields on target, {} in dump",
                    fields.len()
                ))
            } else {
                let mut diff = None;
                for chunk in live.chunks(CHUNK) {
                    let mut cmd = redis::cmd("HMGET");
                    cmd.arg(key);
                    for f in chunk {
                        cmd.arg(bytes_of(&f.field));
                    }
                    let got: Vec<Option<Vec<u8>>> = q(c, &cmd)?;
                    if let Some((f, _)) = chunk
                        .iter()
                        .zip(&got)
                        .find(|(f, g)| g.as_deref() != Some(&bytes_of(&f.value)[..]))
                    {
                        diff = Some(format!(
                            "hash field {} differs",
                            escape_bytes(&bytes_of(&f.field))
                        ));
                        break;
                    }
                    if hfe && chunk.iter().any(|f| f.expire_ms.is_some()) {
                        let mut cmd = redis::cmd("HPEXPIRETIME");
                        cmd.arg(key).arg("FIELDS").arg(chunk.len());
                        for f in chunk {
                            cmd.arg(bytes_of(&f.field));
                        }
                        let got: Vec<i64> = q(c, &cmd)?;
                        if let Some((f, g)) = chunk
                            .iter()
                            .zip(&got)
                            .find(|(f, g)| f.expire_ms.unwrap_or(-1) != **g)
                        {
                            diff = Some(format!(
                                "field TTL of {} is {g} on target, {:?} in dump",
                                escape_bytes(&bytes_of(&f.field)),
                                f.expire_ms
                            ));
                            break;
                        }
                    }
                }
                let _ = expiring;
                diff
            }
        }
        Value::Stream(s) => {
            let mut diff = None;
            let mut got_entries = 0usize;
            for chunk in s.entries.chunks(CHUNK) {
                let (first, last) = (chunk[0].id, chunk[chunk.len() - 1].id);
                let got: Vec<(String, Vec<Vec<u8>>)> = q(
                    c,
                    redis::cmd("XRANGE")
                        .arg(key)
                        .arg(first.to_string())
                        .arg(last.to_string()),
                )?;
                got_entries += got.len();
                if got.len() != chunk.len() {
                    diff = Some(format!(
                        "stream entries {first}..{last}: {} on target, {} in dump",
                        got.len(),
                        chunk.len()
                    ));
                    break;
                }
                for (want, (id, fv)) in chunk.iter().zip(&got) {
                    let flat: Vec<Vec<u8>> = want
                        .fields
                        .iter()
                        .flat_map(|(f, v)| [bytes_of(f), bytes_of(v)])
                        .collect();
                    if *id != want.id.to_string() || *fv != flat {
                        diff = Some(format!("stream entry {} differs", want.id));
                        break;
                    }
                }
                if diff.is_some() {
                    break;
                }
            }
            if diff.is_none() {
                let groups: Vec<HashMap<String, redis::Value>> =
                    q(c, redis::cmd("XINFO").arg("GROUPS").arg(key))?;
                if groups.len() != s.groups.len() {
                    diff = Some(format!(
                        "{} consumer groups on target, {} in dump",
                        groups.len(),
                        s.groups.len()
                    ));
                } else {
                    for g in &s.groups {
                        let name = String::from_utf8_lossy(&g.name).into_owned();
                        let found = groups.iter().find(|h| {
                            matches!(h.get("name"), Some(redis::Value::BulkString(b)) if *b == g.name.as_ref())
                        });
                        let Some(h) = found else {
                            diff = Some(format!("consumer group {name} missing"));
                            break;
                        };
                        let pel = match h.get("pending") {
                            Some(redis::Value::Int(n)) => *n as usize,
                            _ => usize::MAX,
                        };
                        let last = match h.get("last-delivered-id") {
                            Some(redis::Value::BulkString(b)) => {
                                String::from_utf8_lossy(b).into_owned()
                            }
                            _ => String::new(),
                        };
                        let live_pel = g.pending.iter().filter(|p| p.consumer.is_some()).count();
                        if last != g.last_delivered.to_string() || pel != live_pel {
                            diff = Some(format!("consumer group {name}: last id {last} / {pel} pending on target, {} / {live_pel} in dump", g.last_delivered));
                            break;
                        }
                    }
                }
            }
            let _ = got_entries;
            diff
        }
        Value::Module(_) => None,
    };
    if diff.is_some() {
        return Ok(diff);
    }
    // asked only of servers that have it: an unknown-command error echoes the (binary) key, which
    // the client cannot parse
    let got: i64 = if caps.pexpiretime {
        q(c, redis::cmd("PEXPIRETIME").arg(key))?
    } else {
        q::<i64>(c, redis::cmd("PTTL").arg(key)).map(|p| if p < 0 { p } else { now + p })?
    };
    Ok(match e.expire_ms {
        None if got >= 0 => Some(format!("TTL {got} on target, none in dump")),
        Some(ms) if (got - ms).abs() > tol || got < 0 => {
            Some(format!("expiry {got} on target, {ms} in dump"))
        }
        _ => None,
    })
}

/// Verifies every key of `input` on `target`.
pub fn verify(
    input: Input,
    target: &Target,
    cfg: &VerifyConfig,
) -> Result<VerifyReport, ReplayError> {
    let pinned = target.pinned()?;
    let mut c = pinned.control(std::time::Duration::from_secs(30))?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut c)
        .map_err(|e| ReplayError::Redis(e.to_string()))?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("0")
        .trim()
        .to_string();
    let rdb = super::rdb_version_for(&version, false);
    let cluster = redis::cmd("INFO")
        .arg("cluster")
        .query::<String>(&mut c)
        .is_ok_and(|i| i.contains("cluster_enabled:1"));
    let mut router = Router::new(pinned, c, cluster)?;
    let caps = Caps {
        hfe: rdb >= 12,
        pexpiretime: rdb >= 10,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut report = VerifyReport::default();
    let mut current_db = None;
    input.decode(cfg.verify_checksum, |item, _| -> Result<(), ReplayError> {
        let Item::Entry(e) = item else { return Ok(()) };
        if !cfg.filter.matches(&e)
            || e.expire_ms
                .is_some_and(|ms| ms <= now + cfg.ttl_tolerance_ms)
        {
            report.skipped += 1;
            return Ok(());
        }
        let v = e.value()?;
        if v.is_empty() {
            report.skipped += 1;
            return Ok(());
        }
        let db = target
            .db
            .filter(|_| cfg.db_map.is_empty())
            .unwrap_or_else(|| cfg.db_map.get(&e.db).copied().unwrap_or(e.db));
        if cluster && db != 0 {
            return Err(ReplayError::Config(format!(
                "a Redis Cluster has only db 0; this dump has keys in db {}: fold them with --db-map {}:0",
                e.db, e.db
            )));
        }
        if !cluster && current_db != Some(db) {
            redis::cmd("SELECT")
                .arg(db)
                .query::<()>(router.con(&e.key)?)
                .map_err(|e| ReplayError::Redis(format!("SELECT {db}: {e}")))?;
            current_db = Some(db);
        }
        // a cluster being resharded redirects: MOVED reads the slot map again, ASK reads the
        // key from the importing node (after ASKING); a few hops at most
        let mut hops = 0;
        let mut ask: Option<String> = None;
        let res = loop {
            let r = match &ask {
                None => {
                    let mut link = Link { con: router.con(&e.key)?, asking: false };
                    check_key(&mut link, &e, &v, cfg.ttl_tolerance_ms, caps, now)
                }
                Some(addr) => {
                    let mut link = Link { con: router.at(addr)?, asking: true };
                    check_key(&mut link, &e, &v, cfg.ttl_tolerance_ms, caps, now)
                }
            };
            let redirect = match &r {
                Err(why) if cluster && hops < 5 => {
                    super::conn::Redirect::parse(why, false)
                }
                _ => None,
            };
            match redirect {
                Some(to) if to.ask => ask = Some(format!("{}:{}", to.host, to.port)),
                Some(_) => {
                    ask = None;
                    router.refresh()?;
                }
                None => break r,
            }
            hops += 1;
        };
        match res {
            Ok(None) => report.matched += 1,
            Ok(Some(why)) | Err(why) => {
                report.mismatched += 1;
                if report.mismatches.len() < 1000 {
                    report
                        .mismatches
                        .push((format!("db{db} {}", escape_bytes(&e.key)), why));
                }
            }
        }
        Ok(())
    })?;
    Ok(report)
}
