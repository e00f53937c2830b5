//! Real Redis servers for integration tests.
//!
//! The binaries come from `scripts/install-servers.sh`, which lays out
//! `<servers>/redis-{6.2,7.0,8.2}/redis-server`, `<servers>/redis-8.2/falkordb.so`,
//! `<servers>/valkey-8.1/valkey-server` and `<servers>/bin/redis-cli`, where `<servers>` is `$RDBKIT_SERVERS` or `<crate>/.servers`.
//!
//! Each [`Server`] runs in its own temporary directory on a free loopback port, with
//! persistence off (`--save '' --appendonly no`), and is killed when dropped.
//!
//! Tests should call [`skip_if_missing`] first: it returns true (and says why) when a server is
//! not installed, unless `RDBKIT_REQUIRE_SERVERS=1` (set by `.ci/run`), where it panics instead.

// Every test crate that declares `mod common;` uses a different subset of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to accept commands and finish loading its dump.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to start a server when the chosen port turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// Redis 6.2.14, writes RDB 9.
    V62,
    /// Redis 7.0.15, writes RDB 10.
    V70,
    /// Redis 8.2.3, writes RDB 12; FalkorDB module available.
    V82,
    /// Valkey 8.1.8, writes RDB 11 (not in [`Version::ALL`], which lists the Redis servers).
    Valkey81,
}

impl Version {
    /// The Redis servers (Valkey is started by naming [`Version::Valkey81`]).
    pub const ALL: [Version; 3] = [Version::V62, Version::V70, Version::V82];

    /// Directory name under [`servers_dir`], e.g. `redis-7.0`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Version::V62 => "redis-6.2",
            Version::V70 => "redis-7.0",
            Version::V82 => "redis-8.2",
            Version::Valkey81 => "valkey-8.1",
        }
    }

    /// The RDB format version this server writes (and the newest it reads).
    pub fn rdb_version(self) -> u32 {
        match self {
            Version::V62 => 9,
            Version::V70 => 10,
            Version::V82 => 12,
            Version::Valkey81 => 11,
        }
    }

    pub fn binary(self) -> PathBuf {
        let name = match self {
            Version::Valkey81 => "valkey-server",
            _ => "redis-server",
        };
        servers_dir().join(self.dir_name()).join(name)
    }
}

/// `$RDBKIT_SERVERS`, or `<CARGO_MANIFEST_DIR>/.servers`.
pub fn servers_dir() -> PathBuf {
    match std::env::var_os("RDBKIT_SERVERS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".servers"),
    }
}

/// A file under `<crate>/testdata/` (see testdata/README.md).
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

pub fn server_available(v: Version) -> bool {
    v.binary().is_file()
}

pub fn falkordb_so() -> PathBuf {
    servers_dir().join("redis-8.2").join("falkordb.so")
}

pub fn falkordb_available() -> bool {
    server_available(Version::V82) && falkordb_so().is_file()
}

/// `<servers>/bin/redis-cli` if installed there, else `redis-cli` from `PATH`.
pub fn redis_cli() -> PathBuf {
    let cli = servers_dir().join("bin").join("redis-cli");
    if cli.exists() {
        cli
    } else {
        PathBuf::from("redis-cli")
    }
}

/// True when the test should be skipped because server `v` is not installed (prints why).
/// Panics instead when `RDBKIT_REQUIRE_SERVERS=1`, so CI cannot silently skip.
pub fn skip_if_missing(v: Version) -> bool {
    if server_available(v) {
        return false;
    }
    let msg = format!(
        "{} not found (run scripts/install-servers.sh)",
        v.binary().display()
    );
    if std::env::var("RDBKIT_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIP: {msg}");
    true
}

pub struct Server {
    pub port: u16,
    pub version: Version,
    child: Child,
    dir: TempDir,
}

impl Server {
    /// An empty server.
    pub fn start(v: Version) -> Server {
        Self::launch(v, None, false, &[])
    }

    /// An empty server with extra `redis-server` arguments, e.g. `&["--maxmemory-policy", "allkeys-lfu"]`.
    pub fn start_opts(v: Version, extra_args: &[&str]) -> Server {
        Self::launch(v, None, false, extra_args)
    }

    /// A server that loads `dump` at startup; returns once loading has finished.
    pub fn start_with_dump(v: Version, dump: &Path, extra_args: &[&str]) -> Server {
        Self::launch(v, Some(dump), false, extra_args)
    }

    /// A Redis 8.2 server with the FalkorDB module loaded, empty or loading `dump`.
    /// Needed for dumps that hold FalkorDB (`graphdata`) values, like redis82_all_types_v12.rdb.
    pub fn with_falkordb(dump: Option<&Path>, extra_args: &[&str]) -> Server {
        Self::launch(Version::V82, dump, true, extra_args)
    }

