//! The RESP request buffer: commands encoded once, as the bytes that go on the wire.

use crate::model::Elem;

/// A RESP request buffer.
#[derive(Debug, Default, Clone)]
pub struct Resp {
    /// Encoded commands.
    pub buf: Vec<u8>,
}

impl Resp {
    /// Starts a command of `n` arguments.
    #[inline]
    pub fn begin(&mut self, n: usize) {
        self.header(b'*', n);
    }

    #[inline]
    fn header(&mut self, tag: u8, n: usize) {
        // lengths are mostly 1–3 digits: written without the general integer formatter
        match n {
            0..=9 => self
                .buf
                .extend_from_slice(&[tag, b'0' + n as u8, b'\r', b'\n']),
            10..=99 => self.buf.extend_from_slice(&[
                tag,
                b'0' + (n / 10) as u8,
                b'0' + (n % 10) as u8,
                b'\r',
                b'\n',
            ]),
            _ => {
                let mut b = crate::text::itoa_buf(n as i64);
                self.buf.push(tag);
                self.buf.extend_from_slice(b.as_slice());
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// One bulk-string argument.
    #[inline]
    pub fn arg(&mut self, a: &[u8]) {
        self.buf.reserve(a.len() + 16);
        self.header(b'$', a.len());
        self.buf.extend_from_slice(a);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer argument.
    #[inline]
    pub fn arg_int(&mut self, i: i64) {
        if let 0..=9 = i {
            self.buf
                .extend_from_slice(&[b'$', b'1', b'\r', b'\n', b'0' + i as u8, b'\r', b'\n']);
            return;
        }
        let mut b = crate::text::itoa_buf(i);
        let s = b.as_slice();
        self.header(b'$', s.len());
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An element argument (integers as decimal text).
    #[inline]
    pub fn arg_elem(&mut self, e: &Elem<'_>) {
        match e {
            Elem::Bytes(b) => self.arg(b),
            Elem::Int(i) => self.arg_int(*i),
        }
    }

    /// A score argument, in a form `strtod` reads back to the same double.
    pub fn arg_f64(&mut self, f: f64) {
        if f == f64::INFINITY {
            self.arg(b"inf")
        } else if f == f64::NEG_INFINITY {
            self.arg(b"-inf")
        } else {
            self.arg(crate::text::f64_buf(f).as_slice());
        }
    }

    /// A whole command.
    pub fn cmd(&mut self, args: &[&[u8]]) {
        self.begin(args.len());
        for a in args {
            self.arg(a);
        }
    }

    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}
