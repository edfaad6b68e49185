//! Workers that cannot boot: Gunicorn's exit codes 4 (app load error) and 3 (boot error).
//!
//! On either, Gunicorn's master halts right after reaping the worker, and with the master
//! the whole instance's series go. So the test stops the master (SIGSTOP, by pid) before
//! letting the worker fail: the worker's exit is seen by the kernel whether or not its
//! parent reaps it, the restart is counted, and only when the master is let go does the
//! instance disappear. The app module's import blocks on a trigger file until then.

mod common;

use std::{path::Path, time::Duration};

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer, process};

const RESTARTS: &str = "gunicorn_master_worker_restart_total";
const SETTLE: Duration = Duration::from_secs(20);

/// Writes the trigger in one rename, so the worker never reads it half written.
fn trigger(path: &Path, mode: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, mode).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

fn app_series(metrics: &Metrics, app: &str) -> usize {
    metrics
        .samples()
        .iter()
        .filter(|s| s.label("app") == Some(app))
        .count()
}

fn fail_during_boot(app: &str, mode: &str, reason: &str, exit_code: i32) {
    let observer = Observer::start(&[]);
    let dir = observer_tests::tempdir::TempDir::new("late-fail");
    let trigger_path = dir.path().join("trigger");
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(1)
            .app("late_fail:application")
            .arg(&format!("--name={app}"))
            .arg(&format!(
                "--env=LATE_FAIL_TRIGGER={}",
                trigger_path.display()
            )),
    );
    let master = gunicorn.master_pid();
    observer.wait_for_metrics(SETTLE, "the booting worker", |m| {
        m.get("gunicorn_workers", &[("app", app)]) == Some(1.0)
    });

    process::signal(master, libc::SIGSTOP).unwrap();
    trigger(&trigger_path, mode);
    let metrics = observer.wait_for_metrics(SETTLE, "the failed boot", |m| {
        m.get(RESTARTS, &[("app", app), ("reason", reason)]) == Some(1.0)
    });
    assert_eq!(
        metrics.by_label(RESTARTS, &[("app", app)], "reason").len(),
        1,
        "no other reason"
    );
    assert_eq!(metrics.get("gunicorn_workers", &[("app", app)]), Some(0.0));
    assert_eq!(
        metrics.get(
            "gunicorn_worker_restarts_total",
            &[("app", app), ("worker_id", "0"), ("reason", reason)]
        ),
        Some(1.0)
    );

    // Let the master go: it halts with the worker's code, and the instance's series go.
    process::signal(master, libc::SIGCONT).unwrap();
    let exited = process::wait_for(SETTLE, || (!process::is_alive(master)).then_some(()));
    assert!(exited.is_some(), "the master did not halt");
    let status = gunicorn.stop();
    assert_eq!(status.code(), Some(exit_code), "the master's exit status");
    observer.wait_for_metrics(SETTLE, "the instance's series gone", |m| {
        app_series(m, app) == 0
    });
}

#[test]
fn an_app_that_fails_to_load_is_an_app_load_error() {
    fail_during_boot(
        &common::unique_app("life-appload"),
        "missing",
        "app_load_error",
        4,
    );
}

#[test]
fn an_import_that_raises_is_a_boot_error() {
    fail_during_boot(
        &common::unique_app("life-bootfail"),
        "raise",
        "boot_error",
        3,
    );
}
