//! Server-wide code carried by a dump: function libraries (`FUNCTION LOAD`) and cached Lua scripts
//! (`SCRIPT LOAD`).
//!
//! Unlike keys, they belong to no database (`FLUSHDB` keeps them) and, on a Redis Cluster, to each
//! primary: a cluster does not copy them between shards. So they are loaded on every primary
//! before any key is written, and checked again at the end on the primaries of that moment, in
//! case a failover or a reshard brought a new one.
//!
//! A re-run meets the libraries it loaded before. The rules:
//! - a library whose code equals the target's (`FUNCTION LIST WITHCODE`) is already there;
//! - a library of the same name with other code conflicts like a key: it is refused up front with
//!   the other conflicts (nothing is written), replaced under `--replace` (and under
//!   `--flush-target`, which says so: a flush of a database keeps functions), and kept under
//!   `--skip-existing`.
//!
//! Scripts are named by their SHA1, so loading one again is harmless.

use super::config::ImportConfig;
use super::error::ReplayError;
use super::ledger::CodeReport;
use super::target::Target;
use crate::model::Item;
use std::collections::BTreeMap;
use std::time::Duration;

/// A function library from a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// Its name, from the shebang line (`#!lua name=mylib`).
    pub name: String,
    /// Its code, shebang included, as `FUNCTION LOAD` takes it.
    pub code: Vec<u8>,
}

impl Library {
    /// A library from its code.
    pub fn new(code: &[u8]) -> Library {
        Library {
            name: crate::commands::library_name(code).unwrap_or_else(|| "(unnamed)".into()),
            code: code.to_vec(),
        }
    }
}

/// The libraries and scripts of one or more dumps (identical ones once).
#[derive(Debug, Default, Clone)]
pub struct Code {
    /// Function libraries.
    pub libraries: Vec<Library>,
    /// Lua script bodies.
    pub scripts: Vec<Vec<u8>>,
}

impl Code {
    /// The code at the start of a dump: libraries and scripts precede every key, so decoding
    /// stops at the first key.
    pub fn leading(data: &[u8]) -> Result<Code, crate::DecodeError> {
        let mut code = Code::default();
        for item in crate::Decoder::new(data).verify_checksum(false) {
            match item? {
                Item::Function { code: c } => code.add_library(&c),
                Item::Script { body, .. } => code.add_script(&body),
                Item::Entry(_) | Item::Eof { .. } => break,
                _ => {}
            }
        }
        Ok(code)
    }

    /// Adds a library unless the same code is there already.
    pub fn add_library(&mut self, code: &[u8]) {
        if !self.libraries.iter().any(|l| l.code == code) {
            self.libraries.push(Library::new(code));
        }
    }

    /// Adds a script unless the same body is there already.
    pub fn add_script(&mut self, body: &[u8]) {
        if !self.scripts.iter().any(|s| s == body) {
            self.scripts.push(body.to_vec());
        }
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &Code) {
        for l in &other.libraries {
            self.add_library(&l.code);
        }
        for s in &other.scripts {
            self.add_script(s);
        }
    }

    /// Nothing to load.
    pub fn is_empty(&self) -> bool {
        self.libraries.is_empty() && self.scripts.is_empty()
    }
}

/// How one library meets one primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meeting {
    Absent,
    Same,
    Different,
}

/// `FUNCTION LIST WITHCODE` of one primary: library name → code. A server without functions
/// (before 7.0) has none.
fn libraries_on(con: &mut redis::Connection) -> Result<BTreeMap<String, Vec<u8>>, ReplayError> {
    let reply: redis::Value = match redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("WITHCODE")
        .query(con)
    {
        Ok(v) => v,
        Err(e) if e.to_string().contains("unknown command") => return Ok(BTreeMap::new()),
        Err(e) => return Err(ReplayError::Redis(format!("FUNCTION LIST: {e}"))),
    };
    let text = |v: &redis::Value| -> Option<Vec<u8>> {
        match v {
            redis::Value::BulkString(b) => Some(b.clone()),
            redis::Value::SimpleString(s) => Some(s.clone().into_bytes()),
            _ => None,
        }
    };
    let mut out = BTreeMap::new();
    let redis::Value::Array(libs) = reply else {
        return Ok(out);
    };
    for lib in libs {
        // RESP2: a flat list of field names and values
        let fields: Vec<redis::Value> = match lib {
            redis::Value::Array(f) => f,
            redis::Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            _ => continue,
        };
        let (mut name, mut code) = (None, None);
        for pair in fields.chunks(2) {
            match (pair.first().and_then(text).as_deref(), pair.get(1)) {
                (Some(b"library_name"), Some(v)) => name = text(v),
                (Some(b"library_code"), Some(v)) => code = text(v),
                _ => {}
            }
        }
        if let (Some(n), Some(c)) = (name, code) {
            out.insert(String::from_utf8_lossy(&n).into_owned(), c);
        }
    }
    Ok(out)
}

fn meeting(on: &BTreeMap<String, Vec<u8>>, lib: &Library) -> Meeting {
    match on.get(&lib.name) {
        None => Meeting::Absent,
        Some(c) if *c == lib.code => Meeting::Same,
        Some(_) => Meeting::Different,
    }
}

