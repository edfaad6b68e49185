//! Reads and writes on accepted connections: read, readv, recvfrom, recvmsg, write, writev,
//! sendto, sendmsg and sendfile64.
//!
//! The enter tracepoint parks the fd and the caller's buffer pointer when the fd is an
//! accepted connection; the exit tracepoint sends a `DataEvent` with the return value and the
//! head of what actually moved (the caller's buffer holds it by then, for reads and writes
//! alike).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use observer_ebpf::{
    drops::{DROP_PENDING_TABLE_FULL, DROP_UNMATCHED_EXIT},
    event::{EventKind, Syscall},
    tracked::ConnKey,
};

use super::{
    args::{arg, fd_arg, ret},
    capture::capture,
    emit::{header, send_data_for_conn},
    maps::{CONNS, PENDING, Pending, SCRATCH, current, finish, role_of, take_pending},
};

/// Non-blocking gthread and gevent workers get this constantly; it moves nothing.
const EAGAIN: i64 = 11;

fn try_enter(ctx: &TracePointContext, call: Syscall) -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    if role_of(tgid).is_none() {
        return Ok(());
    }

    // Every call here takes the fd first; the second argument is the buffer, the iovec
    // array or the msghdr (for sendfile64 the input fd, which is never dereferenced).
    let fd = fd_arg(ctx, 0);
    if CONNS.get_ptr(ConnKey { tgid, fd }).is_none() {
        return Ok(());
    }
    let parked = Pending {
        ptr: arg(ctx, 1),
        fd,
        call: call as u32,
    };
    PENDING
        .insert(pid_tgid, parked, 0)
        .map_err(|_| DROP_PENDING_TABLE_FULL)
}

fn try_exit(ctx: &TracePointContext, call: Syscall) -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    if role_of(tgid).is_none() {
        return Ok(());
    }

    // Nothing parked is the common case: the fd was a pipe, a file or a log, not a connection.
    let Some(parked) = take_pending(pid_tgid) else {
        return Ok(());
    };
    if parked.call != call as u32 {
        return Err(DROP_UNMATCHED_EXIT);
    }
    let ret = ret(ctx);
    if ret == -EAGAIN {
        return Ok(());
    }

    // Slot 0 of a one-slot array always exists; the check is for the verifier.
    let Some(event) = SCRATCH.get_ptr_mut(0) else {
        return Ok(());
    };
    // SAFETY: a per-CPU map value, used by nothing else until this program returns.
    let event = unsafe { &mut *event };
    event.header = header(EventKind::Data, pid_tgid, parked.fd);
    event.ret = ret;
    event.syscall = call as u32;

    // sendfile's bytes come from a file, not a caller buffer: count them, never copy.
    let mut lost = None;
    let captured = if ret > 0 && call != Syscall::Sendfile {
        capture(&mut event.data, call, parked.ptr, ret as u64).unwrap_or_else(|reason| {
            lost = Some(reason);
            0
        })
    } else {
        0
    };
    event.captured = captured;
    send_data_for_conn(
        event,
        captured,
        pid_tgid,
        ConnKey {
            tgid,
            fd: parked.fd,
        },
    )?;

    // The record went out without its payload; still count the failed copy.
    match lost {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// One enter and one exit program for each data syscall, named after their tracepoints.
macro_rules! data_syscall {
    ($enter:ident = $enter_tp:literal, $exit:ident = $exit_tp:literal, $call:expr) => {
        #[tracepoint(category = "syscalls", name = $enter_tp)]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            finish(try_enter(&ctx, $call))
        }

        #[tracepoint(category = "syscalls", name = $exit_tp)]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            finish(try_exit(&ctx, $call))
        }
    };
}

data_syscall!(
    sys_enter_read = "sys_enter_read",
    sys_exit_read = "sys_exit_read",
    Syscall::Read
);
data_syscall!(
    sys_enter_readv = "sys_enter_readv",
    sys_exit_readv = "sys_exit_readv",
    Syscall::Readv
);
data_syscall!(
    sys_enter_recvfrom = "sys_enter_recvfrom",
    sys_exit_recvfrom = "sys_exit_recvfrom",
    Syscall::Recvfrom
);
data_syscall!(
    sys_enter_recvmsg = "sys_enter_recvmsg",
    sys_exit_recvmsg = "sys_exit_recvmsg",
    Syscall::Recvmsg
);
data_syscall!(
    sys_enter_write = "sys_enter_write",
    sys_exit_write = "sys_exit_write",
    Syscall::Write
);
data_syscall!(
    sys_enter_writev = "sys_enter_writev",
    sys_exit_writev = "sys_exit_writev",
    Syscall::Writev
);
data_syscall!(
    sys_enter_sendto = "sys_enter_sendto",
    sys_exit_sendto = "sys_exit_sendto",
    Syscall::Sendto
);
data_syscall!(
    sys_enter_sendmsg = "sys_enter_sendmsg",
    sys_exit_sendmsg = "sys_exit_sendmsg",
    Syscall::Sendmsg
);
data_syscall!(
    sys_enter_sendfile64 = "sys_enter_sendfile64",
    sys_exit_sendfile64 = "sys_exit_sendfile64",
    Syscall::Sendfile
);
