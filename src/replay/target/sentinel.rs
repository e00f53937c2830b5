//! The sentinels of a Sentinel-managed primary: which address is the primary now (asked again
//! during the import to notice a failover), which replicas they count as up, and the failovers
//! seen.

use super::super::error::ReplayError;
use super::address::{auth_problem, parse_sentinel_addr};
use super::Secret;

/// Sentinels that know the primary of `master`.
#[derive(Debug)]
pub struct Sentinel {
    /// Sentinel addresses, asked in order.
    pub addrs: Vec<(String, u16)>,
    /// The monitored master's name.
    pub master: String,
    /// ACL user for the sentinels.
    pub username: Option<String>,
    password: Option<Secret>,
    /// Credentials given with an address (`redis://[user]:password@host:port`), which win over
    /// `username`/`password` for that sentinel.
    creds: Vec<(Option<String>, Option<Secret>)>,
    pub(super) current: std::sync::Mutex<Option<(String, u16)>>,
    pub(super) failovers: std::sync::Mutex<Vec<String>>,
}

impl Sentinel {
    /// Sentinels at `addrs` for `master`: `host:port` entries, or `redis://[user:]password@host:port`
    /// URLs that carry the sentinel's credentials (the `SENTINEL_HOSTS` form of several platforms),
    /// separated by commas or spaces. Other sentinels' password usually comes from
    /// `--sentinel-password` or its environment variable.
    ///
    /// ```
    /// let s = rdbkit::replay::target::Sentinel::new(
    ///     "redis://:s3cret@10.0.0.1:26379, 10.0.0.2", "mymaster", None, None).unwrap();
    /// assert_eq!(s.addrs, vec![("10.0.0.1".to_string(), 26379), ("10.0.0.2".to_string(), 26379)]);
    /// assert!(!format!("{s:?}").contains("s3cret"));
    /// ```
    pub fn new(
        addrs: &str,
        master: &str,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<Sentinel, ReplayError> {
        let mut hosts = Vec::new();
        let mut creds = Vec::new();
        for a in addrs
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|a| !a.is_empty())
        {
            let (host, port, cred) = parse_sentinel_addr(a)?;
            hosts.push((host, port));
            creds.push(cred);
        }
        if hosts.is_empty() || master.is_empty() {
            return Err(ReplayError::Config(
                "sentinel mode needs sentinel addresses and a master name".into(),
            ));
        }
        Ok(Sentinel {
            addrs: hosts,
            master: master.to_string(),
            username,
            password: password.filter(|p| !p.is_empty()).map(Secret::new),
            creds,
            current: Default::default(),
            failovers: Default::default(),
        })
    }

    /// Primary changes seen during the run (`old → new`).
    pub fn failovers(&self) -> Vec<String> {
        self.failovers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The address currently believed to be the primary.
    pub fn current(&self) -> Option<(String, u16)> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A connection to sentinel `i` with its credentials (2 s limits).
    fn connect(&self, i: usize) -> redis::RedisResult<redis::Connection> {
        let (h, p) = &self.addrs[i];
        let (user, pass) = match self.creds.get(i) {
            Some((u, Some(pw))) => (u.clone(), Some(pw)),
            Some((Some(u), None)) => (Some(u.clone()), self.password.as_ref()),
            _ => (self.username.clone(), self.password.as_ref()),
        };
        let info = redis::ConnectionInfo {
            addr: redis::ConnectionAddr::Tcp(h.clone(), *p),
            redis: redis::RedisConnectionInfo {
                db: 0,
                username: user,
                password: pass.map(|p| p.expose().to_string()),
                protocol: redis::ProtocolVersion::RESP2,
            },
        };
        let limit = std::time::Duration::from_secs(2);
        let con = redis::Client::open(info)?.get_connection_with_timeout(limit)?;
        con.set_read_timeout(Some(limit))?;
        con.set_write_timeout(Some(limit))?;
        Ok(con)
    }

    /// The replicas of the primary that the sentinels (first that answers) count as up: the
    /// copies a failover may promote. `None` when no sentinel answers.
    ///
    /// Asked besides the primary's own `INFO replication` because during a failover a replica
    /// being promoted has already left the old primary (which then reports none) while the
    /// sentinels still list it: an import that learnt "no replicas" there would trust the old
    /// primary's acknowledgements and lose what it wrote until the demotion.
    pub fn replicas(&self) -> Option<u32> {
        self.replica_addrs().map(|r| r.len() as u32)
    }

    /// The addresses of the replicas the sentinels (first that answers) count as up (see
    /// [`Sentinel::replicas`]). `None` when no sentinel answers.
    pub fn replica_addrs(&self) -> Option<Vec<(String, u16)>> {
        (0..self.addrs.len()).find_map(|i| {
            let mut con = self.connect(i).ok()?;
            let list: Vec<Vec<String>> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg(&self.master)
                .query(&mut con)
                .ok()?;
            let field = |fields: &[String], name: &str| {
                fields
                    .chunks(2)
                    .find(|kv| kv[0] == name)
                    .and_then(|kv| kv.get(1))
                    .cloned()
                    .unwrap_or_default()
            };
            let up = list.iter().filter_map(|fields| {
                let flags = field(fields, "flags");
                let down = ["s_down", "o_down", "disconnected"]
                    .iter()
                    .any(|f| flags.split(',').any(|x| x == *f));
                let port = field(fields, "port").parse().ok()?;
                (!down).then(|| (field(fields, "ip"), port))
            });
            Some(up.collect())
        })
    }

    /// Asks the sentinels (first that answers) for the primary's address.
    pub(super) fn ask(&self) -> Result<(String, u16), ReplayError> {
        let mut last = String::from("no sentinel answered");
        for (i, (h, p)) in self.addrs.iter().enumerate() {
            let has_password = match self.creds.get(i) {
                Some((_, Some(_))) => true,
                _ => self.password.is_some(),
            };
            let res = self.connect(i).and_then(|mut con| {
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.master)
                    .query::<Option<(String, u16)>>(&mut con)
            });
            match res {
                Ok(Some(addr)) => return Ok(addr),
                Ok(None) => {
                    last = format!("sentinel {h}:{p} does not know master {:?}", self.master)
                }
                Err(e) => {
                    let e = e.to_string();
                    if let Some(why) = auth_problem(&e, has_password) {
                        return Err(ReplayError::Auth(format!(
                            "sentinel {h}:{p}: {why}; the sentinels' password goes in --sentinel-password, RDBKIT_SENTINEL_PASSWORD or a --sentinel entry redis://:password@{h}:{p}"
                        )));
                    }
                    last = format!("sentinel {h}:{p}: {e}")
                }
            }
        }
        Err(ReplayError::Connect(last))
    }
}