/// The conflicts that refuse the import when no option says what to do: libraries that a primary
/// holds under the same name with other code. Read-only.
pub fn conflicts(
    code: &Code,
    primaries: &[Target],
    cfg: &ImportConfig,
    timeout: Duration,
) -> Result<Vec<String>, ReplayError> {
    if code.libraries.is_empty() || cfg.replace || cfg.flush_target || cfg.skip_existing {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for p in primaries {
        let on = libraries_on(&mut p.control(timeout)?)?;
        for lib in &code.libraries {
            if meeting(&on, lib) == Meeting::Different {
                out.push(format!(
                    "function library {:?} exists on {} with other code",
                    lib.name,
                    p.display()
                ));
            }
        }
    }
    Ok(out)
}

/// The dump's libraries that a primary lacks or holds with other code (what `verify` reports):
/// one line per primary and library, naming both. A server without functions (before 7.0) lacks
/// them all. Read-only.
pub fn differences(
    code: &Code,
    primaries: &[Target],
    timeout: Duration,
) -> Result<Vec<String>, ReplayError> {
    let mut out = Vec::new();
    if code.libraries.is_empty() {
        return Ok(out);
    }
    for p in primaries {
        let on = libraries_on(&mut p.control(timeout)?)?;
        for lib in &code.libraries {
            match meeting(&on, lib) {
                Meeting::Same => {}
                Meeting::Absent => out.push(format!(
                    "function library {:?} missing on {}",
                    lib.name,
                    p.display()
                )),
                Meeting::Different => out.push(format!(
                    "function library {:?} on {} has other code than the dump's",
                    lib.name,
                    p.display()
                )),
            }
        }
    }
    Ok(out)
}

/// Loads `code` on every primary by the rules of this module, and adds what happened to
/// `report`. A library that conflicts with no option to decide is an error (a streamed dump
/// meets its libraries only as it is read; mapped dumps were checked up front by [`conflicts`]).
pub fn load(
    code: &Code,
    primaries: &[Target],
    cfg: &ImportConfig,
    timeout: Duration,
    report: &mut CodeReport,
) -> Result<(), ReplayError> {
    if code.is_empty() {
        return Ok(());
    }
    for p in primaries {
        let mut con = p.control(timeout)?;
        let on = if code.libraries.is_empty() {
            BTreeMap::new()
        } else {
            libraries_on(&mut con)?
        };
        for lib in &code.libraries {
            let replace = match meeting(&on, lib) {
                Meeting::Same => {
                    CodeReport::add(&mut report.present, &lib.name);
                    continue;
                }
                Meeting::Absent => false,
                Meeting::Different if cfg.skip_existing => {
                    CodeReport::add(&mut report.kept, &lib.name);
                    continue;
                }
                Meeting::Different if cfg.replace || cfg.flush_target => true,
                Meeting::Different => {
                    return Err(ReplayError::Conflict(format!(
                        "refusing to write into a non-empty target: function library {:?} exists on {} with other code; use --replace to replace it, --skip-existing to keep the target's",
                        lib.name,
                        p.display()
                    )))
                }
            };
            let mut c = redis::cmd("FUNCTION");
            c.arg("LOAD");
            if replace {
                c.arg("REPLACE");
            }
            c.arg(&lib.code);
            match c.query::<String>(&mut con) {
                Ok(_) if replace => CodeReport::add(&mut report.replaced, &lib.name),
                Ok(_) => CodeReport::add(&mut report.loaded, &lib.name),
                Err(e) => report.errors.push(format!(
                    "function library {:?} on {}: FUNCTION LOAD: {e}",
                    lib.name,
                    p.display()
                )),
            }
        }
        for body in &code.scripts {
            match redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(body)
                .query::<String>(&mut con)
            {
                Ok(_) => {}
                Err(e) => report.errors.push(format!(
                    "script {} on {}: SCRIPT LOAD: {e}",
                    sha1_smol::Sha1::from(body).digest(),
                    p.display()
                )),
            }
        }
    }
    report.scripts += code.scripts.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_code_is_kept_once() {
        let mut c = Code::default();
        c.add_library(b"#!lua name=a\nreturn 1");
        c.add_library(b"#!lua name=a\nreturn 1");
        c.add_library(b"#!lua name=b\nreturn 2");
        c.add_script(b"return 3");
        let mut d = Code::default();
        d.add_script(b"return 3");
        d.add_library(b"#!lua name=b\nreturn 2");
        c.merge(&d);
        let names: Vec<&str> = c.libraries.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(c.scripts.len(), 1);
    }

    #[test]
    fn a_library_meets_the_target_by_name_then_code() {
        let on = BTreeMap::from([("a".to_string(), b"#!lua name=a\nreturn 1".to_vec())]);
        assert_eq!(
            meeting(&on, &Library::new(b"#!lua name=a\nreturn 1")),
            Meeting::Same
        );
        assert_eq!(
            meeting(&on, &Library::new(b"#!lua name=a\nreturn 9")),
            Meeting::Different
        );
        assert_eq!(
            meeting(&on, &Library::new(b"#!lua name=z\nreturn 1")),
            Meeting::Absent
        );
    }
}
