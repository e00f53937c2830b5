//! The target server: its address and credentials (never printed), TLS settings, how to open raw
//! data-plane connections and control connections, and what the server supports.

use super::ReplayError;
use std::path::PathBuf;
use std::sync::Arc;
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
    /// ACL user.
    pub username: Option<String>,
    password: Option<Secret>,
    /// Database from the URL path (a `--db-map` overrides it per source db).
    pub db: Option<u64>,
    /// TLS, for `rediss://`.
    pub tls: Option<TlsOptions>,
}

/// Anything the data plane can talk over.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

impl Target {
    /// Parses `redis://[user[:password]@]host[:port][/db]` or `rediss://…`. `env_password` (from
    /// `REDISCLI_AUTH`) is used when the URL carries none.
    ///
    /// ```
    /// let t = rdbkit::replay::Target::parse("redis://app:s3cret@10.0.0.5:6380/2", None).unwrap();
    /// assert_eq!((t.host.as_str(), t.port, t.db), ("10.0.0.5", 6380, Some(2)));
    /// assert_eq!(t.display(), "redis://app:***@10.0.0.5:6380/2");
    /// assert!(!format!("{t:?}").contains("s3cret"));
    /// ```
    pub fn parse(url: &str, env_password: Option<String>) -> Result<Target, ReplayError> {
        // Parse errors must not echo the URL: it may hold a password.
        let u = url::Url::parse(url)
            .map_err(|e| ReplayError::Config(format!("invalid target URL: {e}")))?;
        let tls = match u.scheme() {
            "redis" => None,
            "rediss" => Some(TlsOptions::default()),
            s => {
                return Err(ReplayError::Config(format!(
                    "unsupported URL scheme {s:?} (redis:// or rediss://)"
                )))
            }
        };
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
            username,
            password,
            db,
            tls,
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
        let db = self.db.map(|d| format!("/{d}")).unwrap_or_default();
        format!("{scheme}://{auth}{}:{}{db}", self.host, self.port)
    }

    /// Opens an authenticated raw connection for the data plane.
    pub async fn connect_raw(&self) -> Result<Box<dyn Transport>, ReplayError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| ReplayError::Connect(format!("{}: {e}", self.display())))?;
        let _ = tcp.set_nodelay(true);
        let mut stream: Box<dyn Transport> = match &self.tls {
            None => Box::new(tcp),
            Some(t) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(t)?));
                let name =
                    rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| {
                        ReplayError::Config(format!("TLS server name {:?}: {e}", self.host))
                    })?;
                Box::new(connector.connect(name, tcp).await.map_err(|e| {
                    ReplayError::Connect(format!("TLS handshake with {}: {e}", self.display()))
                })?)
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
                    Some((super::reply::Reply::Error(e), _)) => return Err(ReplayError::Auth(e)),
                    None => continue,
                }
            }
        }
        Ok(stream)
    }

    /// A `redis` crate client for the control plane (probing, functions, verify).
    pub fn client(&self) -> Result<redis::Client, ReplayError> {
        let addr = match &self.tls {
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

fn percent_decode(s: &str) -> Result<String, ()> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3).ok_or(())?;
            let v =
                u8::from_str_radix(std::str::from_utf8(h).map_err(|_| ())?, 16).map_err(|_| ())?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

fn tls_config(t: &TlsOptions) -> Result<rustls::ClientConfig, ReplayError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cfg_err = |m: String| ReplayError::Config(m);
    let load_certs = |p: &PathBuf| -> Result<Vec<CertificateDer<'static>>, ReplayError> {
        let data = std::fs::read(p).map_err(|e| cfg_err(format!("{}: {e}", p.display())))?;
        rustls_pemfile::certs(&mut &data[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cfg_err(format!("{}: {e}", p.display())))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| cfg_err(e.to_string()))?;
    let builder = if t.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &t.ca {
            Some(ca) => {
                for c in load_certs(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| cfg_err(format!("{}: {e}", ca.display())))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    match (&t.cert, &t.key) {
        (Some(c), Some(k)) => {
            let data = std::fs::read(k).map_err(|e| cfg_err(format!("{}: {e}", k.display())))?;
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &data[..])
                .map_err(|e| cfg_err(format!("{}: {e}", k.display())))?
                .ok_or_else(|| cfg_err(format!("{}: no private key found", k.display())))?;
            builder
                .with_client_auth_cert(load_certs(c)?, key)
                .map_err(|e| cfg_err(format!("client certificate: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(cfg_err("--tls-cert and --tls-key go together".into())),
    }
}

/// Certificate verifier for `--tls-insecure`: accepts any certificate, still checks signatures of
/// the handshake itself.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What the target is and supports, read once before the import.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    /// `redis_version` (or `valkey_version`) from `INFO server`.
    pub version: String,
    /// True for Valkey.
    pub valkey: bool,
    /// RDB version the target reads (format §15.4 table).
    pub rdb_version: u16,
    /// `proto-max-bulk-len`.
    pub bulk_limit: u64,
    /// True when `CONFIG GET` was refused and the default was assumed.
    pub bulk_limit_assumed: bool,
    /// Loaded module names (lower-case).
    pub modules: Vec<String>,
    /// Redis Enterprise (has RESTOREMODAUX).
    pub enterprise: bool,
    /// `cluster_enabled:1`.
    pub cluster: bool,
}

/// Redis release → RDB version it reads (librdb's table, format §15.4); newest first.
const REDIS_RDB: &[((u32, u32), u16)] = &[
    ((8, 6), 13),
    ((7, 4), 12),
    ((7, 2), 11),
    ((7, 0), 10),
    ((5, 0), 9),
    ((4, 0), 8),
    ((3, 2), 7),
    ((2, 6), 6),
    ((2, 4), 5),
];

/// The RDB version a server of this version reads; unknown or newer versions read as the newest
/// known.
///
/// ```
/// use rdbkit::replay::rdb_version_for;
/// assert_eq!(rdb_version_for("8.2.3", false), 12);
/// assert_eq!(rdb_version_for("7.0.15", false), 10);
/// assert_eq!(rdb_version_for("6.2.14", false), 9);
/// assert_eq!(rdb_version_for("99.0.0", false), 13);
/// assert_eq!(rdb_version_for("9.0.0", true), 80);
/// assert_eq!(rdb_version_for("8.1.1", true), 11);
/// ```
pub fn rdb_version_for(version: &str, valkey: bool) -> u16 {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (maj, min) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if valkey {
        return if maj >= 9 { 80 } else { 11 };
    }
    REDIS_RDB
        .iter()
        .find(|((a, b), _)| (maj, min) >= (*a, *b))
        .map_or(if maj == 0 { REDIS_RDB[0].1 } else { 0 }, |r| r.1)
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

    /// True when the target's version has the command forms of Redis `maj.min`.
    pub fn at_least(&self, maj: u32, min: u32) -> bool {
        if self.valkey {
            // Valkey 7.2+ has everything Redis 7.2 has, and no hash field TTL commands before 9.0
            return (maj, min) <= (7, 2) || (self.rdb_version >= 80 && (maj, min) <= (7, 4));
        }
        let mut p = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (p.next().unwrap_or(0), p.next().unwrap_or(0)) >= (maj, min)
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
