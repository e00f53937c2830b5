//! Tests of the connection window, the re-send after a lost connection, the refusal drain and the
//! cluster redirections against an in-process fake target: a `TcpListener` on 127.0.0.1 that
//! speaks enough RESP to answer each command as a test scripts it, and records what it received.
//! They complement the real-server tests in `tests/it` (which cannot drop a connection or answer
//! MOVED at a chosen moment).

use super::batch::{Batch, KeyMode, Resp};
use super::config::{ConnConfig, ImportConfig};
use super::error::ReplayError;
use super::shared::Shared;
use super::target::Target;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake target does with one command.
enum Act {
    /// Answer at once (after any answers still held).
    Reply(&'static str),
    /// Answer once the client has sent nothing for [`QUIET`]: what a client sends before it
    /// waits for replies is its window.
    Hold(&'static str),
    /// Never answer (the connection is closed later).
    Ignore,
    /// Close the connection (after reading the command).
    Close,
}

/// How long the client must be silent before held answers go out.
const QUIET: Duration = Duration::from_millis(40);

/// A command as text: its arguments joined by spaces.
type Command = String;

/// A fake target and what it received, one list of commands per accepted connection.
struct Fake {
    port: u16,
    conns: Arc<Mutex<Vec<Vec<Command>>>>,
    /// Most commands received and not yet answered at once, over all connections.
    max_unanswered: Arc<AtomicUsize>,
}

impl Fake {
    /// Starts a fake target whose answer to command `cmd`, the `i`th (0 first) on connection
    /// `conn` (0 first), is `script(conn, i, cmd)`.
    async fn start(script: impl Fn(usize, usize, &str) -> Act + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let conns: Arc<Mutex<Vec<Vec<Command>>>> = Arc::default();
        let max_unanswered = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (c, m) = (conns.clone(), max_unanswered.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let n = {
                    let mut c = c.lock().unwrap();
                    c.push(Vec::new());
                    c.len() - 1
                };
                tokio::spawn(serve(sock, n, c.clone(), m.clone(), script.clone()));
            }
        });
        Fake {
            port,
            conns,
            max_unanswered,
        }
    }

    fn target(&self) -> Target {
        Target::parse(&format!("redis://127.0.0.1:{}", self.port), None).expect("url")
    }

