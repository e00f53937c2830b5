//! Module values and module aux records (format §7.2): a module type id followed by a typed opcode
//! stream that ends with opcode 0. The stream is self-describing, so it can be skipped without the
//! module.

use super::cursor::Cursor;
use super::string::{read_len, skip_string};
use crate::error::Result;

/// Skips a module opcode stream up to and including its EOF marker.
pub(crate) fn skip_opcodes(c: &mut Cursor<'_>) -> Result<()> {
    loop {
        let at = c.pos();
        match read_len(c, "module opcode")? {
            0 => return Ok(()),
            1 | 2 => {
                read_len(c, "module integer")?;
            }
            3 => c.skip(4, "module float")?,
            4 => c.skip(8, "module double")?,
            5 => skip_string(c, "module string")?,
            op => {
                return Err(c.err_at(
                    at,
                    crate::error::ErrorKind::Invalid {
                        what: "module value",
                        detail: format!("unknown module opcode {op}"),
                    },
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_every_opcode() {
        // UINT 5, SINT 1, FLOAT, DOUBLE, STRING "ab", EOF
        let body = [
            2, 5, 1, 1, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5, 2, b'a', b'b', 0, 0xaa,
        ];
        let mut c = Cursor::new(&body, 0);
        skip_opcodes(&mut c).unwrap();
        assert_eq!(c.remaining(), 1);
    }

    #[test]
    fn unknown_opcode_is_an_error() {
        let mut c = Cursor::new(&[2, 5, 9], 0);
        let e = skip_opcodes(&mut c).unwrap_err();
        assert_eq!(e.offset(), 2);
        assert!(e.to_string().contains("unknown module opcode 9"));
    }
}
