//! Output formats: JSON lines and RESP commands for export, and the `info` summary.

pub mod html;
pub mod info;
pub mod json;
pub mod report;
pub mod resp;
