//! Worker heartbeats and the configured timeout, from a real sync worker.
//!
//! A Gunicorn 27 sync worker touches its heartbeat file (`utimensat(fd, NULL, ..)`) before
//! every accept and then at least every `timeout / 2` seconds while idle, but not while a
//! request runs: a request is exactly when the heartbeat ages.

mod common;

use std::{thread, time::Duration, time::Instant};

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer};

const APP: &str = "lifecycle_app:application";
const AGE: &str = "gunicorn_worker_heartbeat_age_seconds";
const TIMEOUT: &str = "gunicorn_worker_timeout_seconds";

/// Heartbeats are read on the sample tick; one second keeps the test short.
const OBSERVER_ARGS: &[&str] = &["--sample-secs", "1"];

fn start(name: &str, extra: &[&str]) -> (Observer, Gunicorn) {
    let observer = Observer::start(OBSERVER_ARGS);
    let mut opts = GunicornOpts::sync(1)
        .app(APP)
        .arg(&format!("--name={name}"));
    for arg in extra {
        opts = opts.arg(arg);
    }
    (observer, Gunicorn::start(opts))
}

fn age(metrics: &Metrics, app: &str) -> Option<f64> {
    metrics.get(AGE, &[("app", app), ("worker_id", "0")])
}

#[test]
fn heartbeat_ages_during_a_3s_request_and_resets_when_it_ends() {
    let app = common::unique_app("beat-30");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, &["--timeout", "30"]);
    observer.wait_for_metrics(Duration::from_secs(10), "a first heartbeat", |m| {
        age(m, app).is_some()
    });

    let started = Instant::now();
    let slow = thread::scope(|scope| {
        let request = scope.spawn(|| gunicorn.get("/sleep/3000"));

        // The worker last beat just before it accepted; 2 s into the request it is 2 s old.
        let during =
            observer.wait_for_metrics(Duration::from_secs(3), "a heartbeat 2 s old", |m| {
                age(m, app).is_some_and(|a| a >= 2.0)
            });
        let seen_after = started.elapsed();
        let during_age = age(&during, app).unwrap();
        assert!(seen_after < Duration::from_millis(2900), "{seen_after:?}");
        assert!(
            during_age < seen_after.as_secs_f64() + 0.1,
            "{during_age} s old only {seen_after:?} after the request began"
        );
        request.join().unwrap()
    });
    assert_eq!(slow.status, 200);

    // The loop beats again right after the response; the next sample (at most 1 s) shows it.
    let after = observer.wait_for_metrics(
        Duration::from_millis(2500),
        "a fresh heartbeat after the request",
        |m| age(m, app).is_some_and(|a| a < 1.5),
    );
    assert_eq!(after.get(TIMEOUT, &[("app", app)]), Some(30.0));
}

#[test]
fn timeout_gauge_reads_the_masters_arguments_or_the_default() {
    let short = common::unique_app("beat-7");
    let default = common::unique_app("beat-default");
    let (short, default) = (short.as_str(), default.as_str());
    let (observer, _short) = start(short, &["-t", "7"]);
    let _default = Gunicorn::start(
        GunicornOpts::sync(1)
            .app(APP)
            .arg(&format!("--name={default}")),
    );
    // Other Gunicorns on the host have their own series; only these two instances matter.
    let metrics = observer.wait_for_metrics(Duration::from_secs(10), "two timeouts", |m| {
        [short, default]
            .iter()
            .all(|app| m.get(TIMEOUT, &[("app", app)]).is_some())
    });
    assert_eq!(metrics.get(TIMEOUT, &[("app", short)]), Some(7.0));
    assert_eq!(metrics.get(TIMEOUT, &[("app", default)]), Some(30.0));

    // Idle, the `-t 7` worker beats every 3.5 s. Its age, read every second and rendered at
    // each scrape, then climbs towards 3.5 s and never passes 3.5 s + one sample interval.
    let mut oldest: f64 = 0.0;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(8) {
        if let Some(a) = age(&observer.metrics(), short) {
            oldest = oldest.max(a);
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        (2.5..4.75).contains(&oldest),
        "oldest idle heartbeat {oldest} s"
    );
}
