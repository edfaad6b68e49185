//! Where the fields the programs read sit inside plain tracepoint records.
//!
//! Tracepoint layouts move between kernels (the sched events did), so userspace reads each
//! record's `format` file under tracefs at start and hands the offsets to the programs as a
//! global, as it does for `task_struct` with [`crate::tracked::TaskOffsets`].

/// Byte offsets into the `signal:signal_generate` and `oom:mark_victim` records. Each field
/// read is a 4-byte integer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointOffsets {
    /// `signal_generate.sig`
    pub signal_sig: u32,
    /// `signal_generate.code`
    pub signal_code: u32,
    /// `signal_generate.pid`: the target task.
    pub signal_pid: u32,
    /// `signal_generate.group`
    pub signal_group: u32,
    /// `signal_generate.result`
    pub signal_result: u32,
    /// `mark_victim.pid`
    pub victim_pid: u32,
    /// Non-zero once userspace has filled the other fields.
    pub valid: u32,
    /// Always zero; keeps the size a multiple of 8 like the other shared structs.
    pub reserved: u32,
}

const _: () = assert!(core::mem::size_of::<TracepointOffsets>() == 32);
