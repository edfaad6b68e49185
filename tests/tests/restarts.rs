//! Worker restarts counted with their true reasons, from a real Gunicorn driven into each
//! one: a timeout (handled and unhandled SIGABRT), max-requests, a HUP reload, TTIN then
//! TTOU, a segfault, and a stranger's SIGTERM.

mod common;

use std::{collections::BTreeMap, time::Duration};

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer, process, request};

const APP: &str = "lifecycle_app:application";
const RESTARTS: &str = "gunicorn_master_worker_restart_total";
const SLOT_RESTARTS: &str = "gunicorn_worker_restarts_total";
const FAILED: &str = "gunicorn_worker_failed_requests";
const REQUESTS: &str = "gunicorn_worker_requests_total";
const WORKERS: &str = "gunicorn_workers";
const INFO: &str = "gunicorn_worker_info";

/// Long enough for Gunicorn to notice, act, and for the observer to drain what followed.
const SETTLE: Duration = Duration::from_secs(20);

fn start(name: &str, workers: u32, extra: &[&str]) -> (Observer, Gunicorn) {
    let observer = Observer::start(&[]);
    let mut opts = GunicornOpts::sync(workers)
        .app(APP)
        .arg(&format!("--name={name}"));
    for arg in extra {
        opts = opts.arg(arg);
    }
    (observer, Gunicorn::start(opts))
}

/// `{reason: count}` of the instance-wide restart counter.
fn restarts(metrics: &Metrics, app: &str) -> BTreeMap<String, f64> {
    metrics.by_label(RESTARTS, &[("app", app)], "reason")
}

/// `{reason: count}` of one slot's restart counter.
fn slot_restarts(metrics: &Metrics, app: &str, slot: &str) -> BTreeMap<String, f64> {
    metrics.by_label(
        SLOT_RESTARTS,
        &[("app", app), ("worker_id", slot)],
        "reason",
    )
}

/// `{error_type: count}` of failed requests.
fn failures(metrics: &Metrics, app: &str) -> BTreeMap<String, f64> {
    metrics.by_label(FAILED, &[("app", app)], "error_type")
}

/// `{worker_id: pid}` of the live workers.
fn slots(metrics: &Metrics, app: &str) -> BTreeMap<String, u32> {
    metrics
        .series(INFO)
        .filter(|s| s.label("app") == Some(app))
        .map(|s| {
            let slot = s.label("worker_id").unwrap().to_owned();
            (slot, s.label("pid").unwrap().parse().unwrap())
        })
        .collect()
}

fn counts<const N: usize>(pairs: [(&str, f64); N]) -> BTreeMap<String, f64> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Waits until the instance shows exactly `want` restarts and `workers` live workers, then
/// waits a little more and checks nothing else arrived.
fn settle(observer: &Observer, app: &str, want: &BTreeMap<String, f64>, workers: usize) -> Metrics {
    observer.wait_for_metrics(SETTLE, "restarts and live workers", |m| {
        restarts(m, app) == *want && slots(m, app).len() == workers
    });
    std::thread::sleep(Duration::from_millis(500));
    let metrics = observer.metrics();
    assert_eq!(restarts(&metrics, app), *want, "after settling");
    assert_eq!(metrics.get(WORKERS, &[("app", app)]), Some(workers as f64));
    metrics
}

#[test]
fn a_timed_out_request_is_one_timeout_restart_and_fails_as_timeout() {
    let app = common::unique_app("life-timeout");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, 1, &["--timeout=2"]);

    // The master's SIGABRT turns into SystemExit inside the app; Gunicorn answers 500.
    let response = gunicorn.get("/sleep/10000");
    assert_eq!(response.status, 500);

    let metrics = settle(&observer, app, &counts([("timeout", 1.0)]), 1);
    assert_eq!(
        slot_restarts(&metrics, app, "0"),
        counts([("timeout", 1.0)])
    );
    assert_eq!(failures(&metrics, app), counts([("timeout", 1.0)]));
    assert_eq!(
        metrics.by_label(REQUESTS, &[("app", app)], "status"),
        counts([("500", 1.0)]),
        "the 500 went on the wire"
    );
    assert!(gunicorn.error_log().contains("WORKER TIMEOUT"));

    // The replacement took the slot over and carries on counting in it.
    assert_eq!(gunicorn.get("/").status, 200);
    observer.wait_for_metrics(SETTLE, "a request on the replacement", |m| {
        m.get(
            REQUESTS,
            &[
                ("app", app),
                ("worker_id", "0"),
                ("method", "GET"),
                ("route", "/"),
                ("status", "200"),
            ],
        ) == Some(1.0)
    });
}

#[test]
fn a_timeout_that_needs_sigkill_is_still_a_timeout_not_oom() {
    let app = common::unique_app("life-stuck");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, 1, &["--timeout=2"]);

    // SIGABRT stays blocked, so the master's next pass sends SIGKILL and Gunicorn logs its
    // guess about memory; the client sees the connection drop.
    let response = request(gunicorn.addr(), "GET", "/stuck/15000", None, false);
    assert!(response.is_err(), "{response:?}");

    let metrics = settle(&observer, app, &counts([("timeout", 1.0)]), 1);
    assert_eq!(failures(&metrics, app), counts([("timeout", 1.0)]));
    assert_eq!(
        metrics.by_label(REQUESTS, &[("app", app)], "status"),
        counts([])
    );
    let log = gunicorn.error_log();
    assert!(
        log.contains("was sent SIGKILL! Perhaps out of memory?"),
        "{log}"
    );
}

