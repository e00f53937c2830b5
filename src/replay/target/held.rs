//! What a server holds, read before anything is written: its primaries (every one of a cluster's),
//! the databases that hold keys (`INFO keyspace`), and their keys (`SCAN`). The importer's
//! preflight, the plan, the AOF and follow conflict checks and `--replace`'s first touch all read
//! the target through these, and the live source finds a cluster's primaries with them.

use super::Target;
use crate::replay::error::{redis_err, ReplayError};
use std::time::Duration;

impl Target {
    /// The primaries of a cluster this server belongs to, each reached with this target's
    /// credentials and TLS (from `CLUSTER NODES`: the primaries serving slots), or `None` when it
    /// is not a cluster node (`INFO cluster`) or is a Sentinel address.
    pub fn cluster_primaries(&self, timeout: Duration) -> Result<Option<Vec<Target>>, ReplayError> {
        if self.sentinel.is_some() {
            return Ok(None);
        }
        let pinned = self.pinned()?;
        let mut con = pinned.control(timeout)?;
        pinned.cluster_primaries_over(&mut con)
    }

    /// Every primary this target writes to, with a control connection to each: a cluster's
    /// primaries, else the one server the address (or Sentinel) resolves to.
    pub fn primaries(
        &self,
        timeout: Duration,
    ) -> Result<Vec<(Target, redis::Connection)>, ReplayError> {
        let pinned = self.pinned()?;
        let mut con = pinned.control(timeout)?;
        let cluster = match self.sentinel {
            Some(_) => None,
            None => pinned.cluster_primaries_over(&mut con)?,
        };
        let Some(nodes) = cluster else {
            // the one server: the connection that asked is the one returned
            return Ok(vec![(pinned, con)]);
        };
        nodes
            .into_iter()
            .map(|t| {
                let c = t.control(timeout)?;
                Ok((t, c))
            })
            .collect()
    }

    /// [`Target::cluster_primaries`] of this (pinned) server, asked over `con`.
    fn cluster_primaries_over(
        &self,
        con: &mut redis::Connection,
    ) -> Result<Option<Vec<Target>>, ReplayError> {
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query(con)
            .map_err(redis_err("INFO cluster"))?;
        if !info.contains("cluster_enabled:1") {
            return Ok(None);
        }
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(con)
            .map_err(redis_err("CLUSTER NODES"))?;
        let shards = crate::cluster::parse_nodes(&nodes).map_err(|e| {
            ReplayError::Protocol(format!(
                "{} is a cluster node, but its CLUSTER NODES gives no primary serving slots: {e}",
                self.display()
            ))
        })?;
        Ok(Some(
            shards
                .iter()
                .filter_map(crate::cluster::Shard::host_port)
                .map(|(host, port)| self.at(host, port))
                .collect(),
        ))
    }
}

/// The databases of the connected server that hold keys, with their key counts (`INFO keyspace`).
pub fn keyspace(con: &mut redis::Connection) -> Result<Vec<(u64, u64)>, ReplayError> {
    let ks: String = redis::cmd("INFO")
        .arg("keyspace")
        .query(con)
        .map_err(redis_err("INFO keyspace"))?;
    Ok(parse_keyspace(&ks))
}

/// `db0:keys=3,expires=0,avg_ttl=0` lines as `(0, 3)`; other lines are ignored.
fn parse_keyspace(info: &str) -> Vec<(u64, u64)> {
    info.lines()
        .filter_map(|l| {
            let (db, rest) = l.trim().strip_prefix("db")?.split_once(':')?;
            let keys = rest.split(',').find_map(|f| f.strip_prefix("keys="))?;
            Some((db.parse().ok()?, keys.parse().ok()?))
        })
        .collect()
}

/// Calls `each` with every batch of keys a `SCAN` of the selected database returns (a key may
/// come twice, as `SCAN` allows; one that exists throughout comes at least once).
pub fn scan_keys(
    con: &mut redis::Connection,
    mut each: impl FnMut(&[Vec<u8>]),
) -> Result<(), ReplayError> {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(con)
            .map_err(redis_err("SCAN"))?;
        each(&keys);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keyspace_lines_give_databases_and_counts() {
        let info = "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb12:keys=40,expires=0,avg_ttl=0,subexpiry=0\r\nnoise\r\n";
        assert_eq!(super::parse_keyspace(info), vec![(0, 3), (12, 40)]);
    }
}
