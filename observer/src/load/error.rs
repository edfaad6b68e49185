//! Errors of loading the kernel programs and editing their maps.

use aya::{BtfError as KernelBtfError, EbpfError, maps::MapError, programs::ProgramError};
use thiserror::Error;

use super::{btf::BtfError, tracefs::TracefsError};

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("reading task_struct offsets from the kernel's BTF")]
    TaskOffsets(#[from] BtfError),
    #[error("reading the signal, OOM and socket-state tracepoint layouts from tracefs")]
    TracepointLayout(#[from] TracefsError),
    #[error("reading the kernel's BTF for the BTF tracepoint")]
    KernelBtf(#[source] KernelBtfError),
    #[error("loading the eBPF object")]
    Object(#[source] EbpfError),
    #[error("program {program} is missing from the eBPF object")]
    MissingProgram { program: &'static str },
    #[error("program {program} in the eBPF object has no attach point in the loader")]
    UnknownProgram { program: String },
    #[error("program {program} is not a {expected}")]
    ProgramType {
        program: &'static str,
        expected: &'static str,
    },
    #[error("verifying program {program}")]
    Verify {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching program {program} to {tracepoint}")]
    Attach {
        program: &'static str,
        tracepoint: String,
        #[source]
        source: ProgramError,
    },
    #[error("reading the id of program {program}")]
    ProgramInfo {
        program: String,
        #[source]
        source: ProgramError,
    },
    #[error("map {map} is missing from the eBPF object")]
    MissingMap { map: &'static str },
    #[error("the ring buffer was already taken")]
    EventsTaken,
    #[error("{op} on map {map}")]
    Map {
        op: &'static str,
        map: &'static str,
        #[source]
        source: MapError,
    },
}
