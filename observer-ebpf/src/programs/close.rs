//! `close` and `shutdown` on accepted connections.
//!
//! Both are handled at syscall enter. The fd number is free for reuse the moment close
//! returns, so another thread's accept could be recorded before a close handled at exit;
//! at enter the close is always on the ring buffer ahead of any reuse of its fd.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use observer_ebpf::{
    event::{CLOSE_CLOSE, CLOSE_SHUTDOWN, CloseEvent, EventKind},
    tracked::ConnKey,
};

use super::{
    args::fd_arg,
    emit::{header, send},
    maps::{CONNS, current, finish, role_of},
};

#[tracepoint(category = "syscalls", name = "sys_enter_close")]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    finish(try_close(&ctx))
}

#[tracepoint(category = "syscalls", name = "sys_enter_shutdown")]
pub fn sys_enter_shutdown(ctx: TracePointContext) -> u32 {
    finish(try_shutdown(&ctx))
}

fn try_close(ctx: &TracePointContext) -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    if role_of(tgid).is_none() {
        return Ok(());
    }

    // The delete doubles as the lookup: it fails for every fd that is not a connection.
    let fd = fd_arg(ctx, 0);
    if CONNS.remove(ConnKey { tgid, fd }).is_err() {
        return Ok(());
    }
    send(CloseEvent {
        header: header(EventKind::Close, pid_tgid, fd),
        how: CLOSE_CLOSE,
        shutdown_how: 0,
    })
}

fn try_shutdown(ctx: &TracePointContext) -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    if role_of(tgid).is_none() {
        return Ok(());
    }

    let fd = fd_arg(ctx, 0);
    if CONNS.get_ptr(ConnKey { tgid, fd }).is_none() {
        return Ok(());
    }
    send(CloseEvent {
        header: header(EventKind::Close, pid_tgid, fd),
        how: CLOSE_SHUTDOWN,
        shutdown_how: fd_arg(ctx, 1) as u32,
    })
}
