//! Renders [`Stats`] as Prometheus families at scrape time.
//!
//! Metric names and the `worker_id` label are the ones gunicorn-prometheus-exporter used, so
//! its dashboards keep working.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prometheus::{
    core::{Collector, Desc},
    proto::{self, LabelPair, MetricFamily, MetricType},
};

use crate::aggregate::{AppStats, Histogram, Resources, Routes, SlotStats, Stats};

pub const REQUESTS: &str = "gunicorn_worker_requests_total";
pub const DURATION: &str = "gunicorn_worker_request_duration_seconds";
pub const FAILED: &str = "gunicorn_worker_failed_requests";
pub const REQUEST_SIZE: &str = "gunicorn_worker_request_size_bytes";
pub const RESPONSE_SIZE: &str = "gunicorn_worker_response_size_bytes";
pub const IN_FLIGHT: &str = "gunicorn_worker_requests_in_flight";
pub const WORKERS: &str = "gunicorn_workers";
pub const WORKER_INFO: &str = "gunicorn_worker_info";
pub const WORKER_MEMORY: &str = "gunicorn_worker_memory_bytes";
pub const WORKER_PSS: &str = "gunicorn_worker_memory_pss_bytes";
pub const WORKER_USS: &str = "gunicorn_worker_memory_uss_bytes";
pub const WORKER_CPU: &str = "gunicorn_worker_cpu_percent";
pub const WORKER_UPTIME: &str = "gunicorn_worker_uptime_seconds";
pub const MASTER_MEMORY: &str = "gunicorn_master_memory_bytes";
pub const MASTER_CPU: &str = "gunicorn_master_cpu_percent";
pub const MASTER_UPTIME: &str = "gunicorn_master_uptime_seconds";
pub const WORKER_CPU_SECONDS: &str = "gunicorn_worker_cpu_seconds_total";
pub const MASTER_CPU_SECONDS: &str = "gunicorn_master_cpu_seconds_total";
pub const WORKER_THREADS: &str = "gunicorn_worker_threads";
pub const WORKER_OPEN_FDS: &str = "gunicorn_worker_open_fds";
pub const MASTER_THREADS: &str = "gunicorn_master_threads";
pub const MASTER_OPEN_FDS: &str = "gunicorn_master_open_fds";
pub const WORKER_STATE: &str = "gunicorn_worker_state";
pub const WORKER_BUSY: &str = "gunicorn_worker_busy_seconds_total";
pub const WORKER_RESTARTS: &str = "gunicorn_worker_restarts_total";
pub const WORKER_HEARTBEAT_AGE: &str = "gunicorn_worker_heartbeat_age_seconds";
pub const WORKER_TIMEOUT: &str = "gunicorn_worker_timeout_seconds";
/// The instance-wide restart counter, under the name gunicorn-prometheus-exporter used.
pub const MASTER_RESTARTS: &str = "gunicorn_master_worker_restart_total";

