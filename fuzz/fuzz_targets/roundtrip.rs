//! Differential round trip: decode a dump, rewrite every item with `write::RdbWriter` (entries
//! copied raw with `entry`), decode the rewrite: it must decode cleanly, checksum included, to the
//! same items, with equal entries and equal decoded values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::write::{put_len, put_string, RdbWriter};
use rdbkit::{Checksum, Decoder, Entry, Item, Magic};

fn same_entry(a: &Entry<'_>, b: &Entry<'_>) {
    assert_eq!(
        (
            &a.key,
            a.db,
            a.type_id,
            a.expire_ms,
            a.idle,
            a.freq,
            a.meta,
            a.raw
        ),
        (
            &b.key,
            b.db,
            b.type_id,
            b.expire_ms,
            b.idle,
            b.freq,
            b.meta,
            b.raw
        )
    );
    assert_eq!(a.value_type(), b.value_type());
    match (a.value(), b.value()) {
        (Ok(x), Ok(y)) => assert_eq!(x, y),
        (Err(_), Err(_)) => {}
        (x, y) => panic!("value {x:?} became {y:?}"),
    }
}

fn same_item(a: &Item<'_>, b: &Item<'_>) {
    match (a, b) {
        (Item::Entry(x), Item::Entry(y)) => same_entry(x, y),
        (
            Item::ModuleAux { id, when, body, .. },
            Item::ModuleAux {
                id: i2,
                when: w2,
                body: b2,
                ..
            },
        ) => assert_eq!((id, when, body), (i2, w2, b2)),
        _ => assert_eq!(format!("{a:?}"), format!("{b:?}")),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut w: Option<RdbWriter> = None;
    let mut expected = Vec::new();
    for item in Decoder::new(data).verify_checksum(false) {
        let Ok(item) = item else { break };
        if let Item::Header { magic, version } = item {
            w = Some(match magic {
                Magic::Redis => RdbWriter::new(version),
                Magic::Valkey => RdbWriter::new_valkey(version),
            });
            continue;
        }
        let w = w.as_mut().expect("the header comes first");
        let mut b = Vec::new();
        match &item {
            Item::Aux { key, value } => {
                w.aux(key, value);
            }
            Item::Script { body, .. } => {
                w.aux(b"lua", body);
            }
            Item::SelectDb { db } => {
                w.select_db(*db);
            }
            Item::ResizeDb {
                db_size,
                expires_size,
            } => {
                w.resize_db(*db_size, *expires_size);
            }
            Item::Function { code } => {
                w.function(code);
            }
            Item::SlotInfo {
                slot,
                size,
                expires_size,
            } => {
                b.push(0xf4);
                for n in [*slot, *size, *expires_size] {
                    put_len(&mut b, n);
                }
            }
            Item::ModuleAux { id, when, body, .. } => {
                b.push(0xf7);
                put_len(&mut b, id.0);
                put_len(&mut b, 2);
                put_len(&mut b, *when);
                b.extend_from_slice(body);
            }
            Item::SlotImport { job, ranges } => {
                b.push(0xf3);
                put_string(&mut b, job);
                put_len(&mut b, ranges.len() as u64);
                for (lo, hi) in ranges {
                    put_len(&mut b, *lo);
                    put_len(&mut b, *hi);
                }
            }
            Item::Entry(e) => {
                w.entry(e);
            }
            Item::Eof { .. } => break,
            Item::Header { .. } => unreachable!(),
        }
        w.bytes(&b);
        expected.push(item);
    }
    let Some(w) = w else { return };
    let out = w.finish();
    let mut got = Vec::new();
    for item in Decoder::new(&out) {
        match item {
            Ok(Item::Header { .. }) => {}
            Ok(Item::Eof { checksum, .. }) => {
                assert!(!matches!(checksum, Checksum::NotChecked(_)));
            }
            Ok(i) => got.push(i),
            Err(e) => panic!(
                "rewritten dump fails to decode: {e} (after {} items)",
                got.len()
            ),
        }
    }
    assert_eq!(expected.len(), got.len(), "item count");
    for (a, b) in expected.iter().zip(&got) {
        same_item(a, b);
    }
});
