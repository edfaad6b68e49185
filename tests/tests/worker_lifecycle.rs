//! Workers and masters replaced the ways production replaces them: `--max-requests`
//! recycling under concurrent load, a SIGHUP reload, and a USR2 binary upgrade. Counts must
//! stay exact, `worker_id` must stay within `0..workers`, and the app keeps its name.

mod common;

use std::time::Duration;

use observer_tests::{Gunicorn, GunicornOpts, Observer, process};

use common::{
    access_by_method_status, by_method_status, expect, request_slots, settled, total, worker_info,
};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 60;

#[test]
fn max_requests_recycling_under_load_keeps_counts_exact_and_slots_in_range() {
    const APP: &str = "lifecycle-recycle";
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(2)
            .arg(&format!("--name={APP}"))
            .arg("--max-requests=20"),
    );

    // Four clients at once, so workers exit with connections queued on the listener.
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                for _ in 0..PER_CLIENT {
                    assert_eq!(gunicorn.get("/").status, 200);
                }
            });
        }
    });

    let sent = (CLIENTS * PER_CLIENT) as f64;
    let entries = gunicorn.wait_for_access_entries(CLIENTS * PER_CLIENT, Duration::from_secs(10));
    assert_eq!(
        access_by_method_status(&entries),
        expect(&[("GET", "200", sent)])
    );
    let after = settled(&observer, APP, sent);
    assert_eq!(
        by_method_status(&after, APP),
        expect(&[("GET", "200", sent)])
    );

    // 240 requests at 20 a worker: at least a dozen workers came and went.
    assert!(
        gunicorn.booted_worker_pids().len() >= 12,
        "workers were recycled"
    );
    assert_eq!(request_slots(&after, APP), vec![0, 1]);

    // gunicorn_worker_info names exactly the live workers, once a last recycle settles.
    let current = process::wait_for(Duration::from_secs(10), || {
        let live = gunicorn.worker_pids();
        let info = worker_info(&observer.metrics(), APP);
        let pids: Vec<u32> = info.iter().map(|(_, pid)| *pid).collect();
        let mut sorted = pids.clone();
        sorted.sort_unstable();
        (live.len() == 2 && sorted == live).then_some(info)
    });
    let info = current.expect("worker_info shows the live worker pids");
    let slots: Vec<u32> = info.iter().map(|(slot, _)| *slot).collect();
    assert_eq!(slots, vec![0, 1]);
}

/// Waits until the master has exactly `count` children, none of them in `old`.
fn wait_for_new_workers(gunicorn: &Gunicorn, old: &[u32], count: usize) -> Vec<u32> {
    process::wait_for(Duration::from_secs(30), || {
        let live = gunicorn.worker_pids();
        let fresh = live.len() == count && live.iter().all(|pid| !old.contains(pid));
        fresh.then_some(live)
    })
    .expect("the master replaced its workers")
}

#[test]
#[ignore = "reproduces: after SIGHUP the new workers get worker_id 2 and 3 of 2 workers"]
fn sighup_reload_keeps_worker_ids_within_the_worker_count() {
    const APP: &str = "lifecycle-hup";
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={APP}")));
    let old = gunicorn.worker_pids();

    // A reload (deploys and config changes): new workers boot, then the old ones stop.
    process::signal(gunicorn.master_pid(), libc::SIGHUP).expect("SIGHUP");
    let new = wait_for_new_workers(&gunicorn, &old, 2);
    for _ in 0..20 {
        assert_eq!(gunicorn.get("/").status, 200);
    }

    gunicorn.wait_for_access_entries(20, Duration::from_secs(10));
    let after = settled(&observer, APP, 20.0);
    assert_eq!(total(&after, APP), 20.0);
    let info = worker_info(&after, APP);
    assert_eq!(
        info.iter().map(|(slot, _)| *slot).collect::<Vec<_>>(),
        vec![0, 1],
        "slots of the reloaded workers {new:?}: {info:?}"
    );
    for slot in request_slots(&after, APP) {
        assert!(slot < 2, "worker_id {slot} with 2 workers");
    }
}

/// A master started by USR2 from `old`: its child that has children of its own.
fn upgraded_master(old: u32, old_workers: &[u32]) -> u32 {
    process::wait_for(Duration::from_secs(30), || {
        process::children_of(old)
            .into_iter()
            .filter(|pid| !old_workers.contains(pid))
            .find(|pid| process::children_of(*pid).len() == 2)
    })
    .expect("USR2 started a new master with 2 workers")
}

/// Stops a master that is not our child (it outlived its parent) and its workers.
struct Orphan(u32);

impl Drop for Orphan {
    fn drop(&mut self) {
        let workers = process::children_of(self.0);
        let _ = process::signal(self.0, libc::SIGTERM);
        let gone = process::wait_for(Duration::from_secs(10), || {
            (!process::is_alive(self.0)).then_some(())
        });
        if gone.is_none() {
            let _ = process::signal(self.0, libc::SIGKILL);
        }
        for pid in workers.into_iter().filter(|pid| process::is_alive(*pid)) {
            let _ = process::signal(pid, libc::SIGKILL);
        }
    }
}

#[test]
#[ignore = "reproduces: after a USR2 upgrade the instance is labelled app=\"<name>#<pid>\""]
fn usr2_upgrade_keeps_the_app_label_once_the_old_master_is_gone() {
    const APP: &str = "lifecycle-usr2";
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={APP}")));
    let old_master = gunicorn.master_pid();
    let old_workers = gunicorn.worker_pids();

    // The documented zero-downtime upgrade: USR2, then stop the old master. Not through
    // the harness's stop, which would also kill the new master, a child of the old one.
    process::signal(old_master, libc::SIGUSR2).expect("SIGUSR2");
    let new_master = Orphan(upgraded_master(old_master, &old_workers));
    process::signal(old_master, libc::SIGTERM).expect("SIGTERM to the old master");
    let old_gone = process::wait_for(Duration::from_secs(30), || {
        (!process::is_alive(old_master)).then_some(())
    });
    assert!(old_gone.is_some(), "the old master stopped");
    assert!(process::is_alive(new_master.0), "the new master lives on");

    for _ in 0..20 {
        let response = observer_tests::http::get(gunicorn.addr(), "/").expect("GET /");
        assert_eq!(response.status, 200);
    }

    let after = settled(&observer, APP, 20.0);
    let apps: Vec<String> = after
        .series(common::REQUESTS)
        .filter_map(|sample| sample.label("app"))
        .filter(|app| app.starts_with(APP))
        .map(str::to_owned)
        .collect();
    assert_eq!(total(&after, APP), 20.0, "requests by app label: {apps:?}");
}
