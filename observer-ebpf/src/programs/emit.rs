//! Putting records on the ring buffer, with batched wake-ups.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_ns,
};
use observer_ebpf::{
    drops::DROP_RINGBUF_FULL,
    event::{DATA_EVENT_HEADER_LEN, DataEvent, EventHeader, EventKind},
    limits::{CAPTURE_LEN, WAKEUP_THRESHOLD_BYTES},
    tracked::ConnKey,
};

use super::maps::{EVENTS, LOST_CONNS};

/// The common prefix of a record, stamped now.
#[inline(always)]
pub fn header(kind: EventKind, pid_tgid: u64, fd: i32) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        fd,
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

/// Wake the reader only once a batch has piled up; below that it drains on its own timer.
/// Waking on every record cost the prototype 15-20% of Gunicorn's throughput.
#[inline(always)]
fn wakeup_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_THRESHOLD_BYTES {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Sends a fixed-size record through reserve/submit (no copy off the stack).
#[inline(always)]
pub fn send<T: 'static>(event: T) -> Result<(), u32> {
    submit(event, wakeup_flags())
}

/// [`send`] for rare records userspace must act on at once (a new master to track, a worker
/// gone): the reader is woken whatever the fill, since its own drain timer is slow.
#[inline(always)]
pub fn send_now<T: 'static>(event: T) -> Result<(), u32> {
    submit(event, BPF_RB_FORCE_WAKEUP as u64)
}

#[inline(always)]
fn submit<T: 'static>(event: T, flags: u64) -> Result<(), u32> {
    let Some(mut entry) = EVENTS.reserve::<T>(0) else {
        return Err(DROP_RINGBUF_FULL);
    };
    entry.write(event);
    entry.submit(flags);
    Ok(())
}

/// Sends a data record truncated to its header plus `captured` payload bytes.
#[inline(always)]
pub fn send_data(event: *const DataEvent, captured: u32) -> Result<(), u32> {
    // Callers already pass at most CAPTURE_LEN; clamping here keeps the read inside the map
    // value for the verifier whatever the caller does.
    let payload = core::cmp::min(captured as usize, CAPTURE_LEN);
    let len = DATA_EVENT_HEADER_LEN + payload;

    // SAFETY: `event` points at a whole DataEvent in the SCRATCH map and `len` is at most its
    // size, so the slice stays inside the map value (which is also what the verifier checks).
    let bytes = unsafe { core::slice::from_raw_parts(event.cast::<u8>(), len) };
    EVENTS
        .output::<[u8]>(bytes, wakeup_flags())
        .map_err(|_| DROP_RINGBUF_FULL)
}

/// Sends a connection's fixed-size record, preceded by a `Lost` notice if an earlier record
/// of the connection did not fit. Userspace then knows exactly where the gap is and reports
/// the requests it spans as unknown instead of guessing them.
#[inline(always)]
pub fn send_for_conn<T: 'static>(event: T, pid_tgid: u64, key: ConnKey) -> Result<(), u32> {
    let result = announce_loss(pid_tgid, key).and_then(|()| send(event));
    if result.is_err() {
        mark_lost(key);
    }
    result
}

/// [`send_data`] with the same loss bookkeeping as [`send_for_conn`].
#[inline(always)]
pub fn send_data_for_conn(
    event: *const DataEvent,
    captured: u32,
    pid_tgid: u64,
    key: ConnKey,
) -> Result<(), u32> {
    let result = announce_loss(pid_tgid, key).and_then(|()| send_data(event, captured));
    if result.is_err() {
        mark_lost(key);
    }
    result
}

/// Sends the pending `Lost` notice of a connection, if it has one. When even the notice does
/// not fit, the mark stays and the caller must not send its record: it would arrive ahead of
/// the news that something before it is missing.
#[inline(always)]
fn announce_loss(pid_tgid: u64, key: ConnKey) -> Result<(), u32> {
    if LOST_CONNS.get_ptr(key).is_none() {
        return Ok(());
    }
    send(header(EventKind::Lost, pid_tgid, key.fd))?;
    // Only this connection's own syscalls touch its mark; a failed delete means it is gone.
    let _ = LOST_CONNS.remove(key);
    Ok(())
}

#[inline(always)]
fn mark_lost(key: ConnKey) {
    // LRU: when full, the oldest mark goes, and that connection is reported as it is.
    let _ = LOST_CONNS.insert(key, 0, 0);
}
