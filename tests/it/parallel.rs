//! The parallel decode (`--threads N`, `source::Input::decode_chunks`) gives exactly what the
//! sequential one gives: byte-identical export output, identical `info`, and the same error — the
//! first in file order — with the same partial output before it.

use rdbkit::source::{Chunk, ChunkOptions, ChunkWorker, Input};
use rdbkit::write::{put_string, RdbWriter};
use rdbkit::{DecodeError, Item};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn rdbkit(args: &[&str], stdin: Option<&Path>) -> (Option<i32>, Vec<u8>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rdbkit"));
    cmd.args(args);
    if let Some(p) = stdin {
        cmd.stdin(Stdio::from(std::fs::File::open(p).unwrap()));
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `rdbkit ARGS EXTRA FILE`.
fn rdbkit_on(args: &[&str], extra: &[&str], file: &str) -> (Option<i32>, Vec<u8>, String) {
    rdbkit(&[args, extra, &[file]].concat(), None)
}

fn all_dumps() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = rdbkit::testing::rdb_files(&root.join("testdata"), 20 << 20);
    if let Some(corpus) = rdbkit::testing::corpus_dir() {
        files.extend(rdbkit::testing::rdb_files(&corpus, 20 << 20));
    }
    files.sort();
    files
}

/// Export (both formats) and info (plain and salvage) of every test and corpus dump, decoded in
/// one thread and on three threads in regions of a few bytes (most regions hold no record start,
/// most records span regions: the most handing over there can be) for dumps under 64 KiB, and in
/// ~40 regions for every dump.
#[test]
fn parallel_output_is_byte_identical_to_sequential() {
    let files = all_dumps();
    let mut compared = 0;
    for f in &files {
        let file = f.to_str().unwrap();
        for args in [
            &["export", "--format", "jsonl"][..],
            &["export", "--format", "resp"],
            &["info", "--json"],
            &["info", "--salvage"],
        ] {
            let run = |extra: &[&str]| rdbkit_on(args, extra, file);
            let seq = run(&["--threads", "1"]);
            let len = std::fs::metadata(f).unwrap().len();
            let mut chunks = vec![(len / 40).max(1)];
            if len < 64 << 10 {
                chunks.push(3);
            }
            for chunk in chunks {
                let par = run(&["--threads", "3", "--chunk-bytes", &chunk.to_string()]);
                assert!(
                    seq == par,
                    "{args:?} {file} chunk {chunk}:\n{seq:?}\n{par:?}"
                );
                compared += 1;
            }
        }
    }
    eprintln!("{} dumps, {compared} comparisons", files.len());
}

/// Streamed input (stdin) is decoded in one thread; its output equals the parallel mapped one.
#[test]
fn stdin_output_equals_parallel_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rdbkit::testing::rdb_files(&root.join("testdata"), 20 << 20);
    assert!(!files.is_empty());
    for f in &files {
        for format in ["jsonl", "resp"] {
            let args = ["export", "--format", format, "--threads", "2"];
            let piped = rdbkit(&[&args[..], &["-"]].concat(), Some(f));
            let mapped = rdbkit(
                &[&args[..], &["--chunk-bytes", "64", f.to_str().unwrap()]].concat(),
                None,
            );
            assert!(piped == mapped, "{format} {}", f.display());
        }
    }
}

/// A hash listpack with one element: frames fine (a listpack is one string), fails to decode
/// ("1 elements, expected pairs").
fn odd_hash() -> Vec<u8> {
    let lp = [9, 0, 0, 0, 1, 0, 0x01, 0x01, 0xff];
    let mut raw = Vec::new();
    put_string(&mut raw, &lp);
    raw
}

/// Keys `k0…k{n-1}` with values of a few hundred bytes, and `bad` keys whose value is corrupt.
fn dump_with(bad: &[usize], n: usize, tail: &[u8]) -> Vec<u8> {
    let mut w = RdbWriter::new(12);
    w.aux(b"redis-ver", b"8.2.3").select_db(0);
    for i in 0..n {
        let key = format!("k{i}");
        if bad.contains(&i) {
            w.raw_key(key.as_bytes(), 16, &odd_hash(), None);
        } else {
            w.string_key(key.as_bytes(), &[b'v'; 300], None);
        }
        if i == n / 2 {
            w.select_db(3);
        }
    }
    w.bytes(tail);
    w.finish()
}

/// `dump` with the last byte of its CRC64 trailer changed.
fn bad_trailer(mut dump: Vec<u8>) -> Vec<u8> {
    *dump.last_mut().unwrap() ^= 1;
    dump
}

