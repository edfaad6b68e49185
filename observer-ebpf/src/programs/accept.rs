//! `accept` and `accept4`: the start of every connection the observer follows.

use aya_ebpf::{helpers::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext};
use observer_ebpf::{
    drops::{DROP_CONN_TABLE_FULL, DROP_PENDING_TABLE_FULL, DROP_READ_USER, DROP_UNMATCHED_EXIT},
    event::{AcceptEvent, EventKind},
    tracked::{ConnKey, ROLE_WORKER},
};

use super::{
    args::{arg, fd_arg, ret},
    emit::{header, send_for_conn},
    maps::{
        CONNS, PARKED_ACCEPT, PENDING, Pending, count_drop, current, finish, role_of, take_pending,
    },
};

#[tracepoint(category = "syscalls", name = "sys_enter_accept")]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    finish(try_enter(&ctx))
}

#[tracepoint(category = "syscalls", name = "sys_exit_accept")]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    finish(try_exit(&ctx))
}

#[tracepoint(category = "syscalls", name = "sys_enter_accept4")]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    finish(try_enter(&ctx))
}

#[tracepoint(category = "syscalls", name = "sys_exit_accept4")]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    finish(try_exit(&ctx))
}

/// Parks the listening fd and the caller's sockaddr buffer (both calls take them first).
fn try_enter(ctx: &TracePointContext) -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    // Only workers serve HTTP. A master accepts too: Gunicorn 27's control socket
    // (gunicornc), whose commands are not requests.
    if role_of(tgid) != Some(ROLE_WORKER) {
        return Ok(());
    }

    let parked = Pending {
        ptr: arg(ctx, 1),
        fd: fd_arg(ctx, 0),
        call: PARKED_ACCEPT,
    };
    PENDING
        .insert(pid_tgid, parked, 0)
        .map_err(|_| DROP_PENDING_TABLE_FULL)
}

fn try_exit(ctx: &TracePointContext) -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    if role_of(tgid) != Some(ROLE_WORKER) {
        return Ok(());
    }

    let parked = take_pending(pid_tgid).filter(|parked| parked.call == PARKED_ACCEPT);
    let ret = ret(ctx);
    if ret < 0 {
        // EAGAIN from non-blocking accepts: nothing was accepted, nothing is lost.
        return Ok(());
    }
    let fd = ret as i32;

    // Without the enter (the process was tracked mid-accept) the connection is still
    // followed, only its listening socket and family are unknown.
    let (listen_fd, sockaddr) = match parked {
        Some(parked) => (parked.fd, parked.ptr),
        None => {
            count_drop(DROP_UNMATCHED_EXIT);
            (-1, 0)
        }
    };

    let key = ConnKey { tgid, fd };
    CONNS
        .insert(key, listen_fd as u32, 0)
        .map_err(|_| DROP_CONN_TABLE_FULL)?;

    send_for_conn(
        AcceptEvent {
            header: header(EventKind::Accept, pid_tgid, fd),
            listen_fd,
            family: peer_family(sockaddr),
        },
        pid_tgid,
        key,
    )?;
    // After the accept record, so userspace knows the connection when its wait arrives.
    super::queue::accepted(pid_tgid, fd, listen_fd, sockaddr)
}

/// `sa_family` of the peer address the kernel just wrote, or 0 without a buffer.
#[inline(always)]
fn peer_family(sockaddr: u64) -> u32 {
    if sockaddr == 0 {
        return 0;
    }
    match unsafe { bpf_probe_read_user(sockaddr as *const u16) } {
        Ok(family) => u32::from(family),
        Err(_) => {
            count_drop(DROP_READ_USER);
            0
        }
    }
}
