//! A worker killed by the kernel's OOM killer in a memory-limited cgroup is an `oom_kill`
//! restart, though Gunicorn itself can only guess ("Perhaps out of memory?").
//!
//! The test makes its own memory cgroup under the one it runs in, moves only the Gunicorn
//! worker into it (never the master, the observer or itself), and removes it afterwards.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use observer_tests::{Gunicorn, GunicornOpts, Observer, process, request};

const LIMIT_BYTES: u64 = 64 * 1024 * 1024;
const SETTLE: Duration = Duration::from_secs(20);

/// A child memory cgroup with a limit; dropping it moves any process left back to the
/// parent and removes the directory.
struct MemoryCgroup {
    dir: PathBuf,
    parent: PathBuf,
    /// cgroup v1 files, or v2.
    v1: bool,
}

impl MemoryCgroup {
    fn create(name: &str, limit: u64) -> MemoryCgroup {
        let cgroups = fs::read_to_string("/proc/self/cgroup").unwrap();
        // cgroup v1's memory controller, else the v2 hierarchy.
        let (parent, v1) = if let Some(own) = controller_path(&cgroups, "memory") {
            (Path::new("/sys/fs/cgroup/memory").join(own), true)
        } else {
            let own = controller_path(&cgroups, "").expect("a cgroup v2 line in /proc/self/cgroup");
            (Path::new("/sys/fs/cgroup").join(own), false)
        };
        let dir = parent.join(name);
        fs::create_dir(&dir).unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
        let cgroup = MemoryCgroup { dir, parent, v1 };
        let limit_file = if v1 {
            "memory.limit_in_bytes"
        } else {
            "memory.max"
        };
        cgroup.write(limit_file, &limit.to_string());
        cgroup
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        fs::write(&path, value).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
    }

    fn add(&self, pid: u32) {
        self.write("cgroup.procs", &pid.to_string());
    }

    fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// OOM kills the kernel reports for this cgroup.
    fn oom_kills(&self) -> u64 {
        let (file, key) = if self.v1 {
            ("memory.oom_control", "oom_kill ")
        } else {
            ("memory.events", "oom_kill ")
        };
        let text = fs::read_to_string(self.dir.join(file)).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no oom_kill count in {file}: {text}"))
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = fs::write(self.parent.join("cgroup.procs"), pid.to_string());
        }
        if let Err(err) = fs::remove_dir(&self.dir) {
            eprintln!("warning: removing {}: {err}", self.dir.display());
        }
    }
}

/// The path of `controller` in /proc/self/cgroup (`""` is the v2 line), relative.
fn controller_path<'a>(cgroups: &'a str, controller: &str) -> Option<&'a str> {
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let wanted = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        wanted.then(|| path.trim_start_matches('/'))
    })
}

#[test]
fn a_worker_killed_by_the_oom_killer_is_an_oom_kill() {
    let app = common::unique_app("life-oom");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(1)
            .app("lifecycle_app:application")
            .arg(&format!("--name={app}")),
    );
    let worker = gunicorn.worker_pids()[0];
    let cgroup = MemoryCgroup::create(
        &format!("gunicorn-observer-oom-{}", std::process::id()),
        LIMIT_BYTES,
    );
    cgroup.add(worker);
    assert_eq!(cgroup.pids(), [worker]);

    let response = request(gunicorn.addr(), "GET", "/hog", None, false);
    assert!(response.is_err(), "{response:?}");

    let metrics = observer.wait_for_metrics(SETTLE, "an oom_kill restart", |m| {
        m.get(
            "gunicorn_master_worker_restart_total",
            &[("app", app), ("reason", "oom_kill")],
        ) == Some(1.0)
    });
    // Ground truth: the kernel killed exactly one process in our cgroup.
    assert_eq!(cgroup.oom_kills(), 1);
    assert_eq!(
        metrics
            .by_label(
                "gunicorn_master_worker_restart_total",
                &[("app", app)],
                "reason"
            )
            .len(),
        1
    );
    assert_eq!(
        metrics.by_label(
            "gunicorn_worker_failed_requests",
            &[("app", app)],
            "error_type"
        ),
        [("oom_kill".to_owned(), 1.0)].into()
    );

    // The master replaced the worker outside the cgroup; the victim left it empty.
    let emptied = process::wait_for(SETTLE, || cgroup.pids().is_empty().then_some(()));
    assert!(
        emptied.is_some(),
        "still in the cgroup: {:?}",
        cgroup.pids()
    );
    observer.wait_for_metrics(SETTLE, "the replacement", |m| {
        m.get("gunicorn_workers", &[("app", app)]) == Some(1.0)
    });
    // The arbiter logs its guess when it reaps the victim, before forking the replacement.
    let log = gunicorn.error_log();
    assert!(
        log.contains("was sent SIGKILL! Perhaps out of memory?"),
        "{log}"
    );
}
