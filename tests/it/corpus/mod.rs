//! The public corpus (`../shared/corpus`, see its README.md) without servers, one test binary in
//! files by concern:
//!
//! * [`classified`]: every MANIFEST row decodes completely, or fails as the table of rows no server
//!   here loads says (with an error that names an offset).
//! * [`key_counts`]: key counts equal the MANIFEST's `dbsize_incl_expired`.
//! * [`expected`]: keys and values equal the expected-output files the source projects ship beside
//!   their dumps; [`pairs`] says which file goes with which dump (every file is paired or skipped
//!   with a reason), [`values`] compares one value.
//! * [`self_checks`]: the helpers and comparisons detect differences (no vacuous pass).
//!
//! The MANIFEST reader and the complete decode are in tests/it/common/corpus.rs.
//! tests/roundtrip.rs proves the 8.2-loadable dumps against real servers; this test needs none.

mod classified;
mod expected;
mod key_counts;
mod pairs;
mod self_checks;
mod values;
