//! Records the kernel programs put on the ring buffer.
//!
//! Every record starts with an [`EventHeader`]; its `kind` says which struct follows. A
//! [`DataEvent`] is sent truncated to its header plus the captured payload, so its length on
//! the ring buffer varies and `captured` says how much of `data` is real.

use crate::limits::CAPTURE_LEN;

/// Values of [`EventHeader::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A tracked master forked a worker ([`ProcEvent`]).
    Fork = 1,
    /// Some process called exec; userspace decides whether it is a new master ([`ProcEvent`]).
    Exec = 2,
    /// A tracked process's thread-group leader exited ([`ProcEvent`]).
    Exit = 3,
    /// A worker accepted a connection ([`AcceptEvent`]).
    Accept = 4,
    /// A worker read from or wrote to an accepted connection ([`DataEvent`]).
    Data = 5,
    /// A worker closed or shut down an accepted connection ([`CloseEvent`]).
    Close = 6,
}

impl TryFrom<u32> for EventKind {
    type Error = u32;

    fn try_from(value: u32) -> Result<Self, u32> {
        Ok(match value {
            1 => Self::Fork,
            2 => Self::Exec,
            3 => Self::Exit,
            4 => Self::Accept,
            5 => Self::Data,
            6 => Self::Close,
            other => return Err(other),
        })
    }
}

/// The syscall behind a [`DataEvent`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    Read = 0,
    Readv = 1,
    Recvfrom = 2,
    Recvmsg = 3,
    Write = 4,
    Writev = 5,
    Sendto = 6,
    Sendmsg = 7,
    Sendfile = 8,
}

impl Syscall {
    /// True for the calls that move bytes from the client to the worker.
    pub const fn is_inbound(self) -> bool {
        matches!(
            self,
            Self::Read | Self::Readv | Self::Recvfrom | Self::Recvmsg
        )
    }
}

impl TryFrom<u32> for Syscall {
    type Error = u32;

    fn try_from(value: u32) -> Result<Self, u32> {
        Ok(match value {
            0 => Self::Read,
            1 => Self::Readv,
            2 => Self::Recvfrom,
            3 => Self::Recvmsg,
            4 => Self::Write,
            5 => Self::Writev,
            6 => Self::Sendto,
            7 => Self::Sendmsg,
            8 => Self::Sendfile,
            other => return Err(other),
        })
    }
}

/// Values of [`CloseEvent::how`].
pub const CLOSE_CLOSE: u32 = 0;
pub const CLOSE_SHUTDOWN: u32 = 1;

/// Common prefix of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    /// Process id (thread-group id) as the initial pid namespace sees it.
    pub tgid: u32,
    /// Thread id of the caller.
    pub tid: u32,
    /// The socket, or -1 for process events.
    pub fd: i32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the syscall returned or the event fired.
    pub ts_ns: u64,
}

/// Fork, exec and exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcEvent {
    pub header: EventHeader,
    /// For fork: the forking process. For exec and exit: the process itself.
    pub parent_tgid: u32,
    /// For fork: the new process. For exec and exit: the process itself.
    pub child_tgid: u32,
    /// For exit: `task_struct.exit_code` (wait status: code << 8, or the signal number).
    pub exit_code: i32,
    /// For fork: the role the kernel gave the child (see [`crate::tracked`]), else 0.
    pub role: u32,
}

/// A connection accepted from a listening socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptEvent {
    pub header: EventHeader,
    pub listen_fd: i32,
    /// Address family of the peer (`AF_INET`, `AF_INET6`, `AF_UNIX`), or 0 if unknown.
    pub family: u32,
}

/// Bytes moved on an accepted connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataEvent {
    pub header: EventHeader,
    /// The syscall's return: bytes moved, or a negative errno.
    pub ret: i64,
    /// A [`Syscall`] as u32.
    pub syscall: u32,
    /// How many leading bytes of `data` were copied from the caller's buffer.
    pub captured: u32,
    pub data: [u8; CAPTURE_LEN],
}

/// Size of a [`DataEvent`] without its payload: what a record with `captured == 0` occupies.
pub const DATA_EVENT_HEADER_LEN: usize = core::mem::offset_of!(DataEvent, data);

/// `close` or `shutdown` on an accepted connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseEvent {
    pub header: EventHeader,
    /// [`CLOSE_CLOSE`] or [`CLOSE_SHUTDOWN`].
    pub how: u32,
    /// For shutdown: SHUT_RD, SHUT_WR or SHUT_RDWR.
    pub shutdown_how: u32,
}

// The layouts are part of the kernel/userspace contract: fail the build if padding appears.
const _: () = assert!(core::mem::size_of::<EventHeader>() == 24);
const _: () = assert!(core::mem::size_of::<ProcEvent>() == 40);
const _: () = assert!(core::mem::size_of::<AcceptEvent>() == 32);
const _: () = assert!(DATA_EVENT_HEADER_LEN == 40);
const _: () = assert!(core::mem::size_of::<DataEvent>() == 40 + CAPTURE_LEN);
const _: () = assert!(core::mem::size_of::<CloseEvent>() == 32);
