//! Folds completed requests and worker changes into per-instance, per-slot statistics.
//!
//! The statistics are plain structs rather than prometheus vectors so that a whole instance or
//! slot can be dropped at once when it goes away, and so that recording a request needs no
//! label strings: the exporter renders labels only when Prometheus scrapes.

mod histogram;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

pub use histogram::Histogram;

use crate::http::{AbortReason, Completed, Method, Outcome};

/// Why a request counts in `gunicorn_worker_failed_requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorType {
    /// The app or Gunicorn answered with a 5xx status.
    ServerError,
    /// No complete response went on the wire.
    Aborted(AbortReason),
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerError => "5xx",
            Self::Aborted(reason) => reason.as_str(),
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
    pub requests: BTreeMap<(Method, u16), u64>,
    pub failed: BTreeMap<(Method, ErrorType), u64>,
    pub durations: BTreeMap<Method, Histogram>,
}

#[derive(Debug, Clone, Default)]
pub struct AppStats {
    pub slots: BTreeMap<u32, SlotStats>,
    /// The master's last resource sample.
    pub master: Option<Resources>,
}

impl AppStats {
    pub fn live_workers(&self) -> usize {
        self.slots
            .values()
            .filter(|slot| slot.pid.is_some())
            .count()
    }
}

/// Everything the exporter renders for Gunicorn itself.
#[derive(Debug)]
pub struct Stats {
    buckets: Arc<[f64]>,
    pub apps: HashMap<Arc<str>, AppStats>,
}

impl Stats {
    pub fn new(buckets: &[f64]) -> Self {
        Self {
            buckets: buckets.into(),
            apps: HashMap::new(),
        }
    }

    pub fn buckets(&self) -> &[f64] {
        &self.buckets
    }

    fn slot_mut(&mut self, app: &Arc<str>, slot: u32) -> &mut SlotStats {
        let app = self.apps.entry(Arc::clone(app)).or_default();
        app.slots.entry(slot).or_insert_with(|| SlotStats {
            pid: None,
            resources: None,
            requests: BTreeMap::new(),
            failed: BTreeMap::new(),
            durations: BTreeMap::new(),
        })
    }

    /// A worker now occupies `slot`.
    pub fn worker_started(&mut self, app: &Arc<str>, slot: u32, pid: u32) {
        self.slot_mut(app, slot).pid = Some(pid);
    }

    /// The worker in `slot` is gone; the slot's counters stay for its replacement.
    pub fn worker_stopped(&mut self, app: &str, slot: u32) {
        if let Some(slot) = self.apps.get_mut(app).and_then(|a| a.slots.get_mut(&slot)) {
            slot.pid = None;
            slot.resources = None;
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

    pub fn set_master_resources(&mut self, app: &str, sample: Resources) {
        if let Some(app) = self.apps.get_mut(app) {
            app.master = Some(sample);
        }
    }

    /// A master is known even before its first worker or request, so it has an entry.
    pub fn master_started(&mut self, app: &Arc<str>) {
        self.apps.entry(Arc::clone(app)).or_default();
    }

    /// The whole instance is gone: its series disappear from the next scrape.
    pub fn remove_app(&mut self, app: &str) {
        self.apps.remove(app);
    }

    pub fn record(&mut self, app: &Arc<str>, slot: u32, request: &Completed) {
        let buckets = Arc::clone(&self.buckets);
        let stats = self.slot_mut(app, slot);
        match request.outcome {
            Outcome::Status(status) => {
                *stats.requests.entry((request.method, status)).or_default() += 1;
                if (500..600).contains(&status) {
                    *stats
                        .failed
                        .entry((request.method, ErrorType::ServerError))
                        .or_default() += 1;
                }
                // Only requests that got a response on the wire have a meaningful duration.
                let seconds = request.end_ns.saturating_sub(request.start_ns) as f64 / 1e9;
                stats
                    .durations
                    .entry(request.method)
                    .or_insert_with(|| Histogram::new(buckets))
                    .observe(seconds);
            }
            Outcome::Aborted(reason) => {
                *stats
                    .failed
                    .entry((request.method, ErrorType::Aborted(reason)))
                    .or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
