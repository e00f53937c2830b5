//! Resuming: the checkpoint file (per input, the offset below which every key is acknowledged
//! or skipped) and the watermarks it is taken from.

use super::batch::Batch;
use super::error::ReplayError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// One input's entry in the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Checkpoint {
    pub(super) name: String,
    pub(super) dump_len: Option<u64>,
    pub(super) offset: u64,
}

pub(super) fn read_checkpoint(path: &PathBuf) -> Result<Vec<Checkpoint>, ReplayError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReplayError::Checkpoint(format!("{}: {e}", path.display()))),
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ReplayError::Checkpoint(format!("{}: {e}", path.display())))?;
    Ok(v["inputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| Checkpoint {
                    name: c["name"].as_str().unwrap_or_default().to_string(),
                    dump_len: c["dump_len"].as_u64(),
                    offset: c["offset"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default())
}

pub(super) fn write_checkpoint(
    path: &PathBuf,
    cps: &[Checkpoint],
    written: u64,
) -> Result<(), ReplayError> {
    let tmp = path.with_extension("tmp");
    let inputs: Vec<serde_json::Value> = cps
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "dump_len": c.dump_len, "offset": c.offset}))
        .collect();
    let body = serde_json::json!({"inputs": inputs, "keys_written": written});
    std::fs::write(&tmp, body.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| ReplayError::Checkpoint(format!("{}: {e}", path.display())))
}

/// Per input file: the start offsets of the batches not yet acknowledged (a multiset), and the
/// end of what has been planned. The checkpoint of a file is the lowest open start, or the
/// planned end when none is open.
pub(crate) struct Watermarks {
    open: Vec<Mutex<(BTreeMap<u64, usize>, u64)>>,
}

impl Watermarks {
    pub(crate) fn new(files: usize) -> Watermarks {
        Watermarks {
            open: (0..files.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    fn of(&self, file: usize) -> std::sync::MutexGuard<'_, (BTreeMap<u64, usize>, u64)> {
        let m = self.open.get(file).unwrap_or(&self.open[0]);
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A batch's start offset enters the set of unacknowledged work.
    pub(crate) fn open_batch(&self, file: usize, start: u64) {
        *self.of(file).0.entry(start).or_default() += 1;
    }

    /// Everything before `end` has been planned.
    pub(crate) fn advance(&self, file: usize, end: u64) {
        let mut o = self.of(file);
        o.1 = o.1.max(end);
    }

    /// Offset in input `file` below which every key is acknowledged or skipped.
    pub(crate) fn watermark(&self, file: usize) -> u64 {
        let o = self.of(file);
        o.0.keys().next().copied().unwrap_or(o.1)
    }

    /// A batch is done (acknowledged, or it ended up with no keys): it leaves the set.
    pub(crate) fn close(&self, b: &Batch) {
        let mut o = self.of(b.file);
        if let Some(n) = o.0.get_mut(&b.start_offset) {
            *n -= 1;
            if *n == 0 {
                o.0.remove(&b.start_offset);
            }
        }
    }
}
