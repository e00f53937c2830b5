//! Criterion micro-benchmarks of the decoder's hot paths, over inputs built in memory (seeded, no
//! files needed except the bundled `testdata/redis82_all_types_v12.rdb`).
//!
//! ```sh
//! cargo bench --bench decode                                   # full run
//! cargo bench --bench decode -- --quick                        # a few seconds per group
//! cargo bench --bench decode -- --warm-up-time 1 --measurement-time 2 listpack
//! ```
//!
//! Groups: `string` (length + string decoding through `Entry::value`), `lzf`, `listpack`,
//! `ziplist`, `file` (whole-dump decode, bytes/s), `payload` (DUMP payload + CRC64), `resp` and
//! `json` (output encoding). Only public APIs are reachable from here: the raw walks of listpack,
//! ziplist and LZF go through `rdbkit::decode::fuzzing` (the fuzz targets' entry points, which
//! also render integers as text), the typed paths through `Entry::value()` on dumps whose values
//! are hand-built blobs. Every blob is checked to decode to what was encoded before it is timed.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rdbkit::commands::{entry_commands, CommandOptions, Resp};
use rdbkit::output::info::Info;
use rdbkit::output::json;
use rdbkit::write::{put_len, put_string, RdbWriter};
use rdbkit::{Decoder, Elem, Entry, Item, Value};

// ------------------------------------------------------------------------------------------
// Seeded data

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    /// Alphanumeric text of lo..=hi bytes (never a canonical integer: starts with a letter).
    fn text(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let n = self.range(lo, hi) as usize;
        (0..n)
            .map(|i| {
                let k = if i == 0 { 52 } else { A.len() as u64 };
                A[(self.next() % k) as usize]
            })
            .collect()
    }
}

/// Far-future TTL (2100-01-01), as in the benchmark datasets.
const EXPIRE_AT_MS: i64 = 4_102_444_800_000;

// ------------------------------------------------------------------------------------------
// Encoders for the nested blobs (format §5): what Redis writes, canonical smallest forms.

/// A listpack element: an integer or a string.
#[derive(Clone)]
enum Lp {
    Int(i64),
    Str(Vec<u8>),
}

impl Lp {
    fn elem(&self) -> Elem<'static> {
        match self {
            Lp::Int(i) => Elem::Int(*i),
            Lp::Str(s) => Elem::Bytes(s.clone().into()),
        }
    }
}

fn listpack(elems: &[Lp]) -> Vec<u8> {
    let mut out = vec![0u8; 6];
    for e in elems {
        let start = out.len();
        match e {
            Lp::Int(v @ 0..=127) => out.push(*v as u8),
            Lp::Int(v @ -4096..=4095) => {
                let u = (*v as u16) & 0x1fff;
                out.extend_from_slice(&[0xc0 | (u >> 8) as u8, u as u8]);
            }
            Lp::Int(v) if i16::try_from(*v).is_ok() => {
                out.push(0xf1);
                out.extend_from_slice(&(*v as i16).to_le_bytes());
            }
            Lp::Int(v) if (-(1 << 23)..(1 << 23)).contains(v) => {
                out.push(0xf2);
                out.extend_from_slice(&(*v as i32).to_le_bytes()[..3]);
            }
            Lp::Int(v) if i32::try_from(*v).is_ok() => {
                out.push(0xf3);
                out.extend_from_slice(&(*v as i32).to_le_bytes());
            }
            Lp::Int(v) => {
                out.push(0xf4);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Lp::Str(s) if s.len() < 64 => {
                out.push(0x80 | s.len() as u8);
                out.extend_from_slice(s);
            }
            Lp::Str(s) if s.len() < 4096 => {
                out.extend_from_slice(&[0xe0 | (s.len() >> 8) as u8, s.len() as u8]);
                out.extend_from_slice(s);
            }
            Lp::Str(s) => {
                out.push(0xf0);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s);
            }
        }
        let l = out.len() - start;
        out.extend_from_slice(&lp_backlen(l));
    }
    out.push(0xff);
    let total = out.len() as u32;
    out[..4].copy_from_slice(&total.to_le_bytes());
    let count = if elems.len() < 65535 {
        elems.len() as u16
    } else {
        65535
    };
    out[4..6].copy_from_slice(&count.to_le_bytes());
    out
}