/// With several corrupt values and a framing error after them, every thread count and chunk size
/// reports the first corrupt value (key and offset), after the same partial output.
#[test]
fn first_error_in_file_order_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // value errors at k40 and k70, unknown opcode 0x42 after the keys
        ("values", dump_with(&[40, 70], 100, &[0x42])),
        // framing error only
        ("framing", dump_with(&[], 100, &[0x42])),
        // a value error in the last key before the framing error
        ("last", dump_with(&[99], 100, &[0x42])),
        // a wrong CRC64 trailer: the checksum of the spans hashed by the workers, joined in file
        // order, must find it, and name the same offset
        ("checksum", bad_trailer(dump_with(&[], 100, &[]))),
        // a value error before the wrong trailer wins
        (
            "value-then-checksum",
            bad_trailer(dump_with(&[40], 100, &[])),
        ),
    ];
    for (name, dump) in cases {
        let path = dir.path().join(format!("{name}.rdb"));
        std::fs::write(&path, &dump).unwrap();
        let file = path.to_str().unwrap();
        for args in [
            &["export", "--format", "jsonl"][..],
            &["export", "--format", "resp"],
            &["info"],
            &["info", "--salvage"],
        ] {
            let run = |extra: &[&str]| rdbkit_on(args, extra, file);
            let seq = run(&["--threads", "1"]);
            assert_eq!(seq.0, Some(1), "{name} {args:?}: {}", seq.2);
            if name.starts_with("value") && !args.contains(&"--salvage") {
                assert!(seq.2.contains("\"k40\""), "{}", seq.2);
            }
            if name == "checksum" {
                assert!(
                    seq.2.contains("checksum") || seq.2.contains("CRC"),
                    "{}",
                    seq.2
                );
            }
            for (threads, chunk) in [("2", "1"), ("3", "1"), ("2", "700"), ("2", "100000")] {
                let par = run(&["--threads", threads, "--chunk-bytes", chunk]);
                assert!(
                    seq == par,
                    "{name} {args:?} threads {threads} chunk {chunk}:\n{seq:?}\n{par:?}"
                );
            }
        }
    }
}

/// The library API: outputs reach `merge` in file order whatever the chunking, each item with the
/// position the sequential decoder is at just after it. And the engine really cuts the input and
/// spreads it: `work` is called with records once for each region of `chunk_bytes` in which
/// records begin (exactly those, from the sequential positions), and on more than one worker
/// thread (never on the calling thread, which only merges and works on the `Eof`).
#[test]
fn decode_chunks_merges_in_file_order() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::thread::ThreadId;
    /// Collects (offset, position) per entry; records, per call with items, the region its first
    /// item began in and the thread.
    struct Offsets {
        chunk_bytes: u64,
        calls: Mutex<Vec<(u64, ThreadId)>>,
    }
    impl ChunkWorker for Offsets {
        type State = ();
        type Out = Vec<(u64, u64)>;
        type Error = DecodeError;
        fn state(&self) {}
        fn output(&self) -> Vec<(u64, u64)> {
            Vec::new()
        }
        fn work(
            &self,
            _: &mut (),
            c: Chunk<'_, '_>,
            out: &mut Vec<(u64, u64)>,
        ) -> Result<(), DecodeError> {
            // the first entry of the call: the region it began in
            let mut first = None;
            for (item, pos) in c.items {
                if let Item::Entry(e) = item {
                    e.value()?;
                    out.push((e.offset, *pos));
                    first.get_or_insert(e.offset / self.chunk_bytes);
                }
            }
            if let Some(region) = first {
                let me = std::thread::current().id();
                self.calls.lock().unwrap().push((region, me));
            }
            Ok(())
        }
    }
    let dump = dump_with(&[], 2000, &[]);
    let mut want = Vec::new();
    let mut d = rdbkit::Decoder::new(&dump);
    while let Some(item) = d.next_item().unwrap() {
        if let Item::Entry(e) = item {
            want.push((e.offset, d.position()));
        }
    }
    assert_eq!(want.len(), 2000);
    let me = std::thread::current().id();
    for (threads, chunk_bytes) in [(1, 1), (2, 1), (4, 1), (2, 4096), (3, 1 << 20)] {
        let mut got = Vec::new();
        let opts = ChunkOptions {
            verify_checksum: true,
            threads,
            chunk_bytes,
            ..Default::default()
        };
        let worker = Offsets {
            chunk_bytes,
            calls: Mutex::new(Vec::new()),
        };
        Input::Bytes(dump.clone())
            .decode_chunks(opts, &worker, |o: &mut Vec<(u64, u64)>| {
                got.append(o);
                Ok::<(), DecodeError>(())
            })
            .unwrap();
        let what = format!("threads {threads} chunk {chunk_bytes}");
        assert_eq!(got, want, "{what}");
        let calls = worker.calls.into_inner().unwrap();
        let used: HashSet<ThreadId> = calls.iter().map(|(_, t)| *t).collect();
        if threads == 1 {
            // one item per call, all on this thread
            assert_eq!(used, HashSet::from([me]), "{what}");
            continue;
        }
        // the regions that entries begin in, each worked on in one call
        let mut regions: Vec<u64> = calls.iter().map(|(r, _)| *r).collect();
        regions.sort_unstable();
        let mut expected: Vec<u64> = want.iter().map(|(o, _)| o / chunk_bytes).collect();
        expected.dedup();
        assert_eq!(regions, expected, "{what}");
        assert!(!used.contains(&me), "{what}: worked on the calling thread");
        assert!(used.len() <= threads, "{what}: {} threads", used.len());
        if chunk_bytes == 1 {
            // ~600,000 one-byte regions, each read once the one before has handed over: the
            // reading alternates between the workers for as long as the decode runs
            assert_eq!(regions.len(), 2000, "{what}");
            assert!(used.len() >= 2, "{what}: every region on one thread");
        }
    }
}

