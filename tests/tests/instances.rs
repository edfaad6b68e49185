//! Several Gunicorn instances side by side, and processes a worker starts itself: each
//! instance has its own `app` series, and a worker's children are never workers.

mod common;

use std::{collections::BTreeMap, time::Duration};

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer};

const REQUESTS: &str = "gunicorn_worker_requests_total";
const WORKERS: &str = "gunicorn_workers";
const INFO: &str = "gunicorn_worker_info";
const RESTARTS: &str = "gunicorn_master_worker_restart_total";
const SLOT_RESTARTS: &str = "gunicorn_worker_restarts_total";

const WAIT: Duration = Duration::from_secs(15);

fn start(name: &str, app: &str, workers: u32) -> Gunicorn {
    Gunicorn::start(
        GunicornOpts::sync(workers)
            .app(app)
            .arg(&format!("--name={name}")),
    )
}

/// `{(app, status): count}` over every slot and method, for this test's instances only
/// (other Gunicorns on the host have their own series).
fn by_app(metrics: &Metrics) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    for sample in metrics.series(REQUESTS) {
        let app = sample.label("app").unwrap_or_default().to_owned();
        if !app.starts_with("inst-") || !app.ends_with(&format!("-{}", std::process::id())) {
            continue;
        }
        let status = sample.label("status").unwrap_or_default().to_owned();
        *counts.entry((app, status)).or_default() += sample.value;
    }
    counts
}

/// `{worker_id: pid}` of the live workers of `app`.
fn slots(metrics: &Metrics, app: &str) -> BTreeMap<String, String> {
    metrics
        .series(INFO)
        .filter(|s| s.label("app") == Some(app))
        .map(|s| {
            let slot = s.label("worker_id").unwrap().to_owned();
            (slot, s.label("pid").unwrap().to_owned())
        })
        .collect()
}

#[test]
fn two_named_instances_count_13_and_17_requests_apart() {
    let observer = Observer::start(&[]);
    let left_app = common::unique_app("inst-left");
    let right_app = common::unique_app("inst-right");
    let left = start(&left_app, "app:application", 2);
    let right = start(&right_app, "app:application", 1);

    for _ in 0..13 {
        assert_eq!(left.get("/").status, 200);
    }
    for _ in 0..17 {
        assert_eq!(right.get("/").status, 200);
    }

    let want: BTreeMap<_, _> = [
        ((left_app.clone(), "200".to_owned()), 13.0),
        ((right_app.clone(), "200".to_owned()), 17.0),
    ]
    .into();
    let metrics = observer.wait_for_metrics(WAIT, "13 and 17 requests", |m| by_app(m) == want);
    assert_eq!(
        metrics.get(WORKERS, &[("app", left_app.as_str())]),
        Some(2.0)
    );
    assert_eq!(
        metrics.get(WORKERS, &[("app", right_app.as_str())]),
        Some(1.0)
    );
    assert_eq!(slots(&metrics, &left_app).len(), 2);
    assert_eq!(slots(&metrics, &right_app).len(), 1);

    // One instance stopping takes only its own series.
    drop(right);
    let metrics = observer.wait_for_metrics(WAIT, "the right instance gone", |m| {
        m.get(WORKERS, &[("app", right_app.as_str())]).is_none()
    });
    let want: BTreeMap<_, _> = [((left_app.clone(), "200".to_owned()), 13.0)].into();
    assert_eq!(by_app(&metrics), want);
    assert_eq!(
        metrics.get(WORKERS, &[("app", left_app.as_str())]),
        Some(2.0)
    );
}

#[test]
fn processes_a_worker_forks_are_not_workers() {
    let app = common::unique_app("inst-forker");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let gunicorn = start(app, "forking_app:application", 2);
    let before = observer.wait_for_metrics(WAIT, "two workers", |m| slots(m, app).len() == 2);

    // Each request runs a subprocess (fork + exec) and a bare fork that exits.
    for _ in 0..6 {
        let response = gunicorn.get("/spawn");
        assert_eq!(
            (response.status, response.text()),
            (200, "child".to_owned())
        );
    }

    observer.wait_for_metrics(WAIT, "six requests", |m| {
        m.sum(REQUESTS, &[("app", app)]) == 6.0
    });
    // Let the children's exits drain before judging what they did.
    std::thread::sleep(Duration::from_secs(1));
    let metrics = observer.metrics();
    assert_eq!(metrics.sum(REQUESTS, &[("app", app)]), 6.0);
    assert_eq!(metrics.get(WORKERS, &[("app", app)]), Some(2.0));
    assert_eq!(
        slots(&metrics, app),
        slots(&before, app),
        "same two worker pids"
    );
    let ours = |name| {
        metrics
            .series(name)
            .filter(|s| s.label("app") == Some(app))
            .count()
    };
    assert_eq!(ours(INFO), 2);
    assert_eq!(ours(RESTARTS), 0);
    assert_eq!(ours(SLOT_RESTARTS), 0);
}