/// `lpEncodeBacklen`: the first byte in memory holds the most significant 7-bit group; every byte
/// but the first has bit 7 set.
fn lp_backlen(l: usize) -> Vec<u8> {
    let mut groups = Vec::new();
    let mut rest = l;
    loop {
        groups.push((rest & 127) as u8);
        rest >>= 7;
        if rest == 0 {
            break;
        }
    }
    groups.reverse(); // most significant first
    let n = groups.len();
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| if n > 1 && i > 0 { g | 128 } else { *g })
        .collect()
}

fn ziplist(elems: &[Lp]) -> Vec<u8> {
    let mut out = vec![0u8; 10];
    let mut prev = 0usize;
    let mut tail = 10usize;
    for e in elems {
        let start = out.len();
        tail = start;
        if prev < 254 {
            out.push(prev as u8);
        } else {
            out.push(0xfe);
            out.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        match e {
            Lp::Int(v @ 0..=12) => out.push(0xf1 + *v as u8),
            Lp::Int(v) if i8::try_from(*v).is_ok() => out.extend_from_slice(&[0xfe, *v as u8]),
            Lp::Int(v) if i16::try_from(*v).is_ok() => {
                out.push(0xc0);
                out.extend_from_slice(&(*v as i16).to_le_bytes());
            }
            Lp::Int(v) if (-(1 << 23)..(1 << 23)).contains(v) => {
                out.push(0xf0);
                out.extend_from_slice(&(*v as i32).to_le_bytes()[..3]);
            }
            Lp::Int(v) if i32::try_from(*v).is_ok() => {
                out.push(0xd0);
                out.extend_from_slice(&(*v as i32).to_le_bytes());
            }
            Lp::Int(v) => {
                out.push(0xe0);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Lp::Str(s) if s.len() < 64 => {
                out.push(s.len() as u8);
                out.extend_from_slice(s);
            }
            Lp::Str(s) if s.len() < 16384 => {
                out.extend_from_slice(&[0x40 | (s.len() >> 8) as u8, s.len() as u8]);
                out.extend_from_slice(s);
            }
            Lp::Str(s) => {
                out.push(0x80);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s);
            }
        }
        prev = out.len() - start;
    }
    out.push(0xff);
    let zlbytes = out.len() as u32;
    out[..4].copy_from_slice(&zlbytes.to_le_bytes());
    out[4..8].copy_from_slice(&(tail as u32).to_le_bytes());
    let count = if elems.len() < 65535 {
        elems.len() as u16
    } else {
        65535
    };
    out[8..10].copy_from_slice(&count.to_le_bytes());
    out
}

fn intset(members: &mut Vec<i64>) -> Vec<u8> {
    members.sort_unstable();
    members.dedup();
    let width: usize = if members.iter().all(|m| i16::try_from(*m).is_ok()) {
        2
    } else if members.iter().all(|m| i32::try_from(*m).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + width * members.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for m in members.iter() {
        out.extend_from_slice(&m.to_le_bytes()[..width]);
    }
    out
}

/// An RDB string value holding `blob` (what type 10–17/20 values are).
fn string_value(blob: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(blob.len() + 5);
    put_string(&mut raw, blob);
    raw
}

/// An LZF-compressed RDB string (`0xC3 clen ulen data`); falls back to raw when incompressible.
fn lzf_string_value(s: &[u8]) -> Vec<u8> {
    match lzf::compress(s) {
        Ok(c) if c.len() + 4 < s.len() => {
            let mut raw = vec![0xc3];
            put_len(&mut raw, c.len() as u64);
            put_len(&mut raw, s.len() as u64);
            raw.extend_from_slice(&c);
            raw
        }
        _ => string_value(s),
    }
}

/// An integer-encoded RDB string (`0xC0`/`0xC1`/`0xC2`).
fn int_string_value(v: i64) -> Vec<u8> {
    if let Ok(b) = i8::try_from(v) {
        vec![0xc0, b as u8]
    } else if let Ok(h) = i16::try_from(v) {
        let mut r = vec![0xc1];
        r.extend_from_slice(&h.to_le_bytes());
        r
    } else {
        let mut r = vec![0xc2];
        r.extend_from_slice(&(v as i32).to_le_bytes());
        r
    }
}

/// A quicklist2 value with one packed listpack node per `node_size` elements.
fn quicklist2_value(elems: &[Lp], node_size: usize) -> Vec<u8> {
    let nodes: Vec<&[Lp]> = elems.chunks(node_size).collect();
    let mut raw = Vec::new();
    put_len(&mut raw, nodes.len() as u64);
    for n in nodes {
        put_len(&mut raw, 2); // PACKED
        put_string(&mut raw, &listpack(n));
    }
    raw
}

/// A quicklist (RDB 7–9) value: one ziplist per `node_size` elements.
fn quicklist_value(elems: &[Lp], node_size: usize) -> Vec<u8> {
    let nodes: Vec<&[Lp]> = elems.chunks(node_size).collect();
    let mut raw = Vec::new();
    put_len(&mut raw, nodes.len() as u64);
    for n in nodes {
        put_string(&mut raw, &ziplist(n));
    }
    raw
}

fn mixed_elems(rng: &mut Rng, n: usize, int_share: f64, lo: u64, hi: u64) -> Vec<Lp> {
    (0..n)
        .map(|_| {
            if rng.chance(int_share) {
                Lp::Int(rng.range(0, 2_000_000) as i64 - 1_000_000)
            } else {
                Lp::Str(rng.text(lo, hi))
            }
        })
        .collect()
}

/// Decodes a one-key dump and returns the key's value, owned (for checking the encoders).
fn single_value(type_id: u8, raw: &[u8]) -> Value<'static> {
    let dump = one_key_dump(type_id, raw);
    let e = first_entry(&dump);
    match e.value().expect("hand-built value decodes") {
        Value::String(s) => Value::String(s.into_owned()),
        Value::List(v) => Value::List(v.into_iter().map(Elem::into_owned).collect()),
        Value::Set(v) => Value::Set(v.into_iter().map(Elem::into_owned).collect()),
        Value::Hash(v) => Value::List(
            v.into_iter()
                .flat_map(|f| [f.field.into_owned(), f.value.into_owned()])
                .collect(),
        ),
        Value::SortedSet(v) => {
            Value::SortedSet(v.into_iter().map(|(m, s)| (m.into_owned(), s)).collect())
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn one_key_dump(type_id: u8, raw: &[u8]) -> Vec<u8> {
    let mut w = RdbWriter::new(12);
    w.aux(b"redis-ver", b"8.2.3").select_db(0).resize_db(1, 0);
    w.raw_key(b"k", type_id, raw, None);
    w.finish()
}

fn first_entry(dump: &[u8]) -> Entry<'_> {
    Decoder::new(dump)
        .find_map(|i| match i.expect("dump decodes") {
            Item::Entry(e) => Some(e),
            _ => None,
        })
        .expect("one entry")
}

fn elems_of(v: &[Lp]) -> Vec<Elem<'static>> {
    v.iter().map(Lp::elem).collect()
}

// ------------------------------------------------------------------------------------------
// A D1-like dump in memory (benches/gen_dataset.py d1, scaled down): 70% strings of 10–100 bytes,
// the rest hashes / lists / sets / zsets of 5–20 elements, 20% with TTLs.

fn d1_like_dump(keys: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut w = RdbWriter::new(12);
    w.aux(b"redis-ver", b"8.2.3")
        .aux(b"redis-bits", b"64")
        .select_db(0)
        .resize_db(keys as u64, keys as u64 / 5);
    for i in 0..keys {
        let ttl = rng
            .chance(0.2)
            .then_some(EXPIRE_AT_MS + (i as i64 % 1000) * 1000);
        let u = rng.next() % 1000;
        if u < 700 {
            let v = rng.text(10, 100);
            w.string_key(format!("str:{i:08}").as_bytes(), &v, ttl);
            continue;
        }
        let m = rng.range(5, 20) as usize;
        let (key, type_id, raw) = if u < 775 {
            let mut e = Vec::with_capacity(2 * m);
            for j in 0..m {
                let mut f = format!("f{j}:").into_bytes();
                f.extend(rng.text(3, 12));
                e.push(Lp::Str(f));
                e.push(if rng.chance(0.3) {
                    Lp::Int(rng.range(0, 1_000_000) as i64)
                } else {
                    Lp::Str(rng.text(8, 28))
                });
            }
            (format!("hash:{i:08}"), 16, string_value(&listpack(&e)))
        } else if u < 850 {
            let e: Vec<Lp> = (0..m).map(|_| Lp::Str(rng.text(8, 36))).collect();
            (format!("list:{i:08}"), 18, quicklist2_value(&e, 128))
        } else if u < 925 {
            if rng.chance(0.4) {
                let mut s: Vec<i64> = (0..m).map(|_| rng.range(0, 1_000_000_000) as i64).collect();
                (format!("set:{i:08}"), 11, string_value(&intset(&mut s)))
            } else {
                let e: Vec<Lp> = (0..m).map(|_| Lp::Str(rng.text(8, 28))).collect();
                (format!("set:{i:08}"), 20, string_value(&listpack(&e)))
            }
        } else {
            let mut e = Vec::with_capacity(2 * m);
            for _ in 0..m {
                e.push(Lp::Str(rng.text(8, 28)));
                e.push(if rng.chance(0.5) {
                    Lp::Int(rng.range(0, 1_000_000) as i64)
                } else {
                    Lp::Str(format!("{:.2}", rng.range(0, 10_000_000) as f64 / 100.0).into_bytes())
                });
            }
            (format!("zset:{i:08}"), 17, string_value(&listpack(&e)))
        };
        w.raw_key(key.as_bytes(), type_id, &raw, ttl);
    }
    w.finish()
}

fn entries(dump: &[u8]) -> Vec<Entry<'_>> {
    Decoder::new(dump)
        .filter_map(|i| match i.expect("dump decodes") {
            Item::Entry(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// A dump of `n` string keys whose values are built by `value`.
fn strings_dump(n: usize, mut value: impl FnMut(usize) -> Vec<u8>) -> Vec<u8> {
    let mut w = RdbWriter::new(12);
    w.aux(b"redis-ver", b"8.2.3")
        .select_db(0)
        .resize_db(n as u64, 0);
    for i in 0..n {
        w.raw_key(format!("key:{i:08}").as_bytes(), 0, &value(i), None);
    }
    w.finish()
}

/// Walks every record without decoding values; returns the item count.
fn count_items(d: Decoder<'_>) -> usize {
    let mut n = 0;
    for item in d {
        black_box(item.unwrap());
        n += 1;
    }
    n
}

/// Decodes every entry's value; returns the number of values (keeps the optimiser honest).
fn decode_all(dump: &[u8]) -> usize {
    let mut n = 0;
    for item in Decoder::new(dump) {
        if let Item::Entry(e) = item.unwrap() {
            black_box(e.value().unwrap());
            n += 1;
        }
    }
    n
}

// ------------------------------------------------------------------------------------------
// Benchmarks

fn bench_strings(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut rng = Rng::new(1);
    let texts: Vec<Vec<u8>> = (0..N).map(|_| rng.text(10, 100)).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("raw_10_100B", strings_dump(N, |i| string_value(&texts[i]))),
        (
            "int_encoded",
            strings_dump(N, |i| {
                int_string_value((i as i64 * 7919) % 2_000_000_000 - 1_000_000_000)
            }),
        ),
        (
            // compressible 200-byte values: LZF-encoded strings, decompressed on value()
            "lzf_200B",
            strings_dump(N, |i| {
                let t = &texts[i];
                let v: Vec<u8> = t.iter().cycle().take(200).copied().collect();
                lzf_string_value(&v)
            }),
        ),
    ];
    let mut g = c.benchmark_group("string");
    for (name, dump) in &cases {
        assert_eq!(decode_all(dump), N);
        g.throughput(Throughput::Elements(N as u64));
        g.bench_with_input(BenchmarkId::new("decode_value", name), dump, |b, d| {
            b.iter(|| decode_all(d))
        });
    }
    // one string read through the fuzz entry point (the RDB length + string reader, owned result)
    let one = string_value(&texts[0]);
    g.throughput(Throughput::Bytes(texts[0].len() as u64));
    g.bench_function("rdb_string_raw", |b| {
        b.iter(|| rdbkit::decode::fuzzing::rdb_string(black_box(&one)).unwrap())
    });
    g.finish();
}

fn bench_lzf(c: &mut Criterion) {
    let mut rng = Rng::new(2);
    let mut g = c.benchmark_group("lzf");
    for size in [256usize, 4096, 1 << 20] {
        // text with repeats (a 64-word vocabulary), as compressible as typical JSON/text values
        let words: Vec<Vec<u8>> = (0..64).map(|_| rng.text(3, 10)).collect();
        let mut plain = Vec::with_capacity(size + 16);
        while plain.len() < size {
            plain.extend_from_slice(&words[(rng.next() % 64) as usize]);
            plain.push(b' ');
        }
        plain.truncate(size);
        let comp = lzf::compress(&plain).expect("compressible");
        assert_eq!(
            rdbkit::decode::fuzzing::lzf(&comp, size as u64).unwrap(),
            plain
        );
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("decompress", size), &comp, |b, comp| {
            b.iter(|| rdbkit::decode::fuzzing::lzf(black_box(comp), size as u64).unwrap())
        });
    }
    g.finish();
}

fn bench_listpack(c: &mut Criterion) {
    let mut rng = Rng::new(3);
    let mut g = c.benchmark_group("listpack");
    for n in [16usize, 128, 4096] {
        let elems = mixed_elems(&mut rng, n, 0.3, 5, 40);
        let lp = listpack(&elems);
        assert_eq!(rdbkit::decode::fuzzing::listpack(&lp).unwrap(), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("walk", n), &lp, |b, lp| {
            b.iter(|| rdbkit::decode::fuzzing::listpack(black_box(lp)).unwrap())
        });
    }
    // typed: a 128-field hash (256 elements) and a 5,000-element list in 128-element nodes
    let fields = mixed_elems(&mut rng, 256, 0.3, 5, 30);
    let hash_raw = string_value(&listpack(&fields));
    assert_eq!(single_value(16, &hash_raw), Value::List(elems_of(&fields)));
    let hash_dump = one_key_dump(16, &hash_raw);
    let e = first_entry(&hash_dump);
    g.throughput(Throughput::Elements(256));
    g.bench_function("hash_value_128_fields", |b| {
        b.iter(|| black_box(&e).value().unwrap())
    });

    let items = mixed_elems(&mut rng, 5000, 0.1, 8, 36);
    let list_raw = quicklist2_value(&items, 128);
    assert_eq!(single_value(18, &list_raw), Value::List(elems_of(&items)));
    let list_dump = one_key_dump(18, &list_raw);
    let e = first_entry(&list_dump);
    g.throughput(Throughput::Elements(5000));
    g.bench_function("quicklist2_value_5000", |b| {
        b.iter(|| black_box(&e).value().unwrap())
    });
    g.finish();
}

fn bench_ziplist(c: &mut Criterion) {
    let mut rng = Rng::new(4);
    let mut g = c.benchmark_group("ziplist");
    for n in [16usize, 128, 4096] {
        // 300-byte strings every 16th element exercise the 5-byte prevlen
        let mut elems = mixed_elems(&mut rng, n, 0.3, 5, 40);
        for e in elems.iter_mut().step_by(16) {
            *e = Lp::Str(rng.text(300, 300));
        }
        let zl = ziplist(&elems);
        assert_eq!(rdbkit::decode::fuzzing::ziplist(&zl).unwrap(), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("walk", n), &zl, |b, zl| {
            b.iter(|| rdbkit::decode::fuzzing::ziplist(black_box(zl)).unwrap())
        });
    }
    let fields = mixed_elems(&mut rng, 256, 0.3, 5, 30);
    let hash_raw = string_value(&ziplist(&fields));
    assert_eq!(single_value(13, &hash_raw), Value::List(elems_of(&fields)));
    let hash_dump = one_key_dump(13, &hash_raw);
    let e = first_entry(&hash_dump);
    g.throughput(Throughput::Elements(256));
    g.bench_function("hash_value_128_fields", |b| {
        b.iter(|| black_box(&e).value().unwrap())
    });

    let items = mixed_elems(&mut rng, 5000, 0.1, 8, 36);
    let list_raw = quicklist_value(&items, 128);
    assert_eq!(single_value(14, &list_raw), Value::List(elems_of(&items)));
    let list_dump = one_key_dump(14, &list_raw);
    let e = first_entry(&list_dump);
    g.throughput(Throughput::Elements(5000));
    g.bench_function("quicklist_value_5000", |b| {
        b.iter(|| black_box(&e).value().unwrap())
    });
    g.finish();
}

fn bench_file(c: &mut Criterion) {
    let d1 = d1_like_dump(20_000, 5);
    let all_types: &[u8] = include_bytes!("../testdata/redis82_all_types_v12.rdb");
    let mut g = c.benchmark_group("file");
    for (name, dump) in [("d1_like_20k", &d1[..]), ("redis82_all_types", all_types)] {
        g.throughput(Throughput::Bytes(dump.len() as u64));
        // records only: the raw span of every value is found, nothing nested is decoded
        g.bench_with_input(BenchmarkId::new("skip", name), dump, |b, d| {
            b.iter(|| count_items(Decoder::new(d).verify_checksum(false)))
        });
        g.bench_with_input(BenchmarkId::new("skip+crc", name), dump, |b, d| {
            b.iter(|| count_items(Decoder::new(d)))
        });
        // the full typed decode (what `rdbkit info` needs): every value decoded
        g.bench_with_input(BenchmarkId::new("typed", name), dump, |b, d| {
            b.iter(|| {
                let mut n = 0usize;
                for item in Decoder::new(d) {
                    if let Item::Entry(e) = item.unwrap() {
                        n += e.value().unwrap().len();
                    }
                }
                n
            })
        });
        // `rdbkit info`'s loop: Info::add on every item
        g.bench_with_input(BenchmarkId::new("info", name), dump, |b, d| {
            b.iter(|| {
                let mut info = Info::new(1_700_000_000_000);
                for item in Decoder::new(d) {
                    info.add(&item.unwrap()).unwrap();
                }
                info.keys()
            })
        });
    }
    g.finish();
}

fn bench_payload(c: &mut Criterion) {
    let mut rng = Rng::new(6);
    let mut g = c.benchmark_group("payload");
    for size in [64usize, 4096, 1 << 20] {
        let raw = string_value(&rng.text(size as u64, size as u64));
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_with_input(BenchmarkId::new("build", size), &raw, |b, raw| {
            b.iter(|| rdbkit::payload::build(None, 0, black_box(raw), 12))
        });
    }
    let big = rng.text(1 << 20, 1 << 20);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("crc64_1MiB", |b| {
        b.iter(|| rdbkit::crc64(0, black_box(&big)))
    });
    // a payload for every entry of a D1-like dump, reusing one buffer (the importer's loop)
    let d1 = d1_like_dump(20_000, 7);
    let es = entries(&d1);
    let bytes: usize = es.iter().map(rdbkit::payload::len_for_entry).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("write_d1_like_20k", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for e in &es {
                rdbkit::payload::write(&mut out, e.meta, e.type_id, e.raw, 12);
            }
            out.len()
        })
    });
    g.finish();
}

