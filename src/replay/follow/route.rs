//! Where an op goes in a cluster: by the hash slot of its key, split per slot when its keys span
//! several, or to every primary for commands on a whole database or on code.

use super::parse::routing_key;
use super::Op;
use crate::replay::target::Target;
use std::collections::BTreeMap;

/// The follow's slot map: slot → index of the primary's writer. Only the dispatcher reads and
/// changes it (the importer's `Routes` is shared by its connections and fixed in size); a
/// redirection to a node that was not a primary at the start (a reshard onto a new node, a
/// target's failover) adds a node, and the dispatcher starts a writer for it.
pub(super) struct SlotMap {
    owner: Vec<usize>,
    pub(super) nodes: Vec<Target>,
}

impl SlotMap {
    pub(super) fn new(slots: Vec<u16>, nodes: Vec<Target>) -> SlotMap {
        SlotMap {
            owner: slots.into_iter().map(usize::from).collect(),
            nodes,
        }
    }

    /// The index of the node at `host:port`, added when new (`true`).
    pub(super) fn node(&mut self, host: &str, port: u16) -> (usize, bool) {
        if let Some(i) = self
            .nodes
            .iter()
            .position(|n| n.port == port && (host.is_empty() || n.host == host))
        {
            return (i, false);
        }
        let base = self.nodes[0].clone();
        let host = if host.is_empty() {
            base.host.clone()
        } else {
            host.to_string()
        };
        self.nodes.push(base.at(host, port));
        (self.nodes.len() - 1, true)
    }

    /// A MOVED: `slot` is served by node `i` from now on.
    pub(super) fn moved(&mut self, slot: u16, i: usize) {
        if let Some(o) = self.owner.get_mut(usize::from(slot)) {
            *o = i;
        }
    }

    fn shard(&self, slot: u16) -> usize {
        self.owner.get(usize::from(slot)).copied().unwrap_or(0)
    }
}

/// Splits an op whose keys fall in several hash slots into one op per slot (a cluster refuses
/// them whole): a `MULTI` block by command, and `DEL`, `UNLINK`, `TOUCH` and `MSET` by key.
pub(super) fn by_slot(op: Op) -> Vec<Op> {
    let slot = |k: &[u8]| crate::cluster::key_hash_slot(k);
    let mut cmds: Vec<(Option<u16>, Vec<Vec<u8>>)> = Vec::new();
    for c in op.cmds.iter() {
        let name = c[0].to_ascii_uppercase();
        let step = match name.as_slice() {
            b"DEL" | b"UNLINK" | b"TOUCH" => 1,
            b"MSET" => 2,
            _ => 0,
        };
        if step > 0 && c.len() > 1 + step {
            let mut per: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
            for kv in c[1..].chunks(step) {
                per.entry(slot(&kv[0]))
                    .or_insert_with(|| vec![c[0].clone()])
                    .extend(kv.iter().cloned());
            }
            if per.len() > 1 {
                cmds.extend(per.into_iter().map(|(s, c)| (Some(s), c)));
                continue;
            }
        }
        cmds.push((routing_key(c).map(slot), c.clone()));
    }
    let mut parts: BTreeMap<Option<u16>, Vec<Vec<Vec<u8>>>> = BTreeMap::new();
    let first = cmds.iter().find_map(|(s, _)| *s);
    for (s, c) in cmds {
        // keyless commands of a block (none are replicated today) stay with its first slot
        parts.entry(s.or(first)).or_default().push(c);
    }
    if parts.len() == 1 {
        let cmds = parts.into_values().next().unwrap_or_default();
        return vec![Op { cmds, ..op }];
    }
    parts
        .into_values()
        .map(|cmds| Op {
            start: op.start,
            end: op.end,
            db: op.db,
            block: op.block && cmds.len() > 1,
            cmds,
            asking: false,
            redirects: op.redirects,
            budget: op.budget.clone(),
        })
        .collect()
}

/// Commands for every primary of a cluster: they act on a whole database or on code, not on keys.
pub(super) fn broadcast(op: &Op) -> bool {
    op.cmds.iter().all(|c| {
        let n = c[0].to_ascii_uppercase();
        matches!(
            n.as_slice(),
            b"FLUSHALL" | b"FLUSHDB" | b"FUNCTION" | b"SCRIPT"
        )
    })
}

pub(super) fn route(op: &Op, routes: Option<&SlotMap>) -> usize {
    let Some(r) = routes else { return 0 };
    op.cmds
        .iter()
        .find_map(|c| routing_key(c))
        .map_or(0, |k| r.shard(crate::cluster::key_hash_slot(k)))
}
