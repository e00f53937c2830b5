//! The importer against a target that misbehaves: a TCP proxy in front of a real 8.2 cuts a
//! connection in the middle of a reply, stops answering, answers slowly, sends a reply that does
//! not fit its command, or sends bytes that are not RESP.
//!
//! Once, each fault must be survived (reconnect, idempotent re-send) with a dataset equal to a
//! direct load. Forever, the import must end (no hang) with a failure that lists the keys in
//! doubt, and its checkpoint must cover only acknowledged keys: a resume straight into the
//! server then completes the dataset (a checkpoint that counted an unacknowledged key as done
//! would leave it missing, and the datasets would differ).

use crate::common;

use common::{Server, Version};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What the proxy does to the replies of a data connection (one whose commands include RESTORE;
/// the control-plane connections pass untouched).
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Forward the first three bytes of the next chunk of replies (the middle of a reply), then
    /// close both sides.
    Cut,
    /// Stop forwarding replies; keep the connection open.
    Stall,
    /// Every chunk of replies is held back this long (no fault budget used).
    Slow(Duration),
    /// Replace the second `+OK` of the next chunk (the first may be SELECT's) with `:1`: a
    /// RESTORE never answers an integer.
    WrongType,
    /// Put bytes that are not RESP before the next chunk.
    Garbage,
    /// After this many bytes of replies in all, forward nothing more either way, on any data
    /// connection: commands sent from then on never reach the server, replies never come back.
    Blackhole(usize),
}

struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Times the fault fired.
    fired: Arc<AtomicUsize>,
}

/// State shared by a proxy's connections.
struct Budget {
    /// Faults left to fire (negative: unlimited).
    times: AtomicI64,
    /// Reply bytes left before a blackhole opens.
    grace: AtomicI64,
    fired: Arc<AtomicUsize>,
}

impl Proxy {
    /// A proxy to `upstream` applying `fault` at most `times` times (negative: always).
    fn start(upstream: u16, fault: Fault, times: i64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicUsize::new(0));
        let budget = Arc::new(Budget {
            times: AtomicI64::new(times),
            grace: AtomicI64::new(match fault {
                Fault::Blackhole(g) => g as i64,
                _ => 0,
            }),
            fired: fired.clone(),
        });
        let s = stop.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let budget = budget.clone();
                thread::spawn(move || pump(client, server, fault, &budget));
            }
        });
        Proxy { port, stop, fired }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Forwards one connection both ways, applying the fault to the replies.
fn pump(client: TcpStream, server: TcpStream, fault: Fault, budget: &Budget) {
    let data = Arc::new(AtomicBool::new(false));
    let black = Arc::new(AtomicBool::new(false));
    {
        let (mut c, mut s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (data, black) = (data.clone(), black.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if buf[..n].windows(13).any(|w| w == b"$7\r\nRESTORE\r\n") {
                    data.store(true, SeqCst);
                }
                if black.load(SeqCst) {
                    continue;
                }
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = s.shutdown(Shutdown::Both);
            let _ = c.shutdown(Shutdown::Both);
        });
    }
    let (mut c, mut s) = (client, server);
    let mut buf = vec![0u8; 64 << 10];
    let mut stalled = false;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = buf[..n].to_vec();
        if stalled {
            continue;
        }
        if data.load(SeqCst) {
            match fault {
                Fault::Slow(d) => thread::sleep(d),
                Fault::Blackhole(_) if budget.grace.fetch_sub(n as i64, SeqCst) < n as i64 => {
                    black.store(true, SeqCst);
                    budget.fired.fetch_add(1, SeqCst);
                    stalled = true;
                    continue;
                }
                Fault::Blackhole(_) => {}
                _ if take(&budget.times) => {
                    budget.fired.fetch_add(1, SeqCst);
                    match fault {
                        Fault::Cut => {
                            let _ = c.write_all(&chunk[..chunk.len().min(3)]);
                            let _ = c.shutdown(Shutdown::Both);
                            let _ = s.shutdown(Shutdown::Both);
                            return;
                        }
                        Fault::Stall => {
                            stalled = true;
                            continue;
                        }
                        Fault::WrongType => {
                            let oks: Vec<usize> = chunk
                                .windows(5)
                                .enumerate()
                                .filter(|(_, w)| *w == b"+OK\r\n")
                                .map(|(i, _)| i)
                                .take(2)
                                .collect();
                            if let [_, i] = oks[..] {
                                chunk.splice(i..i + 5, b":1\r\n".iter().copied());
                            } else {
                                // not in this chunk: give the budget back
                                give_back(&budget.times);
                                budget.fired.fetch_sub(1, SeqCst);
                            }
                        }
                        Fault::Garbage => {
                            chunk.splice(0..0, b"!not resp\r\n".iter().copied());
                        }
                        Fault::Slow(_) | Fault::Blackhole(_) => unreachable!(),
                    }
                }
                _ => {}
            }
        }
        if c.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = c.shutdown(Shutdown::Both);
}