fn bench_output(c: &mut Criterion) {
    let d1 = d1_like_dump(20_000, 8);
    let es = entries(&d1);
    let values: Vec<Value<'_>> = es.iter().map(|e| e.value().unwrap()).collect();
    let opts = CommandOptions::default();

    let mut resp = Resp::default();
    for (e, v) in es.iter().zip(&values) {
        entry_commands(&mut resp, e, v, &opts, &mut Default::default()).unwrap();
    }
    let mut g = c.benchmark_group("resp");
    g.throughput(Throughput::Bytes(resp.buf.len() as u64));
    g.bench_function("entry_commands_d1_like_20k", |b| {
        let mut r = Resp::default();
        r.buf.reserve(resp.buf.len());
        b.iter(|| {
            r.buf.clear();
            for (e, v) in es.iter().zip(&values) {
                entry_commands(&mut r, e, v, &opts, &mut Default::default()).unwrap();
            }
            r.buf.len()
        })
    });
    // argument encoding primitives: 1,000 bulk strings of 32 bytes and 1,000 integers
    let arg = [b'x'; 32];
    g.throughput(Throughput::Elements(1000));
    g.bench_function("arg_32B_x1000", |b| {
        let mut r = Resp::default();
        b.iter(|| {
            r.buf.clear();
            for _ in 0..1000 {
                r.arg(black_box(&arg));
            }
            r.buf.len()
        })
    });
    g.bench_function("arg_int_x1000", |b| {
        let mut r = Resp::default();
        b.iter(|| {
            r.buf.clear();
            for i in 0..1000i64 {
                r.arg_int(black_box(i * 1_000_003));
            }
            r.buf.len()
        })
    });
    g.finish();

    let mut out = Vec::new();
    for (e, v) in es.iter().zip(&values) {
        json::entry(&mut out, e, v);
        out.push(b'\n');
    }
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Bytes(out.len() as u64));
    g.bench_function("entry_d1_like_20k", |b| {
        let mut o = Vec::with_capacity(out.len());
        b.iter(|| {
            o.clear();
            for (e, v) in es.iter().zip(&values) {
                json::entry(&mut o, e, v);
                o.push(b'\n');
            }
            o.len()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_strings,
    bench_lzf,
    bench_listpack,
    bench_ziplist,
    bench_file,
    bench_payload,
    bench_output
);
criterion_main!(benches);
