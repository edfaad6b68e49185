//! Hundreds of `--max-requests 1` recycles: every request and every restart counted, and
//! neither the series nor the observer's memory grow with the number of workers it saw.

use std::{collections::BTreeSet, time::Duration};

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer};

const APP: &str = "recycle";
const REQUESTS: &str = "gunicorn_worker_requests_total";
const RESTARTS: &str = "gunicorn_master_worker_restart_total";
const WORKERS: &str = "gunicorn_workers";

/// Resource samples appear on a timer, so they would make the series set depend on timing;
/// an hour-long interval keeps them out (the first sample runs before Gunicorn starts).
const OBSERVER_ARGS: &[&str] = &["--sample-secs", "3600"];

/// Every `gunicorn_worker_*` series of the instance, named by family and labels with the
/// pid left out (it changes with every worker by design).
fn worker_series(metrics: &Metrics) -> BTreeSet<String> {
    metrics
        .samples()
        .iter()
        .filter(|s| s.name.starts_with("gunicorn_worker_") && s.label("app") == Some(APP))
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
fn serve_until(observer: &Observer, gunicorn: &Gunicorn, sent: &mut u32, total: u32) -> Metrics {
    while *sent < total {
        assert_eq!(gunicorn.get("/").status, 200);
        *sent += 1;
    }
    let want = f64::from(total);
    observer.wait_for_metrics(Duration::from_secs(20), "requests and restarts", |m| {
        m.sum(REQUESTS, &[("app", APP)]) == want
            && m.get(RESTARTS, &[("app", APP), ("reason", "max_requests")]) == Some(want)
            && m.get(WORKERS, &[("app", APP)]) == Some(1.0)
    })
}

#[test]
fn three_hundred_recycles_count_exactly_and_stay_flat() {
    let observer = Observer::start(OBSERVER_ARGS);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(1)
            .arg(&format!("--name={APP}"))
            .arg("--max-requests=1"),
    );
    let mut sent = 0;

    let at_100 = serve_until(&observer, &gunicorn, &mut sent, 100);
    let rss_100 = rss_kib(observer.pid());
    let at_300 = serve_until(&observer, &gunicorn, &mut sent, 300);
    let rss_300 = rss_kib(observer.pid());

    eprintln!("observer RSS: {rss_100} KiB after 100 recycles, {rss_300} KiB after 300");

    // Exactly the 300 answers and the 300 worker exits, nothing else.
    assert_eq!(
        at_300.by_label(RESTARTS, &[("app", APP)], "reason").len(),
        1
    );
    assert_eq!(
        at_300.get(
            REQUESTS,
            &[
                ("app", APP),
                ("worker_id", "0"),
                ("method", "GET"),
                ("route", "/"),
                ("status", "200")
            ]
        ),
        Some(300.0)
    );
    assert_eq!(worker_series(&at_100), worker_series(&at_300));
    assert!(
        rss_300 <= rss_100 + 2048,
        "observer RSS grew from {rss_100} KiB to {rss_300} KiB"
    );
}
