//! Cuts fuzz seeds out of real dumps: for each dump given, writes the inputs of the per-value and
//! per-encoding fuzz targets into `<corpus>/<target>/<crc64>` (content-named, so reruns and
//! duplicates collapse). Whole files are copied by scripts/fuzz-seeds.sh itself.
//!
//! Usage: rdbkit-fuzz-seedgen CORPUS_DIR [--max-len BYTES] DUMP...

use rdbkit::decode::fuzzing::{self, BlobKind};
use rdbkit::{payload, Decoder, Item, Magic};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct Out {
    dir: PathBuf,
    max_len: usize,
    written: BTreeMap<&'static str, usize>,
}

impl Out {
    fn put(&mut self, target: &'static str, bytes: &[u8]) {
        if bytes.is_empty() || bytes.len() > self.max_len {
            return;
        }
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        let path = dir.join(format!("{:016x}", rdbkit::crc64(0, bytes)));
        if !path.exists() {
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
            Item::ModuleAux { body, .. } => out.put("module", body),
            Item::Entry(e) => {
                let valkey = fuzzing::entry_is_valkey(&e);
                let mut v = vec![e.type_id, u8::from(valkey)];
                v.extend_from_slice(e.raw);
                out.put("value", &v);
                out.put("payload", &payload::for_entry(&e, version));
                if let Some(i) = fuzzing::STREAM_TYPES.iter().position(|&t| t == e.type_id) {
                    let mut s = vec![i as u8];
                    s.extend_from_slice(e.raw);
                    out.put("stream", &s);
                }
                for (kind, blob) in fuzzing::blobs(e.type_id, e.raw, valkey) {
                    out.put(target_of(kind), &blob);
                }
            }
            _ => {}
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: seedgen CORPUS_DIR [--max-len N] DUMP..."));
    let mut out = Out {
        dir,
        max_len: 64 * 1024,
        written: BTreeMap::new(),
    };
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        if a == "--max-len" {
            out.max_len = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--max-len BYTES");
        } else {
            files.push(a);
        }
    }
    for f in &files {
        match std::fs::read(Path::new(f)) {
            Ok(data) => cut(&mut out, &data),
            Err(e) => eprintln!("seedgen: skipping {f}: {e}"),
        }
    }
    for (t, n) in &out.written {
        println!("{t}: {n} new seeds");
    }
}
