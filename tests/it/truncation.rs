//! Robustness on damaged input: every dump in testdata/ and in the corpus (`../shared/corpus`,
//! byte-identical copies once), cut short, with bytes flipped, and with length fields set to huge
//! values, must give a `DecodeError` (or, where the damage leaves a valid dump, a result) — never a
//! panic, a hang or a runaway allocation.
//!
//! * Cuts: every offset of dumps under 64 KiB; for larger ones the first and last 256 offsets,
//!   both sides of up to 300 item boundaries, and 1200 pseudo-random offsets (seeded by the file
//!   name): at least 2000 in all. A cut before the end of the EOF trailer must fail; a cut
//!   after it must give what the whole file gives. The error must name an offset inside the cut.
//! * The same cuts, a sample of them, through `source::StreamDecoder` over a `&[u8]`: the same
//!   outcome and the same message as `Decoder`.
//! * Single-byte flips at sampled offsets: any outcome but a panic.
//! * Huge lengths: `0x81 + u64::MAX`, `0x80 + u32::MAX` and an LZF header claiming a huge
//!   uncompressed size spliced in at sampled offsets (any outcome but a panic), and, for every
//!   key record (up to a limit), its first length field and its nested blob's size header set to
//!   huge values (must fail, and not merely on the checksum).
//!
//! Every decode goes through every item and every entry's `value()`. Values whose bytes are
//! unchanged from the intact dump are not decoded again (their result is known), which keeps the
//! whole test under a few seconds per CPU in `cargo test --release`. Memory is watched with a
//! counting global allocator (peak live bytes over the test) and reported with VmHWM; a worker
//! that stops making progress for 30 s fails the test with the input it was working on.

use rdbkit::source::StreamDecoder;
use rdbkit::{Checksum, DecodeError, Decoder, ErrorKind, Item};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Counting allocator: live and peak bytes of this test binary
// ---------------------------------------------------------------------------------------------

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Bytes not yet added to LIVE: the workers allocate for every integer-encoded key, and one
    /// shared counter per allocation would make them queue on its cache line.
    static PENDING: Cell<isize> = const { Cell::new(0) };
}

