//! The scan against a small in-process fake server: duplicates, vanished keys, damaged payloads,
//! a dropped connection, the parsers.

use super::producer::*;
use super::*;
use crate::{Decoder, Item};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// A fake source on 127.0.0.1 for what a real server does only by chance (SCAN returning a
/// key twice, a key deleted between SCAN and DUMP, a damaged payload, a dropped connection):
/// `answer(conn, cmd)` gives the raw RESP reply to each command of connection `conn` (0
/// first); `None` closes the connection.
fn fake(answer: impl Fn(usize, &[String]) -> Option<Vec<u8>> + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, sock) in listener.incoming().enumerate() {
            let Ok(sock) = sock else { return };
            let mut out = sock.try_clone().unwrap();
            let mut r = BufReader::new(sock);
            let mut line = String::new();
            'conn: loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let argc: usize = line.trim()[1..].parse().unwrap();
                let mut cmd = Vec::with_capacity(argc);
                for _ in 0..argc {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    let len: usize = line.trim()[1..].parse().unwrap();
                    let mut arg = vec![0u8; len + 2];
                    std::io::Read::read_exact(&mut r, &mut arg).unwrap();
                    arg.truncate(len);
                    cmd.push(String::from_utf8(arg).unwrap());
                }
                match answer(n, &cmd) {
                    Some(reply) => out.write_all(&reply).unwrap(),
                    None => break 'conn,
                }
            }
        }
    });
    port
}

fn bulk(b: &[u8]) -> Vec<u8> {
    let mut v = format!("${}\r\n", b.len()).into_bytes();
    v.extend_from_slice(b);
    v.extend_from_slice(b"\r\n");
    v
}

/// The fake's answers to everything but SCAN and DUMP: a Redis 7.2 with one database.
fn common(cmd: &[String]) -> Vec<u8> {
    match (cmd[0].as_str(), cmd.get(1).map(String::as_str)) {
        ("INFO", Some("server")) => bulk(b"redis_version:7.2.4\r\n"),
        ("INFO", Some("keyspace")) => bulk(b"db0:keys=5,expires=1\r\n"),
        ("FUNCTION", _) => b"*0\r\n".to_vec(),
        // key "late" is deleted between its DUMP and its PEXPIRETIME; "t" has a TTL
        ("PEXPIRETIME", Some("late")) => b":-2\r\n".to_vec(),
        ("PEXPIRETIME", Some("t")) => b":4102444800000\r\n".to_vec(),
        ("PEXPIRETIME", _) => b":-1\r\n".to_vec(),
        _ => b"+OK\r\n".to_vec(),
    }
}

fn scan_reply(cursor: &str, keys: &[&str]) -> Vec<u8> {
    let mut v = b"*2\r\n".to_vec();
    v.extend(bulk(cursor.as_bytes()));
    v.extend(format!("*{}\r\n", keys.len()).into_bytes());
    for k in keys {
        v.extend(bulk(k.as_bytes()));
    }
    v
}

/// DUMP of the string `value` as Redis 7.2 writes it.
fn dump_of(value: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    put_string(&mut raw, value.as_bytes());
    bulk(&payload::build(None, 0, &raw, 11))
}

fn keys_of(dump: &[u8]) -> Vec<(String, Option<i64>)> {
    Decoder::new(dump)
        .filter_map(|i| match i.unwrap() {
            Item::Entry(e) => Some((String::from_utf8_lossy(&e.key).into_owned(), e.expire_ms)),
            _ => None,
        })
        .collect()
}

fn read_all(port: u16) -> (io::Result<Vec<u8>>, ScanStats) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let opts = ScanOptions {
        timeout: Duration::from_secs(5),
        ..ScanOptions::default()
    };
    let mut s = scan_stream(client, opts).unwrap();
    let mut out = Vec::new();
    let r = s.read_to_end(&mut out).map(|_| out);
    (r, s.stats())
}

