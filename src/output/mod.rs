//! Output formats: the export (JSON lines, RESP commands from [`crate::commands`]), the `info`
//! summary and the memory report.

pub mod export;
pub mod html;
pub mod info;
pub mod json;
pub mod report;

pub use crate::text::count;
