//! The target server: its address and credentials (never printed), TLS settings, how to open raw
//! data-plane connections and control connections, and what the server supports.

use super::error::ReplayError;
mod address;
mod held;
mod sentinel;
mod tls;
pub use crate::commands::target::{rdb_version_for, TargetInfo};
pub use address::is_sentinel_url;
use address::*;
pub use held::{keyspace, scan_keys};
pub use sentinel::Sentinel;
use std::path::PathBuf;
use std::sync::Arc;
use tls::tls_config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// TLS options for `rediss://` targets.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA bundle (PEM) to verify the server; the webpki roots when absent.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
    /// Skip certificate verification (explicit opt-out).
    pub insecure: bool,
}

/// A password that never shows up in `Debug` output.
#[derive(Clone, Default)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

/// Where to write.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// A Unix socket to connect to instead of `host:port` (`unix://` and `redis+unix://` URLs).
    pub socket: Option<PathBuf>,
    /// ACL user.
    pub username: Option<String>,
    password: Option<Secret>,
    /// Database from the URL path (a `--db-map` overrides it per source db).
    pub db: Option<u64>,
    /// TLS, for `rediss://`.
    pub tls: Option<TlsOptions>,
    /// When set, the primary is found (and re-found after a failover) through these sentinels.
    pub sentinel: Option<Arc<Sentinel>>,
}

/// Anything the data plane can talk over.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

