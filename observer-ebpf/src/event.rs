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
    /// A signal was generated for a tracked process ([`SignalEvent`]).
    Signal = 7,
    /// The OOM killer chose a tracked process as its victim ([`OomEvent`]).
    OomVictim = 8,
    /// A worker accepted a TCP connection from a tracked listener ([`QueueWaitEvent`]).
    QueueWait = 9,
    /// Events of a connection were lost (the ring buffer was full); sent, as a bare
    /// [`EventHeader`], ahead of the connection's next record that does fit.
    Lost = 10,
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
            7 => Self::Signal,
            8 => Self::OomVictim,
            9 => Self::QueueWait,
            10 => Self::Lost,
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

/// Values of [`SignalEvent::result`], the kernel's `enum trace_signal_result`.
pub const SIGNAL_DELIVERED: i32 = 0;
/// The target ignores the signal (`SIG_IGN`, or a default action of ignore).
pub const SIGNAL_IGNORED: i32 = 1;
/// The same standard signal was already pending, so this one merged into it.
pub const SIGNAL_ALREADY_PENDING: i32 = 2;
/// A real-time signal could not be queued.
pub const SIGNAL_OVERFLOW_FAIL: i32 = 3;
/// Delivered, but without its `siginfo`.
pub const SIGNAL_LOSE_INFO: i32 = 4;

/// A signal generated for a tracked process (`signal:signal_generate`). The header's `tgid`
/// and `tid` are the sender: the task that was running when the signal was generated. That is
/// the caller of kill(2) for signals a process sends, but any task at all for signals the
/// kernel raises from interrupt context, which is why `code` travels along.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalEvent {
    pub header: EventHeader,
    /// The target task as the tracepoint names it (a thread id).
    pub target_pid: u32,
    /// The target's process: `target_pid` when that is a tracked process, the sender's tgid
    /// when a thread of a tracked process signalled itself (a fault), else 0.
    pub target_tgid: u32,
    pub sig: i32,
    /// `si_code`: 0 (`SI_USER`) for kill(2), negative for other user sources, positive for
    /// signals the kernel raised (faults, `SI_KERNEL`, child notifications).
    pub code: i32,
    /// One of the `SIGNAL_*` results.
    pub result: i32,
    /// Non-zero when the signal went to the whole thread group rather than one thread.
    pub group: u32,
}

/// A tracked process chosen as the OOM killer's victim (`oom:mark_victim`). The header's
/// `tgid` is whichever task ran into the limit; the victim is `victim_pid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomEvent {
    pub header: EventHeader,
    pub victim_pid: u32,
    /// Always zero; keeps the record free of implicit padding.
    pub reserved: u32,
}

/// How long an accepted TCP connection waited in its listener's accept queue. The header's
/// `fd` is the accepted socket and `ts_ns` the accept's return.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueWaitEvent {
    pub header: EventHeader,
    pub listen_fd: i32,
    /// The listener's port (host order) from the handshake, 0 when unmatched.
    pub local_port: u16,
    /// `AF_INET` or `AF_INET6`: the accepted socket's family.
    pub family: u16,
    /// When the handshake completed, or 0 when the kernel saw no handshake for this peer
    /// (it completed before the listener's port was known, or its entry was evicted).
    pub handshake_ns: u64,
}

// The layouts are part of the kernel/userspace contract: fail the build if padding appears.
const _: () = assert!(core::mem::size_of::<EventHeader>() == 24);
const _: () = assert!(core::mem::size_of::<ProcEvent>() == 40);
const _: () = assert!(core::mem::size_of::<AcceptEvent>() == 32);
const _: () = assert!(DATA_EVENT_HEADER_LEN == 40);
const _: () = assert!(core::mem::size_of::<DataEvent>() == 40 + CAPTURE_LEN);
const _: () = assert!(core::mem::size_of::<CloseEvent>() == 32);
const _: () = assert!(core::mem::size_of::<SignalEvent>() == 48);
const _: () = assert!(core::mem::size_of::<OomEvent>() == 32);
const _: () = assert!(core::mem::size_of::<QueueWaitEvent>() == 40);