/// Every family this collector renders, in exposition order, with its type and help.
const FAMILIES: [(&str, MetricType, &str); 28] = [
    (
        REQUESTS,
        MetricType::COUNTER,
        "Requests answered by a Gunicorn worker slot, by method, route and HTTP status.",
    ),
    (
        DURATION,
        MetricType::HISTOGRAM,
        "Seconds from reading a request's first byte to writing its response's last byte.",
    ),
    (
        FAILED,
        MetricType::COUNTER,
        "Requests answered with a 5xx status or aborted before a complete response.",
    ),
    (
        REQUEST_SIZE,
        MetricType::HISTOGRAM,
        "Request body bytes read, as sent (chunk framing included), of answered requests.",
    ),
    (
        RESPONSE_SIZE,
        MetricType::HISTOGRAM,
        "Response body bytes written, as sent (chunk framing included), of answered requests.",
    ),
    (
        IN_FLIGHT,
        MetricType::GAUGE,
        "Requests of the worker whose first byte was read and whose response has not ended.",
    ),
    (
        WORKERS,
        MetricType::GAUGE,
        "Live worker processes of a Gunicorn instance.",
    ),
    (
        WORKER_INFO,
        MetricType::GAUGE,
        "The process id currently serving a worker slot.",
    ),
    (
        WORKER_MEMORY,
        MetricType::GAUGE,
        "Resident set size of the worker; shared pages (--preload) count in full.",
    ),
    (
        WORKER_PSS,
        MetricType::GAUGE,
        "Proportional set size of the worker: shared pages divided among their users.",
    ),
    (
        WORKER_USS,
        MetricType::GAUGE,
        "Unique set size of the worker: memory freed if it exited.",
    ),
    (
        WORKER_CPU,
        MetricType::GAUGE,
        "Worker CPU use over the last sampling interval; 100 is one core.",
    ),
    (
        WORKER_UPTIME,
        MetricType::GAUGE,
        "Seconds since the worker in this slot started.",
    ),
    (
        WORKER_CPU_SECONDS,
        MetricType::COUNTER,
        "User and system CPU seconds of every worker this slot has had.",
    ),
    (
        WORKER_THREADS,
        MetricType::GAUGE,
        "Threads of the worker in this slot, its main thread included.",
    ),
    (
        WORKER_OPEN_FDS,
        MetricType::GAUGE,
        "File descriptors the worker in this slot has open.",
    ),
    (
        MASTER_MEMORY,
        MetricType::GAUGE,
        "Resident set size of the Gunicorn master.",
    ),
    (
        MASTER_CPU,
        MetricType::GAUGE,
        "Master CPU use over the last sampling interval; 100 is one core.",
    ),
    (
        MASTER_UPTIME,
        MetricType::GAUGE,
        "Seconds since the Gunicorn master started.",
    ),
    (
        MASTER_CPU_SECONDS,
        MetricType::COUNTER,
        "User and system CPU seconds of the instance's masters (not of their workers).",
    ),
    (
        MASTER_THREADS,
        MetricType::GAUGE,
        "Threads of the Gunicorn master.",
    ),
    (
        MASTER_OPEN_FDS,
        MetricType::GAUGE,
        "File descriptors the Gunicorn master has open.",
    ),
    (
        WORKER_STATE,
        MetricType::GAUGE,
        "1 for the worker's current state: busy with a request in flight, or idle.",
    ),
    (
        WORKER_BUSY,
        MetricType::COUNTER,
        "Seconds the worker slot spent with at least one request in flight.",
    ),
    (
        WORKER_RESTARTS,
        MetricType::COUNTER,
        "Workers of this slot that left (or, for scale_up, arrived), by reason.",
    ),
    (
        MASTER_RESTARTS,
        MetricType::COUNTER,
        "Worker restarts of a Gunicorn instance, by reason.",
    ),
    (
        WORKER_HEARTBEAT_AGE,
        MetricType::GAUGE,
        "Seconds since the worker last touched its heartbeat file; the master kills it past the timeout.",
    ),
    (
        WORKER_TIMEOUT,
        MetricType::GAUGE,
        "The Gunicorn instance's configured worker timeout (--timeout), in seconds.",
    ),
];

/// Worker states, in the order their series are rendered.
const STATES: [&str; 2] = ["busy", "idle"];

/// A prometheus collector over the shared statistics.
pub struct GunicornCollector {
    stats: Arc<Mutex<Stats>>,
    descs: Vec<Desc>,
}

impl GunicornCollector {
    pub fn new(stats: Arc<Mutex<Stats>>) -> Self {
        Self {
            stats,
            descs: descs(&FAMILIES),
        }
    }
}

/// One descriptor per family. The registry only uses descriptors to reject duplicate
/// names; labels are per series, so none are declared here.
pub(super) fn descs(families: &[(&str, MetricType, &str)]) -> Vec<Desc> {
    families
        .iter()
        .map(|(name, _, help)| {
            Desc::new((*name).into(), (*help).into(), vec![], Default::default())
        })
        .collect::<Result<_, _>>()
        .expect("metric names are valid constants")
}

