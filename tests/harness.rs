//! Self-test of the real-server harness in tests/common.

mod common;

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
    if common::falkordb_available() {
        let dump = common::testdata("redis82_all_types_v12.rdb");
        let server = Server::with_falkordb(Some(&dump), &[]);
        assert_eq!(server.keyspace(), BTreeMap::from([(0, 52), (1, 4), (3, 4)]));
    }
}