#[test]
fn keys_returned_twice_written_once_and_vanished_ones_skipped() {
    let port = fake(|_, cmd| {
        Some(match (cmd[0].as_str(), cmd.get(1).map(String::as_str)) {
            ("SCAN", Some("0")) => scan_reply("7", &["a", "b", "t"]),
            // "b" again (a table resized under the scan), "gone" deleted before its DUMP
            ("SCAN", _) => scan_reply("0", &["b", "gone", "late", "c"]),
            ("DUMP", Some("gone")) => b"$-1\r\n".to_vec(),
            ("DUMP", Some(k)) => dump_of(&format!("value of {k}")),
            _ => common(cmd),
        })
    });
    let (dump, stats) = read_all(port);
    let dump = dump.unwrap();
    assert_eq!(&dump[..9], b"REDIS0011");
    let t = Some(4_102_444_800_000);
    let want = [("a", None), ("b", None), ("t", t), ("c", None)];
    let want: Vec<_> = want.iter().map(|(k, e)| (k.to_string(), *e)).collect();
    // the Decoder checks the CRC64 trailer too
    assert_eq!(keys_of(&dump), want);
    assert_eq!(
        (stats.keys, stats.vanished, stats.duplicates, stats.bytes),
        (4, 2, 1, dump.len() as u64)
    );
}

#[test]
fn a_damaged_payload_is_an_error_naming_its_key() {
    let port = fake(|_, cmd| {
        Some(match (cmd[0].as_str(), cmd.get(1).map(String::as_str)) {
            ("SCAN", _) => scan_reply("0", &["fine", "bro\x01ken"]),
            ("DUMP", Some("fine")) => dump_of("ok"),
            ("DUMP", Some(_)) => {
                let mut p = payload::build(None, 0, b"\x03abc", 11);
                p[2] ^= 0x20;
                bulk(&p)
            }
            _ => common(cmd),
        })
    });
    let (dump, _) = read_all(port);
    let e = dump.unwrap_err().to_string();
    assert!(
        e.contains(r#"DUMP of key "bro\x01ken" in db 0: bad payload"#)
            && e.contains("CRC64 mismatch"),
        "{e}"
    );
}

#[test]
fn a_dropped_connection_resumes_from_the_scan_cursor() {
    // the first connection closes when asked for the second SCAN page
    let port = fake(|conn, cmd| {
        Some(match (cmd[0].as_str(), cmd.get(1).map(String::as_str)) {
            ("SCAN", Some("0")) => scan_reply("9", &["a", "b"]),
            ("SCAN", _) if conn == 0 => return None,
            ("SCAN", _) => scan_reply("0", &["c"]),
            ("DUMP", Some(k)) => dump_of(k),
            _ => common(cmd),
        })
    });
    let (dump, stats) = read_all(port);
    let names: Vec<String> = keys_of(&dump.unwrap()).into_iter().map(|k| k.0).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!((stats.keys, stats.reconnects), (3, 1));
}

#[test]
fn keyspace_lines() {
    let info = "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0,subexpiry=0\r\ndb12:keys=1,expires=0,avg_ttl=0\r\n";
    assert_eq!(keyspace(info), vec![(0, 10, 2), (12, 1, 0)]);
    assert_eq!(keyspace("# Keyspace\r\n"), vec![]);
}

#[test]
fn info_fields() {
    let info = "# Server\r\nredis_version:8.2.3\r\nserver_name:valkey\r\nvalkey_version:8.1.8\r\n";
    assert_eq!(info_field(info, "redis_version"), Some("8.2.3"));
    assert_eq!(info_field(info, "server_name"), Some("valkey"));
    assert_eq!(info_field(info, "redis"), None);
}

#[test]
fn versions_of_servers_that_had_no_key() {
    let s = |v: &str, valkey| SourceServer {
        version: v.into(),
        valkey,
        databases: vec![],
    };
    assert_eq!(rdb_version_of(&s("6.2.14", false)), 9);
    assert_eq!(rdb_version_of(&s("7.0.15", false)), 10);
    assert_eq!(rdb_version_of(&s("7.2.4", false)), 11);
    assert_eq!(rdb_version_of(&s("8.2.3", false)), 12);
    assert_eq!(rdb_version_of(&s("8.1.8", true)), 11);
    assert_eq!(rdb_version_of(&s("9.0.0", true)), 80);
}