/// Spends one unit of the fault budget (a negative budget never runs out).
fn take(budget: &AtomicI64) -> bool {
    budget
        .fetch_update(SeqCst, SeqCst, |b| match b {
            0 => None,
            b if b < 0 => Some(b),
            b => Some(b - 1),
        })
        .is_ok()
}

/// Returns one unit taken by [`take`] (an unlimited, negative budget stays unlimited: adding 1
/// to -1 would make it 0, switching the fault off).
fn give_back(budget: &AtomicI64) {
    let _ = budget.fetch_update(SeqCst, SeqCst, |b| (b >= 0).then_some(b + 1));
}

#[test]
fn an_unlimited_budget_stays_unlimited() {
    let budget = AtomicI64::new(-1);
    assert!(take(&budget));
    give_back(&budget);
    assert!(take(&budget) && take(&budget));
    let budget = AtomicI64::new(1);
    assert!(take(&budget));
    assert!(!take(&budget));
    give_back(&budget);
    assert!(take(&budget));
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs rdbkit, failing the test if it has not ended within `limit` (a hang).
fn run_bounded(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "rdbkit {args:?} still running after {limit:?}:\n{}",
                text(&out)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

struct Setup {
    _tmp: tempfile::TempDir,
    dump: std::path::PathBuf,
    /// A server that loaded the dump itself.
    loader: Server,
    keys: u64,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dump = common::populated_dump(tmp.path(), 30_000);
    let loader = Server::start_with_dump(Version::V82, &dump, &[]);
    let keys = loader.keyspace().values().sum();
    Setup {
        _tmp: tmp,
        dump,
        loader,
        keys,
    }
}

fn import_through(proxy: &Proxy, s: &Setup, extra: &[&str]) -> Output {
    let url = proxy.url();
    let mut args = vec![
        "import",
        s.dump.to_str().unwrap(),
        "--target",
        &url,
        "--quiet",
        "--timeout",
        "2",
    ];
    args.extend_from_slice(extra);
    run_bounded(&args, Duration::from_secs(120))
}

#[test]
fn each_fault_once_is_survived_with_nothing_lost() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let s = setup();
    for (fault, cause) in [
        // a cut is seen by the reader (end of stream) or, when a batch is being sent at that
        // moment, by the writer (EPIPE): both are the cut
        (Fault::Cut, "closed the connection|write failed"),
        (Fault::Stall, "no reply for"),
        (
            Fault::WrongType,
            "unexpected reply Int(1) to the RESTORE of",
        ),
        (Fault::Garbage, "unreadable reply"),
    ] {
        let target = Server::start(Version::V82);
        let proxy = Proxy::start(target.port, fault, 1);
        let out = import_through(&proxy, &s, &[]);
        let t = text(&out);
        assert!(out.status.success(), "{fault:?}: {t}");
        assert_eq!(proxy.fired.load(SeqCst), 1, "{fault:?} never fired: {t}");
        assert!(t.contains("reconnects: 1"), "{fault:?}: {t}");
        assert!(
            cause.split('|').any(|c| t.contains(c)),
            "{fault:?}: no {cause:?} in {t}"
        );
        assert!(
            t.contains(&format!("written: {} keys", s.keys)),
            "{fault:?}: {t}"
        );
        common::same_dataset(&target, &s.loader).unwrap_or_else(|e| panic!("{fault:?}: {e}\n{t}"));
    }
}

#[test]
fn a_slow_target_is_waited_for() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let s = setup();
    let target = Server::start(Version::V82);
    let proxy = Proxy::start(target.port, Fault::Slow(Duration::from_millis(30)), 0);
    let out = import_through(&proxy, &s, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("reconnects"), "{t}");
    common::assert_same_dataset(&target, &s.loader);
}

