//! Reasons the kernel side loses an event, as indexes into a per-CPU counter array.

/// The ring buffer had no room.
pub const DROP_RINGBUF_FULL: u32 = 0;
/// `bpf_probe_read_user` failed on a syscall's buffer.
pub const DROP_READ_USER: u32 = 1;
/// `bpf_probe_read_kernel` failed on a task field.
pub const DROP_READ_KERNEL: u32 = 2;
/// The connection map was full, so an accepted socket goes unwatched.
pub const DROP_CONN_TABLE_FULL: u32 = 3;
/// The pending-syscall map was full, so a read or write goes unseen.
pub const DROP_PENDING_TABLE_FULL: u32 = 4;
/// The tracked-process map was full, so a forked worker goes unwatched.
pub const DROP_TRACKED_TABLE_FULL: u32 = 5;
/// An exit tracepoint found no matching enter (the observer attached mid-syscall).
pub const DROP_UNMATCHED_EXIT: u32 = 6;
/// A field of a tracepoint record could not be read, or userspace gave no layout for it.
pub const DROP_READ_TRACEPOINT: u32 = 7;
/// The handshake map refused an insert, so a connection's queue wait goes unmeasured.
pub const DROP_HANDSHAKE_TABLE_FULL: u32 = 8;

/// Number of slots in the per-CPU drop array.
pub const DROP_REASONS: u32 = 9;

/// Metric label for each reason, indexed by the constants above.
pub const DROP_REASON_NAMES: [&str; DROP_REASONS as usize] = [
    "ringbuf_full",
    "read_user_failed",
    "read_kernel_failed",
    "conn_table_full",
    "pending_table_full",
    "tracked_table_full",
    "unmatched_exit",
    "read_tracepoint_failed",
    "handshake_table_full",
];
