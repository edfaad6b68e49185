//! Process lifecycle: a tracked master forking a worker, any exec, a tracked process exiting.
//!
//! The sched tracepoints' record layouts moved between kernels (fork's comm became a
//! variable-length field; exit gained a field), so nothing here reads their records: the
//! calling task is the subject, and task_struct members are read at offsets userspace took
//! from the kernel's BTF.

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use observer_ebpf::{
    drops::{DROP_READ_KERNEL, DROP_TRACKED_TABLE_FULL},
    event::{EventKind, ProcEvent},
    tracked::{ROLE_MASTER, ROLE_WORKER},
};

use super::{
    emit::{header, send_now},
    maps::{TASK_OFFSETS, TRACKED, count_drop, current, finish, role_of},
};

/// `exit_code` reported when the task could not be read; no wait status is negative.
const EXIT_CODE_UNKNOWN: i32 = -1;

/// Runs in the parent, with both tasks as arguments: `(struct task_struct *parent, struct
/// task_struct *child)`. Unlike the plain tracepoint it shows the child's tgid, which tells
/// a new process from a new thread.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    finish(try_fork(&ctx))
}

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    finish(try_exec())
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    finish(try_exit())
}

fn try_fork(ctx: &BtfTracePointContext) -> Result<(), u32> {
    let (pid_tgid, parent) = current();
    if role_of(parent) != Some(ROLE_MASTER) {
        return Ok(());
    }

    let offsets = TASK_OFFSETS.load();
    if offsets.valid == 0 {
        return Err(DROP_READ_KERNEL);
    }
    let child: *const u8 = ctx.arg(1);
    let child_pid: i32 = read_task(child, offsets.pid)?;
    let child_tgid: i32 = read_task(child, offsets.tgid)?;
    if child_pid != child_tgid {
        // A thread of the master, not a worker.
        return Ok(());
    }
    let child_tgid = child_tgid as u32;

    // Track the worker here, before it first runs, so its first accept is never missed.
    let role = match TRACKED.insert(child_tgid, ROLE_WORKER, 0) {
        Ok(()) => ROLE_WORKER,
        Err(_) => {
            count_drop(DROP_TRACKED_TABLE_FULL);
            0
        }
    };
    send_now(ProcEvent {
        header: header(EventKind::Fork, pid_tgid, -1),
        parent_tgid: parent,
        child_tgid,
        exit_code: 0,
        role,
    })
}

/// Sent for every process: userspace reads the new image's command line to find masters.
/// Execs are rare, so this costs the node little.
fn try_exec() -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    send_now(ProcEvent {
        header: header(EventKind::Exec, pid_tgid, -1),
        parent_tgid: tgid,
        child_tgid: tgid,
        exit_code: 0,
        role: 0,
    })
}

fn try_exit() -> Result<(), u32> {
    let (pid_tgid, tgid) = current();
    if role_of(tgid).is_none() {
        return Ok(());
    }
    if pid_tgid as u32 != tgid {
        // One thread of a tracked process; the process lives on.
        return Ok(());
    }

    let exit_code = read_exit_code().unwrap_or_else(|reason| {
        count_drop(reason);
        EXIT_CODE_UNKNOWN
    });
    // A missing key only means userspace untracked it first.
    let _ = TRACKED.remove(tgid);
    send_now(ProcEvent {
        header: header(EventKind::Exit, pid_tgid, -1),
        parent_tgid: tgid,
        child_tgid: tgid,
        exit_code,
        role: 0,
    })
}

/// `current->exit_code`, set by do_exit before this tracepoint fires.
#[inline(always)]
fn read_exit_code() -> Result<i32, u32> {
    let offsets = TASK_OFFSETS.load();
    if offsets.valid == 0 {
        return Err(DROP_READ_KERNEL);
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    read_task(task, offsets.exit_code)
}

#[inline(always)]
fn read_task(task: *const u8, offset: u32) -> Result<i32, u32> {
    unsafe { bpf_probe_read_kernel(task.add(offset as usize).cast::<i32>()) }
        .map_err(|_| DROP_READ_KERNEL)
}