#[test]
fn a_fault_that_never_clears_ends_the_import_with_keys_in_doubt() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let s = setup();
    for fault in [
        Fault::Cut,
        Fault::Stall,
        Fault::WrongType,
        Fault::Garbage,
        Fault::Blackhole(20_000),
    ] {
        let target = Server::start(Version::V82);
        let proxy = Proxy::start(target.port, fault, -1);
        let tmp = tempfile::tempdir().unwrap();
        let cp = tmp.path().join("cp.json");
        let summary = tmp.path().join("summary.json");
        let out = import_through(
            &proxy,
            &s,
            &[
                "--retries",
                "2",
                "--window-commands",
                "2000",
                "--checkpoint",
                cp.to_str().unwrap(),
                "--summary-json",
                summary.to_str().unwrap(),
            ],
        );
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{fault:?}: {t}");
        assert!(t.contains("the import stopped"), "{fault:?}: {t}");
        assert!(
            t.contains("gave up after 2 reconnect attempts"),
            "{fault:?}: {t}"
        );
        // the keys sent but never acknowledged are named
        let doubt: u64 = t
            .lines()
            .find_map(|l| l.strip_prefix("in doubt: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{fault:?}: no in-doubt count in {t}"));
        assert!(doubt > 0, "{fault:?}: {t}");
        let listed: Vec<&str> = t
            .lines()
            .skip_while(|l| !l.starts_with("in doubt: "))
            .skip(1)
            .take_while(|l| l.starts_with("  ") && !l.starts_with("  …"))
            .map(str::trim)
            .collect();
        assert_eq!(listed.len() as u64, doubt.min(5), "{fault:?}: {t}");
        // --summary-json names the same keys, as export writes keys
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        assert_eq!(j["status"], "failed", "{fault:?}: {j}");
        assert_eq!(j["exit_code"], 1, "{fault:?}");
        assert!(
            j["error"]
                .as_str()
                .unwrap()
                .contains("gave up after 2 reconnect attempts"),
            "{fault:?}: {j}"
        );
        assert_eq!(j["keys"]["in_doubt"], doubt, "{fault:?}: {j}");
        let named: Vec<String> = j["keys"]["in_doubt_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| format!("\"{}\"", k.as_str().unwrap()))
            .collect();
        assert_eq!(named.len() as u64, doubt.min(1000), "{fault:?}");
        assert_eq!(named[..listed.len()], listed[..], "{fault:?}");
        // what is counted as written is at most what the server holds
        let written: u64 = t
            .lines()
            .find_map(|l| l.strip_prefix("written: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        let held: u64 = target.keyspace().values().sum();
        assert!(
            written <= held,
            "{fault:?}: {written} counted, {held} held: {t}"
        );
        if let Fault::Blackhole(_) = fault {
            // some replies came through before the blackhole, and some commands never arrived
            assert!(written > 0, "{t}");
            assert!(held < s.keys, "everything arrived anyway: {t}");
        } else {
            // no batch was ever acknowledged whole
            assert_eq!(written, 0, "{fault:?}: {t}");
        }
        // resuming straight into the server from the checkpoint completes the dataset: the
        // checkpoint covered only acknowledged keys
        let direct = target.url();
        let out = run_bounded(
            &[
                "import",
                s.dump.to_str().unwrap(),
                "--target",
                &direct,
                "--quiet",
                "--checkpoint",
                cp.to_str().unwrap(),
            ],
            Duration::from_secs(120),
        );
        assert!(out.status.success(), "{fault:?} resume: {}", text(&out));
        common::same_dataset(&target, &s.loader).unwrap_or_else(|e| panic!("{fault:?}: {e}"));
    }
}