pub(super) fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.into());
    pair.set_value(value.into());
    pair
}

pub(super) fn counter(labels: Vec<LabelPair>, value: u64) -> proto::Metric {
    counter_f64(labels, value as f64)
}

fn counter_f64(labels: Vec<LabelPair>, value: f64) -> proto::Metric {
    let mut counter = proto::Counter::default();
    counter.set_value(value);
    let mut metric = proto::Metric::default();
    metric.set_label(labels);
    metric.set_counter(counter);
    metric
}

pub(super) fn gauge(labels: Vec<LabelPair>, value: f64) -> proto::Metric {
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value);
    let mut metric = proto::Metric::default();
    metric.set_label(labels);
    metric.set_gauge(gauge);
    metric
}

pub(super) fn histogram(labels: Vec<LabelPair>, h: &Histogram) -> proto::Metric {
    let buckets = h
        .cumulative()
        .map(|(bound, count)| {
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(bound);
            bucket.set_cumulative_count(count);
            bucket
        })
        .collect();
    let mut value = proto::Histogram::default();
    value.set_sample_count(h.count());
    value.set_sample_sum(h.sum());
    value.set_bucket(buckets);
    let mut metric = proto::Metric::default();
    metric.set_label(labels);
    metric.set_histogram(value);
    metric
}

