//! Why a sample failed, with a short fixed reason for a metric label.

use std::{io, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The process exited (or was reaped) before or while we read it.
    #[error("process {pid} is gone")]
    Gone { pid: u32 },

    /// A file exists but could not be read, e.g. a permission denied.
    #[error("cannot read {path}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file was read but does not have the layout the kernel documents.
    #[error("malformed {file} while sampling process {pid}: {problem}")]
    Malformed {
        pid: u32,
        file: &'static str,
        problem: &'static str,
    },
}

impl SampleError {
    /// Every value [`Self::reason`] can return, so the counter's series exist at zero.
    pub const REASONS: [&str; 3] = ["gone", "unreadable", "malformed"];

    /// Bounded label value for a sampling-failure counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Gone { .. } => "gone",
            Self::Unreadable { .. } => "unreadable",
            Self::Malformed { .. } => "malformed",
        }
    }
}

/// `sysconf` could not tell us a unit the procfs numbers are expressed in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sysconf({name}) returned {value}")]
pub struct SysconfError {
    pub name: &'static str,
    pub value: libc::c_long,
}
