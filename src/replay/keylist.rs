//! The whole lists of keys an import reports (failed, not written, in doubt), written to a file as
//! they happen, so that the summary can show the first few and name the file instead of printing
//! thousands of key names, and memory does not grow with the number of reports.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

/// Which list a key belongs to (the first column of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyList {
    /// The target refused the key.
    Failed,
    /// Not written for a reason the summary reports (module missing, not representable…).
    NotWritten,
    /// Sent, never acknowledged: it may or may not be on the target.
    InDoubt,
}

impl KeyList {
    /// The list's name in the file.
    pub fn name(self) -> &'static str {
        match self {
            KeyList::Failed => "failed",
            KeyList::NotWritten => "not-written",
            KeyList::InDoubt => "in-doubt",
        }
    }
}

/// The key-list file: created when the first key is reported, one tab-separated line per key
/// (`list`, the key escaped as in the summary, the reason).
#[derive(Debug)]
pub(crate) struct KeyLog {
    path: PathBuf,
    out: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    file: Option<BufWriter<File>>,
    lines: u64,
    error: Option<String>,
}

impl KeyLog {
    pub(crate) fn new(path: PathBuf) -> KeyLog {
        KeyLog {
            path,
            out: Mutex::default(),
        }
    }

    /// Appends one key. A file that cannot be written is reported once, in the summary; the
    /// import goes on.
    pub(crate) fn add(&self, list: KeyList, key: &[u8], why: &str) {
        let mut s = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if s.error.is_some() {
            return;
        }
        if s.file.is_none() {
            match File::create(&self.path) {
                Ok(f) => s.file = Some(BufWriter::new(f)),
                Err(e) => {
                    s.error = Some(format!("{}: {e}", self.path.display()));
                    return;
                }
            }
        }
        let why: String = why
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let line = format!(
            "{}\t{}\t{why}\n",
            list.name(),
            crate::model::escape_bytes(key)
        );
        let res = s.file.as_mut().map(|f| f.write_all(line.as_bytes()));
        match res {
            Some(Err(e)) => s.error = Some(format!("{}: {e}", self.path.display())),
            _ => s.lines += 1,
        }
    }

    /// Flushes the file: `Ok(Some(path))` when it holds keys, `Ok(None)` when nothing was
    /// reported, `Err` when it could not be written.
    pub(crate) fn finish(&self) -> Result<Option<PathBuf>, String> {
        let mut s = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Err(e)) = s.file.as_mut().map(|f| f.flush()) {
            s.error
                .get_or_insert(format!("{}: {e}", self.path.display()));
        }
        match &s.error {
            Some(e) => Err(e.clone()),
            None if s.lines > 0 => Ok(Some(self.path.clone())),
            None => Ok(None),
        }
    }
}