impl Target {
    /// Parses `redis://[user[:password]@]host[:port][/db]`, `rediss://…` (TLS), or a Unix socket
    /// `unix://[user[:password]@]/path/to.sock[?db=N]` (also `redis+unix://`). `env_password`
    /// (from `REDISCLI_AUTH`) is used when the URL carries none. Sentinel URLs go to
    /// [`Target::parse_sentinel`].
    ///
    /// ```
    /// let t = rdbkit::replay::Target::parse("redis://app:s3cret@10.0.0.5:6380/2", None).unwrap();
    /// assert_eq!((t.host.as_str(), t.port, t.db), ("10.0.0.5", 6380, Some(2)));
    /// assert_eq!(t.display(), "redis://app:***@10.0.0.5:6380/2");
    /// assert!(!format!("{t:?}").contains("s3cret"));
    /// let u = rdbkit::replay::Target::parse("unix:///run/redis.sock?db=3", None).unwrap();
    /// assert_eq!(u.socket.as_deref(), Some(std::path::Path::new("/run/redis.sock")));
    /// assert_eq!(u.display(), "unix:///run/redis.sock?db=3");
    /// ```
    pub fn parse(url: &str, env_password: Option<String>) -> Result<Target, ReplayError> {
        let Some((scheme, _)) = url.split_once("://") else {
            return Err(ReplayError::Config(no_scheme(url)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" | "rediss" => {}
            "unix" | "redis+unix" => return Self::parse_unix(url, env_password),
            s if SENTINEL_SCHEMES.contains(&s) => {
                return Self::parse_sentinel(url, env_password, None)
            }
            _ => {
                // the scheme only: the rest of the URL may hold a password
                let shown: String = scheme.chars().take(32).collect();
                return Err(ReplayError::Config(format!(
                    "unsupported URL scheme {shown:?}: {ACCEPTED_SCHEMES}"
                )));
            }
        }
        // Parse errors must not echo the URL: it may hold a password.
        let u = url::Url::parse(url)
            .map_err(|e| ReplayError::Config(format!("invalid target URL: {e}")))?;
        let tls = (u.scheme() == "rediss").then(TlsOptions::default);
        let host = u
            .host_str()
            .ok_or_else(|| ReplayError::Config("target URL has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let decode = |s: &str| {
            percent_decode(s).map_err(|_| {
                ReplayError::Config("target URL credentials are not valid percent-encoding".into())
            })
        };
        let username = (!u.username().is_empty())
            .then(|| decode(u.username()))
            .transpose()?;
        let password = match u.password() {
            Some(p) => Some(Secret::new(decode(p)?)),
            None => env_password.filter(|p| !p.is_empty()).map(Secret::new),
        };
        let db = match u.path().trim_start_matches('/') {
            "" => None,
            d => Some(d.parse().map_err(|_| {
                ReplayError::Config(format!("target URL path {d:?} is not a db number"))
            })?),
        };
        Ok(Target {
            host,
            port: u.port().unwrap_or(6379),
            socket: None,
            username,
            password,
            db,
            tls,
            sentinel: None,
        })
    }

    /// `unix://[user[:password]@]/path[?db=N]` or `redis+unix://…`; a path without a leading `/`
    /// is relative to the current directory.
    fn parse_unix(url: &str, env_password: Option<String>) -> Result<Target, ReplayError> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        // credentials end at the last '@' before the path's first '/'
        let (auth, path) = match rest.split_once('/') {
            Some((head, _)) if head.contains('@') => {
                let (a, p) = rest.split_at(head.rfind('@').unwrap_or(0));
                (Some(a), &p[1..])
            }
            _ => (None, rest),
        };
        let dec = |s: &str| {
            percent_decode(s)
                .map_err(|_| ReplayError::Config("socket URL is not valid percent-encoding".into()))
        };
        let (username, password) = split_auth(auth, &dec)?;
        let path = dec(path)?;
        if path.is_empty() {
            return Err(ReplayError::Config(
                "socket URL has no path: unix:///path/to/redis.sock".into(),
            ));
        }
        let mut db = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            // a value may be a password: only the parameter's name is ever shown
            match pair.split_once('=') {
                Some(("db", d)) => {
                    db = Some(d.parse().map_err(|_| {
                        ReplayError::Config(format!("socket URL db {d:?} is not a number"))
                    })?)
                }
                _ => {
                    let k: String = pair
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(32)
                        .collect();
                    return Err(ReplayError::Config(format!(
                        "socket URL parameter {k:?} is not supported (only db=N; the password goes in REDISCLI_AUTH or unix://:password@/path)"
                    )));
                }
            }
        }
        Ok(Target {
            host: "localhost".into(),
            port: 0,
            socket: Some(PathBuf::from(path)),
            username,
            password: password
                .or(env_password)
                .filter(|p| !p.is_empty())
                .map(Secret::new),
            db,
            tls: None,
            sentinel: None,
        })
    }

    /// Parses `redis+sentinel://[user[:password]@]host1:26379,host2:26379/master[/db]` (also
    /// `redis-sentinel://` and `sentinel://`, as Kubernetes Sentinel operators print them; the
    /// master may also follow as `#master`). The credentials are the data server's; the
    /// sentinels' password is given separately.
    ///
    /// ```
    /// let t = rdbkit::replay::Target::parse_sentinel(
    ///     "redis+sentinel://app:pw@10.0.0.1:26379,10.0.0.2:26380/mymaster/3", None, None).unwrap();
    /// let s = t.sentinel.as_ref().unwrap();
    /// assert_eq!(s.master, "mymaster");
    /// assert_eq!(s.addrs, vec![("10.0.0.1".to_string(), 26379), ("10.0.0.2".to_string(), 26380)]);
    /// assert_eq!(t.db, Some(3));
    /// assert!(!t.display().contains("pw"));
    /// let k = rdbkit::replay::Target::parse_sentinel("sentinel://s1:26379/0#mymaster", None, None).unwrap();
    /// assert_eq!((k.sentinel.as_ref().unwrap().master.as_str(), k.db), ("mymaster", Some(0)));
    /// ```
    pub fn parse_sentinel(
        url: &str,
        env_password: Option<String>,
        sentinel_password: Option<String>,
    ) -> Result<Target, ReplayError> {
        let rest = match url.split_once("://") {
            Some((s, r)) if SENTINEL_SCHEMES.contains(&s.to_ascii_lowercase().as_str()) => r,
            _ => return Err(ReplayError::Config(
                "a sentinel URL starts with redis+sentinel://, redis-sentinel:// or sentinel://"
                    .into(),
            )),
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let mut parts = rest.splitn(3, '/');
        let hosts = parts.next().unwrap_or_default();
        let (master, db) = match fragment {
            // lettuce's form: /db#master
            Some(m) => (m, parts.next()),
            None => (parts.next().unwrap_or_default(), parts.next()),
        };
        let db = match db.map(|d| d.trim_end_matches('/')) {
            None | Some("") => None,
            Some(d) => Some(d.parse().map_err(|_| {
                ReplayError::Config(format!("sentinel URL db {d:?} is not a number"))
            })?),
        };
        let dec = |s: &str| {
            percent_decode(s).map_err(|_| {
                ReplayError::Config(
                    "sentinel URL credentials are not valid percent-encoding".into(),
                )
            })
        };
        let (username, password) = split_auth(auth, &dec)?;
        if master.is_empty() {
            return Err(ReplayError::Config(
                "the sentinel URL names no master: …/mymaster[/db] or …/db#mymaster".into(),
            ));
        }
        let sentinel = Sentinel::new(hosts, master, None, sentinel_password)?;
        Ok(Self::via(sentinel, username, password.or(env_password), db))
    }

    /// `--sentinel ADDRS`: the master name from `master` (`--master-name`) or else from the host
    /// of `data_url` (`redis://[user:]password@mymaster[/db]`), whose credentials and db are the
    /// data server's.
    ///
    /// ```
    /// let t = rdbkit::replay::Target::with_sentinels(
    ///     "s1:26379", None, Some("redis://:pw@mymaster/5"), None, None, None).unwrap();
    /// assert_eq!((t.sentinel.as_ref().unwrap().master.as_str(), t.db), ("mymaster", Some(5)));
    /// assert_eq!(t.display(), "redis+sentinel://:***@s1:26379/mymaster/5");
    /// ```
    pub fn with_sentinels(
        sentinels: &str,
        master: Option<&str>,
        data_url: Option<&str>,
        username: Option<String>,
        env_password: Option<String>,
        sentinel_password: Option<String>,
    ) -> Result<Target, ReplayError> {
        let data = data_url.map(|u| Target::parse(u, None)).transpose()?;
        if data.as_ref().is_some_and(|d| d.sentinel.is_some()) {
            return Err(ReplayError::Config(
                "--sentinel and a sentinel URL in --target: give the sentinels once".into(),
            ));
        }
        let Some(master) = master
            .map(str::to_string)
            .or_else(|| data.as_ref().map(|d| d.host.clone()))
            .filter(|m| !m.is_empty())
        else {
            return Err(ReplayError::Config(
                "--sentinel needs the master name: --master-name NAME, or --target redis://[:password@]NAME[/db]".into(),
            ));
        };
        let sentinel = Sentinel::new(sentinels, &master, None, sentinel_password)?;
        let (user, password, db) = match data {
            Some(d) => (d.username, d.password.map(|p| p.0), d.db),
            None => (None, None, None),
        };
        Ok(Self::via(
            sentinel,
            username.or(user),
            password.or(env_password),
            db,
        ))
    }

    fn via(
        sentinel: Sentinel,
        username: Option<String>,
        password: Option<String>,
        db: Option<u64>,
    ) -> Target {
        Target {
            host: String::new(),
            port: 0,
            socket: None,
            username,
            password: password.filter(|p| !p.is_empty()).map(Secret::new),
            db,
            tls: None,
            sentinel: Some(Arc::new(sentinel)),
        }
    }

    /// The primary's address: fixed, or asked of the sentinels (and confirmed with `ROLE`).
    pub fn resolve(&self) -> Result<(String, u16), ReplayError> {
        let Some(s) = &self.sentinel else {
            return Ok((self.host.clone(), self.port));
        };
        let addr = s.ask()?;
        // confirm: the server must call itself a master before anything is written to it
        let mut probe = self.clone();
        probe.sentinel = None;
        (probe.host, probe.port) = addr.clone();
        let mut con = probe.control(std::time::Duration::from_secs(2))?;
        let role: redis::Value = redis::cmd("ROLE")
            .query(&mut con)
            .map_err(|e| probe.failure("ROLE: ", &e))?;
        let is_master = matches!(&role, redis::Value::Array(v) if matches!(v.first(), Some(redis::Value::BulkString(b)) if b == b"master"));
        if !is_master {
            return Err(ReplayError::Connect(format!(
                "{}:{} is not (yet) a master",
                addr.0, addr.1
            )));
        }
        let mut cur = s.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = cur.as_ref().filter(|old| **old != addr) {
            s.failovers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{}:{} → {}:{}", old.0, old.1, addr.0, addr.1));
        }
        *cur = Some(addr.clone());
        Ok(addr)
    }

    /// The same credentials and TLS settings at another address (a cluster shard's primary).
    pub fn at(&self, host: String, port: u16) -> Target {
        Target {
            host,
            port,
            socket: None,
            sentinel: None,
            ..self.clone()
        }
    }

    /// This target pinned to the current primary (a plain target is returned as is).
    pub fn pinned(&self) -> Result<Target, ReplayError> {
        if self.sentinel.is_none() {
            return Ok(self.clone());
        }
        let (host, port) = self.resolve()?;
        Ok(Target {
            host,
            port,
            ..self.clone()
        })
    }

    /// The URL with the password masked, for messages.
    pub fn display(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:***@"),
            (Some(u), None) => format!("{u}@"),
            (None, Some(_)) => ":***@".to_string(),
            (None, None) => String::new(),
        };
        if let Some(path) = &self.socket {
            let db = self.db.map(|d| format!("?db={d}")).unwrap_or_default();
            let sep = if path.is_absolute() { "" } else { "/" };
            return format!("unix://{auth}{sep}{}{db}", path.display());
        }
        let db = self.db.map(|d| format!("/{d}")).unwrap_or_default();
        if let Some(s) = &self.sentinel {
            let hosts: Vec<String> = s.addrs.iter().map(|(h, p)| format!("{h}:{p}")).collect();
            return format!(
                "redis+sentinel://{auth}{}/{}{db}",
                hosts.join(","),
                s.master
            );
        }
        format!("{scheme}://{auth}{}:{}{db}", self.host, self.port)
    }

    /// Opens an authenticated raw connection for the data plane.
    pub async fn connect_raw(&self) -> Result<Box<dyn Transport>, ReplayError> {
        let (host, port) = if self.sentinel.is_some() {
            let t = self.clone();
            tokio::task::spawn_blocking(move || t.resolve())
                .await
                .map_err(|e| ReplayError::Connect(e.to_string()))??
        } else {
            (self.host.clone(), self.port)
        };
        let mut stream: Box<dyn Transport> = if let Some(path) = &self.socket {
            Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| ReplayError::Connect(format!("{}: {e}", self.display())))?,
            )
        } else {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| ReplayError::Connect(format!("{}: {e}", self.display())))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => Box::new(tcp),
                Some(t) => {
                    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(t)?));
                    let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(
                        |e| ReplayError::Config(format!("TLS server name {:?}: {e}", self.host)),
                    )?;
                    Box::new(connector.connect(name, tcp).await.map_err(|e| {
                        ReplayError::Connect(format!("TLS handshake with {}: {e}", self.display()))
                    })?)
                }
            }
        };
        if let Some(p) = &self.password {
            let mut r = super::batch::Resp::default();
            match &self.username {
                Some(u) => r.cmd(&[b"AUTH", u.as_bytes(), p.expose().as_bytes()]),
                None => r.cmd(&[b"AUTH", p.expose().as_bytes()]),
            }
            stream
                .write_all(&r.buf)
                .await
                .map_err(|e| ReplayError::Connect(e.to_string()))?;
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 512];
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| ReplayError::Connect(e.to_string()))?;
                if n == 0 {
                    return Err(ReplayError::Connect(format!(
                        "{} closed the connection during AUTH",
                        self.display()
                    )));
                }
                buf.extend_from_slice(&chunk[..n]);
                match super::reply::parse(&buf).map_err(ReplayError::Protocol)? {
                    Some((super::reply::Reply::Ok, _)) => break,
                    // the server's text, never ours: it cannot contain the password
                    Some((super::reply::Reply::Error(e), _)) => {
                        return Err(self.failure("AUTH: ", &e));
                    }
                    Some((other, _)) => {
                        return Err(ReplayError::Protocol(format!(
                            "unexpected reply {other:?} to AUTH"
                        )))
                    }
                    None => continue,
                }
            }
        }
        Ok(stream)
    }

    /// A control-plane connection whose connect, reads and writes give up after `timeout`, so
    /// that a server that stops answering fails the command instead of hanging the import.
    pub fn control(&self, timeout: std::time::Duration) -> Result<redis::Connection, ReplayError> {
        let c = self
            .client()?
            .get_connection_with_timeout(timeout)
            .map_err(|e| self.failure("", &e))?;
        let set = c
            .set_read_timeout(Some(timeout))
            .and_then(|()| c.set_write_timeout(Some(timeout)));
        set.map_err(|e| ReplayError::Connect(format!("{}: {e}", self.display())))?;
        let mut c = c;
        // a server that wants a password answers NOAUTH to the first command: say so here,
        // naming the target, instead of in whatever command comes first
        redis::cmd("PING")
            .query::<redis::Value>(&mut c)
            .map_err(|e| self.failure("PING: ", &e))?;
        Ok(c)
    }

    /// A `redis` crate client for the control plane (probing, functions, verify).
    pub fn client(&self) -> Result<redis::Client, ReplayError> {
        let addr = match &self.tls {
            _ if self.socket.is_some() => {
                redis::ConnectionAddr::Unix(self.socket.clone().unwrap_or_default())
            }
            None => redis::ConnectionAddr::Tcp(self.host.clone(), self.port),
            Some(t) => redis::ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: t.insecure,
                tls_params: None,
            },
        };
        let info = redis::ConnectionInfo {
            addr,
            redis: redis::RedisConnectionInfo {
                db: 0,
                username: self.username.clone(),
                password: self.password.as_ref().map(|p| p.expose().to_string()),
                protocol: redis::ProtocolVersion::RESP2,
            },
        };
        match &self.tls {
            Some(t) if t.ca.is_some() || t.cert.is_some() => {
                let read = |p: &PathBuf| {
                    std::fs::read(p)
                        .map_err(|e| ReplayError::Config(format!("{}: {e}", p.display())))
                };
                let client_tls = match (&t.cert, &t.key) {
                    (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                        client_cert: read(c)?,
                        client_key: read(k)?,
                    }),
                    _ => None,
                };
                let root_cert = t.ca.as_ref().map(read).transpose()?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls,
                        root_cert,
                    },
                )
                .map_err(|e| ReplayError::Config(format!("TLS setup: {e}")))
            }
            _ => redis::Client::open(info).map_err(|e| ReplayError::Config(e.to_string())),
        }
    }

    /// A failed connection or command on this target as an error for the user: authentication
    /// problems say plainly what is wrong and how to give the password; others keep their text.
    pub fn failure(&self, what: &str, err: &dyn std::fmt::Display) -> ReplayError {
        let text = err.to_string();
        match auth_problem(&text, self.password.is_some()) {
            Some(why) => ReplayError::Auth(format!("{}: {why}", self.display())),
            None => ReplayError::Connect(format!("{}: {what}{text}", self.display())),
        }
    }

    /// Sets TLS file options (only meaningful for `rediss://`).
    pub fn set_tls(&mut self, opts: TlsOptions) {
        if self.tls.is_some() {
            self.tls = Some(opts);
        }
    }

    /// Sets the password (e.g. read from the environment) when the URL carried none.
    pub fn set_password_if_missing(&mut self, p: Option<String>) {
        if self.password.is_none() {
            self.password = p.filter(|p| !p.is_empty()).map(Secret::new);
        }
    }
}

