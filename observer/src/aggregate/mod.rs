//! Folds completed requests and worker changes into per-instance, per-slot statistics.
//!
//! The statistics are plain structs rather than prometheus vectors so that a whole instance or
//! slot can be dropped at once when it goes away, and so that recording a request needs no
//! label strings: the exporter renders labels only when Prometheus scrapes.
//!
//! [`Stats`] keeps, per instance and slot: requests (`record_with_cause`, each app's routes
//! interned up to `--max-routes` so per-slot maps key on a small id), restarts, busy time
//! (`worker_busy` / `worker_idle`: closed intervals plus the open one, rendered up to the
//! scrape's clock reading), the last resource sample of each slot and master, CPU seconds
//! summed over a slot's succession of processes ([`CpuSeconds`]), each slot's last heartbeat
//! (`set_worker_heartbeat`, ignored when the slot's pid changed), the instance's timeout
//! (`set_timeout`), container and pod (`set_container`, `AppStats::pod`), and its listeners
//! (`set_listeners`, `observe_queue_wait`, and `peaks_shown`, which the exporter calls after
//! each scrape). `remove_slot` drops a slot after a scale-down and `remove_app` an instance
//! with everything it holds.

mod cpu;
mod histogram;
mod listener;
mod routes;
mod slot;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

pub use cpu::CpuSeconds;
pub use histogram::Histogram;
pub use listener::ListenerStats;
pub use routes::{DEFAULT_ROUTE_LIMIT, RouteId, Routes};
pub use slot::SlotStats;

use crate::{
    discover::kube::{ContainerRef, PodLabels},
    http::{AbortReason, Completed, Outcome},
    lifecycle::RestartReason,
};

/// Why a request counts in `gunicorn_worker_failed_requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorType {
    /// The app or Gunicorn answered with a 5xx status.
    ServerError,
    /// No complete response went on the wire.
    Aborted(AbortReason),
    /// The worker was being killed or restarted: it failed because of that, whether it was
    /// cut off or Gunicorn answered it 500 on the way out.
    Restart(RestartReason),
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerError => "5xx",
            Self::Aborted(reason) => reason.as_str(),
            Self::Restart(reason) => reason.as_str(),
        }
    }
}

/// The last procfs sample of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resources {
    pub rss_bytes: u64,
    pub pss_bytes: Option<u64>,
    pub uss_bytes: Option<u64>,
    /// `None` until the process has been sampled twice.
    pub cpu_percent: Option<f64>,
    /// User + system CPU time of the process so far.
    pub cpu_seconds: f64,
    pub uptime_seconds: f64,
    pub threads: u64,
    /// `None` when the fd table could not be listed (counted as a sample error).
    pub open_fds: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct AppStats {
    pub slots: BTreeMap<u32, SlotStats>,
    /// The newest master's last resource sample.
    /// Route label values, shared by the app's slots so the cap is per app.
    pub routes: Routes,
    /// The master's last resource sample.
    pub master: Option<Resources>,
    /// CPU time of every master the instance has had (a USR2 upgrade adds one).
    pub master_cpu: CpuSeconds,
    /// Worker restarts of the whole instance by reason; unlike the per-slot counts these
    /// survive the removal of a slot.
    pub restarts: BTreeMap<RestartReason, u64>,
    /// The master's `--timeout` in seconds, when its arguments were visible.
    pub timeout_secs: Option<u32>,
    /// The instance's listening sockets by `listener` label (see `listener.rs`).
    pub listeners: BTreeMap<String, ListenerStats>,
    /// The pod and container the master runs in, from its cgroup; `None` outside Kubernetes.
    pub container: Option<ContainerRef>,
    /// Their names, once the node's pod list had them (`--kube-pods-url`).
    pub pod: Option<PodLabels>,
}

impl AppStats {
    /// Live worker processes, those leaving their slot in a handover included.
    pub fn live_workers(&self) -> usize {
        self.slots.values().map(|slot| slot.pids().count()).sum()
    }
}