    fn received(&self) -> Vec<Vec<Command>> {
        self.conns.lock().unwrap().clone()
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    conn: usize,
    log: Arc<Mutex<Vec<Vec<Command>>>>,
    max_unanswered: Arc<AtomicUsize>,
    script: Arc<impl Fn(usize, usize, &str) -> Act>,
) {
    let mut buf = Vec::new();
    let mut held: Vec<&'static str> = Vec::new();
    loop {
        let read = if held.is_empty() {
            Ok(sock.read_buf(&mut buf).await)
        } else {
            tokio::time::timeout(QUIET, sock.read_buf(&mut buf)).await
        };
        match read {
            Err(_) => {
                // the client waits for replies: what it sent so far is its window
                max_unanswered.fetch_max(held.len(), Relaxed);
                let out: String = held.drain(..).collect();
                if sock.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let mut now = String::new();
        while let Some((cmd, used)) = parse_command(&buf) {
            buf.drain(..used);
            let i = {
                let mut log = log.lock().unwrap();
                log[conn].push(cmd.clone());
                log[conn].len() - 1
            };
            match script(conn, i, &cmd) {
                Act::Reply(r) if held.is_empty() => now.push_str(r),
                Act::Reply(r) | Act::Hold(r) => held.push(r),
                Act::Ignore => {}
                Act::Close => {
                    // everything sent was read: the peer sees the answers, then the end
                    let _ = sock.write_all(now.as_bytes()).await;
                    return;
                }
            }
        }
        if !now.is_empty() && sock.write_all(now.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One RESP command (an array of bulk strings) from the front of `buf`, and its length.
fn parse_command(buf: &[u8]) -> Option<(Command, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<usize>().ok();
    let (head, mut at) = line(buf, 0)?;
    let n = num(head.strip_prefix(b"*")?)?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let (len, start) = line(buf, at)?;
        let len = num(len.strip_prefix(b"$")?)?;
        let arg = buf.get(start..start + len)?;
        args.push(String::from_utf8_lossy(arg).into_owned());
        at = start + len + 2;
        if buf.len() < at {
            return None;
        }
    }
    Some((args.join(" "), at))
}

/// Shared state for one connection to `target` (`cluster`: the slot map's primaries).
fn shared(target: Target, cluster: Option<Vec<Target>>) -> Arc<Shared> {
    let cfg = ImportConfig {
        memory_budget: 1 << 20,
        ..Default::default()
    };
    Arc::new(Shared::new(
        target,
        &cfg,
        1,
        cluster.map(|nodes| (vec![0; 16384], nodes)),
    ))
}

fn config(window_commands: usize, window_bytes: usize) -> ConnConfig {
    ConnConfig {
        window_commands,
        window_bytes,
        reply_timeout: Duration::from_secs(5),
        max_attempts: 3,
        ..Default::default()
    }
}

/// A batch (`select`: opened by `SELECT 0`, else by `PING` as for a cluster node) of keys, each
/// with its commands; a key whose first command is RESTORE is a RESTORE key.
fn batch(id: u64, select: bool, keys: &[(&str, &[&[&str]])]) -> Batch {
    let mut b = Batch::with_context(id, 0, select);
    for (key, cmds) in keys {
        let mut r = Resp::default();
        for c in *cmds {
            let args: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
            r.cmd(&args);
        }
        let mode = if cmds[0][0] == "RESTORE" {
            KeyMode::Restore
        } else {
            KeyMode::Commands
        };
        b.push_key(key.as_bytes(), mode, cmds.len() as u32, &mut r, false);
    }
    b
}

/// Feeds `batches` to one connection (`conn::run`) and waits for it to end.
async fn run(
    shared: &Arc<Shared>,
    cfg: ConnConfig,
    batches: Vec<Batch>,
) -> Result<(), ReplayError> {
    let (tx, rx) = async_channel::unbounded();
    for b in batches {
        tx.send(b).await.expect("queue");
    }
    drop(tx);
    let conn = super::conn::run(0, rx, shared.clone(), cfg, None);
    tokio::time::timeout(Duration::from_secs(30), conn)
        .await
        .expect("the connection ends")
}

fn stat(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Relaxed)
}

/// Three SET keys per batch, `n` batches: `k<batch>-<i>`.
fn set_batches(n: u64) -> Vec<Batch> {
    (1..=n)
        .map(|id| {
            let keys: Vec<String> = (0..3).map(|i| format!("k{id}-{i}")).collect();
            let cmds: Vec<[&str; 3]> = keys.iter().map(|k| ["SET", k, "v"]).collect();
            let cmds: Vec<[&[&str]; 1]> = cmds.iter().map(|c| [&c[..]]).collect();
            let keys: Vec<(&str, &[&[&str]])> = keys
                .iter()
                .zip(&cmds)
                .map(|(k, c)| (k.as_str(), &c[..]))
                .collect();
            batch(id, true, &keys)
        })
        .collect()
}

fn ok(cmd: &str) -> &'static str {
    if cmd.starts_with("DEL ") || cmd.starts_with("RPUSH ") {
        ":1\r\n"
    } else if cmd == "PING" {
        "+PONG\r\n"
    } else {
        "+OK\r\n"
    }
}

/// The window: a connection takes a new batch while fewer than `window_commands` commands (and
/// `window_bytes` bytes) are unanswered, so it never has more than the window plus one batch in
/// flight; with no room, one batch at a time.
#[tokio::test]
async fn the_window_bounds_the_commands_in_flight() {
    for (window_commands, window_bytes, most) in [(10, 1 << 20, 12), (5, 1 << 20, 8), (1000, 1, 4)]
    {
        let fake = Fake::start(|_, _, cmd| Act::Hold(ok(cmd))).await;
        let s = shared(fake.target(), None);
        run(&s, config(window_commands, window_bytes), set_batches(12))
            .await
            .expect("written");
        // batches of 4 commands (SELECT + 3 SET): 4, 8, 12 ≥ 10 → three batches in flight
        assert_eq!(
            fake.max_unanswered.load(Relaxed),
            most,
            "window {window_commands} commands, {window_bytes} bytes"
        );
        let got = fake.received();
        assert_eq!(got.len(), 1, "one connection");
        assert_eq!(got[0].len(), 12 * 4);
        assert_eq!(s.ledger.stats.written(), 36);
        assert_eq!(stat(&s.ledger.stats.reconnects), 0);
    }
}

/// A connection lost mid-window: the batches answered stay settled, and exactly the unanswered
/// ones are sent again on a new connection, made idempotent (DEL before commands, RESTORE …
/// REPLACE).
#[tokio::test]
async fn a_lost_connection_resends_exactly_the_unanswered_batches() {
    let fake = Fake::start(|conn, i, cmd| match conn {
        // the first batch (SELECT + 2 keys) is answered; the rest is read, never answered, and
        // the connection dropped once the last command arrived
        0 if cmd == "SET c2 v" => Act::Close,
        0 if i < 3 => Act::Reply(ok(cmd)),
        0 => Act::Ignore,
        _ => Act::Reply(ok(cmd)),
    })
    .await;
    let batches = vec![
        batch(
            1,
            true,
            &[
                ("a1", &[&["SET", "a1", "v"]]),
                ("a1b", &[&["SET", "a1b", "v"]]),
            ],
        ),
        batch(2, true, &[("b1", &[&["RESTORE", "b1", "0", "payload"]])]),
        batch(
            3,
            true,
            &[("c1", &[&["RPUSH", "c1", "x"], &["RPUSH", "c1", "y"]])],
        ),
        batch(4, true, &[("c2", &[&["SET", "c2", "v"]])]),
    ];
    let s = shared(fake.target(), None);
    run(&s, config(1000, 1 << 20), batches)
        .await
        .expect("written after a reconnect");
    let got = fake.received();
    assert_eq!(got.len(), 2, "one reconnect: {got:?}");
    assert_eq!(
        got[0],
        [
            "SELECT 0",
            "SET a1 v",
            "SET a1b v",
            "SELECT 0",
            "RESTORE b1 0 payload",
            "SELECT 0",
            "RPUSH c1 x",
            "RPUSH c1 y",
            "SELECT 0",
            "SET c2 v"
        ]
    );
    assert_eq!(
        got[1],
        [
            "SELECT 0",
            "RESTORE b1 0 payload REPLACE",
            "SELECT 0",
            "DEL c1",
            "RPUSH c1 x",
            "RPUSH c1 y",
            "SELECT 0",
            "DEL c2",
            "SET c2 v"
        ],
        "only the unanswered batches, idempotent"
    );
    let st = &s.ledger.stats;
    assert_eq!(
        (
            stat(&st.written_restore),
            stat(&st.written_commands),
            stat(&st.in_doubt),
            stat(&st.reconnects)
        ),
        (1, 4, 0, 1)
    );
}

/// A connection whose peer never comes back gives up after its attempts: every key it had sent
/// without an answer is in doubt, the answered ones are written.
#[tokio::test]
async fn a_connection_that_cannot_resend_reports_its_unanswered_keys_in_doubt() {
    let fake = Fake::start(|conn, i, cmd| match conn {
        0 if i < 2 => Act::Reply(ok(cmd)),
        0 if cmd != "SET b1 v" => Act::Ignore,
        _ => Act::Close,
    })
    .await;
    let batches = vec![
        batch(1, true, &[("a1", &[&["SET", "a1", "v"]])]),
        batch(2, true, &[("b1", &[&["SET", "b1", "v"]])]),
    ];
    let s = shared(fake.target(), None);
    let cfg = ConnConfig {
        max_attempts: 1,
        ..config(1000, 1 << 20)
    };
    let err = run(&s, cfg, batches).await.expect_err("gives up");
    assert!(
        matches!(err, ReplayError::GaveUp { attempts: 1, .. }),
        "{err}"
    );
    let st = &s.ledger.stats;
    assert_eq!((st.written(), stat(&st.in_doubt)), (1, 1));
    assert_eq!(fake.received().len(), 2, "one attempt to resend");
}

/// A refusal (`-OOM`) stops the import: no new batch is taken, the replies to what was sent are
/// still read (each of those keys ends written or failed, not in doubt), and the connection
/// reports the refusal.
#[tokio::test]
async fn a_refusal_drains_the_window_and_stops() {
    let fake = Fake::start(|_, _, cmd| {
        if cmd == "SET k1-1 v" {
            Act::Hold("-OOM command not allowed when used memory > 'maxmemory'.\r\n")
        } else {
            Act::Hold(ok(cmd))
        }
    })
    .await;
    let s = shared(fake.target(), None);
    // two batches of 4 commands fill a window of 8
    let err = run(&s, config(8, 1 << 20), set_batches(5))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ReplayError::Fatal { message } if message.starts_with("OOM")),
        "{err}"
    );
    let got = fake.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), 8, "no batch after the refusal: {:?}", got[0]);
    let st = &s.ledger.stats;
    assert_eq!(
        (st.written(), stat(&st.failed), stat(&st.in_doubt)),
        (5, 1, 0)
    );
}