impl TargetInfo {
    /// Reads `INFO server`, `CONFIG GET proto-max-bulk-len`, `MODULE LIST`, and probes for
    /// `RESTOREMODAUX`.
    pub async fn probe(
        con: &mut redis::aio::MultiplexedConnection,
    ) -> Result<TargetInfo, ReplayError> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(con)
            .await
            .map_err(|e| ReplayError::Connect(format!("INFO server: {e}")))?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
        };
        let valkey = field("valkey_version").is_some()
            || field("server_name").is_some_and(|s| s == "valkey");
        let version = field("valkey_version")
            .filter(|_| valkey)
            .or_else(|| field("redis_version"))
            .unwrap_or_default();
        let cluster = {
            let c: Result<String, _> = redis::cmd("INFO").arg("cluster").query_async(con).await;
            c.map(|s| s.contains("cluster_enabled:1")).unwrap_or(false)
        };
        let (bulk_limit, bulk_limit_assumed) = match redis::cmd("CONFIG")
            .arg("GET")
            .arg("proto-max-bulk-len")
            .query_async::<Vec<String>>(con)
            .await
        {
            Ok(v) if v.len() == 2 => (v[1].parse().unwrap_or(512 << 20), false),
            _ => (512 << 20, true),
        };
        let modules = match redis::cmd("MODULE")
            .arg("LIST")
            .query_async::<redis::Value>(con)
            .await
        {
            Ok(redis::Value::Array(mods)) => mods.iter().filter_map(module_name).collect(),
            _ => Vec::new(),
        };
        let enterprise = match redis::cmd("RESTOREMODAUX")
            .query_async::<redis::Value>(con)
            .await
        {
            Err(e) => e.to_string().contains("wrong number of arguments"),
            Ok(_) => false,
        };
        Ok(TargetInfo {
            rdb_version: rdb_version_for(&version, valkey),
            version,
            valkey,
            bulk_limit,
            bulk_limit_assumed,
            modules,
            enterprise,
            cluster,
        })
    }
}

fn module_name(v: &redis::Value) -> Option<String> {
    let redis::Value::Array(fields) = v else {
        return None;
    };
    let mut it = fields.iter();
    while let (Some(k), Some(val)) = (it.next(), it.next()) {
        if matches!(k, redis::Value::BulkString(b) if b == b"name") {
            if let redis::Value::BulkString(n) = val {
                return Some(String::from_utf8_lossy(n).to_lowercase());
            }
        }
    }
    None
}