/// Values that are themselves valid record streams (a dump's body stored as a string), next to
/// small keys, in two databases. Regions start inside such values, where records frame perfectly:
/// a worker must read from where the region before it stopped (with that region's database), never
/// from records it could find by looking. Every chunk size gives the sequential output, and the
/// library API sees the same items.
#[test]
fn records_inside_values_are_read_as_values() {
    let mut inner = RdbWriter::new(12);
    inner.aux(b"redis-ver", b"8.2.3").select_db(0);
    for i in 0..300 {
        inner.string_key(
            format!("fake{i}").as_bytes(),
            format!("v{i}").as_bytes(),
            None,
        );
    }
    let inner = inner.finish();
    let mut w = RdbWriter::new(12);
    w.aux(b"redis-ver", b"8.2.3").select_db(0);
    for i in 0..60 {
        if i == 30 {
            w.select_db(5);
        }
        w.string_key(format!("real{i}").as_bytes(), &inner[9..], None);
        w.string_key(
            format!("small{i}").as_bytes(),
            b"x",
            Some(1_900_000_000_000 + i),
        );
    }
    let dump = w.finish();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested.rdb");
    std::fs::write(&path, &dump).unwrap();
    let file = path.to_str().unwrap();
    for args in [&["export", "--format", "jsonl"][..], &["info", "--json"]] {
        let run = |extra: &[&str]| rdbkit_on(args, extra, file);
        let seq = run(&["--threads", "1"]);
        assert_eq!(seq.0, Some(0), "{}", seq.2);
        for chunk in ["7", "100", "1000", "4096", "20000"] {
            let par = run(&["--threads", "2", "--chunk-bytes", chunk]);
            assert!(seq == par, "{args:?} chunk {chunk}:\n{}\n{}", seq.2, par.2);
        }
        if args[0] == "export" {
            let out = String::from_utf8(seq.1).unwrap();
            assert_eq!(out.lines().count(), 120);
            assert!(!out.contains("\"fake"), "a fake key leaked into the output");
            assert_eq!(out.matches("\"db\":5").count(), 60);
        }
    }
    // the library API, with chunk sizes that start regions inside the values
    struct Keys;
    impl ChunkWorker for Keys {
        type State = ();
        type Out = Vec<(u64, Vec<u8>)>;
        type Error = DecodeError;
        fn state(&self) {}
        fn output(&self) -> Self::Out {
            Vec::new()
        }
        fn work(
            &self,
            _: &mut (),
            c: Chunk<'_, '_>,
            out: &mut Self::Out,
        ) -> Result<(), DecodeError> {
            for (item, _) in c.items {
                if let Item::Entry(e) = item {
                    out.push((e.db, e.key.to_vec()));
                }
            }
            Ok(())
        }
    }
    let want: Vec<(u64, Vec<u8>)> = rdbkit::Decoder::new(&dump)
        .filter_map(|i| match i.unwrap() {
            Item::Entry(e) => Some((e.db, e.key.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(want.len(), 120);
    for chunk_bytes in [333, 2048, 8191] {
        let mut got = Vec::new();
        let opts = ChunkOptions {
            verify_checksum: true,
            threads: 2,
            chunk_bytes,
            ..Default::default()
        };
        Input::Bytes(dump.clone())
            .decode_chunks(opts, &Keys, |o: &mut Vec<(u64, Vec<u8>)>| {
                got.append(o);
                Ok::<(), DecodeError>(())
            })
            .unwrap();
        assert_eq!(got, want, "chunk {chunk_bytes}");
    }
}
