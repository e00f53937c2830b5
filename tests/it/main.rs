//! The integration tests, one binary: each module is one concern (its first comment says which).
//! They start real servers (`tests/it/common`); under `RDBKIT_REQUIRE_SERVERS=1` a missing server
//! or corpus is a failure. One binary links once, where twenty took minutes of CI.

mod aof;
mod common;
mod corpus;
mod diff;
mod dumps;
mod examples;
mod export;
mod faults;
mod fuzz_regressions;
mod golden;
mod ha;
mod harness;
mod import;
mod keys;
mod live;
mod messages;
mod modules;
mod ops;
mod overlap;
mod parallel;
mod plan;
mod report;
mod rerun;
mod rewrite;
mod roundtrip;
mod salvage;
mod scan;
mod search;
mod slots;
mod transform;
mod truncation;
mod valkey;
mod verify;