/// Cluster redirections: a key answered MOVED is written on the node named (and its slot routed
/// there from then on), a key answered ASK after `ASKING` (slot map unchanged), and a key
/// redirected after some of its commands ran is written again whole (DEL first).
#[tokio::test]
async fn redirections_are_followed_to_the_node_named() {
    let b = Fake::start(|_, _, cmd| Act::Reply(ok(cmd))).await;
    let (moved, ask) = (
        format!("-MOVED 1234 127.0.0.1:{}\r\n", b.port).leak() as &'static str,
        format!("-ASK 99 127.0.0.1:{}\r\n", b.port).leak() as &'static str,
    );
    let a = Fake::start(move |_, _, cmd| match cmd {
        "SET moved v" => Act::Reply(moved),
        "RPUSH asked x" | "RPUSH asked y" | "RPUSH half y" => Act::Reply(ask),
        _ => Act::Reply(ok(cmd)),
    })
    .await;
    let s = shared(a.target(), Some(vec![a.target(), b.target()]));
    let keys: &[(&str, &[&[&str]])] = &[
        ("plain", &[&["SET", "plain", "v"]]),
        ("moved", &[&["SET", "moved", "v"]]),
        (
            "asked",
            &[&["RPUSH", "asked", "x"], &["RPUSH", "asked", "y"]],
        ),
        ("half", &[&["RPUSH", "half", "x"], &["RPUSH", "half", "y"]]),
    ];
    run(&s, config(1000, 1 << 20), vec![batch(1, false, keys)])
        .await
        .expect("written");
    let on_a = a.received();
    assert_eq!(on_a.len(), 1);
    assert_eq!(
        on_a[0],
        [
            "PING",
            "SET plain v",
            "SET moved v",
            "RPUSH asked x",
            "RPUSH asked y",
            "RPUSH half x",
            "RPUSH half y"
        ]
    );
    // one short connection per destination and kind: MOVED first, then ASK
    let on_b = b.received();
    assert_eq!(
        on_b,
        [
            vec!["PING", "SET moved v"],
            vec![
                "PING",
                "ASKING",
                "RPUSH asked x",
                "ASKING",
                "RPUSH asked y",
                "ASKING",
                "DEL half",
                "ASKING",
                "RPUSH half x",
                "ASKING",
                "RPUSH half y"
            ]
        ]
    );
    let st = &s.ledger.stats;
    assert_eq!(
        (
            st.written(),
            stat(&st.moved),
            stat(&st.asked),
            stat(&st.failed),
            stat(&st.in_doubt)
        ),
        (4, 1, 2, 0, 0)
    );
    let routes = s.routes.as_ref().expect("cluster");
    assert_eq!((routes.shard(1234), routes.shard(99)), (1, 0));
}