    fn launch(v: Version, dump: Option<&Path>, falkordb: bool, extra_args: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("rdbkit-redis-")
            .tempdir()
            .expect("create server dir");
        let dbfilename = "load.rdb";
        if let Some(dump) = dump {
            fs::copy(dump, dir.path().join(dbfilename))
                .unwrap_or_else(|e| panic!("copy {}: {e}", dump.display()));
        }
        let log_path = dir.path().join("server.log");

        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut cmd = Command::new(v.binary());
            cmd.arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .args(["--dbfilename", dbfilename]);
            // 6.2 allows DEBUG already and rejects this option.
            if v != Version::V62 {
                cmd.args(["--enable-debug-command", "yes"]);
            }
            if falkordb {
                cmd.arg("--loadmodule").arg(falkordb_so());
            }
            let log = File::create(&log_path).expect("create server.log");
            let mut child = cmd
                .args(extra_args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", v.binary().display()));
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    return Server {
                        port,
                        version: v,
                        child,
                        dir,
                    }
                }
                Err(reason) => {
                    kill(&mut child);
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    if log.contains("Address already in use") {
                        continue; // the port was taken between free_port() and bind(): retry
                    }
                    panic!("{v:?} on port {port}: {reason}\n--- server log ---\n{log}");
                }
            }
        }
        panic!("{v:?}: no free port after {PORT_ATTEMPTS} attempts");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()))
    }

    /// `DEBUG DIGEST` of the whole dataset (40 hex chars; all zeros when empty).
    /// Not comparable across versions for zsets with non-integral scores: 8.2 formats
    /// scores differently from 6.2/7.0 when digesting (see testdata/README.md).
    pub fn digest(&self) -> String {
        redis::cmd("DEBUG")
            .arg("DIGEST")
            .query(&mut self.conn())
            .expect("DEBUG DIGEST")
    }

    /// `DEBUG DIGEST-VALUE key`: the value's digest, key name not included (zeros if missing).
    pub fn digest_value(&self, key: &[u8]) -> String {
        let mut digests: Vec<String> = redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(key)
            .query(&mut self.conn())
            .expect("DEBUG DIGEST-VALUE");
        digests.pop().expect("one digest per key")
    }

    /// db number -> key count, from `INFO keyspace` (`db0:keys=1,expires=0,...`).
    pub fn keyspace(&self) -> BTreeMap<u64, u64> {
        let info: String = redis::cmd("INFO")
            .arg("keyspace")
            .query(&mut self.conn())
            .expect("INFO keyspace");
        info.lines()
            .filter_map(|line| {
                let (db, fields) = line.trim().strip_prefix("db")?.split_once(':')?;
                let keys = fields.split(',').find_map(|f| f.strip_prefix("keys="))?;
                Some((db.parse().ok()?, keys.parse().ok()?))
            })
            .collect()
    }

    /// Feeds RESP bytes to `redis-cli -p PORT --pipe`; panics with its output on any error reply.
    pub fn pipe(&self, resp: &[u8]) {
        let mut child = Command::new(redis_cli())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--pipe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", redis_cli().display()));
        let mut stdin = child.stdin.take().expect("redis-cli stdin");
        // Write from a thread so a large input cannot deadlock against redis-cli's output.
        let input = resp.to_vec();
        let writer = thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().expect("wait for redis-cli");
        let written = writer.join().expect("writer thread");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if written.is_err() || !out.status.success() || !text.contains("errors: 0,") {
            panic!(
                "redis-cli --pipe failed ({}, write: {written:?}):\n{text}",
                out.status
            );
        }
    }

    /// The server's working directory (holds `server.log` and the loaded dump).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILLs the server now (to simulate a crash); `Drop` then has nothing left to do.
    pub fn crash(&mut self) {
        kill(&mut self.child);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// SIGKILL the child by pid and reap it (errors mean it has already exited).
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Poll until PING answers and `INFO persistence` says `loading:0`.
fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_err = String::from("never answered");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("server exited early ({status})"));
        }
        match try_ready(port) {
            Ok(true) => return Ok(()),
            Ok(false) => last_err = "still loading".into(),
            Err(e) => last_err = e.to_string(),
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!("not ready after {READY_TIMEOUT:?}: {last_err}"))
}

fn try_ready(port: u16) -> redis::RedisResult<bool> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    redis::cmd("PING").query::<String>(&mut con)?;
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut con)?;
    Ok(info.lines().any(|l| l.trim() == "loading:0"))
}

/// A port that was free a moment ago (bind 127.0.0.1:0, then release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A dump written by a real 8.2: `n` strings (`DEBUG POPULATE n key 64`), 1000 small lists with a
/// far-future TTL and 1000 one-field hashes; `n + 2000` keys in all.
pub fn populated_dump(dir: &Path, n: u64) -> PathBuf {
    let s = Server::start(Version::V82);
    let mut c = s.conn();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(n)
        .arg("key")
        .arg(64)
        .query::<()>(&mut c)
        .unwrap();
    for i in 0..1000 {
        redis::cmd("RPUSH")
            .arg(format!("list:{i}"))
            .arg(&[1, 2, 3])
            .query::<()>(&mut c)
            .unwrap();
        redis::cmd("PEXPIREAT")
            .arg(format!("list:{i}"))
            .arg(4_102_444_800_000u64)
            .query::<()>(&mut c)
            .unwrap();
        redis::cmd("HSET")
            .arg(format!("hash:{i}"))
            .arg("f")
            .arg(i)
            .query::<()>(&mut c)
            .unwrap();
    }
    redis::cmd("SAVE").query::<()>(&mut c).unwrap();
    let out = dir.join("populated.rdb");
    fs::copy(s.dir().join("load.rdb"), &out).unwrap();
    out
}
