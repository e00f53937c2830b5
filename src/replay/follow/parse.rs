//! The source's stream read into ops: `SELECT` followed, `MULTI`/`EXEC` gathered into one op,
//! `PING` and `REPLCONF` consumed (a `GETACK` answered), relative expirations made absolute,
//! `--db` and `--db-map` applied.

use super::{FollowConfig, Op};
use crate::source::replica::ReplicaProgress;
use crate::source::resp::{Command, CommandReader};
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Millisecond Unix time now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads commands into ops until the stream ends or `until` is passed.
pub(super) fn parse<R: BufRead>(
    mut reader: CommandReader<R>,
    live: &ReplicaProgress,
    cfg: &FollowConfig,
    ops: &async_channel::Sender<Op>,
    skipped: &AtomicU64,
) -> Result<(), String> {
    let mut db = 0u64;
    let mut block: Option<Op> = None;
    loop {
        if reader.position() >= cfg.until.load(Relaxed) || cfg.abort.load(Relaxed) {
            return Ok(());
        }
        let Some(c) = reader.next_command().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let end = reader.position();
        let start = end - c.len;
        let op = |db, cmds, block| Op {
            start,
            end,
            db,
            cmds,
            block,
        };
        let out = if c.is("PING") {
            Some(op(db, Vec::new(), false))
        } else if c.is("SELECT") {
            db = c
                .args
                .get(1)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(db);
            Some(op(db, Vec::new(), false))
        } else if c.is("REPLCONF") {
            if c.args
                .get(1)
                .is_some_and(|a| a.eq_ignore_ascii_case(b"GETACK"))
            {
                live.ack_now();
            }
            Some(op(db, Vec::new(), false))
        } else if c.is("MULTI") {
            block = Some(op(db, Vec::new(), true));
            None
        } else if c.is("EXEC") {
            block.take().map(|mut b| {
                b.end = end;
                b
            })
        } else {
            let args = absolute_ttl(c, now_ms());
            match block.as_mut() {
                Some(b) => {
                    b.cmds.push(args);
                    None
                }
                None => Some(op(db, vec![args], false)),
            }
        };
        if let Some(mut o) = out {
            if !o.cmds.is_empty() && !cfg.dbs.is_empty() && !cfg.dbs.contains(&o.db) {
                skipped.fetch_add(o.cmds.len() as u64, Relaxed);
                o.cmds.clear();
            }
            o.db = match cfg.target_db.filter(|_| cfg.db_map.is_empty()) {
                Some(db) => db,
                None => cfg.db_map.get(&o.db).copied().unwrap_or(o.db),
            };
            if ops.send_blocking(o).is_err() {
                return Ok(());
            }
        }
    }
}

/// Relative expirations become absolute, so that a TTL does not grow by the time the command
/// waited (Redis 6.2 replicates `EXPIRE`, `SETEX`, `SET … EX` as sent; 7.0 already sends
/// `PEXPIREAT` and `PXAT`). `now` is when the command is read from the stream.
pub fn absolute_ttl(c: Command, now: i64) -> Vec<Vec<u8>> {
    let num = |a: &[u8]| -> Option<i64> { std::str::from_utf8(a).ok()?.parse().ok() };
    let at = |v: i64, unit: i64| (now + v.saturating_mul(unit)).to_string().into_bytes();
    let mut args = c.args;
    // only names of up to 7 letters matter here: the rest pass without an allocation
    if args[0].len() > 7 {
        return args;
    }
    let name = args[0].to_ascii_uppercase();
    match name.as_slice() {
        b"EXPIRE" | b"PEXPIRE" if args.len() >= 3 => {
            if let Some(v) = num(&args[2]) {
                let unit = if name == b"EXPIRE" { 1000 } else { 1 };
                args[0] = b"PEXPIREAT".to_vec();
                args[2] = at(v, unit);
            }
        }
        b"SETEX" | b"PSETEX" if args.len() == 4 => {
            if let Some(v) = num(&args[2]) {
                let unit = if name == b"SETEX" { 1000 } else { 1 };
                let value = args.pop().unwrap_or_default();
                let key = std::mem::take(&mut args[1]);
                args = vec![b"SET".to_vec(), key, value, b"PXAT".to_vec(), at(v, unit)];
            }
        }
        b"SET" | b"GETEX" => {
            let first = if name == b"SET" { 3 } else { 2 };
            for i in first..args.len().saturating_sub(1) {
                let unit = if args[i].eq_ignore_ascii_case(b"EX") {
                    1000
                } else if args[i].eq_ignore_ascii_case(b"PX") {
                    1
                } else {
                    continue;
                };
                if let Some(v) = num(&args[i + 1]) {
                    args[i] = b"PXAT".to_vec();
                    args[i + 1] = at(v, unit);
                }
                break;
            }
        }
        _ => {}
    }
    args
}

/// Which key routes a command in a cluster: most commands name it first; a few later.
pub(super) fn routing_key(args: &[Vec<u8>]) -> Option<&[u8]> {
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"BITOP" => args.get(2),
        b"EVAL" | b"EVALSHA" | b"FCALL" | b"FCALL_RO" => {
            let n: u64 = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if n == 0 {
                None
            } else {
                args.get(3)
            }
        }
        b"FLUSHALL" | b"FLUSHDB" | b"FUNCTION" | b"SCRIPT" | b"PUBLISH" | b"SPUBLISH"
        | b"SWAPDB" | b"MULTI" | b"EXEC" => None,
        _ => args.get(1),
    }
    .map(|k| k.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Command {
        Command {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            len: 0,
        }
    }

    fn strs(v: Vec<Vec<u8>>) -> Vec<String> {
        v.into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn relative_ttls_become_absolute() {
        let now = 1_000_000;
        assert_eq!(
            strs(absolute_ttl(cmd(&["expire", "k", "10"]), now)),
            ["PEXPIREAT", "k", "1010000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["PEXPIRE", "k", "5", "NX"]), now)),
            ["PEXPIREAT", "k", "1000005", "NX"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["SETEX", "k", "2", "v"]), now)),
            ["SET", "k", "v", "PXAT", "1002000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["set", "k", "v", "px", "7", "GET"]), now)),
            ["set", "k", "v", "PXAT", "1000007", "GET"]
        );
        // a value that reads "EX" is not an option
        assert_eq!(
            strs(absolute_ttl(cmd(&["SET", "EX", "EX", "EX", "3"]), now)),
            ["SET", "EX", "EX", "PXAT", "1003000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["PEXPIREAT", "k", "99"]), now)),
            ["PEXPIREAT", "k", "99"]
        );
    }
}
