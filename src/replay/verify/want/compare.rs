//! The comparison of each reply with the dump: the first difference is the key's verdict.

use super::{Kind, Step, Want, MISSING, READ_AGAIN, TYPE_DIFFERS};
use crate::model::escape_bytes;
use crate::replay::verify::resp::V;

impl Want {
    /// Takes the reply to the next unanswered command (never a redirection: the connection
    /// handles those) and records the first difference.
    pub(crate) fn on_reply(&mut self, r: &V<'_>) {
        let step = self.steps[self.replied];
        self.replied += 1;
        if self.diff.is_some() {
            return;
        }
        if step == Step::Dump {
            self.diff = match r {
                V::Nil => Some(MISSING.into()),
                V::Bulk(p) if p.len() >= 10 && p[..p.len() - 10] == self.data[..] => None,
                // another encoding, another value, or DUMP refused: the element reads decide
                _ => Some(READ_AGAIN.into()),
            };
            return;
        }
        self.diff = match r {
            V::Error(e) if e.starts_with(b"WRONGTYPE") => {
                Some(format!("{TYPE_DIFFERS}{}", self.type_name()))
            }
            V::Error(e) => Some(format!(
                "{}: {}",
                step_name(step),
                escape_bytes(e).trim_matches('"')
            )),
            r => self.compare(step, r),
        };
    }

    fn compare(&mut self, step: Step, r: &V<'_>) -> Option<String> {
        let bad = || unexpected(step, r);
        match step {
            Step::Dump => None,
            Step::Type => {
                let Some(t) = r.bytes() else { return bad() };
                if t == b"none" {
                    Some(MISSING.into())
                } else if t != self.type_name().as_bytes() {
                    Some(format!(
                        "type {} on target, {} in dump",
                        String::from_utf8_lossy(t),
                        self.type_name()
                    ))
                } else {
                    None
                }
            }
            Step::Get if *r == V::Nil => Some(MISSING.into()),
            Step::Get => {
                let got = r.bytes().unwrap_or_default();
                (got != self.data).then(|| {
                    format!(
                        "string value differs ({} vs {} bytes)",
                        got.len(),
                        self.data.len()
                    )
                })
            }
            Step::StrLen | Step::Len if *r == V::Int(0) => Some(MISSING.into()),
            Step::StrLen => {
                let V::Int(n) = r else { return bad() };
                (*n as usize != self.data.len())
                    .then(|| format!("string value differs ({n} vs {} bytes)", self.data.len()))
            }
            Step::GetRange(a, b) => {
                let got = r.bytes().unwrap_or_default();
                (got != &self.data[a..b]).then(|| {
                    let at = a + got
                        .iter()
                        .zip(&self.data[a..b])
                        .position(|(x, y)| x != y)
                        .unwrap_or(got.len().min(b - a));
                    format!(
                        "string value differs at byte {at} ({} bytes)",
                        self.data.len()
                    )
                })
            }
            Step::Len => {
                let V::Int(n) = r else { return bad() };
                let n = *n as usize;
                match self.kind {
                    Kind::List if n != self.ends.len() => Some(format!(
                        "list length {n} on target, {} in dump",
                        self.ends.len()
                    )),
                    Kind::Set if n != self.ends.len() => Some(format!(
                        "set size {n} on target, {} in dump",
                        self.ends.len()
                    )),
                    Kind::ZSet if n != self.ends.len() => Some(format!(
                        "zset size {n} on target, {} in dump",
                        self.ends.len()
                    )),
                    Kind::Hash if n < self.fexp.len() || n > self.total => Some(format!(
                        "hash has {n} fields on target, {} in dump",
                        self.total
                    )),
                    _ => None,
                }
            }
            Step::LRange(a, b) => {
                let Some(got) = r.items() else { return bad() };
                if got.len() != b - a {
                    return Some(format!("list element {} differs", a + got.len().min(b - a)));
                }
                (a..b)
                    .zip(got)
                    .position(|(i, g)| g.bytes() != Some(self.elem(i)))
                    .map(|i| format!("list element {} differs", a + i))
            }
            Step::SMisMember(a, b) => {
                let Some(got) = r.items() else { return bad() };
                (got.len() != b - a || got.iter().any(|g| *g != V::Int(1)))
                    .then(|| "set member missing on target".into())
            }
            Step::ZRange(..) => {
                let Some(got) = r.items() else { return bad() };
                if got.len() % 2 != 0 {
                    return bad();
                }
                for pair in got.chunks(2) {
                    let (Some(m), Some(s)) = (pair[0].bytes(), pair[1].bytes()) else {
                        return bad();
                    };
                    let ok = self
                        .zfind(m)
                        .is_some_and(|i| parse_score(s) == Some(self.scores[i]));
                    if !ok {
                        return Some(format!("zset member {} differs", escape_bytes(m)));
                    }
                }
                None
            }
            Step::HMGet(a, b) => {
                let Some(got) = r.items() else { return bad() };
                if got.len() != b - a {
                    return bad();
                }
                (a..b)
                    .zip(got)
                    .find(|(i, g)| g.bytes() != Some(self.elem(2 * i + 1)))
                    .map(|(i, _)| format!("hash field {} differs", escape_bytes(self.elem(2 * i))))
            }
            Step::HPExpireTime(a, b) => {
                let Some(got) = r.items() else { return bad() };
                if got.len() != b - a {
                    return bad();
                }
                (a..b).zip(got).find_map(|(i, g)| {
                    let want = self.fexp[i];
                    (*g != V::Int(want)).then(|| {
                        let g = match g {
                            V::Int(n) => n.to_string(),
                            other => format!("{other:?}"),
                        };
                        format!(
                            "field TTL of {} is {g} on target, {:?} in dump",
                            escape_bytes(self.elem(2 * i)),
                            (want >= 0).then_some(want)
                        )
                    })
                })
            }
            Step::XRange(a, b) => self.compare_entries(a, b, r),
            Step::XInfoGroups => self.compare_groups(r),
            Step::Ttl => {
                let V::Int(got) = *r else { return bad() };
                let got = if self.limits.pexpiretime || got < 0 {
                    got
                } else {
                    self.limits.now + got
                };
                match self.expire_ms {
                    None if got >= 0 => Some(format!("TTL {got} on target, none in dump")),
                    Some(ms) if got < 0 || (got - ms).abs() > self.limits.tol => {
                        Some(format!("expiry {got} on target, {ms} in dump"))
                    }
                    _ => None,
                }
            }
        }
    }