/// Upper bounds of the body size histograms, in bytes: decades from 100 B to 100 MB, the
/// range from an empty JSON answer to a large download.
pub const SIZE_BUCKETS: [f64; 7] = [1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

/// Everything the exporter renders for Gunicorn itself.
#[derive(Debug)]
pub struct Stats {
    buckets: Arc<[f64]>,
    size_buckets: Arc<[f64]>,
    route_limit: usize,
    pub apps: HashMap<Arc<str>, AppStats>,
    /// The latest clock reading a scrape rendered busy time up to (see [`Stats::worker_idle`]).
    rendered_ns: u64,
}

impl Stats {
    pub fn new(buckets: &[f64]) -> Self {
        Self {
            buckets: buckets.into(),
            size_buckets: SIZE_BUCKETS.into(),
            route_limit: DEFAULT_ROUTE_LIMIT,
            apps: HashMap::new(),
            rendered_ns: 0,
        }
    }

    /// Distinct routes each app keeps before the rest fold into `other`.
    pub fn with_route_limit(mut self, limit: usize) -> Self {
        self.route_limit = limit;
        self
    }

    pub fn buckets(&self) -> &[f64] {
        &self.buckets
    }

    fn app_mut(&mut self, app: &Arc<str>) -> &mut AppStats {
        let limit = self.route_limit;
        self.apps
            .entry(Arc::clone(app))
            .or_insert_with(|| AppStats {
                routes: Routes::new(limit),
                ..AppStats::default()
            })
    }

    fn slot_mut(&mut self, app: &Arc<str>, slot: u32) -> &mut SlotStats {
        self.app_mut(app)
            .slots
            .entry(slot)
            .or_insert_with(SlotStats::new)
    }

    fn live_slot_mut(&mut self, app: &str, slot: u32) -> Option<&mut SlotStats> {
        self.apps.get_mut(app)?.slots.get_mut(&slot)
    }

    /// Worker `pid` now holds `slot`; a worker it took the slot over from stays in the slot,
    /// as leaving, until [`Stats::worker_stopped`].
    pub fn worker_started(&mut self, app: &Arc<str>, slot: u32, pid: u32) {
        self.slot_mut(app, slot).start(pid);
    }

    /// Worker `pid` of `slot` is gone; the slot's counters stay for its replacement.
    pub fn worker_stopped(&mut self, app: &str, slot: u32, pid: u32) {
        let rendered = self.rendered_ns;
        if let Some(slot) = self.live_slot_mut(app, slot) {
            slot.stop(pid, rendered);
        }
    }

    /// Drops `slot` if nothing was ever counted in it (see [`SlotStats::is_unused`]).
    pub fn remove_slot_if_unused(&mut self, app: &str, slot: u32) {
        if let Some(app) = self.apps.get_mut(app)
            && app.slots.get(&slot).is_some_and(SlotStats::is_unused)
        {
            app.slots.remove(&slot);
        }
    }

    /// Stores a worker's sample: its CPU time while it is in the slot, the rest only while
    /// it holds the slot.
    pub fn set_worker_resources(&mut self, app: &str, slot: u32, pid: u32, sample: Resources) {
        let Some(slot) = self.live_slot_mut(app, slot) else {
            return;
        };
        if slot.pid == Some(pid) {
            slot.resources = Some(sample);
        }
        if slot.pids().any(|p| p == pid) {
            slot.cpu.observe(pid, sample.cpu_seconds);
        }
    }

    /// Stores a worker's last heartbeat, if the slot is still held by that worker.
    pub fn set_worker_heartbeat(&mut self, app: &str, slot: u32, pid: u32, ts_ns: u64) {
        if let Some(slot) = self.live_slot_mut(app, slot)
            && slot.pid == Some(pid)
        {
            slot.heartbeat_ns = Some(ts_ns);
        }
    }

    /// Records the instance's worker timeout; `None` when it could not be read.
    pub fn set_timeout(&mut self, app: &Arc<str>, timeout_secs: Option<u32>) {
        self.app_mut(app).timeout_secs = timeout_secs;
    }

    /// Records which pod container an instance's master runs in.
    pub fn set_container(&mut self, app: &Arc<str>, container: Option<ContainerRef>) {
        self.apps.entry(Arc::clone(app)).or_default().container = container;
    }

    /// Stores master `pid`'s sample. Its CPU time always counts; the gauges show only the
    /// instance's `newest` master (the USR2 successor while an upgrade overlaps).
    pub fn set_master_resources(&mut self, app: &str, pid: u32, sample: Resources, newest: bool) {
        if let Some(app) = self.apps.get_mut(app) {
            app.master_cpu.observe(pid, sample.cpu_seconds);
            if newest {
                app.master = Some(sample);
            }
        }
    }

    /// Master `pid` left an instance that lives on under its successor.
    pub fn master_stopped(&mut self, app: &str, pid: u32) {
        if let Some(app) = self.apps.get_mut(app) {
            app.master_cpu.retire(pid);
        }
    }

    /// A master is known even before its first worker or request, so it has an entry.
    pub fn master_started(&mut self, app: &Arc<str>) {
        self.app_mut(app);
    }

    /// The whole instance is gone: its series disappear from the next scrape.
    pub fn remove_app(&mut self, app: &str) {
        self.apps.remove(app);
    }

    pub fn record(&mut self, app: &Arc<str>, slot: u32, request: &Completed) {
        self.record_with_cause(app, slot, request, None);
    }

    /// Records a request; if it failed while its worker was going away for `cause`, it
    /// fails with that as its error type instead of `5xx` or its abort reason.
    pub fn record_with_cause(
        &mut self,
        app: &Arc<str>,
        slot: u32,
        request: &Completed,
        cause: Option<RestartReason>,
    ) {
        let buckets = Arc::clone(&self.buckets);
        let size_buckets = Arc::clone(&self.size_buckets);
        let route = self.app_mut(app).routes.id(&request.route);
        let stats = self.slot_mut(app, slot);
        let failed_as = |own: ErrorType| cause.map_or(own, ErrorType::Restart);
        let method = request.method;
        match request.outcome {
            Outcome::Status(status) => {
                *stats.requests.entry((method, route, status)).or_default() += 1;
                if (500..600).contains(&status) {
                    let error = failed_as(ErrorType::ServerError);
                    *stats.failed.entry((method, route, error)).or_default() += 1;
                }
                // Only requests that got a response on the wire have a meaningful duration
                // and response size.
                let seconds = request.duration_ns() as f64 / 1e9;
                stats
                    .durations
                    .entry((method, route))
                    .or_insert_with(|| Histogram::new(buckets))
                    .observe(seconds);
                let sizes = [
                    (&mut stats.request_sizes, request.request_body_bytes),
                    (&mut stats.response_sizes, request.response_body_bytes),
                ];
                for (histograms, bytes) in sizes {
                    histograms
                        .entry(method)
                        .or_insert_with(|| Histogram::new(Arc::clone(&size_buckets)))
                        .observe(bytes as f64);
                }
            }
            Outcome::Aborted(reason) => {
                let error = failed_as(ErrorType::Aborted(reason));
                *stats.failed.entry((method, route, error)).or_default() += 1;
            }
        }
    }

    /// Worker `pid` of `slot` now has `count` requests in flight; a process the slot does
    /// not hold (any more) is ignored.
    pub fn set_in_flight(&mut self, app: &str, slot: u32, pid: u32, count: usize) {
        if let Some(slot) = self.live_slot_mut(app, slot)
            && slot.pids().any(|p| p == pid)
        {
            if count == 0 {
                slot.in_flight.remove(&pid);
            } else {
                slot.in_flight.insert(pid, count);
            }
        }
    }

    /// A worker of `slot` left (or, for a scale-up, arrived) for `reason`.
    pub fn worker_restarted(&mut self, app: &Arc<str>, slot: u32, reason: RestartReason) {
        *self.slot_mut(app, slot).restarts.entry(reason).or_default() += 1;
        if let Some(app) = self.apps.get_mut(app) {
            *app.restarts.entry(reason).or_default() += 1;
        }
    }

    /// The slot no longer exists (its worker was scaled down): its series disappear. A later
    /// worker that takes the slot number starts it afresh.
    pub fn remove_slot(&mut self, app: &str, slot: u32) {
        if let Some(app) = self.apps.get_mut(app) {
            app.slots.remove(&slot);
        }
    }

    /// Worker `pid` of `slot` got its first request in flight at `ts_ns`.
    pub fn worker_busy(&mut self, app: &str, slot: u32, pid: u32, ts_ns: u64) {
        if let Some(slot) = self.live_slot_mut(app, slot) {
            slot.busy(pid, ts_ns);
        }
    }

    /// Worker `pid` of `slot` has no request in flight since `ts_ns`.
    ///
    /// A scrape may already have shown the open interval up to a clock reading later than
    /// `ts_ns` (the event waited in the ring buffer). Closing the interval there instead
    /// keeps the counter from going backwards, at the price of at most one drain interval.
    pub fn worker_idle(&mut self, app: &str, slot: u32, pid: u32, ts_ns: u64) {
        let rendered = self.rendered_ns;
        if let Some(slot) = self.live_slot_mut(app, slot) {
            slot.idle(pid, ts_ns, rendered);
        }
    }

    /// A scrape is about to render busy time up to `now_ns`.
    pub fn rendering_at(&mut self, now_ns: u64) {
        self.rendered_ns = self.rendered_ns.max(now_ns);
    }
}

#[cfg(test)]
mod tests;
