//! Folds completed requests and worker changes into per-instance, per-slot statistics.
//!
//! The statistics are plain structs rather than prometheus vectors so that a whole instance or
//! slot can be dropped at once when it goes away, and so that recording a request needs no
//! label strings: the exporter renders labels only when Prometheus scrapes.

mod histogram;
mod routes;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

pub use histogram::Histogram;
pub use routes::{DEFAULT_ROUTE_LIMIT, RouteId, Routes};

use crate::{
    http::{AbortReason, Completed, Method, Outcome},
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
    pub uptime_seconds: f64,
}

/// One worker slot of one Gunicorn instance. Its counters outlive the worker process, so a
/// replacement worker continues them and `rate()` stays smooth across restarts.
#[derive(Debug, Clone)]
pub struct SlotStats {
    /// The live worker in this slot, if any.
    pub pid: Option<u32>,
    /// The live worker's last resource sample.
    pub resources: Option<Resources>,
    /// Keyed by route ids of the app's [`Routes`].
    pub requests: BTreeMap<(Method, RouteId, u16), u64>,
    pub failed: BTreeMap<(Method, RouteId, ErrorType), u64>,
    pub durations: BTreeMap<(Method, RouteId), Histogram>,
    /// Request and response body sizes of answered requests, by method only: a route label
    /// would multiply histogram series for little gain.
    pub request_sizes: BTreeMap<Method, Histogram>,
    pub response_sizes: BTreeMap<Method, Histogram>,
    /// Requests of the live worker whose first byte was read and whose response has not
    /// ended.
    pub in_flight: usize,
    /// Workers of this slot that left or arrived, by reason.
    pub restarts: BTreeMap<RestartReason, u64>,
    /// Since when the live worker has had a request in flight (event clock, ns).
    pub busy_since_ns: Option<u64>,
    /// Closed busy intervals of every worker this slot has had.
    pub busy_ns: u64,
    /// The live worker's last heartbeat (event clock, ns), as of the last sample.
    pub heartbeat_ns: Option<u64>,
}

impl SlotStats {
    fn new() -> Self {
        Self {
            pid: None,
            resources: None,
            requests: BTreeMap::new(),
            failed: BTreeMap::new(),
            durations: BTreeMap::new(),
            request_sizes: BTreeMap::new(),
            response_sizes: BTreeMap::new(),
            in_flight: 0,
            restarts: BTreeMap::new(),
            busy_since_ns: None,
            busy_ns: 0,
            heartbeat_ns: None,
        }
    }

    /// Busy seconds up to `now_ns`, the open interval included.
    pub fn busy_seconds(&self, now_ns: u64) -> f64 {
        let open = self
            .busy_since_ns
            .map_or(0, |since| now_ns.saturating_sub(since));
        (self.busy_ns + open) as f64 / 1e9
    }
}

#[derive(Debug, Clone, Default)]
pub struct AppStats {
    pub slots: BTreeMap<u32, SlotStats>,
    /// Route label values, shared by the app's slots so the cap is per app.
    pub routes: Routes,
    /// The master's last resource sample.
    pub master: Option<Resources>,
    /// Worker restarts of the whole instance by reason; unlike the per-slot counts these
    /// survive the removal of a slot.
    pub restarts: BTreeMap<RestartReason, u64>,
    /// The master's `--timeout` in seconds, when its arguments were visible.
    pub timeout_secs: Option<u32>,
}

impl AppStats {
    pub fn live_workers(&self) -> usize {
        self.slots
            .values()
            .filter(|slot| slot.pid.is_some())
            .count()
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

    /// A worker now occupies `slot`.
    pub fn worker_started(&mut self, app: &Arc<str>, slot: u32, pid: u32) {
        self.slot_mut(app, slot).pid = Some(pid);
    }

    /// The worker in `slot` is gone; the slot's counters stay for its replacement.
    pub fn worker_stopped(&mut self, app: &str, slot: u32) {
        let rendered = self.rendered_ns;
        if let Some(slot) = self.apps.get_mut(app).and_then(|a| a.slots.get_mut(&slot)) {
            slot.pid = None;
            slot.resources = None;
            slot.heartbeat_ns = None;
            slot.in_flight = 0;
            // The caller reports the exit's idle moment first; an interval still open here
            // (events lost) is closed where a scrape last showed it, never later.
            if let Some(since) = slot.busy_since_ns.take() {
                slot.busy_ns += rendered.saturating_sub(since);
            }
        }
    }

    /// Stores a worker's sample, if the slot is still held by that worker.
    pub fn set_worker_resources(&mut self, app: &str, slot: u32, pid: u32, sample: Resources) {
        if let Some(slot) = self.apps.get_mut(app).and_then(|a| a.slots.get_mut(&slot))
            && slot.pid == Some(pid)
        {
            slot.resources = Some(sample);
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

    pub fn set_master_resources(&mut self, app: &str, sample: Resources) {
        if let Some(app) = self.apps.get_mut(app) {
            app.master = Some(sample);
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

    /// The live worker of `slot` now has `count` requests in flight.
    pub fn set_in_flight(&mut self, app: &str, slot: u32, count: usize) {
        if let Some(slot) = self.live_slot_mut(app, slot) {
            slot.in_flight = count;
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

    /// The worker in `slot` got its first request in flight at `ts_ns`.
    pub fn worker_busy(&mut self, app: &str, slot: u32, ts_ns: u64) {
        if let Some(slot) = self.live_slot_mut(app, slot) {
            slot.busy_since_ns.get_or_insert(ts_ns);
        }
    }

    /// The worker in `slot` has no request in flight since `ts_ns`.
    ///
    /// A scrape may already have shown the open interval up to a clock reading later than
    /// `ts_ns` (the event waited in the ring buffer). Closing the interval there instead
    /// keeps the counter from going backwards, at the price of at most one drain interval.
    pub fn worker_idle(&mut self, app: &str, slot: u32, ts_ns: u64) {
        let rendered = self.rendered_ns;
        if let Some(slot) = self.live_slot_mut(app, slot)
            && let Some(since) = slot.busy_since_ns.take()
        {
            let end = ts_ns.max(rendered).max(since);
            slot.busy_ns += end - since;
        }
    }

    /// A scrape is about to render busy time up to `now_ns`.
    pub fn rendering_at(&mut self, now_ns: u64) {
        self.rendered_ns = self.rendered_ns.max(now_ns);
    }
}

#[cfg(test)]
mod tests;