#[test]
fn max_requests_restarts_twice_in_25_requests_and_counts_all_25() {
    let app = common::unique_app("life-maxreq");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, 1, &["--max-requests=10"]);

    for _ in 0..25 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    let metrics = settle(&observer, app, &counts([("max_requests", 2.0)]), 1);
    assert_eq!(
        slot_restarts(&metrics, app, "0"),
        counts([("max_requests", 2.0)])
    );
    let served = metrics.by_label(REQUESTS, &[("app", app), ("status", "200")], "worker_id");
    assert_eq!(served, counts([("0", 25.0)]));
    assert_eq!(failures(&metrics, app), counts([]));
    // Gunicorn agrees: three workers booted in turn (the third logs right after its fork).
    let booted = process::wait_for(SETTLE, || {
        let booted = gunicorn.booted_worker_pids();
        (booted.len() >= 3).then_some(booted)
    });
    assert_eq!(booted.map(|pids| pids.len()), Some(3));
}

#[test]
fn hup_reloads_both_workers() {
    let app = common::unique_app("life-reload");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, 2, &[]);
    let old = gunicorn.worker_pids();
    observer.wait_for_metrics(SETTLE, "both workers", |m| slots(m, app).len() == 2);

    process::signal(gunicorn.master_pid(), libc::SIGHUP).unwrap();
    let metrics = settle(&observer, app, &counts([("reload", 2.0)]), 2);
    assert_eq!(slot_restarts(&metrics, app, "0"), counts([("reload", 1.0)]));
    assert_eq!(slot_restarts(&metrics, app, "1"), counts([("reload", 1.0)]));

    // The new set booted while the old one still ran, and took over slots 0 and 1.
    let new: Vec<u32> = slots(&metrics, app).into_values().collect();
    assert_eq!(
        slots(&metrics, app).into_keys().collect::<Vec<_>>(),
        ["0", "1"]
    );
    // The same processes Gunicorn runs now (old ones may linger unreaped as zombies).
    let mut live: Vec<u32> = gunicorn
        .worker_pids()
        .into_iter()
        .filter(|pid| process::is_alive(*pid))
        .collect();
    live.sort_unstable();
    let mut seen = new.clone();
    seen.sort_unstable();
    assert_eq!(seen, live);
    assert!(old.iter().all(|pid| !new.contains(pid)));
}

#[test]
fn ttin_then_ttou_is_one_scale_up_and_one_scale_down_and_the_slot_goes() {
    let app = common::unique_app("life-scale");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, 2, &[]);
    observer.wait_for_metrics(SETTLE, "both workers", |m| slots(m, app).len() == 2);

    process::signal(gunicorn.master_pid(), libc::SIGTTIN).unwrap();
    let metrics = settle(&observer, app, &counts([("scale_up", 1.0)]), 3);
    // The new worker is the one in the new slot.
    assert_eq!(
        slot_restarts(&metrics, app, "2"),
        counts([("scale_up", 1.0)])
    );
    let before = slots(&metrics, app);

    // The arbiter stops its oldest worker: the first one booted.
    let oldest = gunicorn.booted_worker_pids()[0];
    let (gone_slot, _) = before
        .iter()
        .find(|(_, pid)| **pid == oldest)
        .expect("the oldest worker has a slot");
    let gone_slot = gone_slot.clone();
    assert!(
        metrics.samples().iter().any(
            |s| s.label("app") == Some(app) && s.label("worker_id") == Some(gone_slot.as_str())
        )
    );

    process::signal(gunicorn.master_pid(), libc::SIGTTOU).unwrap();
    let metrics = settle(
        &observer,
        app,
        &counts([("scale_down", 1.0), ("scale_up", 1.0)]),
        2,
    );
    assert!(!process::is_alive(oldest));
    let leftovers: Vec<_> = metrics
        .samples()
        .iter()
        .filter(|s| s.label("app") == Some(app) && s.label("worker_id") == Some(gone_slot.as_str()))
        .collect();
    assert!(
        leftovers.is_empty(),
        "series of the removed slot: {leftovers:?}"
    );
    let mut remaining: Vec<_> = before
        .into_iter()
        .filter(|(_, pid)| *pid != oldest)
        .collect();
    remaining.sort();
    assert_eq!(
        slots(&metrics, app).into_iter().collect::<Vec<_>>(),
        remaining
    );
}

#[test]
fn a_segfault_is_a_crash_and_its_request_fails_as_crash() {
    let app = common::unique_app("life-segv");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, 1, &[]);

    let response = request(gunicorn.addr(), "GET", "/segv", None, false);
    assert!(response.is_err(), "{response:?}");

    let metrics = settle(&observer, app, &counts([("crash", 1.0)]), 1);
    assert_eq!(slot_restarts(&metrics, app, "0"), counts([("crash", 1.0)]));
    assert_eq!(failures(&metrics, app), counts([("crash", 1.0)]));
    assert!(gunicorn.error_log().contains("was sent SIGSEGV!"));
}

#[test]
fn a_sigterm_from_outside_is_an_external_signal() {
    let app = common::unique_app("life-external");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, 1, &[]);
    let worker = gunicorn.worker_pids()[0];
    observer.wait_for_metrics(SETTLE, "the worker", |m| slots(m, app).len() == 1);

    process::signal(worker, libc::SIGTERM).unwrap();
    let metrics = settle(&observer, app, &counts([("external_signal", 1.0)]), 1);
    assert_eq!(
        slot_restarts(&metrics, app, "0"),
        counts([("external_signal", 1.0)])
    );
    assert_ne!(slots(&metrics, app)["0"], worker);
}
