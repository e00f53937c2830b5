//! The keys rdbkit finds in a command (`rdbkit::commands::keys`, from the servers' key
//! specifications) are the keys the servers themselves find (`COMMAND GETKEYS`), for the write
//! commands a source replicates and an AOF records, on each server kind.

use crate::common::{self, Server, Version};

/// Write commands as they appear in a replication stream or an AOF, with the awkward ones:
/// keys after a number (`ZUNIONSTORE`, `EVAL`, `FCALL`, `LMPOP`), after a keyword (`SORT …
/// STORE`, `GEORADIUS … STORE`, `XREAD … STREAMS`), at a later index (`BITOP`, `XGROUP`,
/// `OBJECT`), repeated (`MSET`, `DEL`), none (`FLUSHALL`, `PUBLISH`).
const COMMANDS: &[&str] = &[
    "SET k v EX 10 GET",
    "SETEX k 10 v",
    "PSETEX k 10 v",
    "GETDEL k",
    "GETEX k PERSIST",
    "APPEND k v",
    "INCRBYFLOAT k 1.5",
    "MSET a 1 b 2 c 3",
    "MSETNX a 1 b 2",
    "DEL a b c",
    "UNLINK a b",
    "RENAME a b",
    "RENAMENX a b",
    "COPY a b DB 1 REPLACE",
    "MOVE a 1",
    "PEXPIREAT k 1700000000000",
    "PERSIST k",
    "RPUSH l a b",
    "LPOP l 2",
    "LMOVE a b LEFT RIGHT",
    "RPOPLPUSH a b",
    "LMPOP 2 a b LEFT COUNT 2",
    "LINSERT l BEFORE a b",
    "LTRIM l 0 -1",
    "SADD s a b",
    "SMOVE a b m",
    "SINTERSTORE d a b c",
    "SUNIONSTORE d a b",
    "SDIFFSTORE d a",
    "ZADD z 1 a",
    "ZUNIONSTORE d 2 a b WEIGHTS 1 2",
    "ZINTERSTORE d 3 a b c AGGREGATE MAX",
    "ZDIFFSTORE d 2 a b",
    "ZRANGESTORE d src 0 -1",
    "ZMPOP 2 a b MIN",
    "ZREMRANGEBYSCORE z 0 1",
    "HSET h f v",
    "HDEL h f g",
    "HINCRBY h f 1",
    "HPEXPIREAT h 1700000000000 FIELDS 1 f",
    "PFADD p a",
    "PFMERGE d a b",
    "SETBIT b 7 1",
    "BITOP AND d a b c",
    "BITFIELD b SET u8 0 1",
    "GEOADD g 1 2 m",
    "GEORADIUS g 1 2 100 km STORE d",
    "GEORADIUSBYMEMBER g m 100 km STOREDIST d",
    "GEOSEARCHSTORE d g FROMMEMBER m BYRADIUS 1 km",
    "XADD s * f v",
    "XADD s MAXLEN ~ 10 * f v",
    "XTRIM s MAXLEN 10",
    "XDEL s 1-1",
    "XSETID s 1-1",
    "XGROUP CREATE s g $ MKSTREAM",
    "XGROUP SETID s g 0",
    "XGROUP CREATECONSUMER s g c",
    "XGROUP DELCONSUMER s g c",
    "XGROUP DESTROY s g",
    "XCLAIM s g c 0 1-1 FORCE JUSTID",
    "XAUTOCLAIM s g c 0 0-0",
    "XACK s g 1-1",
    "XREAD COUNT 1 STREAMS a b 0 0",
    "SORT src BY w:* GET h:* LIMIT 0 10 STORE dst",
    "SORT src",
    "EVAL s 2 a b x",
    "EVALSHA 0123456789012345678901234567890123456789 1 a x",
    "FCALL f 2 a b x",
    "EVAL s 0 x",
    "RESTORE k 0 payload REPLACE ABSTTL",
    "SWAPDB 0 1",
    "FLUSHDB",
    "FLUSHALL ASYNC",
    "PUBLISH ch m",
    "SELECT 1",
    "PING",
];

/// The servers' own answer: the keys `COMMAND GETKEYS` lists (none when it says the command
/// has no key arguments).
fn server_keys(s: &Server, cmd: &[&str]) -> Result<Vec<String>, String> {
    let mut c = redis::cmd("COMMAND");
    c.arg("GETKEYS").arg(cmd);
    match c.query::<Vec<String>>(&mut s.conn()) {
        Ok(mut k) => {
            k.sort();
            Ok(k)
        }
        Err(e) if e.to_string().contains("no key arguments") => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn keys_of_commands_are_the_servers_own() {
    let versions = [Version::V62, Version::V70, Version::V82, Version::Valkey81];
    if versions.iter().any(|v| common::skip_if_missing(*v)) {
        return;
    }
    let mut compared = 0;
    for v in versions {
        let s = Server::start(v);
        for line in COMMANDS {
            let cmd: Vec<&str> = line.split(' ').collect();
            let Ok(want) = server_keys(&s, &cmd) else {
                // a command this server does not have (HPEXPIREAT before 7.4, LMPOP before 7.0)
                continue;
            };
            let mut got: Vec<String> = rdbkit::commands::keys::key_positions(&cmd)
                .unwrap_or_else(|| panic!("{v:?}: no keys placed for {line}"))
                .into_iter()
                .map(|i| cmd[i].to_string())
                .collect();
            got.sort();
            assert_eq!(got, want, "{v:?}: keys of {line}");
            compared += 1;
        }
    }
    // every command on 8.2 and Valkey, most on the older servers
    assert!(compared >= 4 * COMMANDS.len() - 20, "{compared} compared");
    assert_eq!(
        rdbkit::commands::keys::key_positions(&["NOSUCHCOMMAND", "k"]),
        None
    );
}
