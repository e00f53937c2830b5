//! Self-test of the real-server harness in tests/it/common.

use crate::common;

use std::collections::BTreeMap;

use common::{skip_if_missing, Server, Version};

#[test]
fn each_server_starts_and_digests() {
    for v in Version::ALL {
        if skip_if_missing(v) {
            continue;
        }
        let server = Server::start(v);
        assert_eq!(server.digest(), "0".repeat(40), "{v:?}: empty dataset");

        redis::cmd("SET")
            .arg("harness:key")
            .arg("value")
            .exec(&mut server.conn())
            .unwrap();
        let digest = server.digest();
        assert_eq!(digest.len(), 40, "{v:?}: {digest}");
        assert!(
            digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{v:?}: {digest}"
        );
        assert_ne!(digest, "0".repeat(40), "{v:?}");
        assert_ne!(server.digest_value(b"harness:key"), "0".repeat(40), "{v:?}");
        assert_eq!(server.keyspace(), BTreeMap::from([(0, 1)]), "{v:?}");
    }
}

#[test]
fn pipe_feeds_resp() {
    let v = Version::V70;
    if skip_if_missing(v) {
        return;
    }
    let server = Server::start(v);
    server.pipe(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n");
    assert_eq!(server.keyspace(), BTreeMap::from([(0, 1), (2, 1)]));
}

#[test]
fn loads_generated_dumps() {
    for (v, dump) in [
        (Version::V62, "redis62_all_types_v9.rdb"),
        (Version::V70, "redis70_all_types_v10.rdb"),
        (Version::V82, "redis82_multiple_dbs_v12.rdb"),
    ] {
        if skip_if_missing(v) {
            continue;
        }
        let server = Server::start_with_dump(v, &common::testdata(dump), &[]);
        assert!(
            !server.keyspace().is_empty(),
            "{v:?}: {dump} loaded no keys"
        );
    }
    if common::falkordb_or_skip() {
        let dump = common::testdata("redis82_all_types_v12.rdb");
        let server = Server::with_falkordb(Some(&dump), &[]);
        assert_eq!(server.keyspace(), BTreeMap::from([(0, 52), (1, 4), (3, 4)]));
    }
}

/// Runs one command, panicking on an error reply.
fn run(s: &Server, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut s.conn())
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// `same_dataset`, the comparison behind every equality test, must see each difference that
/// `DEBUG DIGEST` misses: one key TTL, one field TTL, a group's last-delivered-id or entries-read
/// (a number vs nil too), a pending entry's delivery count, a module value without a digest
/// callback. Each change alone makes it fail; undone, the servers compare equal again.
#[test]
fn same_dataset_sees_what_the_digest_misses() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let graph = common::falkordb_or_skip();
    let start = || {
        if graph {
            Server::with_falkordb(None, &[])
        } else {
            Server::start(Version::V82)
        }
    };
    let (a, b) = (start(), start());
    let far = "4102444800000";
    let mut setup: Vec<Vec<&str>> = vec![
        vec!["SET", "k:ttl", "v"],
        vec!["PEXPIREAT", "k:ttl", far],
        vec!["HSET", "h", "f1", "a", "f2", "b"],
        vec!["HPEXPIREAT", "h", far, "FIELDS", "1", "f1"],
        vec!["XADD", "s", "1-1", "a", "1"],
        vec!["XADD", "s", "1-2", "b", "2"],
        vec!["XGROUP", "CREATE", "s", "g", "0"],
        vec![
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
        // the delivery time is set, not left to the clock
        vec![
            "XCLAIM",
            "s",
            "g",
            "c",
            "0",
            "1-1",
            "TIME",
            "1700000000000",
            "RETRYCOUNT",
            "1",
        ],
        vec!["SELECT", "2"],
    ];
    if graph {
        setup.push(vec!["GRAPH.QUERY", "gr", "CREATE (:N {v: 1})"]);
    }
    for s in [&a, &b] {
        let mut c = s.conn();
        for args in &setup {
            let mut cmd = redis::cmd(args[0]);
            for x in &args[1..] {
                cmd.arg(*x);
            }
            cmd.query::<redis::Value>(&mut c)
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
    common::assert_same_dataset(&a, &b);

    let mut cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "expire time",
            vec!["PEXPIREAT", "k:ttl", "4102444800001"],
            vec!["PEXPIREAT", "k:ttl", far],
        ),
        (
            "HPEXPIRETIME",
            vec!["HPEXPIREAT", "h", "4102444800001", "FIELDS", "1", "f1"],
            vec!["HPEXPIREAT", "h", far, "FIELDS", "1", "f1"],
        ),
        (
            "last-delivered-id",
            vec!["XGROUP", "SETID", "s", "g", "1-2", "ENTRIESREAD", "1"],
            vec!["XGROUP", "SETID", "s", "g", "1-1", "ENTRIESREAD", "1"],
        ),
        (
            "entries-read: 1 vs 2",
            vec!["XGROUP", "SETID", "s", "g", "1-1", "ENTRIESREAD", "2"],
            vec!["XGROUP", "SETID", "s", "g", "1-1", "ENTRIESREAD", "1"],
        ),
        (
            "entries-read: 1 vs nil",
            vec!["XGROUP", "SETID", "s", "g", "1-1"],
            vec!["XGROUP", "SETID", "s", "g", "1-1", "ENTRIESREAD", "1"],
        ),
        (
            "pending/0/3: 1 vs 5",
            vec![
                "XCLAIM",
                "s",
                "g",
                "c",
                "0",
                "1-1",
                "TIME",
                "1700000000000",
                "RETRYCOUNT",
                "5",
            ],
            vec![
                "XCLAIM",
                "s",
                "g",
                "c",
                "0",
                "1-1",
                "TIME",
                "1700000000000",
                "RETRYCOUNT",
                "1",
            ],
        ),
    ];
    if graph {
        cases.push((
            "graph \"gr\": /0/",
            vec!["GRAPH.QUERY", "gr", "MATCH (n:N) SET n.v = 2"],
            vec!["GRAPH.QUERY", "gr", "MATCH (n:N) SET n.v = 1"],
        ));
    }
    for (want, change, undo) in cases {
        let on_b = |args: &[&str]| {
            let db = if args[0] == "GRAPH.QUERY" { "2" } else { "0" };
            let mut c = b.conn();
            redis::cmd("SELECT").arg(db).exec(&mut c).unwrap();
            let mut cmd = redis::cmd(args[0]);
            for x in &args[1..] {
                cmd.arg(*x);
            }
            cmd.query::<redis::Value>(&mut c)
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        };
        on_b(&change);
        let err = common::same_dataset(&a, &b)
            .expect_err(&format!("{change:?} on one side went unnoticed"));
        assert!(err.contains(want), "{change:?}: want {want:?} in:\n{err}");
        on_b(&undo);
        common::assert_same_dataset(&a, &b);
    }
}

/// On 6.2 (no PEXPIRETIME) the expire times are compared through PTTL: equal times pass, times
/// one second apart do not.
#[test]
fn same_dataset_compares_ttls_on_62() {
    if skip_if_missing(Version::V62) {
        return;
    }
    let (a, b) = (Server::start(Version::V62), Server::start(Version::V62));
    for s in [&a, &b] {
        run(s, &["SET", "k", "v", "PXAT", "4102444800000"]);
    }
    common::assert_same_dataset(&a, &b);
    run(&b, &["PEXPIREAT", "k", "4102444801000"]);
    let err = common::same_dataset(&a, &b).expect_err("a TTL 1 s apart went unnoticed");
    assert!(err.contains("expire time"), "{err}");
}
