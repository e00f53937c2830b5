//! Output formats: the export (JSON lines, RESP commands from [`crate::commands`]), the `info`
//! summary and the memory report.

pub mod export;
pub mod html;
pub mod info;
pub mod json;
pub mod report;

/// `n` and the noun, plural unless `n` is 1: `count(1, "key")` is `1 key`, `count(2, "key")` is
/// `2 keys`.
///
/// ```
/// assert_eq!(rdbkit::output::count(1, "key"), "1 key");
/// assert_eq!(rdbkit::output::count(0, "key"), "0 keys");
/// ```
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
