//! The forms a target or a sentinel is written in: `redis://`, `rediss://`, the Sentinel schemes,
//! `unix://` sockets, credentials (percent-encoded) and the messages for what is not accepted.

use super::super::error::ReplayError;
use super::Secret;

/// The schemes of Sentinel URLs (`redis+sentinel://` and the forms Kubernetes operators print).
pub(super) const SENTINEL_SCHEMES: &[&str] = &["redis+sentinel", "redis-sentinel", "sentinel"];

/// True for `redis+sentinel://`, `redis-sentinel://` and `sentinel://` URLs.
pub fn is_sentinel_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(s, _)| SENTINEL_SCHEMES.contains(&s.to_ascii_lowercase().as_str()))
}

/// What every "bad URL" message lists.
pub(super) const ACCEPTED_SCHEMES: &str = "use redis://[user[:password]@]host[:port][/db], rediss://… (TLS), \
     redis+sentinel://, redis-sentinel:// or sentinel://[user[:password]@]host:26379[,host:26379]/master[/db] (Sentinel), \
     or unix:///path/to/redis.sock[?db=N] / redis+unix://… (Unix socket)";

/// The message for a target without `scheme://`: a plain `host:port` gets the URL it means
/// (unless it holds credentials, which are never echoed).
pub(super) fn no_scheme(url: &str) -> String {
    let plain = !url.is_empty()
        && !url.contains('@')
        && url.len() <= 256
        && url
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:[]/".contains(c));
    if plain {
        format!("the target {url:?} is not a URL: did you mean redis://{url}? ({ACCEPTED_SCHEMES})")
    } else {
        format!("the target is not a URL: {ACCEPTED_SCHEMES}")
    }
}

/// `user:password`, `:password` or `user` (before an `@`) into its parts, percent-decoded.
pub(super) fn split_auth(
    auth: Option<&str>,
    dec: &dyn Fn(&str) -> Result<String, ReplayError>,
) -> Result<(Option<String>, Option<String>), ReplayError> {
    Ok(match auth {
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| dec(u)).transpose()?, Some(dec(p)?)),
            None => ((!a.is_empty()).then(|| dec(a)).transpose()?, None),
        },
        None => (None, None),
    })
}

type SentinelAddr = (String, u16, (Option<String>, Option<Secret>));

/// One `--sentinel` entry: `host[:port]`, `[v6addr]:port`, or `redis://[user:]password@host[:port]`.
pub(super) fn parse_sentinel_addr(a: &str) -> Result<SentinelAddr, ReplayError> {
    if let Some((scheme, _)) = a.split_once("://") {
        if !scheme.eq_ignore_ascii_case("redis") {
            let shown: String = scheme.chars().take(32).collect();
            return Err(ReplayError::Config(format!(
                "a --sentinel entry is host:port or redis://[user:]password@host:port, not {shown}://"
            )));
        }
        let u = url::Url::parse(a)
            .map_err(|e| ReplayError::Config(format!("invalid sentinel URL: {e}")))?;
        let host = u
            .host_str()
            .ok_or_else(|| ReplayError::Config("a sentinel URL has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let dec = |s: &str| {
            percent_decode(s).map_err(|_| {
                ReplayError::Config("sentinel credentials are not valid percent-encoding".into())
            })
        };
        let user = (!u.username().is_empty())
            .then(|| dec(u.username()))
            .transpose()?;
        let password = u.password().map(dec).transpose()?.map(Secret::new);
        return Ok((host, u.port().unwrap_or(26379), (user, password)));
    }
    let (h, p) = match a.rsplit_once(':') {
        // a bare IPv6 address has colons but no brackets
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p),
        _ => (a, "26379"),
    };
    let p = p
        .parse()
        .map_err(|_| ReplayError::Config(format!("bad sentinel port in {a:?}")))?;
    Ok((
        h.trim_start_matches('[').trim_end_matches(']').to_string(),
        p,
        (None, None),
    ))
}

/// A plain explanation when a server's or the client library's error text is about
/// authentication: a missing password, or one the server refused.
pub(crate) fn auth_problem(err: &str, has_password: bool) -> Option<String> {
    let e = err.to_ascii_lowercase();
    if e.contains("noauth") || (e.contains("authentication required") && !has_password) {
        return Some(
            "the server requires a password and none was given: set REDISCLI_AUTH=<password> \
             (and the user, if not default, in the URL: redis://user@host:port), or give it in \
             the URL as redis://user:password@host:port (redis://:password@… for the default user)"
                .into(),
        );
    }
    let refused = [
        "wrongpass",
        "authenticationfailed",
        "invalid password",
        "invalid username-password",
    ];
    if refused.iter().any(|r| e.contains(r)) {
        return Some(
            "the server refused the password (wrong password, or not this user's): check \
             REDISCLI_AUTH or the user:password@ part of the URL"
                .into(),
        );
    }
    None
}

pub(super) fn percent_decode(s: &str) -> Result<String, ()> {
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
