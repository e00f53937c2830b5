//! Text of numbers and bytes: stack-buffer integer and float formatting for the encoders, and the
//! escaped rendering of byte strings used in messages. A leaf: it imports nothing else of the crate.

use std::fmt::Write as _;

/// Small stack buffer for integer formatting.
pub(crate) struct ItoaBuf {
    buf: [u8; 20],
    pub(crate) len: usize,
}

impl ItoaBuf {
    pub(crate) fn as_slice(&mut self) -> &[u8] {
        &self.buf[20 - self.len..]
    }
}

/// "00" "01" … "99": two digits per step (integer text is a large part of RESP export).
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Decimal text of `v`.
pub(crate) fn itoa_buf(v: i64) -> ItoaBuf {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = 20;
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i] = DIGIT_PAIRS[d];
        buf[i + 1] = DIGIT_PAIRS[d + 1];
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i] = DIGIT_PAIRS[d];
        buf[i + 1] = DIGIT_PAIRS[d + 1];
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    ItoaBuf { buf, len: 20 - i }
}

/// Length of the decimal text of `v`, without formatting it.
pub(crate) fn decimal_len(v: i64) -> usize {
    let n = v.unsigned_abs();
    let digits = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    digits + usize::from(v < 0)
}

/// Text of a finite or infinite double: exactly what `format!("{x:?}")` gives (the shortest text
/// that reads back as `x`).
pub(crate) struct FloatBuf {
    buf: [u8; 40],
    len: usize,
}

impl FloatBuf {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Formats `x` like `{x:?}`. Hand-written fast path because the standard formatter (Grisu) was
/// ~10% of `export --format resp|jsonl` on D1, whose zset scores are short decimals: when
/// `x · 10^k` is within 2^-13 of an integer `r < 2^40` for the smallest such `k`, `r / 10^k` is
/// the only `k`-digit decimal that reads back as `x` and no shorter one does (the rounding
/// interval of `x` is narrower than `2^-12` in units of `10^-k`), so `r` with `k` decimals is the
/// shortest text; `r / 10^k == x` checks the read-back exactly (both are exact doubles and the
/// division is correctly rounded, as parsing is). Everything else goes to the standard formatter.
/// The test `float_text_matches_debug` compares both on millions of values.
pub(crate) fn f64_buf(x: f64) -> FloatBuf {
    let mut out = FloatBuf {
        buf: [0; 40],
        len: 0,
    };
    let a = x.abs();
    if (1e-4..1e12).contains(&a) {
        const LIMIT: f64 = (1u64 << 40) as f64;
        let mut p = 1.0f64;
        for k in 0..=16usize {
            let scaled = a * p;
            if scaled >= LIMIT {
                break;
            }
            let r = scaled.round();
            if r / p == a {
                let mut digits = itoa_buf(r as i64);
                let d = digits.as_slice();
                let mut n = 0;
                let mut put = |b: &[u8]| {
                    out.buf[n..n + b.len()].copy_from_slice(b);
                    n += b.len();
                };
                if x < 0.0 {
                    put(b"-");
                }
                if k == 0 {
                    put(d);
                    put(b".0");
                } else if d.len() > k {
                    put(&d[..d.len() - k]);
                    put(b".");
                    put(&d[d.len() - k..]);
                } else {
                    put(b"0.");
                    for _ in d.len()..k {
                        put(b"0");
                    }
                    put(d);
                }
                out.len = n;
                return out;
            }
            p *= 10.0;
        }
    }
    use std::io::Write as _;
    let mut w = &mut out.buf[..];
    let _ = write!(w, "{x:?}");
    out.len = 40 - w.len();
    out
}

/// Renders bytes for humans: printable ASCII as is, everything else as `\xNN` (and `\\`, `\"`).
pub fn escape_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    s
}

/// `n` and the noun, plural unless `n` is 1: `count(1, "key")` is `1 key`, `count(2, "key")` is
/// `2 keys`.
///
/// ```
/// assert_eq!(rdbkit::text::count(1, "key"), "1 key");
/// assert_eq!(rdbkit::text::count(0, "key"), "0 keys");
/// ```
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes as a JSON value by the rule of `export --format jsonl`: a string when UTF-8, else
/// `{"base64": …}` (standard alphabet, padded), so that no byte is lost. The one place that rule
/// is applied to a [`serde_json::Value`] (keys in `info`, `report` and summaries, module items);
/// the streaming export writes the same text by hand (`output::json::bytes`, its hot path).
pub fn bytes_json(b: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    match std::str::from_utf8(b) {
        Ok(s) => serde_json::Value::String(s.to_owned()),
        Err(_) => serde_json::json!({
            "base64": base64::engine::general_purpose::STANDARD.encode(b)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_text_and_length() {
        let mut rng = crate::testing::XorShift::with_seed(0x2545_f491_4f6c_dd1d);
        let mut vals = vec![
            0i64,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            -1,
            -10,
            i64::MIN,
            i64::MAX,
        ];
        for _ in 0..100_000 {
            let r = rng.next_u64();
            vals.push((r as i64) >> (r % 63));
        }
        for v in vals {
            assert_eq!(itoa_buf(v).as_slice(), v.to_string().as_bytes());
            assert_eq!(decimal_len(v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    fn float_text_matches_debug() {
        let mut rng = crate::testing::XorShift::default();
        let mut next = || rng.next_u64();
        let check = |x: f64| {
            assert_eq!(
                std::str::from_utf8(f64_buf(x).as_slice()).unwrap(),
                format!("{x:?}"),
                "{:#x}",
                x.to_bits()
            );
        };
        for x in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.2 + 0.1,
            1e-4,
            0.99e-4,
            1e12,
            1e12 - 0.5,
            999_999_999_999.9,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            4003.19,
            252014.0,
        ] {
            check(x);
        }
        for _ in 0..2_000_000 {
            let r = next();
            let x = match r % 6 {
                // short decimals, as scores usually are
                0 => {
                    (r >> 20) as f64 % 1e9
                        / [1.0, 10.0, 100.0, 1e3, 1e4, 1e6][(r >> 8) as usize % 6]
                }
                1 => ((r >> 12) % 1_000_000) as f64 / 100.0,
                // any bit pattern
                2 => f64::from_bits(r),
                // values near the limits of the fast path
                3 => f64::from_bits(1e12f64.to_bits() ^ (r & 0xff)),
                4 => f64::from_bits(1e-4f64.to_bits() ^ (r & 0xff)),
                // powers of two and their neighbours
                _ => f64::from_bits((((r >> 8) % 2046 + 1) << 52) ^ (r & 3)),
            };
            let x = if r & (1 << 7) != 0 { -x } else { x };
            if !x.is_nan() {
                check(x);
            }
        }
    }

    #[test]
    fn bytes_json_is_text_or_base64() {
        assert_eq!(bytes_json("k é\n\"".as_bytes()), "k é\n\"");
        assert_eq!(bytes_json(b"k\xff"), serde_json::json!({"base64": "a/8="}));
        assert_eq!(bytes_json(b""), "");
    }

    #[test]
    fn escape_is_readable_and_unambiguous() {
        assert_eq!(escape_bytes(b"a\"b\xff"), "\"a\\\"b\\xff\"");
    }
}
