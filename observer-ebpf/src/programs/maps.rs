//! The maps and the global shared with userspace, and small helpers around them.
//!
//! Map names are the contract with the loader (`observer::load`).

use aya_ebpf::{
    Global,
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use observer_ebpf::{
    drops::DROP_REASONS,
    event::DataEvent,
    layout::TracepointOffsets,
    limits::{
        MAX_CONNECTIONS, MAX_LOST_CONNS, MAX_PENDING_SYSCALLS, MAX_TRACKED_PROCESSES,
        RING_BUF_BYTES,
    },
    tracked::{ConnKey, TaskOffsets},
};

/// Every record sent to userspace.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BUF_BYTES, 0);

/// tgid -> role (`tracked::ROLE_*`). Filled by userspace, and by the fork program for workers.
#[map]
pub static TRACKED: HashMap<u32, u32> = HashMap::with_max_entries(MAX_TRACKED_PROCESSES, 0);

/// Worker tgid -> `bpf_ktime_get_ns()` of its last heartbeat (`programs::heartbeat`). Sized
/// like `TRACKED`: userspace deletes a worker's entry when it forgets the worker.
#[map]
pub static HEARTBEATS: HashMap<u32, u64> = HashMap::with_max_entries(MAX_TRACKED_PROCESSES, 0);

/// Accepted sockets of tracked processes -> the listening fd they came from.
#[map]
pub static CONNS: HashMap<ConnKey, u32> = HashMap::with_max_entries(MAX_CONNECTIONS, 0);

/// Connections with a record that did not fit the ring buffer, waiting to say so ahead of
/// their next record (`emit::send_for_conn`). The value is unused.
#[map]
pub static LOST_CONNS: LruHashMap<ConnKey, u32> = LruHashMap::with_max_entries(MAX_LOST_CONNS, 0);

/// What a thread's enter tracepoint saw, for its exit tracepoint. Keyed by pid_tgid (one
/// syscall in flight per thread). LRU, so entries of threads killed mid-syscall age out.
#[map]
pub static PENDING: LruHashMap<u64, Pending> =
    LruHashMap::with_max_entries(MAX_PENDING_SYSCALLS, 0);

/// Per-CPU loss counters, one slot per `drops::DROP_*` reason.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_REASONS, 0);

/// Room to build one `DataEvent` per CPU: at 1064 bytes it does not fit the 512-byte stack.
#[map]
pub static SCRATCH: PerCpuArray<DataEvent> = PerCpuArray::with_max_entries(1, 0);

/// `task_struct` member offsets, found in the kernel's BTF by userspace and patched into the
/// object before load (`EbpfLoader::override_global`). `Global` reads it with a volatile load
/// so the compiler cannot fold the all-zero initial value.
#[unsafe(no_mangle)]
pub static TASK_OFFSETS: Global<TaskOffsets> = Global::new(TaskOffsets {
    pid: 0,
    tgid: 0,
    exit_code: 0,
    valid: 0,
});

/// Field offsets of the signal and OOM tracepoint records, read by userspace from tracefs and
/// patched in like [`TASK_OFFSETS`].
#[unsafe(no_mangle)]
pub static TP_OFFSETS: Global<TracepointOffsets> = Global::new(TracepointOffsets {
    signal_sig: 0,
    signal_code: 0,
    signal_pid: 0,
    signal_group: 0,
    signal_result: 0,
    victim_pid: 0,
    valid: 0,
    reserved: 0,
});

/// `Pending::call` of an accept or accept4; data syscalls use their `event::Syscall` value.
pub const PARKED_ACCEPT: u32 = 0x100;

/// A syscall between its enter and exit tracepoints.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    /// The caller's buffer, iovec array, msghdr or sockaddr, by syscall.
    pub ptr: u64,
    /// The connection, or for accept the listening socket.
    pub fd: i32,
    /// `event::Syscall` as u32, or [`PARKED_ACCEPT`].
    pub call: u32,
}

/// The calling thread's pid_tgid, split: (pid_tgid, tgid).
#[inline(always)]
pub fn current() -> (u64, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    (pid_tgid, (pid_tgid >> 32) as u32)
}

/// The role of a tracked process, or None for every other process.
#[inline(always)]
pub fn role_of(tgid: u32) -> Option<u32> {
    TRACKED.get_ptr(tgid).map(|role| unsafe { *role })
}

/// Takes the parked enter of this thread, if any.
#[inline(always)]
pub fn take_pending(pid_tgid: u64) -> Option<Pending> {
    let parked = unsafe { *PENDING.get_ptr(pid_tgid)? };
    // A failed delete only means another path already removed it; the value is ours.
    let _ = PENDING.remove(pid_tgid);
    Some(parked)
}

/// Adds one to a drop counter.
#[inline(always)]
pub fn count_drop(reason: u32) {
    if let Some(slot) = DROPS.get_ptr_mut(reason) {
        // Per-CPU slot: no other CPU writes it, and tracepoint programs run with preemption off.
        unsafe { *slot += 1 };
    }
}

/// Ends a program: counts the loss a `try_*` function reported.
#[inline(always)]
pub fn finish(result: Result<(), u32>) -> u32 {
    if let Err(reason) = result {
        count_drop(reason);
    }
    0
}
