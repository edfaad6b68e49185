//! Issue-level acceptance: a real Gunicorn's requests counted exactly from the kernel, by
//! method and status, with the observer started both before and after Gunicorn.

mod common;

use std::time::{Duration, Instant};

use common::{REQUESTS, by_method_status, total};
use observer_tests::{Conn, Gunicorn, GunicornOpts, Metrics, Observer};

const DURATION_BUCKET: &str = "gunicorn_worker_request_duration_seconds_bucket";
const FAILED: &str = "gunicorn_worker_failed_requests";

/// The exact mix the issue asks for, plus one 200 ms request for the histogram.
const GETS_OK: usize = 100;
const NOT_FOUND: usize = 7;
const SERVER_ERRORS: usize = 5;
const POSTS: usize = 3;
const SLOW: usize = 1;
const TOTAL: usize = GETS_OK + NOT_FOUND + SERVER_ERRORS + POSTS + SLOW;

/// Polls /metrics until the app's request total reaches `want` (the observer drains the
/// kernel's ring buffer on a short timer), then returns the scrape.
fn wait_for_total(observer: &Observer, app: &str, want: usize) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = Metrics::parse(&observer.scrape()).expect("valid exposition");
        let seen = total(&metrics, app);
        if seen >= want as f64 || Instant::now() > deadline {
            return metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends the mix: some over fresh connections, and with `keep_alive` part of it over one
/// persistent connection.
fn send_mix(gunicorn: &Gunicorn, keep_alive: bool) {
    // A connection that never sends a byte is not a request.
    Conn::open(gunicorn.addr()).expect("connect").close();

    let mut kept = keep_alive.then(|| Conn::open(gunicorn.addr()).expect("connect"));
    for i in 0..GETS_OK {
        let response = match kept.as_mut() {
            Some(conn) if i % 4 == 0 => conn.send("GET", "/", None, true).expect("keep-alive GET"),
            _ => gunicorn.get("/"),
        };
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
    }
    if let Some(conn) = kept {
        conn.close();
    }
    for _ in 0..NOT_FOUND {
        assert_eq!(gunicorn.get("/no/such/page").status, 404);
    }
    for _ in 0..SERVER_ERRORS {
        assert_eq!(gunicorn.get("/error").status, 500);
    }
    for i in 0..POSTS {
        let body = vec![b'x'; 100 * (i + 1)];
        let response = gunicorn.request("POST", "/echo", Some(&body));
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), body.len().to_string());
    }
    assert_eq!(gunicorn.get("/sleep/200").status, 200);
}

fn assert_exact(before: &Metrics, after: &Metrics, app: &str, workers: u32) {
    let delta = |key: (&str, &str)| {
        let key = (key.0.to_owned(), key.1.to_owned());
        by_method_status(after, app)
            .get(&key)
            .copied()
            .unwrap_or(0.0)
            - by_method_status(before, app)
                .get(&key)
                .copied()
                .unwrap_or(0.0)
    };
    assert_eq!(delta(("GET", "200")), (GETS_OK + SLOW) as f64);
    assert_eq!(delta(("GET", "404")), NOT_FOUND as f64);
    assert_eq!(delta(("GET", "500")), SERVER_ERRORS as f64);
    assert_eq!(delta(("POST", "200")), POSTS as f64);
    assert_eq!(
        total(after, app) - total(before, app),
        TOTAL as f64,
        "no other series: {:?}",
        by_method_status(after, app)
    );

    // Every series belongs to one of the instance's worker slots.
    for sample in after.series(REQUESTS) {
        if sample.label("app") == Some(app) {
            let slot: u32 = sample
                .label("worker_id")
                .unwrap_or_default()
                .parse()
                .expect("numeric worker_id");
            assert!(slot < workers, "worker_id {slot} with {workers} workers");
        }
    }

    // 5xx answers are failed requests too.
    let failed = |m: &Metrics| m.sum(FAILED, &[("app", app), ("error_type", "5xx")]);
    assert_eq!(failed(after) - failed(before), SERVER_ERRORS as f64);

    // Exactly one GET took between 0.1 s and 0.25 s: the 200 ms one. Everything else here
    // is a hello-world answer well under 100 ms.
    let bucket = |m: &Metrics, le: &str| {
        m.sum(
            DURATION_BUCKET,
            &[("app", app), ("method", "GET"), ("le", le)],
        )
    };
    let slow_after = bucket(after, "0.25") - bucket(after, "0.1");
    let slow_before = bucket(before, "0.25") - bucket(before, "0.1");
    assert_eq!(slow_after - slow_before, SLOW as f64);
}

fn run(opts: GunicornOpts, app: &str, observer_first: bool, keep_alive: bool) {
    let workers = opts.workers;
    let (observer, gunicorn) = if observer_first {
        let observer = Observer::start(&[]);
        (observer, Gunicorn::start(opts))
    } else {
        let gunicorn = Gunicorn::start(opts);
        (Observer::start(&[]), gunicorn)
    };

    let before = Metrics::parse(&observer.scrape()).expect("valid exposition");
    send_mix(&gunicorn, keep_alive);

    // Ground truth one: Gunicorn's own access log saw the same requests.
    let log = gunicorn.wait_for_access_entries(TOTAL, Duration::from_secs(10));
    assert_eq!(log.len(), TOTAL, "access log entries");

    let after = wait_for_total(&observer, app, TOTAL);
    // Give a straggler time to show up, so over-counting is caught too.
    std::thread::sleep(Duration::from_millis(300));
    let after_settled = Metrics::parse(&observer.scrape()).expect("valid exposition");
    assert_eq!(total(&after, app), total(&after_settled, app));

    assert_exact(&before, &after_settled, app, workers);
    assert_eq!(
        after_settled.sum("gunicorn_observer_events_dropped_total", &[]),
        0.0,
        "kernel drops"
    );
}

#[test]
fn sync_workers_observer_started_first() {
    let app = common::unique_app("sync-first");
    run(
        GunicornOpts::sync(2).arg(&format!("--name={app}")),
        &app,
        true,
        false,
    );
}

#[test]
fn sync_workers_observer_started_after_gunicorn() {
    let app = common::unique_app("sync-after");
    run(
        GunicornOpts::sync(2).arg(&format!("--name={app}")),
        &app,
        false,
        false,
    );
}

#[test]
fn gthread_workers_observer_started_first() {
    let app = common::unique_app("gthread-first");
    run(
        GunicornOpts::gthread(2, 4).arg(&format!("--name={app}")),
        &app,
        true,
        true,
    );
}

#[test]
fn gthread_workers_observer_started_after_gunicorn() {
    let app = common::unique_app("gthread-after");
    run(
        GunicornOpts::gthread(2, 4).arg(&format!("--name={app}")),
        &app,
        false,
        true,
    );
}
