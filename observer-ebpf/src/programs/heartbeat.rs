//! Worker heartbeats: Gunicorn's `WorkerTmp.notify()`.
//!
//! A worker proves it is alive by changing the ctime of its unlinked temp file, which the
//! arbiter compares with `--timeout`. Since Gunicorn 22 (benoitc/gunicorn#3095) that is
//! `os.utime(fd, (t, t))`, which CPython issues as `utimensat(fd, NULL, times, 0)`; up to
//! Gunicorn 21 it was `os.fchmod(fd, spinner)` with the mode flipping between 0 and 1. A
//! heartbeat happens once per request loop, so it only refreshes a map slot: no ring-buffer
//! record.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};
use observer_ebpf::{drops::DROP_TRACKED_TABLE_FULL, tracked::ROLE_WORKER};

use super::{
    args::arg,
    maps::{HEARTBEATS, current, finish, role_of},
};

#[tracepoint(category = "syscalls", name = "sys_enter_utimensat")]
pub fn sys_enter_utimensat(ctx: TracePointContext) -> u32 {
    finish(try_utimensat(&ctx))
}

#[tracepoint(category = "syscalls", name = "sys_enter_fchmod")]
pub fn sys_enter_fchmod(ctx: TracePointContext) -> u32 {
    finish(try_fchmod(&ctx))
}

fn try_utimensat(ctx: &TracePointContext) -> Result<(), u32> {
    let (_, tgid) = current();
    if role_of(tgid) != Some(ROLE_WORKER) {
        return Ok(());
    }

    // A path means `os.utime(path)` by the app, not the fd-only form Gunicorn uses.
    if arg(ctx, 1) != 0 {
        return Ok(());
    }
    beat(tgid)
}

fn try_fchmod(ctx: &TracePointContext) -> Result<(), u32> {
    let (_, tgid) = current();
    if role_of(tgid) != Some(ROLE_WORKER) {
        return Ok(());
    }

    // Only the spinner's modes: an app's own fchmod (0o644, 0o600, ...) is not a heartbeat.
    if arg(ctx, 1) > 1 {
        return Ok(());
    }
    beat(tgid)
}

#[inline(always)]
fn beat(tgid: u32) -> Result<(), u32> {
    // SAFETY: a plain helper call with no arguments; it only reads the monotonic clock.
    let now = unsafe { bpf_ktime_get_ns() };
    // The map is as large as `TRACKED`, so it fills only when that one is full too.
    HEARTBEATS
        .insert(tgid, now, 0)
        .map_err(|_| DROP_TRACKED_TABLE_FULL)
}
