//! What can stop an import, and how a decode error names the input it was found in.

use super::ledger::ImportSummary;
use crate::model::escape_bytes;

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Bad options or URL.
    #[error("{0}")]
    Config(String),
    /// Could not connect.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The target refused our credentials (its reply text).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The target sent something that is not RESP.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A target database already holds keys and no conflict rule was given.
    #[error("{0}")]
    Conflict(String),
    /// The target answered with an error that stops the import (OOM, READONLY, LOADING…). What
    /// was written by then is in the [`ImportSummary`] of [`ReplayError::Interrupted`] (one count).
    #[error("target refused writes: {message}")]
    Fatal {
        /// The target's reply.
        message: String,
    },
    /// `--wait-replicas N`: for `--timeout`, no `WAIT` was answered by N replicas (one is gone or
    /// cannot keep up); the message names the shortfall.
    #[error("{0}")]
    Unreplicated(String),
    /// The import was stopped (another part of it failed first, or it was asked to stop): the
    /// error that stopped it is the one reported.
    #[error("stopped")]
    Stopped,
    /// A part of the importer failed in a way that is a bug (a thread or task that panicked).
    #[error("internal error: {0}")]
    Internal(String),
    /// Reconnecting failed too often.
    #[error("connection {conn} gave up after {attempts} reconnect attempts ({why}); dump offset {offset} fully acknowledged")]
    GaveUp {
        /// Connection index.
        conn: usize,
        /// Attempts made.
        attempts: u32,
        /// Last failure.
        why: String,
        /// Checkpoint watermark.
        offset: u64,
    },
    /// The dump is corrupt.
    #[error(transparent)]
    Decode(#[from] crate::DecodeError),
    /// One of the dumps is truncated or corrupt: which, where, and its size.
    #[error("{}", dump_error(name, *len, error))]
    Dump {
        /// The input's name (its path).
        name: String,
        /// Its size when known.
        len: Option<u64>,
        /// What the decoder found.
        error: crate::DecodeError,
    },
    /// A control-plane command failed.
    #[error("{0}")]
    Redis(String),
    /// Checkpoint file I/O.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The import stopped part-way: `cause` says why, `summary` what was written, failed and is
    /// in doubt (sent, but never acknowledged) by then.
    #[error("{cause}")]
    Interrupted {
        /// Why it stopped.
        cause: Box<ReplayError>,
        /// What it had done.
        summary: Box<ImportSummary>,
    },
}

/// `NAME is truncated at offset N (0x…) of S bytes: <what the record needs>`.
fn dump_error(name: &str, len: Option<u64>, e: &crate::DecodeError) -> String {
    let state = if e.is_truncation() {
        "truncated"
    } else {
        "corrupt"
    };
    let off = e.offset();
    let size = len.map(|l| format!(" of {l} bytes")).unwrap_or_default();
    let key = e
        .key()
        .map(|k| format!(" (key {})", escape_bytes(k)))
        .unwrap_or_default();
    format!(
        "{name} is {state} at offset {off} ({off:#x}){size}: {}{key}",
        e.kind()
    )
}

/// A decode error of input `name` says which input it is.
pub(super) fn in_dump(e: ReplayError, name: &str, len: Option<u64>) -> ReplayError {
    match e {
        ReplayError::Decode(error) => ReplayError::Dump {
            name: name.to_string(),
            len,
            error,
        },
        e => e,
    }
}

/// Maps a control-plane failure to [`ReplayError::Redis`], naming the command.
pub(super) fn redis_err(what: &str) -> impl Fn(redis::RedisError) -> ReplayError + '_ {
    move |e| ReplayError::Redis(format!("{what}: {e}"))
}
