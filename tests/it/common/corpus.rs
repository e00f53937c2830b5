//! The public dump corpus (`../shared/corpus`, or `$RDBKIT_CORPUS`): its MANIFEST.tsv rows, and a
//! dump decoded completely (every item and every value, with `Info` run alongside) for tests that
//! check the decoder against what the corpus and its source projects say (tests/corpus/).

use rdbkit::output::info::Info;
use rdbkit::{Checksum, DecodeError, Decoder, Item, Magic, Producer, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// The MANIFEST
// ---------------------------------------------------------------------------------------------

/// The corpus, or `None` after a SKIP (a failure under `RDBKIT_REQUIRE_SERVERS=1`).
pub fn corpus_root() -> Option<PathBuf> {
    rdbkit::testing::corpus_dir()
}

#[derive(Debug, Clone)]
pub struct Row {
    pub path: String,
    pub rdb_version: String,
    pub loads_82: String,
    pub notes: String,
    pub magic: String,
    pub opcodes: String,
    pub dbsize_incl_expired: String,
    pub dup_of: String,
}

impl Row {
    pub fn loads_in_82(&self) -> bool {
        self.loads_82.starts_with("yes")
    }
}

pub fn manifest(root: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("MANIFEST.tsv has no column {name}"))
    };
    let c = [
        col("path"),
        col("rdb_version"),
        col("loads_in_8.2"),
        col("notes"),
        col("magic"),
        col("opcodes"),
        col("dbsize_incl_expired"),
        col("dup_of"),
    ];
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let g = |i: usize| f.get(c[i]).copied().unwrap_or("").to_string();
            Row {
                path: g(0),
                rdb_version: g(1),
                loads_82: g(2),
                notes: g(3),
                magic: g(4),
                opcodes: g(5),
                dbsize_incl_expired: g(6),
                dup_of: g(7),
            }
        })
        .collect()
}

/// `db0=5442;db2=1` / `db0=1,db1=4` / `empty` → db → keys.
pub fn parse_dbsize(s: &str) -> Option<BTreeMap<u64, u64>> {
    if s.is_empty() {
        return None;
    }
    if s == "empty" {
        return Some(BTreeMap::new());
    }
    let mut m = BTreeMap::new();
    for part in s.split([';', ',']) {
        let (db, n) = part.split_once('=')?;
        let n = n.split('/').next()?;
        m.insert(db.strip_prefix("db")?.parse().ok()?, n.parse().ok()?);
    }
    Some(m)
}

// ---------------------------------------------------------------------------------------------
// Decoding a dump completely
// ---------------------------------------------------------------------------------------------

pub struct Rec<'a> {
    pub db: u64,
    pub key: Vec<u8>,
    pub expire_ms: Option<i64>,
    pub value: Value<'a>,
}

#[derive(Default)]
pub struct Decoded<'a> {
    pub header: Option<(Magic, u32)>,
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    pub functions: Vec<Vec<u8>>,
    pub scripts: usize,
    pub resize_db: Vec<(u64, u64)>,
    pub slot_info: Vec<(u64, u64, u64)>,
    pub slot_imports: usize,
    pub module_aux: usize,
    pub entries: Vec<Rec<'a>>,
    pub info: Info,
    pub eof: Option<Checksum>,
    pub error: Option<DecodeError>,
    pub producer: Option<Producer>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Decodes every item and every value; stops at the first error (from an item or a value).
pub fn decode(data: &[u8]) -> Decoded<'_> {
    let mut d = Decoded {
        info: Info::new(now_ms()),
        ..Default::default()
    };
    let mut dec = Decoder::new(data);
    loop {
        let item = match dec.next_item() {
            Ok(Some(i)) => i,
            Ok(None) => break,
            Err(e) => {
                d.error = Some(e);
                break;
            }
        };
        // Info decodes entry values too: it must agree with our own decode below.
        let info_res = d.info.add(&item);
        match item {
            Item::Header { magic, version } => d.header = Some((magic, version)),
            Item::Aux { key, value } => d.aux.push((key.into_owned(), value.into_owned())),
            Item::Function { code } => d.functions.push(code.into_owned()),
            Item::Script { .. } => d.scripts += 1,
            Item::ResizeDb {
                db_size,
                expires_size,
            } => d.resize_db.push((db_size, expires_size)),
            Item::SlotInfo {
                slot,
                size,
                expires_size,
            } => d.slot_info.push((slot, size, expires_size)),
            Item::SlotImport { .. } => d.slot_imports += 1,
            Item::ModuleAux { .. } => d.module_aux += 1,
            Item::SelectDb { .. } => {}
            Item::Eof { checksum, .. } => d.eof = Some(checksum),
            Item::Entry(e) => match e.value() {
                Ok(value) => {
                    assert!(info_res.is_ok(), "Info failed where value() did not");
                    d.entries.push(Rec {
                        db: e.db,
                        key: e.key.into_owned(),
                        expire_ms: e.expire_ms,
                        value,
                    })
                }
                Err(err) => {
                    assert!(
                        info_res.is_err(),
                        "Info decoded a value that value() refused"
                    );
                    d.error = Some(err);
                    break;
                }
            },
        }
    }
    d.producer = Some(dec.producer());
    d
}

impl Decoded<'_> {
    pub fn outcome(&self) -> String {
        match &self.error {
            Some(e) => format!("error: {e}"),
            None => format!(
                "decoded {} keys{}{}",
                self.entries.len(),
                if self.functions.is_empty() {
                    String::new()
                } else {
                    format!(", {} functions", self.functions.len())
                },
                match self.eof {
                    Some(Checksum::Verified(_)) => ", CRC ok",
                    Some(Checksum::Disabled) => ", CRC disabled",
                    Some(Checksum::Absent) => ", no CRC (v<5)",
                    _ => ", NO EOF",
                }
            ),
        }
    }
}