/// Counts `delta` bytes; LIVE lags by under 64 KiB per thread, so PEAK is exact to that.
fn account(delta: isize) {
    let flush = |v: isize| {
        let live = LIVE.fetch_add(v, Relaxed) + v;
        if live > PEAK.load(Relaxed) {
            PEAK.fetch_max(live, Relaxed);
        }
    };
    let direct = PENDING.try_with(|p| {
        let v = p.get() + delta;
        if v.unsigned_abs() < 1 << 16 {
            p.set(v);
        } else {
            p.set(0);
            flush(v);
        }
    });
    if direct.is_err() {
        flush(delta); // thread-local storage already torn down
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            account(l.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            account(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        account(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            account(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let testdata = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(testdata)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rdb"))
        .collect();
    paths.sort();
    for p in paths {
        let name = format!("testdata/{}", p.file_name().unwrap().to_string_lossy());
        out.push((name, std::fs::read(&p).unwrap()));
    }
    if let Some(root) = rdbkit::testing::corpus_dir() {
        let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
        let mut lines = manifest.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let (path, dup) = (col("path"), col("dup_of"));
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            if f.get(dup).is_some_and(|d| !d.is_empty()) {
                continue; // byte-identical to an earlier row
            }
            out.push((
                f[path].to_string(),
                std::fs::read(root.join(f[path])).unwrap(),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Decoding everything, with value results of the intact dump reused
// ---------------------------------------------------------------------------------------------

/// What decoding an input gave.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok {
        entries: usize,
        checksum: Checksum,
    },
    Err {
        offset: u64,
        msg: String,
        checksum_mismatch: bool,
    },
}

impl Outcome {
    /// StreamDecoder reports a CRC mismatch without the "[dump written by …]" note that Decoder
    /// adds (src/source.rs returns `check_trailer`'s error as is); compare without it.
    fn same_as(&self, other: &Outcome) -> bool {
        let strip = |o: &Outcome| match o {
            Outcome::Err {
                offset,
                msg,
                checksum_mismatch: true,
            } => Outcome::Err {
                offset: *offset,
                msg: msg
                    .split(" [dump written by")
                    .next()
                    .unwrap_or("")
                    .to_string(),
                checksum_mismatch: true,
            },
            o => o.clone(),
        };
        strip(self) == strip(other)
    }

    fn from_err(e: &DecodeError) -> Outcome {
        Outcome::Err {
            offset: e.offset(),
            msg: e.to_string(),
            checksum_mismatch: matches!(e.kind(), ErrorKind::ChecksumMismatch { .. }),
        }
    }
}

/// Value results of the intact dump by value offset: (type, raw length, decoded OK).
type Memo = HashMap<u64, (u8, usize, bool)>;

/// Where the damaged input differs from the intact one: bytes `at..at + removed` of the intact
/// dump were replaced by `inserted` bytes (a cut is "everything from `at` removed").
#[derive(Clone, Copy)]
struct Edit {
    at: usize,
    removed: usize,
    inserted: usize,
}

struct Intact<'a> {
    data: &'a [u8],
    memo: Memo,
    /// Every value of the intact dump decodes.
    all_ok: bool,
}

impl Intact<'_> {
    /// The value result for an entry of a damaged input, when its bytes equal an entry of the
    /// intact dump.
    fn known(&self, edit: Edit, value_offset: u64, type_id: u8, raw: &[u8]) -> Option<bool> {
        let v = value_offset as usize;
        let orig = if v + raw.len() <= edit.at {
            // before the edit: the very bytes of the intact dump
            if self.all_ok {
                return Some(true);
            }
            return self.memo.get(&value_offset).map(|m| m.2);
        } else if v >= edit.at + edit.inserted {
            (v + edit.removed).checked_sub(edit.inserted)?
        } else {
            return None;
        };
        let &(t, len, ok) = self.memo.get(&(orig as u64))?;
        (t == type_id && len == raw.len() && self.data.get(orig..orig + len) == Some(raw))
            .then_some(ok)
    }
}

/// Decodes every item and every value of `input`; the first error ends it.
fn run_decoder(input: &[u8], intact: Option<(&Intact<'_>, Edit)>) -> Outcome {
    let mut entries = 0;
    for item in Decoder::new(input) {
        match item {
            Ok(Item::Entry(e)) => {
                entries += 1;
                let known =
                    intact.and_then(|(i, ed)| i.known(ed, e.value_offset, e.type_id, e.raw));
                if known != Some(true) {
                    if let Err(err) = e.value() {
                        return Outcome::from_err(&err);
                    }
                }
            }
            Ok(Item::Eof { checksum, .. }) => return Outcome::Ok { entries, checksum },
            Ok(_) => {}
            Err(err) => return Outcome::from_err(&err),
        }
    }
    panic!("the decoder ended without Eof or an error")
}

/// The same through the streaming decoder.
fn run_stream(input: &[u8], intact: &Intact<'_>, edit: Edit) -> Outcome {
    let mut d = StreamDecoder::new(input);
    let mut entries = 0;
    loop {
        match d.next_item() {
            Ok(Some(Item::Entry(e))) => {
                entries += 1;
                if intact.known(edit, e.value_offset, e.type_id, e.raw) != Some(true) {
                    if let Err(err) = e.value() {
                        return Outcome::from_err(&err);
                    }
                }
            }
            Ok(Some(Item::Eof { checksum, .. })) => return Outcome::Ok { entries, checksum },
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream decoder ended without Eof or an error"),
            Err(err) => return Outcome::from_err(&err),
        }
    }
}

/// The intact dump: its outcome, value memo, item ends, and where the EOF trailer ends.
fn study(data: &[u8]) -> (Outcome, Intact<'_>, Vec<usize>, Option<usize>) {
    let mut memo = Memo::new();
    let mut ends = Vec::new();
    let mut eof_end = None;
    let mut outcome = None;
    let mut entries = 0;
    let mut dec = Decoder::new(data);
    loop {
        match dec.next_item() {
            Ok(Some(item)) => {
                ends.push(dec.position() as usize);
                match item {
                    Item::Entry(e) => {
                        entries += 1;
                        let res = e.value();
                        memo.insert(e.value_offset, (e.type_id, e.raw.len(), res.is_ok()));
                        if let Err(err) = res {
                            outcome = Some(Outcome::from_err(&err));
                            break;
                        }
                    }
                    Item::Eof { checksum, .. } => {
                        eof_end = Some(dec.position() as usize);
                        outcome = Some(Outcome::Ok { entries, checksum });
                    }
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(err) => {
                outcome = Some(Outcome::from_err(&err));
                break;
            }
        }
    }
    let all_ok = memo.values().all(|m| m.2);
    (
        outcome.expect("no outcome"),
        Intact { data, memo, all_ok },
        ends,
        eof_end,
    )
}

// ---------------------------------------------------------------------------------------------
// Offsets and mutations
// ---------------------------------------------------------------------------------------------

/// xorshift64*, seeded per file so every run checks the same offsets.
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Rng {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Rng(h | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Budget {
    /// Files below this size are cut at every offset.
    every_offset_below: usize,
    /// Cuts at both ends of larger files.
    edge_cuts: usize,
    /// Offsets per larger file: random ones (plus the edges and item boundaries)…
    random_cuts: usize,
    /// …and more random ones until there are this many.
    min_cuts: usize,
    /// Item boundaries cut on both sides, per larger file.
    boundaries: usize,
    /// One cut in this many also goes through StreamDecoder…
    stream_every: usize,
    /// …as long as the StreamDecoder runs of the file stay under this many input bytes.
    stream_bytes: usize,
    flips_small: usize,
    flips_large: usize,
    splices_small: usize,
    splices_large: usize,
    targeted_entries: usize,
}

const RELEASE: Budget = Budget {
    every_offset_below: 64 * 1024,
    edge_cuts: 256,
    random_cuts: 1200,
    min_cuts: 2000,
    boundaries: 300,
    stream_every: 61,
    stream_bytes: 8 << 20,
    flips_small: 400,
    flips_large: 96,
    splices_small: 120,
    splices_large: 48,
    targeted_entries: 64,
};

/// Unoptimized builds are ~20× slower: a thinner pass keeps `cargo test` usable; the full
/// budget runs under `--release`.
const DEBUG: Budget = Budget {
    every_offset_below: 2 * 1024,
    edge_cuts: 32,
    random_cuts: 100,
    min_cuts: 200,
    boundaries: 30,
    stream_every: 97,
    stream_bytes: 1 << 20,
    flips_small: 40,
    flips_large: 8,
    splices_small: 12,
    splices_large: 4,
    targeted_entries: 8,
};

fn cut_offsets(len: usize, ends: &[usize], rng: &mut Rng, b: &Budget) -> Vec<usize> {
    if len < b.every_offset_below {
        return (0..len).collect();
    }
    let e = b.edge_cuts;
    let mut v: Vec<usize> = (0..e.min(len)).chain(len.saturating_sub(e)..len).collect();
    let step = (ends.len() / b.boundaries).max(1);
    for &e in ends.iter().step_by(step) {
        v.extend(
            [e.saturating_sub(1), e, e + 1]
                .into_iter()
                .filter(|&k| k < len),
        );
    }
    v.extend((0..b.random_cuts).map(|_| rng.below(len)));
    v.sort_unstable();
    v.dedup();
    while v.len() < b.min_cuts.min(len) {
        v.push(rng.below(len));
        v.sort_unstable();
        v.dedup();
    }
    v
}

/// Huge-length encodings spliced over one byte.
const HUGE: [&[u8]; 3] = [
    &[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x80, 0xff, 0xff, 0xff, 0xff],
    // LZF string: 1 compressed byte that claims to expand to 2^64-1 bytes
    &[
        0xc3, 0x01, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ],
];

fn splice(data: &[u8], at: usize, removed: usize, with: &[u8]) -> (Vec<u8>, Edit) {
    let mut v = Vec::with_capacity(data.len() + with.len());
    v.extend_from_slice(&data[..at]);
    v.extend_from_slice(with);
    v.extend_from_slice(&data[at + removed..]);
    (
        v,
        Edit {
            at,
            removed,
            inserted: with.len(),
        },
    )
}

/// The size of the RDB length / string header at the start of `raw`, and for LZF strings the
/// offsets and sizes of its two lengths.
enum Header {
    Len(usize),
    Int,
    Lzf {
        clen: (usize, usize),
        ulen: (usize, usize),
    },
}

fn len_size(b: u8) -> Option<usize> {
    match b >> 6 {
        0 => Some(1),
        1 => Some(2),
        2 if b == 0x80 => Some(5),
        2 if b == 0x81 => Some(9),
        _ => None,
    }
}

fn header(raw: &[u8]) -> Option<Header> {
    let b = *raw.first()?;
    if let Some(n) = len_size(b) {
        return Some(Header::Len(n));
    }
    match b {
        0xc0..=0xc2 => Some(Header::Int),
        0xc3 => {
            let c = len_size(*raw.get(1)?)?;
            let u = len_size(*raw.get(1 + c)?)?;
            Some(Header::Lzf {
                clen: (1, c),
                ulen: (1 + c, u),
            })
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// One file
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    cuts: usize,
    stream: usize,
    flips: usize,
    splices: usize,
    targeted: usize,
}

/// What a worker is doing, for the watchdog and panic reports.
struct Progress {
    file: AtomicUsize,
    phase: AtomicUsize,
    offset: AtomicU64,
}

const PHASES: [&str; 6] = ["study", "cut", "stream", "flip", "splice", "targeted"];

fn check_file(
    name: &str,
    data: &[u8],
    b: &Budget,
    p: &Progress,
    failures: &mut Vec<String>,
) -> Tally {
    let mut t = Tally::default();
    let mark = |phase: usize, at: usize| {
        p.phase.store(phase, Relaxed);
        p.offset.store(at as u64, Relaxed);
    };
    mark(0, 0);
    let (full, intact, ends, eof_end) = study(data);
    let mut rng = Rng::new(name);
    let mut fail = |msg: String| {
        if failures.len() < 40 {
            failures.push(format!("{name}: {msg}"));
        }
    };

    // The whole file through StreamDecoder first.
    mark(2, data.len());
    let none = Edit {
        at: data.len(),
        removed: 0,
        inserted: 0,
    };
    let s = run_stream(data, &intact, none);
    t.stream += 1;
    if !s.same_as(&full) {
        fail(format!("whole file: StreamDecoder {s:?}, Decoder {full:?}"));
    }
    // StreamDecoder compacts its window after every item, which costs O(items × window) (1.5 s
    // for redis-replicator/dumpV8.rdb, 3.7 MB / 92 510 items, against 4 ms for Decoder), so the
    // streamed sample is bounded by input bytes.
    let mut stream_bytes = data.len();
    let mut stream_ok = |n: usize| {
        stream_bytes += n;
        stream_bytes <= b.stream_bytes
    };

    // Cuts.
    let cuts = cut_offsets(data.len(), &ends, &mut rng, b);
    let stream_every = if data.len() < b.every_offset_below {
        b.stream_every
    } else {
        (cuts.len() / 40).max(1)
    };
    for (i, &k) in cuts.iter().enumerate() {
        mark(1, k);
        let edit = Edit {
            at: k,
            removed: data.len() - k,
            inserted: 0,
        };
        let got = run_decoder(&data[..k], Some((&intact, edit)));
        t.cuts += 1;
        let complete = eof_end.is_some_and(|e| k >= e);
        match &got {
            Outcome::Ok { .. } if !complete => {
                fail(format!("cut at {k} of {} decodes: {got:?}", data.len()))
            }
            Outcome::Ok { .. } if got != full => fail(format!(
                "cut at {k} after the trailer: {got:?}, whole file {full:?}"
            )),
            Outcome::Err { offset, msg, .. } => {
                if complete && got != full {
                    fail(format!(
                        "cut at {k} after the trailer: {msg}, whole file {full:?}"
                    ));
                }
                if !msg.starts_with("offset 0x") || *offset > k as u64 {
                    fail(format!("cut at {k}: error outside the input: {msg}"));
                }
            }
            _ => {}
        }
        if i % stream_every == stream_every / 2 && stream_ok(k) {
            mark(2, k);
            let s = run_stream(&data[..k], &intact, edit);
            t.stream += 1;
            if !s.same_as(&got) {
                fail(format!("cut at {k}: StreamDecoder {s:?}, Decoder {got:?}"));
            }
        }
    }

    let well_formed = |o: &Outcome, what: &str, fail: &mut dyn FnMut(String)| {
        if let Outcome::Err { msg, .. } = o {
            if !msg.starts_with("offset 0x") {
                fail(format!("{what}: error without an offset: {msg}"));
            }
        }
    };

    // Single-byte flips.
    let flips = if data.len() < b.every_offset_below {
        b.flips_small
    } else {
        b.flips_large
    };
    let mut buf = data.to_vec();
    for i in 0..flips.min(data.len()) {
        // evenly spread, each nudged randomly; the header bytes always
        let k = if i < 9 {
            i
        } else {
            (i * data.len() / flips + rng.below(data.len() / flips + 1)).min(data.len() - 1)
        };
        let x = (rng.next() as u8) | 1;
        mark(3, k);
        buf[k] ^= x;
        let edit = Edit {
            at: k,
            removed: 1,
            inserted: 1,
        };
        let got = run_decoder(&buf, Some((&intact, edit)));
        well_formed(&got, &format!("flip {x:#04x} at {k}"), &mut fail);
        if i % 16 == 0 && stream_ok(buf.len()) {
            mark(2, k);
            let s = run_stream(&buf, &intact, edit);
            t.stream += 1;
            if !s.same_as(&got) {
                fail(format!("flip at {k}: StreamDecoder {s:?}, Decoder {got:?}"));
            }
        }
        buf[k] ^= x;
        t.flips += 1;
    }

    // Huge lengths spliced in anywhere.
    let splices = if data.len() < b.every_offset_below {
        b.splices_small
    } else {
        b.splices_large
    };
    for i in 0..splices.min(data.len()) {
        let k = rng.below(data.len());
        let with = HUGE[i % HUGE.len()];
        mark(4, k);
        let (m, edit) = splice(data, k, 1, with);
        let got = run_decoder(&m, Some((&intact, edit)));
        well_formed(&got, &format!("huge length at {k}"), &mut fail);
        t.splices += 1;
    }

    // Huge lengths where a key record's value has one: its first length (count or string
    // length), an LZF string's two lengths, the size header of a nested blob.
    let mut values: Vec<(u64, u8, usize)> = intact
        .memo
        .iter()
        .map(|(&off, &(ty, len, _))| (off, ty, len))
        .collect();
    values.sort_unstable();
    let step = (values.len() / b.targeted_entries).max(1);
    for &(off, ty, len) in values.iter().step_by(step) {
        let v = off as usize;
        let raw = &data[v..v + len];
        let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        match header(raw) {
            Some(Header::Len(n)) => {
                edits.push((v, n, HUGE[0].to_vec()));
                edits.push((v, n, HUGE[1].to_vec()));
                // A string-encoded blob: 0xffffffff over a ziplist's or listpack's total-bytes
                // header, an intset's member count, or a zipmap's count byte and first entries.
                if matches!(ty, 9..=13 | 16 | 17 | 20) && len >= n + 4 {
                    let at = if ty == 11 { v + n + 4 } else { v + n };
                    if at + 4 <= v + len {
                        edits.push((at, 4, vec![0xff; 4]));
                    }
                }
            }
            Some(Header::Lzf { clen, ulen }) => {
                edits.push((v + clen.0, clen.1, HUGE[0].to_vec()));
                edits.push((v + ulen.0, ulen.1, HUGE[0].to_vec()));
            }
            Some(Header::Int) | None => {}
        }
        for (at, removed, with) in edits {
            mark(5, at);
            let (m, edit) = splice(data, at, removed, &with);
            let got = run_decoder(&m, Some((&intact, edit)));
            t.targeted += 1;
            match &got {
                // A module value's first length is its type id: any id decodes.
                _ if ty == 7 => {}
                // The intact dump fails on an earlier record.
                Outcome::Err { offset, .. } if *offset < off && !matches!(full, Outcome::Ok { .. }) => {}
                Outcome::Err {
                    checksum_mismatch: false,
                    ..
                } => {}
                _ => fail(format!(
                    "type {ty} value at {off:#x}: {with:02x?} over {removed} bytes at {at:#x} gives {got:?}"
                )),
            }
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn damaged_dumps_fail_cleanly() {
    let started = Instant::now();
    let budget = if cfg!(debug_assertions) {
        eprintln!("unoptimized build: reduced budget (run with --release for the full one)");
        &DEBUG
    } else {
        &RELEASE
    };
    let mut files = inputs();
    // RDBKIT_TRUNCATION_ONLY=<substring> narrows the run to matching files (for debugging).
    if let Ok(only) = std::env::var("RDBKIT_TRUNCATION_ONLY") {
        files.retain(|f| f.0.contains(&only));
        eprintln!("RDBKIT_TRUNCATION_ONLY={only}: {} files", files.len());
    }
    let files = Arc::new(files);
    let hwm_before = vm_hwm_kib();
    let live_before = LIVE.load(Relaxed);
    PEAK.store(live_before, Relaxed);

    // Biggest first, shared out to one worker per CPU.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].1.len()));
    let order = Arc::new(order);
    let next = Arc::new(AtomicUsize::new(0));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let progress: Arc<Vec<Progress>> = Arc::new(
        (0..workers)
            .map(|_| Progress {
                file: AtomicUsize::new(usize::MAX),
                phase: AtomicUsize::new(0),
                offset: AtomicU64::new(0),
            })
            .collect(),
    );
    let (tx, rx) = mpsc::channel::<(usize, Tally, Vec<String>, Duration)>();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (files, order, next, progress, tx) = (
                files.clone(),
                order.clone(),
                next.clone(),
                progress.clone(),
                tx.clone(),
            );
            std::thread::spawn(move || loop {
                let j = next.fetch_add(1, Relaxed);
                let Some(&i) = order.get(j) else {
                    progress[w].file.store(usize::MAX, Relaxed);
                    break;
                };
                progress[w].file.store(i, Relaxed);
                let t0 = Instant::now();
                let mut failures = Vec::new();
                let tally = check_file(
                    &files[i].0,
                    &files[i].1,
                    budget,
                    &progress[w],
                    &mut failures,
                );
                tx.send((i, tally, failures, t0.elapsed())).unwrap();
            })
        })
        .collect();
    drop(tx);

    let describe = |w: usize| {
        let p = &progress[w];
        let f = p.file.load(Relaxed);
        let Some((name, _)) = files.get(f) else {
            return format!("worker {w}: done");
        };
        format!(
            "worker {w}: {name}, {} at offset {}",
            PHASES[p.phase.load(Relaxed)],
            p.offset.load(Relaxed)
        )
    };
    let mut total = Tally::default();
    let mut failures = Vec::new();
    let mut slowest: Vec<(Duration, usize)> = Vec::new();
    let mut done = 0;
    while done < files.len() {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((i, t, f, took)) => {
                done += 1;
                total.cuts += t.cuts;
                total.stream += t.stream;
                total.flips += t.flips;
                total.splices += t.splices;
                total.targeted += t.targeted;
                failures.extend(f);
                slowest.push((took, i));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let state: Vec<String> = (0..workers).map(describe).collect();
                panic!("no file finished for 30 s (a hang?):\n{}", state.join("\n"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // a worker panicked: the decoder must never do that
                let state: Vec<String> = (0..workers).map(describe).collect();
                panic!(
                    "a worker died (panic in the decoder?):\n{}",
                    state.join("\n")
                );
            }
        }
    }
    for h in handles {
        if h.join().is_err() {
            let state: Vec<String> = (0..workers).map(describe).collect();
            panic!("a worker panicked:\n{}", state.join("\n"));
        }
    }

    let elapsed = started.elapsed();
    let peak = PEAK.load(Relaxed).saturating_sub(live_before);
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (took, i) in slowest.iter().take(5) {
        eprintln!(
            "  {:>8.2?}  {} ({} bytes)",
            took,
            files[*i].0,
            files[*i].1.len()
        );
    }
    eprintln!(
        "{} dumps ({} bytes): {} cuts, {} through StreamDecoder, {} flips, {} huge-length splices, \
         {} huge lengths in key records; {:.1?} on {workers} threads; peak heap growth {:.1} MiB, \
         VmHWM {:?} → {:?} KiB",
        files.len(),
        files.iter().map(|f| f.1.len()).sum::<usize>(),
        total.cuts,
        total.stream,
        total.flips,
        total.splices,
        total.targeted,
        elapsed,
        peak as f64 / (1 << 20) as f64,
        hwm_before,
        vm_hwm_kib()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(
        peak < 256 << 20,
        "heap grew by {peak} bytes while decoding damaged dumps"
    );
    if !cfg!(debug_assertions) {
        assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    }
}

#[test]
fn offsets_cover_small_files_fully_and_large_ones_widely() {
    let mut rng = Rng::new("x");
    assert_eq!(
        cut_offsets(100, &[9, 50], &mut rng, &RELEASE),
        (0..100).collect::<Vec<_>>()
    );
    let big = cut_offsets(1 << 20, &[9, 1000, 500_000], &mut rng, &RELEASE);
    assert!(big.len() >= 2000);
    assert!(big.contains(&0) && big.contains(&8) && big.contains(&((1 << 20) - 1)));
    assert!(big.contains(&499_999) && big.contains(&500_001));
    assert!(big.windows(2).all(|w| w[0] < w[1]));
}
