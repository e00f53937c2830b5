//! A cluster's slot map, as the importer and `verify` route keys: slot → the primary (and its
//! connection), updated when a node answers MOVED.

use super::target::Target;
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};

/// A cluster's slot map: slot → index of the primary (and of its connection). A MOVED to a known
/// primary re-routes the slot; a MOVED to a node that was not a primary at the start is followed
/// key by key (see `super::redirect`).
pub(crate) struct Routes {
    slots: Vec<AtomicU16>,
    pub(crate) nodes: Vec<Target>,
}

impl Routes {
    pub(crate) fn new(slots: Vec<u16>, nodes: Vec<Target>) -> Routes {
        Routes {
            slots: slots.into_iter().map(Into::into).collect(),
            nodes,
        }
    }

    /// The shard (index of the primary and of its connection) that owns `slot` now.
    pub(crate) fn shard(&self, slot: u16) -> usize {
        usize::from(self.slots[usize::from(slot)].load(Relaxed))
    }

    /// A MOVED named the new owner of `slot`: later keys of the slot go to that primary's
    /// connection (when it is one of the primaries known at the start).
    pub(crate) fn moved(&self, slot: u16, host: &str, port: u16) {
        if let Some(i) = self
            .nodes
            .iter()
            .position(|n| n.port == port && (host.is_empty() || n.host == host))
        {
            if let Some(s) = self.slots.get(usize::from(slot)) {
                s.store(i as u16, Relaxed);
            }
        }
    }
}
