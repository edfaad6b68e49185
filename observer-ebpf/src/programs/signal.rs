//! Signals to tracked processes and OOM kills of them: what tells a worker's restart reasons
//! apart (the master's SIGABRT on timeout, HUP/TTIN/TTOU to the master, a stranger's kill).
//!
//! `signal:signal_generate` fires for every signal on the node; only those aimed at a tracked
//! process (or at a tracked thread faulting itself) are sent, with sender, target, signal,
//! `si_code` and result. `oom:mark_victim` is sent when the victim is tracked.
//!
//! Both are plain tracepoints whose record layouts are read from tracefs by userspace (see
//! `observer_ebpf::layout`); nothing here assumes one kernel's offsets.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use observer_ebpf::{
    drops::DROP_READ_TRACEPOINT,
    event::{EventKind, OomEvent, SignalEvent},
};

use super::{
    emit::{header, send},
    maps::{TP_OFFSETS, current, finish, role_of},
};

/// Fires in `__send_signal_locked` for every signal generated on the node, delivered or not.
#[tracepoint(category = "signal", name = "signal_generate")]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    finish(try_signal(&ctx))
}

/// Fires when the OOM killer marks its victim, just before it sends the SIGKILL.
#[tracepoint(category = "oom", name = "mark_victim")]
pub fn mark_victim(ctx: TracePointContext) -> u32 {
    finish(try_oom(&ctx))
}

fn try_signal(ctx: &TracePointContext) -> Result<(), u32> {
    let offsets = TP_OFFSETS.load();
    if offsets.valid == 0 {
        return Err(DROP_READ_TRACEPOINT);
    }
    let target_pid: i32 = field(ctx, offsets.signal_pid)?;
    let target_pid = target_pid as u32;
    let (pid_tgid, sender) = current();

    // The target is a thread id. kill(2) aims at a process's leader, whose id is the tgid the
    // map is keyed by; a fault hits the faulting thread, which is then also the sender.
    let target_tgid = if role_of(target_pid).is_some() {
        target_pid
    } else if target_pid == pid_tgid as u32 && role_of(sender).is_some() {
        sender
    } else {
        return Ok(());
    };

    send(SignalEvent {
        header: header(EventKind::Signal, pid_tgid, -1),
        target_pid,
        target_tgid,
        sig: field(ctx, offsets.signal_sig)?,
        code: field(ctx, offsets.signal_code)?,
        result: field(ctx, offsets.signal_result)?,
        group: field::<i32>(ctx, offsets.signal_group)? as u32,
    })
}

/// The victim is the process the killer selected, which is its thread-group leader unless
/// the leader already exited; so its pid is looked up as a tgid.
fn try_oom(ctx: &TracePointContext) -> Result<(), u32> {
    let offsets = TP_OFFSETS.load();
    if offsets.valid == 0 {
        return Err(DROP_READ_TRACEPOINT);
    }
    let victim: i32 = field(ctx, offsets.victim_pid)?;
    let victim = victim as u32;
    if role_of(victim).is_none() {
        return Ok(());
    }

    let (pid_tgid, _) = current();
    send(OomEvent {
        header: header(EventKind::OomVictim, pid_tgid, -1),
        victim_pid: victim,
        reserved: 0,
    })
}

/// A 4-byte field of the record at an offset only known at run time. The verifier does not
/// allow a direct context load at a variable offset, so it goes through probe_read.
#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, offset: u32) -> Result<T, u32> {
    unsafe { ctx.read_at::<T>(offset as usize) }.map_err(|_| DROP_READ_TRACEPOINT)
}
