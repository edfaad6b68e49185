//! Busy and idle: a worker is busy while a request is in flight, including time spent
//! blocked at zero CPU (here, sleeping as a slow upstream call would), and its busy seconds
//! count that time once however many requests overlap.

mod common;

use std::{
    thread,
    time::{Duration, Instant},
};

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer};

const STATE: &str = "gunicorn_worker_state";
const BUSY: &str = "gunicorn_worker_busy_seconds_total";
const WAIT: Duration = Duration::from_secs(10);

fn state(metrics: &Metrics, app: &str) -> (f64, f64) {
    let of = |state| {
        metrics
            .get(STATE, &[("app", app), ("worker_id", "0"), ("state", state)])
            .unwrap_or(f64::NAN)
    };
    (of("busy"), of("idle"))
}

fn busy_seconds(metrics: &Metrics, app: &str) -> f64 {
    metrics
        .get(BUSY, &[("app", app), ("worker_id", "0")])
        .expect("busy seconds of slot 0")
}

/// Starts `paths` as requests `gap` apart, each on its own connection and thread; returns
/// when all are answered, with the time from the first send to the last answer.
fn requests(gunicorn: &Gunicorn, paths: &[&str], gap: Duration) -> Duration {
    let started = Instant::now();
    thread::scope(|scope| {
        for (i, path) in paths.iter().enumerate() {
            if i > 0 {
                thread::sleep(gap);
            }
            scope.spawn(move || assert_eq!(gunicorn.get(path).status, 200));
        }
    });
    started.elapsed()
}

#[test]
fn a_sync_worker_is_busy_during_a_request_and_idle_after() {
    let app = common::unique_app("life-busy");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(1)
            .app("lifecycle_app:application")
            .arg(&format!("--name={app}")),
    );
    let before = observer.wait_for_metrics(WAIT, "an idle worker", |m| state(m, app) == (0.0, 1.0));
    let busy_before = busy_seconds(&before, app);

    thread::scope(|scope| {
        let request = scope.spawn(|| gunicorn.get("/sleep/1500"));
        // The worker sleeps at zero CPU and is still busy.
        let during =
            observer.wait_for_metrics(WAIT, "a busy worker", |m| state(m, app) == (1.0, 0.0));
        assert!(
            !request.is_finished(),
            "seen busy only after the request ended"
        );
        // The open interval already counts.
        assert!(busy_seconds(&during, app) >= busy_before);
        assert_eq!(request.join().unwrap().status, 200);
    });

    let after = observer.wait_for_metrics(WAIT, "idle again", |m| state(m, app) == (0.0, 1.0));
    let spent = busy_seconds(&after, app) - busy_before;
    assert!((1.4..=2.5).contains(&spent), "busy for {spent} s");

    // Idle time does not count.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        busy_seconds(&observer.metrics(), app),
        busy_seconds(&after, app)
    );
}

#[test]
fn overlapping_requests_on_a_gthread_worker_count_their_union() {
    let app = common::unique_app("life-busy-threads");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(
        GunicornOpts::gthread(1, 4)
            .app("lifecycle_app:application")
            .arg(&format!("--name={app}")),
    );
    let before = observer.wait_for_metrics(WAIT, "an idle worker", |m| state(m, app) == (0.0, 1.0));
    let busy_before = busy_seconds(&before, app);

    // Two 1 s requests, the second starting 0.5 s into the first: busy about 1.5 s, never
    // the 2 s their durations add up to, and never longer than the client waited.
    let wall = requests(
        &gunicorn,
        &["/sleep/1000", "/sleep/1000"],
        Duration::from_millis(500),
    );
    let after = observer.wait_for_metrics(WAIT, "idle again", |m| state(m, app) == (0.0, 1.0));
    let spent = busy_seconds(&after, app) - busy_before;
    assert!(
        wall < Duration::from_millis(1950),
        "the requests did not overlap: {wall:?}"
    );
    assert!(
        spent >= 1.4 && spent <= wall.as_secs_f64(),
        "busy for {spent} s over {wall:?}"
    );
}
