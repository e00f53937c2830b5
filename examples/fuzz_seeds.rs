//! Cuts fuzz seeds out of real dumps (run by scripts/fuzz-seeds.sh; see fuzz/README.md): for each
//! dump given, writes the inputs of the per-value and per-encoding fuzz targets into
//! `<corpus>/<target>/<hash>` (content-named, so reruns and duplicates collapse). Whole files are
//! copied by the script itself.
//!
//! At most `--per-bucket` seeds (default 16) are kept per target, type id and power-of-two size.
//!
//! Usage: cargo run --release --example fuzz_seeds -- CORPUS_DIR [--max-len BYTES] [--per-bucket N] DUMP...

use rdbkit::decode::fuzzing::{self, BlobKind};
use rdbkit::{payload, Decoder, Item, Magic};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

struct Out {
    dir: PathBuf,
    max_len: usize,
    per_bucket: usize,
    /// Seeds kept per (target, type id, log2 of the length): real dumps hold thousands of blobs
    /// that differ only in their payload, and a short CI run should not spend itself on them.
    buckets: BTreeMap<(&'static str, u8, u32), usize>,
    seen: BTreeSet<(&'static str, u64)>,
    written: BTreeMap<&'static str, usize>,
}

/// FNV-1a, to name seeds by content (a CRC64 would name every DUMP payload alike: a message
/// followed by its own CRC has a constant CRC).
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Out {
    fn put(&mut self, target: &'static str, type_id: u8, bytes: &[u8]) {
        if bytes.is_empty() || bytes.len() > self.max_len {
            return;
        }
        let hash = fnv1a(bytes);
        if !self.seen.insert((target, hash)) {
            return;
        }
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        let path = dir.join(format!("{hash:016x}"));
        let n = self
            .buckets
            .entry((target, type_id, bytes.len().ilog2()))
            .or_default();
        // Seeds already on disk fill their bucket first, so reruns add nothing.
        if path.exists() {
            *n += 1;
        } else if *n < self.per_bucket {
            *n += 1;
            std::fs::write(&path, bytes).expect("write seed");
            *self.written.entry(target).or_default() += 1;
        }
    }
}

fn target_of(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Ziplist => "ziplist",
        BlobKind::Listpack => "listpack",
        BlobKind::Intset => "intset",
        BlobKind::Zipmap => "zipmap",
        BlobKind::StreamNode => "stream_node",
        BlobKind::LzfString => "lzf",
        BlobKind::Module => "module",
    }
}

fn cut(out: &mut Out, data: &[u8]) {
    let mut version = 0u16;
    for item in Decoder::new(data).verify_checksum(false) {
        let Ok(item) = item else { break };
        match item {
            Item::Header { magic, version: v } => {
                version = v as u16;
                debug_assert!(matches!(magic, Magic::Redis | Magic::Valkey));
            }
            Item::ModuleAux { id, body, .. } => {
                out.put("module", 0, body);
                // RediSearch's index definitions: their own target (fuzzing::module_search)
                if id.name() == "ft_index0" {
                    let mut seed = vec![0u8];
                    seed.extend_from_slice(body);
                    out.put("module_search", 0, &seed);
                }
            }
            Item::Entry(e) => {
                let valkey = fuzzing::entry_is_valkey(&e);
                let mut v = vec![e.type_id, u8::from(valkey)];
                v.extend_from_slice(e.raw);
                out.put("value", e.type_id, &v);
                out.put("payload", e.type_id, &payload::for_entry(&e, version));
                if let Some(i) = fuzzing::STREAM_TYPES.iter().position(|&t| t == e.type_id) {
                    let mut s = vec![i as u8];
                    s.extend_from_slice(e.raw);
                    out.put("stream", e.type_id, &s);
                }
                for (kind, blob) in fuzzing::blobs(e.type_id, e.raw, valkey) {
                    out.put(target_of(kind), e.type_id, &blob);
                }
                // module values a decoder of rdbkit reads: their own targets, with the selector
                // bytes those take (fuzzing::module_json, fuzzing::module_bloom)
                if let Ok(rdbkit::Value::Module(m)) = e.value() {
                    let name = m.id.name();
                    let encver = m.id.encver() as u8;
                    let bloom = [
                        "MBbloom--",
                        "MBbloomCF",
                        "CMSk-TYPE",
                        "TopK-TYPE",
                        "TDIS-TYPE",
                    ];
                    let (target, mut seed) = match name.as_str() {
                        "ReJSON-RL" => ("module_json", vec![u8::from(encver == 2)]),
                        n => match bloom.iter().position(|b| *b == n) {
                            Some(i) => ("module_bloom", vec![i as u8, encver]),
                            None => continue,
                        },
                    };
                    seed.extend_from_slice(m.body);
                    out.put(target, e.type_id, &seed);
                }
            }
            _ => {}
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: fuzz_seeds CORPUS_DIR [--max-len N] DUMP..."),
    );
    let mut out = Out {
        dir,
        max_len: 64 * 1024,
        per_bucket: 16,
        buckets: BTreeMap::new(),
        seen: BTreeSet::new(),
        written: BTreeMap::new(),
    };
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        if a == "--max-len" {
            out.max_len = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--max-len BYTES");
        } else if a == "--per-bucket" {
            out.per_bucket = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--per-bucket N");
        } else {
            files.push(a);
        }
    }
    for f in &files {
        match std::fs::read(Path::new(f)) {
            Ok(data) => cut(&mut out, &data),
            Err(e) => eprintln!("fuzz_seeds: skipping {f}: {e}"),
        }
    }
    for (t, n) in &out.written {
        println!("{t}: {n} new seeds");
    }
}
