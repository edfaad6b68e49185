//! Five hundred `--max-requests 1` recycles: every request and every restart counted, and
//! neither the series nor the observer's memory grow with the number of workers it saw.

use std::{collections::BTreeSet, time::Duration};

mod common;

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer};

const REQUESTS: &str = "gunicorn_worker_requests_total";
const RESTARTS: &str = "gunicorn_master_worker_restart_total";
const SLOT_RESTARTS: &str = "gunicorn_worker_restarts_total";
const WORKERS: &str = "gunicorn_workers";

/// Resource samples appear on a timer, so they would make the series set depend on timing;
/// an hour-long interval keeps them out (the first sample runs before Gunicorn starts).
const OBSERVER_ARGS: &[&str] = &["--sample-secs", "3600"];

/// Every `gunicorn_worker_*` series of the instance, named by family and labels with the
/// pid left out (it changes with every worker by design).
fn worker_series(metrics: &Metrics, app: &str) -> BTreeSet<String> {
    metrics
        .samples()
        .iter()
        .filter(|s| s.name.starts_with("gunicorn_worker_") && s.label("app") == Some(app))
        .map(|s| {
            let labels: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "pid")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{}{{{}}}", s.name, labels.join(","))
        })
        .collect()
}

/// The observer's resident memory in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_else(|| panic!("no VmRSS in\n{status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends requests until `total` were answered, then waits for the observer to show as many
/// requests and `max_requests` restarts (each worker leaves after its only request) and a
/// live replacement.
fn serve_until(
    observer: &Observer,
    gunicorn: &Gunicorn,
    app: &str,
    sent: &mut u32,
    total: u32,
) -> Metrics {
    while *sent < total {
        assert_eq!(gunicorn.get("/").status, 200);
        *sent += 1;
    }
    let want = f64::from(total);
    observer.wait_for_metrics(Duration::from_secs(20), "requests and restarts", |m| {
        m.sum(REQUESTS, &[("app", app)]) == want
            && m.get(RESTARTS, &[("app", app), ("reason", "max_requests")]) == Some(want)
            && m.get(WORKERS, &[("app", app)]) == Some(1.0)
    })
}

#[test]
fn five_hundred_recycles_count_exactly_and_stay_flat() {
    let app = common::unique_app("recycle");
    let app = app.as_str();
    let observer = Observer::start(OBSERVER_ARGS);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(1)
            .arg(&format!("--name={app}"))
            .arg("--max-requests=1"),
    );
    let mut sent = 0;

    let at_100 = serve_until(&observer, &gunicorn, app, &mut sent, 100);
    let rss_100 = rss_kib(observer.pid());
    let at_500 = serve_until(&observer, &gunicorn, app, &mut sent, 500);
    let rss_500 = rss_kib(observer.pid());

    eprintln!("observer RSS: {rss_100} KiB after 100 recycles, {rss_500} KiB after 500");

    // Exactly the 500 answers and the 500 worker exits, nothing else.
    assert_eq!(
        at_500.by_label(RESTARTS, &[("app", app)], "reason"),
        [("max_requests".to_owned(), 500.0)].into()
    );
    assert_eq!(
        at_500.get(
            REQUESTS,
            &[
                ("app", app),
                ("worker_id", "0"),
                ("method", "GET"),
                ("route", "/"),
                ("status", "200")
            ]
        ),
        Some(500.0)
    );
    assert_eq!(
        at_500.by_label(SLOT_RESTARTS, &[("app", app)], "worker_id"),
        [("0".to_owned(), 500.0)].into()
    );
    assert_eq!(worker_series(&at_100, app), worker_series(&at_500, app));
    // Flat: one page table's worth of slack for allocator noise, not per-worker growth
    // (400 workers each leaving even 16 bytes behind would not fit in the history maps).
    assert!(
        rss_500 <= rss_100 + 2048,
        "observer RSS grew from {rss_100} KiB to {rss_500} KiB"
    );
}
