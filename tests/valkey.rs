//! Valkey as a target and a source: Redis dumps into Valkey 8.1, Valkey dumps into Redis.

mod common;

use common::{skip_if_missing, Server, Version};

/// The installed Valkey is the 8.1.8 the tests are written for, and it identifies itself as
/// Valkey in `INFO server` (which the importer relies on).
#[test]
fn valkey_server_starts() {
    if skip_if_missing(Version::Valkey81) {
        return;
    }
    let s = Server::start(Version::Valkey81);
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut s.conn())
        .unwrap();
    assert!(info.contains("server_name:valkey"), "{info}");
    assert!(info.contains("valkey_version:8.1.8"), "{info}");
    assert_eq!(s.keyspace().len(), 0);
}
