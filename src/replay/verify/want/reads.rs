//! The read commands of a key: which reads check it ([`Want::plan`], in chunks of at most
//! [`super::ReadLimits::chunk_elems`] elements and about [`super::ReadLimits::chunk_bytes`]
//! bytes) and their encoding, with the size each reply is expected to take
//! ([`Want::encode_next`]).

use super::{Kind, Step, Want};
use crate::commands::Resp;

/// Estimated reply bytes of a small command (an integer, a short status, a nil).
const SMALL_REPLY: usize = 16;

fn chunks(
    n: usize,
    size: impl Fn(usize) -> usize,
    max_elems: usize,
    max_bytes: usize,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut a = 0;
    while a < n {
        let mut b = a;
        let mut bytes = 0;
        while b < n && b - a < max_elems.max(1) && (b == a || bytes + size(b) <= max_bytes) {
            bytes += size(b);
            b += 1;
        }
        out.push((a, b));
        a = b;
    }
    out
}

impl Want {
    /// The reads that check this key (one [`Step`] per command).
    pub(super) fn plan(&self) -> Vec<Step> {
        let l = self.limits;
        let mut s = Vec::with_capacity(4);
        // strings and collections are not asked TYPE: their read answers nil or 0 when the key is
        // missing and WRONGTYPE when its type differs (whose name is asked afterwards); an empty
        // stream exists, and a module value has no read
        if matches!(self.kind, Kind::Stream(_) | Kind::Module(_)) {
            s.push(Step::Type);
        }
        let ranges =
            |n: usize, size: &dyn Fn(usize) -> usize| chunks(n, size, l.chunk_elems, l.chunk_bytes);
        match &self.kind {
            Kind::String => {
                let n = self.data.len();
                if n <= l.chunk_bytes {
                    s.push(Step::Get);
                } else {
                    s.push(Step::StrLen);
                    let pieces = chunks(n.div_ceil(l.chunk_bytes), |_| 1, 1, 1);
                    s.extend(pieces.iter().map(|&(a, _)| {
                        Step::GetRange(a * l.chunk_bytes, ((a + 1) * l.chunk_bytes).min(n))
                    }));
                }
            }
            Kind::List => {
                s.push(Step::Len);
                let r = ranges(self.ends.len(), &|i| self.elem_len(i));
                s.extend(r.into_iter().map(|(a, b)| Step::LRange(a, b)));
            }
            Kind::Set => {
                s.push(Step::Len);
                let r = ranges(self.ends.len(), &|i| self.elem_len(i));
                s.extend(r.into_iter().map(|(a, b)| Step::SMisMember(a, b)));
            }
            Kind::ZSet => {
                s.push(Step::Len);
                let r = ranges(self.ends.len(), &|i| self.elem_len(i) + 24);
                s.extend(r.into_iter().map(|(a, b)| Step::ZRange(a, b)));
            }
            Kind::Hash => {
                s.push(Step::Len);
                let size = |i: usize| self.elem_len(2 * i) + self.elem_len(2 * i + 1);
                for (a, b) in ranges(self.fexp.len(), &size) {
                    s.push(Step::HMGet(a, b));
                    if l.hfe {
                        s.push(Step::HPExpireTime(a, b));
                    }
                }
            }
            Kind::Stream(st) => {
                let size = |i: usize| {
                    let a = if i == 0 { 0 } else { st.fends[i - 1] };
                    let b = st.fends[i];
                    let (x, y) = (
                        if a == 0 { 0 } else { self.ends[a - 1] },
                        if b == 0 { 0 } else { self.ends[b - 1] },
                    );
                    y - x + 32
                };
                let r = ranges(st.ids.len(), &size);
                s.extend(r.into_iter().map(|(a, b)| Step::XRange(a, b)));
                s.push(Step::XInfoGroups);
            }
            Kind::Module(_) => {}
        }
        s.push(Step::Ttl);
        s
    }

