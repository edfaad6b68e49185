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
    emit::{header, send_for_conn},
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
    let key = ConnKey { tgid, fd };
    if CONNS.remove(key).is_err() {
        return Ok(());
    }
    // A close that does not fit leaves its mark on the (tgid, fd): the next accept that
    // reuses the fd announces the loss, so the stale state is reported, not guessed.
    send_for_conn(
        CloseEvent {
            header: header(EventKind::Close, pid_tgid, fd),
            how: CLOSE_CLOSE,
            shutdown_how: 0,
        },
        pid_tgid,
        key,
    )
}

fn try_shutdown(ctx: &TracePointContext) -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    if role_of(tgid).is_none() {
        return Ok(());
    }

    let fd = fd_arg(ctx, 0);
    let key = ConnKey { tgid, fd };
    if CONNS.get_ptr(key).is_none() {
        return Ok(());
    }
    send_for_conn(
        CloseEvent {
            header: header(EventKind::Close, pid_tgid, fd),
            how: CLOSE_SHUTDOWN,
            shutdown_how: fd_arg(ctx, 1) as u32,
        },
        pid_tgid,
        key,
    )
}
