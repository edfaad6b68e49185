//! Renders [`Stats`] as Prometheus families at scrape time.
//!
//! Metric names and the `worker_id` label are the ones gunicorn-prometheus-exporter used, so
//! its dashboards keep working.

use std::sync::{Arc, Mutex};

use prometheus::{
    core::{Collector, Desc},
    proto::{self, LabelPair, MetricFamily, MetricType},
};

use crate::aggregate::{Histogram, Stats};

pub const REQUESTS: &str = "gunicorn_worker_requests_total";
pub const DURATION: &str = "gunicorn_worker_request_duration_seconds";
pub const FAILED: &str = "gunicorn_worker_failed_requests";
pub const WORKERS: &str = "gunicorn_workers";
pub const WORKER_INFO: &str = "gunicorn_worker_info";

/// A prometheus collector over the shared statistics.
pub struct GunicornCollector {
    stats: Arc<Mutex<Stats>>,
    descs: Vec<Desc>,
}

impl GunicornCollector {
    pub fn new(stats: Arc<Mutex<Stats>>) -> Self {
        // The registry only uses descriptors to reject duplicate names; labels are per series.
        let descs = [REQUESTS, DURATION, FAILED, WORKERS, WORKER_INFO]
            .into_iter()
            .map(|name| Desc::new(name.into(), help(name).into(), vec![], Default::default()))
            .collect::<Result<_, _>>()
            .expect("metric names are valid constants");
        Self { stats, descs }
    }
}

fn help(name: &str) -> &'static str {
    match name {
        REQUESTS => "Requests answered by a Gunicorn worker slot, by method and HTTP status.",
        DURATION => {
            "Seconds from reading a request's first byte to writing its response's last byte."
        }
        FAILED => "Requests answered with a 5xx status or aborted before a complete response.",
        WORKERS => "Live worker processes of a Gunicorn instance.",
        WORKER_INFO => "The process id currently serving a worker slot.",
        _ => "",
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.into());
    pair.set_value(value.into());
    pair
}

fn family(name: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.into());
    family.set_help(help(name).into());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn counter(labels: Vec<LabelPair>, value: u64) -> proto::Metric {
    let mut counter = proto::Counter::default();
    counter.set_value(value as f64);
    let mut metric = proto::Metric::default();
    metric.set_label(labels);
    metric.set_counter(counter);
    metric
}

fn gauge(labels: Vec<LabelPair>, value: f64) -> proto::Metric {
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value);
    let mut metric = proto::Metric::default();
    metric.set_label(labels);
    metric.set_gauge(gauge);
    metric
}

fn histogram(labels: Vec<LabelPair>, h: &Histogram) -> proto::Metric {
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

/// Builds every family from one consistent snapshot.
pub fn render(stats: &Stats) -> Vec<MetricFamily> {
    let mut requests = Vec::new();
    let mut durations = Vec::new();
    let mut failed = Vec::new();
    let mut workers = Vec::new();
    let mut info = Vec::new();

    let mut apps: Vec<_> = stats.apps.iter().collect();
    apps.sort_by(|a, b| a.0.cmp(b.0));
    for (app, app_stats) in apps {
        workers.push(gauge(
            vec![label("app", app)],
            app_stats.live_workers() as f64,
        ));
        for (slot, slot_stats) in &app_stats.slots {
            let worker_id = slot.to_string();
            let base = || vec![label("app", app), label("worker_id", &worker_id)];

            if let Some(pid) = slot_stats.pid {
                let mut labels = base();
                labels.push(label("pid", &pid.to_string()));
                info.push(gauge(labels, 1.0));
            }
            for (&(method, status), &count) in &slot_stats.requests {
                let mut labels = base();
                labels.push(label("method", method.as_str()));
                labels.push(label("status", &status.to_string()));
                requests.push(counter(labels, count));
            }
            for (&(method, error), &count) in &slot_stats.failed {
                let mut labels = base();
                labels.push(label("method", method.as_str()));
                labels.push(label("error_type", error.as_str()));
                failed.push(counter(labels, count));
            }
            for (method, h) in &slot_stats.durations {
                let mut labels = base();
                labels.push(label("method", method.as_str()));
                durations.push(histogram(labels, h));
            }
        }
    }

    [
        (REQUESTS, MetricType::COUNTER, requests),
        (DURATION, MetricType::HISTOGRAM, durations),
        (FAILED, MetricType::COUNTER, failed),
        (WORKERS, MetricType::GAUGE, workers),
        (WORKER_INFO, MetricType::GAUGE, info),
    ]
    .into_iter()
    // An empty family would render as a bare HELP/TYPE pair; leave it out until it has data.
    .filter(|(_, _, metrics)| !metrics.is_empty())
    .map(|(name, kind, metrics)| family(name, kind, metrics))
    .collect()
}

impl Collector for GunicornCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // A poisoned lock means a pipeline panic mid-update; the numbers are still the best
        // we have, and a scrape must not take the exporter down with it.
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        render(&stats)
    }
}