    /// Encodes the next command into `out` and returns the bytes its reply is expected to take.
    pub(crate) fn encode_next(&mut self, out: &mut Resp) -> usize {
        let step = self.steps[self.sent];
        self.sent += 1;
        let key = &self.key[..];
        let small = |out: &mut Resp, name: &[u8]| {
            out.cmd(&[name, key]);
            SMALL_REPLY
        };
        match step {
            Step::Dump => {
                out.cmd(&[b"DUMP", key]);
                // the payload plus its footer
                self.data.len() + 10 + SMALL_REPLY
            }
            Step::Type => small(out, b"TYPE"),
            Step::Get => {
                out.cmd(&[b"GET", key]);
                self.data.len() + SMALL_REPLY
            }
            Step::StrLen => small(out, b"STRLEN"),
            Step::GetRange(a, b) => {
                out.begin(4);
                out.arg(b"GETRANGE");
                out.arg(key);
                out.arg_int(a as i64);
                out.arg_int(b as i64 - 1);
                b - a + SMALL_REPLY
            }
            Step::Len => small(
                out,
                match self.kind {
                    Kind::List => b"LLEN",
                    Kind::Set => b"SCARD",
                    Kind::ZSet => b"ZCARD",
                    _ => b"HLEN",
                },
            ),
            Step::LRange(a, b) => {
                out.begin(4);
                out.arg(b"LRANGE");
                out.arg(key);
                out.arg_int(a as i64);
                out.arg_int(b as i64 - 1);
                self.ends[b - 1] - self.ends.get(a.wrapping_sub(1)).copied().unwrap_or(0)
                    + SMALL_REPLY * (b - a + 1)
            }
            Step::SMisMember(a, b) => {
                out.begin(2 + b - a);
                out.arg(b"SMISMEMBER");
                out.arg(key);
                for i in a..b {
                    out.arg(self.elem(i));
                }
                4 * (b - a) + SMALL_REPLY
            }
            Step::ZRange(a, b) => {
                out.begin(5);
                out.arg(b"ZRANGE");
                out.arg(key);
                out.arg_int(a as i64);
                out.arg_int(b as i64 - 1);
                out.arg(b"WITHSCORES");
                (a..b).map(|i| self.elem_len(i) + 40).sum::<usize>() + SMALL_REPLY
            }
            Step::HMGet(a, b) => {
                out.begin(2 + b - a);
                out.arg(b"HMGET");
                out.arg(key);
                for i in a..b {
                    out.arg(self.elem(2 * i));
                }
                (a..b).map(|i| self.elem_len(2 * i + 1) + 8).sum::<usize>() + SMALL_REPLY
            }
            Step::HPExpireTime(a, b) => {
                out.begin(4 + b - a);
                out.arg(b"HPEXPIRETIME");
                out.arg(key);
                out.arg(b"FIELDS");
                out.arg_int((b - a) as i64);
                for i in a..b {
                    out.arg(self.elem(2 * i));
                }
                16 * (b - a) + SMALL_REPLY
            }
            Step::XRange(a, b) => {
                let Kind::Stream(st) = &self.kind else {
                    unreachable!("XRANGE is planned for streams only")
                };
                out.begin(6);
                out.arg(b"XRANGE");
                out.arg(key);
                out.arg(st.ids[a].to_string().as_bytes());
                out.arg(st.ids[b - 1].to_string().as_bytes());
                out.arg(b"COUNT");
                // one more than the dump has: an extra entry on the target shows
                out.arg_int((b - a + 1) as i64);
                let (x, y) = (if a == 0 { 0 } else { st.fends[a - 1] }, st.fends[b - 1]);
                let bytes = if y == 0 { 0 } else { self.ends[y - 1] }
                    - if x == 0 { 0 } else { self.ends[x - 1] };
                bytes + 48 * (b - a + 1)
            }
            Step::XInfoGroups => {
                out.cmd(&[b"XINFO", b"GROUPS", key]);
                let Kind::Stream(st) = &self.kind else {
                    unreachable!("XINFO GROUPS is planned for streams only")
                };
                200 * st.groups.len() + SMALL_REPLY
            }
            Step::Ttl if self.limits.pexpiretime => small(out, b"PEXPIRETIME"),
            Step::Ttl => small(out, b"PTTL"),
        }
    }
}
