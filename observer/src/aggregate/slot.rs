//! One worker slot: its counters, which outlive its workers, and the workers in it now.

use std::collections::BTreeMap;

use super::{CpuSeconds, ErrorType, Histogram, Resources, RouteId};
use crate::{http::Method, lifecycle::RestartReason};

/// One worker slot of one Gunicorn instance. Its counters outlive the worker process, so a
/// replacement worker continues them and `rate()` stays smooth across restarts.
#[derive(Debug, Clone)]
pub struct SlotStats {
    /// The worker that holds this slot, if any.
    pub pid: Option<u32>,
    /// Workers replaced in this slot (by a reload or an upgrade) that have not exited yet;
    /// their last requests still count here.
    pub leaving: Vec<u32>,
    /// The holder's last resource sample.
    pub resources: Option<Resources>,
    /// CPU time of every worker this slot has had.
    pub cpu: CpuSeconds,
    /// Keyed by route ids of the app's [`super::Routes`].
    pub requests: BTreeMap<(Method, RouteId, u16), u64>,
    pub failed: BTreeMap<(Method, RouteId, ErrorType), u64>,
    pub durations: BTreeMap<(Method, RouteId), Histogram>,
    /// Request and response body sizes of answered requests, by method only: a route label
    /// would multiply histogram series for little gain.
    pub request_sizes: BTreeMap<Method, Histogram>,
    pub response_sizes: BTreeMap<Method, Histogram>,
    /// Requests in flight per live worker of the slot (the holder, and during a handover a
    /// leaving worker finishing its last ones); a worker with none has no entry.
    pub in_flight: BTreeMap<u32, usize>,
    /// Workers of this slot that left or arrived, by reason.
    pub restarts: BTreeMap<RestartReason, u64>,
    /// Since when at least one of the slot's workers has had a request in flight (event
    /// clock, ns).
    pub busy_since_ns: Option<u64>,
    /// The slot's workers with a request in flight: the holder, and during a handover a
    /// leaving worker finishing its last request.
    pub busy_pids: Vec<u32>,
    /// Closed busy intervals of every worker this slot has had.
    pub busy_ns: u64,
    /// The holder's last heartbeat (event clock, ns), as of the last sample.
    pub heartbeat_ns: Option<u64>,
}

impl SlotStats {
    pub(super) fn new() -> Self {
        Self {
            pid: None,
            leaving: Vec::new(),
            resources: None,
            cpu: CpuSeconds::default(),
            requests: BTreeMap::new(),
            failed: BTreeMap::new(),
            durations: BTreeMap::new(),
            request_sizes: BTreeMap::new(),
            response_sizes: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            restarts: BTreeMap::new(),
            busy_since_ns: None,
            busy_pids: Vec::new(),
            busy_ns: 0,
            heartbeat_ns: None,
        }
    }

    /// Busy seconds up to `now_ns`, the open interval included.
    pub fn busy_seconds(&self, now_ns: u64) -> f64 {
        let open = self
            .busy_since_ns
            .map_or(0, |since| now_ns.saturating_sub(since));
        self.busy_ns.saturating_add(open) as f64 / 1e9
    }

    /// Live worker processes in the slot: the holder and the leaving ones.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.leaving.iter().copied().chain(self.pid)
    }

    /// Whether nothing was ever counted here: a slot only briefly held by a process that
    /// turned out not to be a worker.
    pub fn is_unused(&self) -> bool {
        self.pid.is_none()
            && self.leaving.is_empty()
            && self.requests.is_empty()
            && self.failed.is_empty()
            && self.restarts.is_empty()
            && self.busy_ns == 0
            && self.busy_since_ns.is_none()
            && self.cpu.total().is_none()
    }

    /// `pid` now holds the slot; a holder it replaces stays as leaving.
    pub(super) fn start(&mut self, pid: u32) {
        match self.pid.replace(pid) {
            Some(old) if old != pid => {
                self.leaving.push(old);
                self.resources = None;
                self.heartbeat_ns = None;
            }
            _ => {}
        }
    }

    /// `pid` left the slot. An interval it left open (events lost) is closed at
    /// `rendered_ns`, where a scrape last showed it, never later.
    pub(super) fn stop(&mut self, pid: u32, rendered_ns: u64) {
        if self.pid == Some(pid) {
            self.pid = None;
            self.resources = None;
            self.heartbeat_ns = None;
        } else {
            self.leaving.retain(|&p| p != pid);
        }
        self.cpu.retire(pid);
        self.in_flight.remove(&pid);
        if self.busy_pids.contains(&pid) {
            self.idle(pid, rendered_ns, rendered_ns);
        }
    }

    pub(super) fn busy(&mut self, pid: u32, ts_ns: u64) {
        if !self.busy_pids.contains(&pid) {
            self.busy_pids.push(pid);
        }
        self.busy_since_ns.get_or_insert(ts_ns);
    }

    /// `pid` has no request in flight since `ts_ns`; the slot turns idle when none of its
    /// workers has. The interval ends no earlier than `rendered_ns` (see
    /// [`super::Stats::worker_idle`]).
    pub(super) fn idle(&mut self, pid: u32, ts_ns: u64, rendered_ns: u64) {
        self.busy_pids.retain(|&p| p != pid);
        if self.busy_pids.is_empty()
            && let Some(since) = self.busy_since_ns.take()
        {
            let end = ts_ns.max(rendered_ns).max(since);
            // Kernel timestamps (CLOCK_MONOTONIC ns) stay far below u64::MAX; a corrupt
            // record near it (the event_decode fuzzer made one) saturates, never wraps.
            self.busy_ns = self.busy_ns.saturating_add(end - since);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SlotStats;

    /// Found by the event_decode fuzzer: exit records stamped near `u64::MAX` closed busy
    /// intervals whose sum overflowed. The sum and the open interval now saturate.
    #[test]
    fn busy_time_from_timestamps_near_the_clock_limit_saturates() {
        let mut slot = SlotStats::new();
        slot.busy(7, 0);
        slot.idle(7, u64::MAX - 1, 0);
        assert_eq!(slot.busy_ns, u64::MAX - 1);
        slot.busy(7, 0);
        slot.idle(7, u64::MAX, 0);
        assert_eq!(slot.busy_ns, u64::MAX);
        slot.busy(7, 5);
        assert_eq!(slot.busy_seconds(u64::MAX), u64::MAX as f64 / 1e9);
    }
}
