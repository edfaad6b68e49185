//! Worker heartbeats: Gunicorn's `WorkerTmp.notify()`.
//!
//! Since Gunicorn 20 a worker proves it is alive by `os.utime(fd, (t, t))` on its unlinked
//! temp file, which CPython issues as `futimens(fd)`, i.e. `utimensat(fd, NULL, times, 0)`.
//! The arbiter compares that file's ctime with `--timeout`. A heartbeat happens once per
//! request loop, so it only refreshes a map slot: no ring-buffer record.

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

fn try_utimensat(ctx: &TracePointContext) -> Result<(), u32> {
    let (_, tgid) = current();
    if role_of(tgid) != Some(ROLE_WORKER) {
        return Ok(());
    }

    // A path means `os.utime(path)` by the app, not the fd-only form Gunicorn uses.
    if arg(ctx, 1) != 0 {
        return Ok(());
    }
    // SAFETY: a plain helper call with no arguments; it only reads the monotonic clock.
    let now = unsafe { bpf_ktime_get_ns() };
    // The map is as large as `TRACKED`, so it fills only when that one is full too.
    HEARTBEATS
        .insert(tgid, now, 0)
        .map_err(|_| DROP_TRACKED_TABLE_FULL)
}
