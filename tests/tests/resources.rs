//! Per-worker and per-master resources from procfs, checked against what the worker was made
//! to hold and against the kernel's own counters: threads and open fds exactly, CPU seconds
//! between the worker's own account and a later read of /proc.

mod common;

use std::time::Duration;

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer};

const APP_MODULE: &str = "resources_app:application";
const THREADS: &str = "gunicorn_worker_threads";
const FDS: &str = "gunicorn_worker_open_fds";
const CPU: &str = "gunicorn_worker_cpu_seconds_total";
const MASTER_THREADS: &str = "gunicorn_master_threads";
const MASTER_FDS: &str = "gunicorn_master_open_fds";
const MASTER_CPU: &str = "gunicorn_master_cpu_seconds_total";

/// Sample every second, so each wait below is short.
const OBSERVER_ARGS: &[&str] = &["--sample-secs", "1"];
const WAIT: Duration = Duration::from_secs(20);

fn start(name: &str, extra: &[&str]) -> (Observer, Gunicorn) {
    let observer = Observer::start(OBSERVER_ARGS);
    let mut opts = GunicornOpts::sync(1)
        .app(APP_MODULE)
        .arg(&format!("--name={name}"));
    for arg in extra {
        opts = opts.arg(arg);
    }
    (observer, Gunicorn::start(opts))
}

fn slot0(app: &str) -> [(&str, &str); 2] {
    [("app", app), ("worker_id", "0")]
}

/// A value of `/proc/<pid>/status`, e.g. `Threads`.
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let prefix = format!("{field}:");
    let line = status.lines().find(|l| l.starts_with(&prefix)).unwrap();
    line[prefix.len()..].trim().parse().unwrap()
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

/// User + system seconds of `pid` as `/proc/<pid>/stat` has them now.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); the first after the command name is field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / per_second as f64
}

/// Waits for two samples in a row with the same value of `family` for the labels (the
/// idle worker holds steady), and returns it.
fn steady(observer: &Observer, family: &str, labels: &[(&str, &str)]) -> f64 {
    let mut last = None;
    let metrics = observer.wait_for_metrics(WAIT, family, |m: &Metrics| {
        let now = m.get(family, labels);
        let same = now.is_some() && now == last;
        last = now;
        if !same {
            std::thread::sleep(Duration::from_millis(1100));
        }
        same
    });
    metrics.get(family, labels).unwrap()
}

#[test]
fn threads_and_open_fds_grow_by_exactly_what_the_worker_holds() {
    let app = common::unique_app("resources-hold");
    let app = app.as_str();
    let (observer, gunicorn) = start(app, &[]);
    let worker = gunicorn.worker_pids()[0];
    let labels = slot0(app);

    // A sync worker runs on one thread; its fd count is whatever Gunicorn opened.
    let threads = steady(&observer, THREADS, &labels);
    assert_eq!(threads, 1.0);
    let fds = steady(&observer, FDS, &labels);
    assert_eq!(fds, open_fds(worker) as f64);

    assert_eq!(gunicorn.get("/hold/3").status, 200);
    observer.wait_for_metrics(WAIT, "three more threads and fds", |m| {
        m.get(THREADS, &labels) == Some(threads + 3.0) && m.get(FDS, &labels) == Some(fds + 3.0)
    });
    assert_eq!(status_field(worker, "Threads"), 4);

    // The master, idle, agrees with /proc as read here.
    let master = gunicorn.master_pid();
    let app = [("app", app)];
    let master_threads = steady(&observer, MASTER_THREADS, &app);
    assert_eq!(master_threads, status_field(master, "Threads") as f64);
    let master_fds = steady(&observer, MASTER_FDS, &app);
    assert_eq!(master_fds, open_fds(master) as f64);
}

#[test]
fn cpu_seconds_cover_the_burn_and_never_go_back_across_a_recycle() {
    let app = common::unique_app("resources-cpu");
    let app = app.as_str();
    // The third request ends the worker, and its replacement continues the slot.
    let (observer, gunicorn) = start(app, &["--max-requests=3"]);
    let worker = gunicorn.worker_pids()[0];
    let labels = slot0(app);

    let response = gunicorn.get("/burn/300");
    assert_eq!(response.status, 200);
    let burnt: f64 = String::from_utf8_lossy(&response.body).parse().unwrap();
    assert!(burnt >= 0.3, "the worker used {burnt} s");

    // /proc rounds user and system time down to a tick each: at most 20 ms below the
    // worker's own clock, never above a later read of /proc.
    let metrics = observer.wait_for_metrics(WAIT, "the burn", |m| {
        m.get(CPU, &labels).is_some_and(|cpu| cpu >= burnt - 0.02)
    });
    let seen = metrics.get(CPU, &labels).unwrap();
    assert!(
        seen <= cpu_seconds(worker),
        "{seen} s beyond /proc's {}",
        cpu_seconds(worker)
    );
    let master_cpu = metrics.get(MASTER_CPU, &[("app", app)]).unwrap();
    assert!(master_cpu <= cpu_seconds(gunicorn.master_pid()));

    // Two more requests and the worker leaves; the slot's counter keeps its CPU.
    assert_eq!(gunicorn.get("/").status, 200);
    assert_eq!(gunicorn.get("/").status, 200);
    let replaced = observer.wait_for_metrics(WAIT, "the replacement's first sample", |m| {
        let info = common::worker_info(m, app);
        info.len() == 1 && info[0].1 != worker && m.get(THREADS, &labels).is_some()
    });
    let after = replaced.get(CPU, &labels).unwrap();
    assert!(after >= seen, "the slot's CPU went from {seen} to {after}");
}