/// Series collected per family name while walking the statistics.
#[derive(Default)]
struct Families(HashMap<&'static str, Vec<proto::Metric>>);

impl Families {
    fn push(&mut self, name: &'static str, metric: proto::Metric) {
        self.0.entry(name).or_default().push(metric);
    }

    /// Gauges of one sample: memory, CPU %, uptime, threads and open fds, in that order.
    fn resources(&mut self, names: [&'static str; 5], labels: &[LabelPair], r: &Resources) {
        let [memory, cpu, uptime, threads, fds] = names;
        self.push(memory, gauge(labels.to_vec(), r.rss_bytes as f64));
        if let Some(percent) = r.cpu_percent {
            self.push(cpu, gauge(labels.to_vec(), percent));
        }
        self.push(uptime, gauge(labels.to_vec(), r.uptime_seconds));
        self.push(threads, gauge(labels.to_vec(), r.threads as f64));
        if let Some(open) = r.open_fds {
            self.push(fds, gauge(labels.to_vec(), open as f64));
        }
    }

    /// Families in a fixed order; an empty family would render as a bare HELP/TYPE pair, so
    /// it is left out until it has data.
    fn finish(mut self) -> Vec<MetricFamily> {
        FAMILIES
            .iter()
            .filter_map(|(name, kind, help)| {
                let metrics = self.0.remove(name)?;
                let mut family = MetricFamily::default();
                family.set_name((*name).into());
                family.set_help((*help).into());
                family.set_field_type(*kind);
                family.set_metric(metrics);
                Some(family)
            })
            .collect()
    }
}

/// Builds every family from one consistent snapshot, with open busy intervals counted up to
/// `now_ns` (the kernel's event clock).
pub fn render(stats: &Stats, now_ns: u64) -> Vec<MetricFamily> {
    let mut out = Families::default();

    let mut apps: Vec<_> = stats.apps.iter().collect();
    apps.sort_by(|a, b| a.0.cmp(b.0));
    for (app, app_stats) in apps {
        let app_label = instance_labels(app, app_stats);
        out.push(
            WORKERS,
            gauge(app_label.to_vec(), app_stats.live_workers() as f64),
        );
        if let Some(master) = &app_stats.master {
            let names = [
                MASTER_MEMORY,
                MASTER_CPU,
                MASTER_UPTIME,
                MASTER_THREADS,
                MASTER_OPEN_FDS,
            ];
            out.resources(names, &app_label, master);
        }
        if let Some(seconds) = app_stats.master_cpu.total() {
            out.push(MASTER_CPU_SECONDS, counter_f64(app_label.to_vec(), seconds));
        }
        if let Some(timeout) = app_stats.timeout_secs {
            out.push(
                WORKER_TIMEOUT,
                gauge(app_label.to_vec(), f64::from(timeout)),
            );
        }
        for (reason, &count) in &app_stats.restarts {
            let mut labels = app_label.to_vec();
            labels.push(label("reason", reason.as_str()));
            out.push(MASTER_RESTARTS, counter(labels, count));
        }
        for (slot, slot_stats) in &app_stats.slots {
            render_slot(
                &mut out,
                &app_label,
                *slot,
                slot_stats,
                &app_stats.routes,
                now_ns,
            );
        }
    }
    out.finish()
}

/// The labels every series of one instance starts with: `app`, and in Kubernetes the
/// `namespace`, `pod` and `container` its master runs in. The only place they are built.
fn instance_labels(app: &str, stats: &AppStats) -> Vec<LabelPair> {
    let mut labels = vec![label("app", app)];
    if let Some(pod) = &stats.pod {
        labels.push(label("namespace", &pod.namespace));
        labels.push(label("pod", &pod.pod));
        labels.push(label("container", &pod.container));
    }
    labels
}

fn render_slot(
    out: &mut Families,
    instance: &[LabelPair],
    slot: u32,
    stats: &SlotStats,
    routes: &Routes,
    now_ns: u64,
) {
    let mut base = instance.to_vec();
    base.push(label("worker_id", &slot.to_string()));
    let with = |extra: &[(&str, &str)]| {
        let mut labels = base.to_vec();
        labels.extend(extra.iter().map(|(name, value)| label(name, value)));
        labels
    };

    // A worker leaving its slot in a handover still serves from it, so it is listed too.
    for pid in stats.pids() {
        out.push(WORKER_INFO, gauge(with(&[("pid", &pid.to_string())]), 1.0));
    }
    if stats.pid.is_some() || !stats.leaving.is_empty() {
        let current = if stats.busy_since_ns.is_some() {
            "busy"
        } else {
            "idle"
        };
        for state in STATES {
            let value = if state == current { 1.0 } else { 0.0 };
            out.push(WORKER_STATE, gauge(with(&[("state", state)]), value));
        }
        let in_flight: usize = stats.in_flight.values().sum();
        out.push(IN_FLIGHT, gauge(base.to_vec(), in_flight as f64));
    }
    // Only the holder has a heartbeat recorded (see `SlotStats::start`).
    if let Some(beat) = stats.heartbeat_ns {
        // Millisecond precision: finer digits would only be the scrape's own jitter.
        let age = (now_ns.saturating_sub(beat) / 1_000_000) as f64 / 1000.0;
        out.push(WORKER_HEARTBEAT_AGE, gauge(base.to_vec(), age));
    }
    out.push(
        WORKER_BUSY,
        counter_f64(base.to_vec(), stats.busy_seconds(now_ns)),
    );
    for (reason, &count) in &stats.restarts {
        out.push(
            WORKER_RESTARTS,
            counter(with(&[("reason", reason.as_str())]), count),
        );
    }
    if let Some(seconds) = stats.cpu.total() {
        out.push(WORKER_CPU_SECONDS, counter_f64(base.to_vec(), seconds));
    }
    if let Some(r) = &stats.resources {
        let names = [
            WORKER_MEMORY,
            WORKER_CPU,
            WORKER_UPTIME,
            WORKER_THREADS,
            WORKER_OPEN_FDS,
        ];
        out.resources(names, &base, r);
        if let (Some(pss), Some(uss)) = (r.pss_bytes, r.uss_bytes) {
            out.push(WORKER_PSS, gauge(base.to_vec(), pss as f64));
            out.push(WORKER_USS, gauge(base.to_vec(), uss as f64));
        }
    }
    // The route label sits between the method and the rest; with the label off (an empty
    // route) it is left out altogether.
    let with_route = |before: &[(&str, &str)], route, after: &[(&str, &str)]| {
        let mut labels = with(before);
        let route = routes.name(route);
        if !route.is_none() {
            labels.push(label("route", route.as_str()));
        }
        labels.extend(after.iter().map(|(name, value)| label(name, value)));
        labels
    };
    for (&(method, route, status), &count) in &stats.requests {
        let status = status.to_string();
        let labels = with_route(
            &[("method", method.as_str())],
            route,
            &[("status", &status)],
        );
        out.push(REQUESTS, counter(labels, count));
    }
    for (&(method, route, error), &count) in &stats.failed {
        let labels = with_route(
            &[("method", method.as_str())],
            route,
            &[("error_type", error.as_str())],
        );
        out.push(FAILED, counter(labels, count));
    }
    for (&(method, route), h) in &stats.durations {
        let labels = with_route(&[("method", method.as_str())], route, &[]);
        out.push(DURATION, histogram(labels, h));
    }
    for (family, sizes) in [
        (REQUEST_SIZE, &stats.request_sizes),
        (RESPONSE_SIZE, &stats.response_sizes),
    ] {
        for (method, h) in sizes {
            out.push(family, histogram(with(&[("method", method.as_str())]), h));
        }
    }
}

impl Collector for GunicornCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // A poisoned lock means a pipeline panic mid-update; the numbers are still the best
        // we have, and a scrape must not take the exporter down with it.
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = crate::clock::monotonic_ns();
        stats.rendering_at(now);
        render(&stats, now)
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder as _, TextEncoder};

    use super::*;
    use crate::{
        http::{AbortReason, Completed, ConnId, Method, Outcome, Route, RouteMode},
        lifecycle::RestartReason,
    };

    #[test]
    fn exposition_is_exact() {
        let app: Arc<str> = Arc::from("shop");
        let mut stats = Stats::new(&[0.1, 0.25]);
        stats.worker_started(&app, 0, 4242);
        stats.set_worker_resources(
            "shop",
            0,
            4242,
            Resources {
                rss_bytes: 1024,
                pss_bytes: Some(512),
                uss_bytes: Some(256),
                cpu_percent: None,
                cpu_seconds: 0.75,
                uptime_seconds: 2.5,
                threads: 4,
                open_fds: Some(12),
            },
        );
        // A master sample, and one of a USR2 successor that has not taken over the gauges.
        stats.master_started(&app);
        let master = Resources {
            rss_bytes: 2048,
            pss_bytes: None,
            uss_bytes: None,
            cpu_percent: Some(1.5),
            cpu_seconds: 3.0,
            uptime_seconds: 60.0,
            threads: 2,
            open_fds: None,
        };
        stats.set_master_resources("shop", 100, master, true);
        let successor = Resources {
            cpu_seconds: 0.5,
            ..master
        };
        stats.set_master_resources("shop", 300, successor, false);
        stats.record(
            &app,
            0,
            &Completed {
                conn: ConnId { tgid: 4242, fd: 9 },
                method: Method::Get,
                route: Route::of_target(b"/items/42?x=1", RouteMode::Template),
                outcome: Outcome::Status(200),
                start_ns: 0,
                end_ns: 200_000_000,
                request_bytes: 10,
                response_bytes: 20,
                request_body_bytes: 0,
                response_body_bytes: 2000,
            },
        );

        // Busy from 1 s to 1.5 s, and again since 3 s; rendered at 4 s.
        stats.worker_busy("shop", 0, 4242, 1_000_000_000);
        stats.worker_idle("shop", 0, 4242, 1_500_000_000);
        stats.worker_busy("shop", 0, 4242, 3_000_000_000);
        stats.worker_restarted(&app, 0, RestartReason::MaxRequests);
        stats.worker_restarted(&app, 0, RestartReason::MaxRequests);
        // A request cut off by a timeout fails as `timeout`, not as `worker_died`.
        let cut_off = Completed {
            conn: ConnId { tgid: 4242, fd: 10 },
            method: Method::Get,
            route: Route::NONE,
            outcome: Outcome::Aborted(AbortReason::WorkerDied),
            start_ns: 0,
            end_ns: 1,
            request_bytes: 10,
            response_bytes: 0,
            request_body_bytes: 0,
            response_body_bytes: 0,
        };
        stats.record_with_cause(&app, 0, &cut_off, Some(RestartReason::Timeout));
        stats.worker_restarted(&app, 0, RestartReason::Timeout);
        // Last heartbeat at 1.75 s, read for another pid first (a stale sample is ignored).
        stats.set_worker_heartbeat("shop", 0, 9999, 3_900_000_000);
        stats.set_worker_heartbeat("shop", 0, 4242, 1_750_000_000);
        stats.set_timeout(&app, Some(7));
        stats.set_in_flight("shop", 0, 4242, 2);

        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&render(&stats, 4_000_000_000), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                r#"gunicorn_worker_requests_total{app="shop",worker_id="0",method="GET",route="/items/:id",status="200"} 1"#,
                r#"gunicorn_worker_request_duration_seconds_bucket{app="shop",worker_id="0",method="GET",route="/items/:id",le="0.1"} 0"#,
                r#"gunicorn_worker_request_duration_seconds_bucket{app="shop",worker_id="0",method="GET",route="/items/:id",le="0.25"} 1"#,
                r#"gunicorn_worker_request_duration_seconds_bucket{app="shop",worker_id="0",method="GET",route="/items/:id",le="+Inf"} 1"#,
                r#"gunicorn_worker_request_duration_seconds_sum{app="shop",worker_id="0",method="GET",route="/items/:id"} 0.2"#,
                r#"gunicorn_worker_request_duration_seconds_count{app="shop",worker_id="0",method="GET",route="/items/:id"} 1"#,
                r#"gunicorn_worker_failed_requests{app="shop",worker_id="0",method="GET",error_type="timeout"} 1"#,
                r#"gunicorn_worker_request_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="100"} 1"#,
                r#"gunicorn_worker_request_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="1000"} 1"#,
                r#"gunicorn_worker_request_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="10000"} 1"#,
                r#"gunicorn_worker_request_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="100000"} 1"#,
                r#"gunicorn_worker_request_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="1000000"} 1"#,
                r#"gunicorn_worker_request_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="10000000"} 1"#,
                r#"gunicorn_worker_request_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="100000000"} 1"#,
                r#"gunicorn_worker_request_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="+Inf"} 1"#,
                r#"gunicorn_worker_request_size_bytes_sum{app="shop",worker_id="0",method="GET"} 0"#,
                r#"gunicorn_worker_request_size_bytes_count{app="shop",worker_id="0",method="GET"} 1"#,
                r#"gunicorn_worker_response_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="100"} 0"#,
                r#"gunicorn_worker_response_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="1000"} 0"#,
                r#"gunicorn_worker_response_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="10000"} 1"#,
                r#"gunicorn_worker_response_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="100000"} 1"#,
                r#"gunicorn_worker_response_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="1000000"} 1"#,
                r#"gunicorn_worker_response_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="10000000"} 1"#,
                r#"gunicorn_worker_response_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="100000000"} 1"#,
                r#"gunicorn_worker_response_size_bytes_bucket{app="shop",worker_id="0",method="GET",le="+Inf"} 1"#,
                r#"gunicorn_worker_response_size_bytes_sum{app="shop",worker_id="0",method="GET"} 2000"#,
                r#"gunicorn_worker_response_size_bytes_count{app="shop",worker_id="0",method="GET"} 1"#,
                r#"gunicorn_worker_requests_in_flight{app="shop",worker_id="0"} 2"#,
                r#"gunicorn_workers{app="shop"} 1"#,
                r#"gunicorn_worker_info{app="shop",worker_id="0",pid="4242"} 1"#,
                r#"gunicorn_worker_memory_bytes{app="shop",worker_id="0"} 1024"#,
                r#"gunicorn_worker_memory_pss_bytes{app="shop",worker_id="0"} 512"#,
                r#"gunicorn_worker_memory_uss_bytes{app="shop",worker_id="0"} 256"#,
                r#"gunicorn_worker_uptime_seconds{app="shop",worker_id="0"} 2.5"#,
                r#"gunicorn_worker_cpu_seconds_total{app="shop",worker_id="0"} 0.75"#,
                r#"gunicorn_worker_threads{app="shop",worker_id="0"} 4"#,
                r#"gunicorn_worker_open_fds{app="shop",worker_id="0"} 12"#,
                r#"gunicorn_master_memory_bytes{app="shop"} 2048"#,
                r#"gunicorn_master_cpu_percent{app="shop"} 1.5"#,
                r#"gunicorn_master_uptime_seconds{app="shop"} 60"#,
                r#"gunicorn_master_cpu_seconds_total{app="shop"} 3.5"#,
                r#"gunicorn_master_threads{app="shop"} 2"#,
                r#"gunicorn_worker_state{app="shop",worker_id="0",state="busy"} 1"#,
                r#"gunicorn_worker_state{app="shop",worker_id="0",state="idle"} 0"#,
                r#"gunicorn_worker_busy_seconds_total{app="shop",worker_id="0"} 1.5"#,
                r#"gunicorn_worker_restarts_total{app="shop",worker_id="0",reason="timeout"} 1"#,
                r#"gunicorn_worker_restarts_total{app="shop",worker_id="0",reason="max_requests"} 2"#,
                r#"gunicorn_master_worker_restart_total{app="shop",reason="timeout"} 1"#,
                r#"gunicorn_master_worker_restart_total{app="shop",reason="max_requests"} 2"#,
                r#"gunicorn_worker_heartbeat_age_seconds{app="shop",worker_id="0"} 2.25"#,
                r#"gunicorn_worker_timeout_seconds{app="shop"} 7"#,
            ]
        );
        assert!(text.contains("# TYPE gunicorn_worker_requests_total counter\n"));
        assert!(text.contains("# TYPE gunicorn_worker_request_duration_seconds histogram\n"));
    }

    #[test]
    fn pod_labels_lead_every_series_of_their_instance_only() {
        use crate::discover::kube::PodLabels;

        let (shop, batch): (Arc<str>, Arc<str>) = (Arc::from("shop"), Arc::from("batch"));
        let mut stats = Stats::new(&[1.0]);
        stats.worker_started(&shop, 0, 10);
        stats.worker_started(&batch, 0, 20);
        stats.worker_restarted(&shop, 0, RestartReason::MaxRequests);
        stats.apps.get_mut("shop").unwrap().pod = Some(PodLabels {
            namespace: "web".to_owned(),
            pod: "shop-7d9f8".to_owned(),
            container: "app".to_owned(),
        });

        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&render(&stats, 0), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains("worker_state"))
            .collect();
        let shop = r#"app="shop",namespace="web",pod="shop-7d9f8",container="app""#;
        assert_eq!(
            samples,
            [
                r#"gunicorn_worker_requests_in_flight{app="batch",worker_id="0"} 0"#.to_owned(),
                format!(r#"gunicorn_worker_requests_in_flight{{{shop},worker_id="0"}} 0"#),
                r#"gunicorn_workers{app="batch"} 1"#.to_owned(),
                format!("gunicorn_workers{{{shop}}} 1"),
                r#"gunicorn_worker_info{app="batch",worker_id="0",pid="20"} 1"#.to_owned(),
                format!(r#"gunicorn_worker_info{{{shop},worker_id="0",pid="10"}} 1"#),
                r#"gunicorn_worker_busy_seconds_total{app="batch",worker_id="0"} 0"#.to_owned(),
                format!(r#"gunicorn_worker_busy_seconds_total{{{shop},worker_id="0"}} 0"#),
                format!(
                    r#"gunicorn_worker_restarts_total{{{shop},worker_id="0",reason="max_requests"}} 1"#
                ),
                format!(
                    r#"gunicorn_master_worker_restart_total{{{shop},reason="max_requests"}} 1"#
                ),
            ]
        );
    }
}
