//! Values of the tracked-process map, keyed by tgid.

/// A Gunicorn master (arbiter). Its forked children become workers in the kernel at fork.
pub const ROLE_MASTER: u32 = 1;
/// A Gunicorn worker. Its accepted sockets are followed.
pub const ROLE_WORKER: u32 = 2;

/// Key of the connection map: one accepted socket of one process. gthread reads and writes a
/// connection from several threads, so the key is the process, never the thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: i32,
}

/// Member offsets inside `struct task_struct`, read from the running kernel's BTF by
/// userspace at start. aya 0.14 has no CO-RE field relocations for Rust programs, so this is
/// how the programs read kernel structs portably.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
    pub pid: u32,
    pub tgid: u32,
    pub exit_code: u32,
    /// Non-zero once userspace has filled the other fields.
    pub valid: u32,
}