    /// The dump's index of zset member `m`.
    fn zfind(&mut self, m: &[u8]) -> Option<usize> {
        let n = self.ends.len();
        if n <= 16 {
            return (0..n).find(|&i| self.elem(i) == m);
        }
        if self.zindex.is_empty() {
            let mut idx: Vec<u32> = (0..n as u32).collect();
            idx.sort_unstable_by(|&x, &y| self.elem(x as usize).cmp(self.elem(y as usize)));
            self.zindex = idx;
        }
        let pos = self
            .zindex
            .binary_search_by(|&i| self.elem(i as usize).cmp(m))
            .ok()?;
        Some(self.zindex[pos] as usize)
    }

    fn compare_entries(&self, a: usize, b: usize, r: &V<'_>) -> Option<String> {
        let Kind::Stream(st) = &self.kind else {
            return None;
        };
        let Some(got) = r.items() else {
            return unexpected(Step::XRange(a, b), r);
        };
        if got.len() != b - a {
            return Some(format!(
                "stream entries {}..{}: {} on target, {} in dump",
                st.ids[a],
                st.ids[b - 1],
                got.len(),
                b - a
            ));
        }
        for (i, g) in (a..b).zip(got) {
            let differs = || Some(format!("stream entry {} differs", st.ids[i]));
            let Some([id, fv]) = g.items().and_then(|x| <&[V<'_>; 2]>::try_from(x).ok()) else {
                return differs();
            };
            if id.bytes() != Some(st.ids[i].to_string().as_bytes()) {
                return differs();
            }
            let (x, y) = (if i == 0 { 0 } else { st.fends[i - 1] }, st.fends[i]);
            let fv = fv.items().unwrap_or_default();
            if fv.len() != y - x || (x..y).zip(fv).any(|(j, v)| v.bytes() != Some(self.elem(j))) {
                return differs();
            }
        }
        None
    }

    fn compare_groups(&self, r: &V<'_>) -> Option<String> {
        let Kind::Stream(st) = &self.kind else {
            return None;
        };
        let Some(groups) = r.items() else {
            return unexpected(Step::XInfoGroups, r);
        };
        if groups.len() != st.groups.len() {
            return Some(format!(
                "{} consumer groups on target, {} in dump",
                groups.len(),
                st.groups.len()
            ));
        }
        fn field<'v, 'a>(h: &'v V<'a>, name: &[u8]) -> Option<&'v V<'a>> {
            h.items()?
                .chunks(2)
                .find(|p| p[0].bytes() == Some(name))
                .and_then(|p| p.get(1))
        }
        for (name, last_delivered, live_pel) in &st.groups {
            let shown = String::from_utf8_lossy(name);
            let Some(h) = groups
                .iter()
                .find(|h| field(h, b"name").and_then(V::bytes) == Some(&name[..]))
            else {
                return Some(format!("consumer group {shown} missing"));
            };
            let pel = match field(h, b"pending") {
                Some(V::Int(n)) => *n as usize,
                _ => usize::MAX,
            };
            let last = field(h, b"last-delivered-id")
                .and_then(|v| v.bytes().map(|b| String::from_utf8_lossy(b).into_owned()))
                .unwrap_or_default();
            if last != *last_delivered || pel != *live_pel {
                return Some(format!(
                    "consumer group {shown}: last id {last} / {pel} pending on target, {last_delivered} / {live_pel} in dump"
                ));
            }
        }
        None
    }
}

fn unexpected(step: Step, r: &V<'_>) -> Option<String> {
    Some(format!("unexpected reply to {}: {r:?}", step_name(step)))
}

fn parse_score(s: &[u8]) -> Option<f64> {
    crate::decode::string::parse_double(s)
}

fn step_name(s: Step) -> &'static str {
    match s {
        Step::Dump => "DUMP",
        Step::Type => "TYPE",
        Step::Get => "GET",
        Step::StrLen => "STRLEN",
        Step::GetRange(..) => "GETRANGE",
        Step::Len => "length",
        Step::LRange(..) => "LRANGE",
        Step::SMisMember(..) => "SMISMEMBER",
        Step::ZRange(..) => "ZRANGE",
        Step::HMGet(..) => "HMGET",
        Step::HPExpireTime(..) => "HPEXPIRETIME",
        Step::XRange(..) => "XRANGE",
        Step::XInfoGroups => "XINFO GROUPS",
        Step::Ttl => "PEXPIRETIME",
    }
}
