//! A dump of selected keys (`rdbkit filter` and `split`): key records copied byte for byte into a
//! new dump whose `RESIZEDB` hints carry the real counts, with the input's records outside the
//! databases (aux fields, function libraries, Lua scripts, module aux data).

use super::RdbWriter;
use crate::model::{Entry, Item, Magic};

/// One output dump under construction. Keys of the current database are buffered so that the
/// database's `RESIZEDB` hint, written before them, carries the real counts.
///
/// ```
/// use rdbkit::write::{DumpBuilder, RdbWriter};
/// use rdbkit::{Decoder, Item, Magic};
/// let mut w = RdbWriter::new(12);
/// w.select_db(0).resize_db(100, 100);
/// w.string_key(b"a", b"1", None).string_key(b"b", b"2", None);
/// let input = w.finish();
/// let mut out = DumpBuilder::new(Magic::Redis, 12);
/// for item in Decoder::new(&input) {
///     match item? {
///         Item::Entry(e) if &e.key[..] == b"b" => out.key(&e),
///         _ => {}
///     }
/// }
/// assert_eq!(out.keys(), 1);
/// let dump = out.finish();
/// let sizes: Vec<_> = Decoder::new(&dump)
///     .filter_map(|i| match i.unwrap() { Item::ResizeDb { db_size, .. } => Some(db_size), _ => None })
///     .collect();
/// assert_eq!(sizes, [1]);
/// # Ok::<(), rdbkit::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct DumpBuilder {
    w: RdbWriter,
    version: u32,
    magic: Magic,
    /// The database whose keys are buffered in `body`.
    db: Option<u64>,
    body: Option<RdbWriter>,
    db_keys: u64,
    db_expires: u64,
    keys: u64,
}

impl DumpBuilder {
    /// An empty dump with the input's magic and RDB version.
    pub fn new(magic: Magic, version: u32) -> DumpBuilder {
        DumpBuilder {
            w: writer(magic, version),
            version,
            magic,
            db: None,
            body: None,
            db_keys: 0,
            db_expires: 0,
            keys: 0,
        }
    }

    /// Writes the buffered database: SELECTDB, RESIZEDB, its key records.
    fn flush_db(&mut self) {
        let (Some(db), Some(body)) = (self.db.take(), self.body.take()) else {
            return;
        };
        // the body writer's output is header (9 bytes) + records + EOF/trailer
        let trailer = writer(self.magic, self.version).finish().len() - 9;
        let bytes = body.finish();
        self.w
            .select_db(db)
            .resize_db(self.db_keys, self.db_expires)
            .bytes(&bytes[9..bytes.len() - trailer]);
        self.db_keys = 0;
        self.db_expires = 0;
    }

    /// Adds a key record, copied byte for byte.
    pub fn key(&mut self, e: &Entry<'_>) {
        if self.db != Some(e.db) {
            self.flush_db();
            self.db = Some(e.db);
            self.body = Some(writer(self.magic, self.version));
        }
        if let Some(b) = self.body.as_mut() {
            b.entry(e);
        }
        self.db_keys += 1;
        self.db_expires += u64::from(e.expire_ms.is_some());
        self.keys += 1;
    }

    /// A record outside the databases (aux, function, module aux): written after the buffered keys.
    fn global(&mut self, f: impl FnOnce(&mut RdbWriter)) {
        self.flush_db();
        f(&mut self.w);
    }

    /// Keys added so far.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// Writes EOF and the CRC64 trailer; returns the dump.
    pub fn finish(mut self) -> Vec<u8> {
        self.flush_db();
        self.w.finish()
    }
}

fn writer(magic: Magic, version: u32) -> RdbWriter {
    match magic {
        Magic::Redis => RdbWriter::new(version),
        Magic::Valkey => RdbWriter::new_valkey(version),
    }
}

/// Copies `item` to every dump of `dumps` when it is a record outside the databases (aux field,
/// Lua script, function library, module aux data); returns whether it was one.
pub fn copy_record(item: &Item<'_>, dumps: &mut [DumpBuilder]) -> bool {
    match item {
        Item::Aux { key, value } => {
            for s in dumps.iter_mut() {
                s.global(|w| {
                    w.aux(key, value);
                });
            }
        }
        Item::Script { body, .. } => {
            for s in dumps.iter_mut() {
                s.global(|w| {
                    w.aux(b"lua", body);
                });
            }
        }
        Item::Function { code } => {
            for s in dumps.iter_mut() {
                s.global(|w| {
                    w.function(code);
                });
            }
        }
        Item::ModuleAux { id, when, body, .. } => {
            let mut rec = vec![0xf7];
            super::put_len(&mut rec, id.0);
            super::put_len(&mut rec, 2); // RDB_MODULE_OPCODE_UINT precedes `when`
            super::put_len(&mut rec, *when);
            rec.extend_from_slice(body);
            for s in dumps.iter_mut() {
                s.global(|w| {
                    w.bytes(&rec);
                });
            }
        }
        _ => return false,
    }
    true
}
