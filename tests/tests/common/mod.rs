//! Helpers shared by the integration tests: an app name unique to the test process, one
//! app's counts out of a scrape, waiting for the observer (which drains the kernel's ring
//! buffer on a timer) to catch up, and the BPF objects a process holds.
//!
//! Every test binary includes this module but none uses all of it, hence the allow.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use observer_tests::{AccessEntry, Metrics, Observer};

pub const REQUESTS: &str = "gunicorn_worker_requests_total";
pub const FAILED: &str = "gunicorn_worker_failed_requests";
pub const WORKER_INFO: &str = "gunicorn_worker_info";
pub const UNATTRIBUTED: &str = "gunicorn_observer_unattributed_requests_total";

/// How long the observer may take to show a request the access log already holds.
const CATCH_UP: Duration = Duration::from_secs(10);
/// Extra time given after the expected count is reached, so over-counting shows too.
const SETTLE: Duration = Duration::from_millis(500);

/// `name` made unique to this test process: other checkouts may run the same test on the
/// same host at the same time, and the observer sees every Gunicorn on it, so a fixed name
/// could be taken (and its holder's counts read) by someone else's run.
pub fn unique_app(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Requests of one app, all series summed.
pub fn total(metrics: &Metrics, app: &str) -> f64 {
    metrics.sum(REQUESTS, &[("app", app)])
}

/// Requests of one app by (method, status).
pub fn by_method_status(metrics: &Metrics, app: &str) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    for sample in metrics.series(REQUESTS) {
        if sample.label("app") != Some(app) {
            continue;
        }
        let method = sample.label("method").unwrap_or_default().to_owned();
        let status = sample.label("status").unwrap_or_default().to_owned();
        *counts.entry((method, status)).or_default() += sample.value;
    }
    counts
}

/// The access log's entries by (method, status), in the same shape as the observer's.
pub fn access_by_method_status(entries: &[AccessEntry]) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    for entry in entries {
        let key = (entry.method.clone(), entry.status.to_string());
        *counts.entry(key).or_default() += 1.0;
    }
    counts
}

/// Waits until the app's total reaches `want` (or the wait runs out), then scrapes again
/// after a short pause and returns that later scrape.
pub fn settled(observer: &Observer, app: &str, want: f64) -> Metrics {
    let deadline = Instant::now() + CATCH_UP;
    while total(&observer.metrics(), app) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(SETTLE);
    observer.metrics()
}

/// The worker slots that have request series for the app.
pub fn request_slots(metrics: &Metrics, app: &str) -> Vec<u32> {
    slots_of(metrics, REQUESTS, app)
}

/// `(worker_id, pid)` of every `gunicorn_worker_info` series of the app, sorted by slot.
pub fn worker_info(metrics: &Metrics, app: &str) -> Vec<(u32, u32)> {
    let mut info: Vec<(u32, u32)> = metrics
        .series(WORKER_INFO)
        .filter(|sample| sample.label("app") == Some(app))
        .map(|sample| {
            (
                number(sample.label("worker_id")),
                number(sample.label("pid")),
            )
        })
        .collect();
    info.sort_unstable();
    info
}

fn slots_of(metrics: &Metrics, family: &str, app: &str) -> Vec<u32> {
    let mut slots: Vec<u32> = metrics
        .series(family)
        .filter(|sample| sample.label("app") == Some(app))
        .map(|sample| number(sample.label("worker_id")))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

fn number(label: Option<&str>) -> u32 {
    label
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("label {label:?} is not a number"))
}

/// An expected `(method, status) -> count` map, written tersely.
pub fn expect(pairs: &[(&str, &str, f64)]) -> BTreeMap<(String, String), f64> {
    pairs
        .iter()
        .map(|(method, status, count)| ((method.to_string(), status.to_string()), *count))
        .collect()
}

/// Ids of the BPF programs and maps a process holds open, from its fds' fdinfo.
pub fn held_bpf_ids(pid: u32, field: &str) -> BTreeSet<u32> {
    let dir = format!("/proc/{pid}/fdinfo");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("reading {dir}: {err}"));
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|id| id.trim().parse().ok())
        })
        .collect()
}
