//! Workers and masters replaced the ways production replaces them: `--max-requests`
//! recycling under concurrent load, a SIGHUP reload, and a USR2 binary upgrade. Counts must
//! stay exact, `worker_id` must stay within `0..workers`, and the app keeps its name.

mod common;

use std::{collections::BTreeSet, time::Duration};

use observer_tests::{Gunicorn, GunicornOpts, Observer, process};

use common::{
    access_by_method_status, by_method_status, expect, request_slots, settled, total, worker_info,
};

const RESTARTS: &str = "gunicorn_master_worker_restart_total";
const SLOT_RESTARTS: &str = "gunicorn_worker_restarts_total";
const WORKERS: &str = "gunicorn_workers";

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 60;

#[test]
fn max_requests_recycling_under_load_keeps_counts_exact_and_slots_in_range() {
    let app = common::unique_app("lifecycle-recycle");
    let app = app.as_str();
    // Debug logs (workers tracked and untracked, undecodable records) for the diagnosis
    // below; they cost nothing per request.
    let observer = Observer::start(&["--log", "info,gunicorn_observer=debug"]);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(2)
            .arg(&format!("--name={app}"))
            .arg("--max-requests=20"),
    );

    // Whether the observer had found the instance before the load, for the diagnosis: a
    // master found late (by the rescan rather than its exec) misses the workers that came
    // and went before, 20 requests each.
    let found_before_load = worker_info(&observer.metrics(), app).len();

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
    let after = settled(&observer, app, sent);
    if by_method_status(&after, app) != expect(&[("GET", "200", sent)]) {
        panic!(
            "{}",
            miscount(&observer, &gunicorn, app, sent, found_before_load)
        );
    }

    // 240 requests at 20 a worker: at least a dozen workers came and went.
    assert!(
        gunicorn.booted_worker_pids().len() >= 12,
        "workers were recycled"
    );
    assert_eq!(request_slots(&after, app), vec![0, 1]);

    // gunicorn_worker_info names exactly the live workers, once a last recycle settles.
    let current = process::wait_for(Duration::from_secs(10), || {
        let live = gunicorn.worker_pids();
        let info = worker_info(&observer.metrics(), app);
        let pids: Vec<u32> = info.iter().map(|(_, pid)| *pid).collect();
        let mut sorted = pids.clone();
        sorted.sort_unstable();
        (live.len() == 2 && sorted == live).then_some(info)
    });
    let info = current.expect("worker_info shows the live worker pids");
    let slots: Vec<u32> = info.iter().map(|(slot, _)| *slot).collect();
    assert_eq!(slots, vec![0, 1]);
}

/// Everything needed to tell why the recycling test counted other than the access log: it
/// once counted 140 of 240 on a machine at load 13, and did not again in 35 runs at load
/// 15-22 (2026-12-04). 100 missing is exactly five workers' 20 requests, which a master found
/// by the 5 s rescan instead of its exec would miss; this says whether that was it. Whether
/// the count catches up later (the observer lagging) or not (events lost), the observer's own
/// drop, loss and attribution counters, the counts per slot against the workers Gunicorn
/// booted (each serves exactly `--max-requests`, the last two fewer), Gunicorn's log of
/// boots and exits, and the observer's debug log.
fn miscount(
    observer: &Observer,
    gunicorn: &Gunicorn,
    app: &str,
    sent: f64,
    found_before_load: usize,
) -> String {
    let first = by_method_status(&observer.metrics(), app);
    let later = process::wait_for(Duration::from_secs(30), || {
        let now = total(&observer.metrics(), app);
        (now >= sent).then_some(now)
    });
    let text = observer.scrape();
    let own: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with("gunicorn_observer_") || line.contains(app))
        .collect();
    let booted = gunicorn.booted_worker_pids();
    let stderr = observer.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines
        .get(lines.len().saturating_sub(300)..)
        .unwrap_or_default();
    format!(
        "counted {first:?} of {sent} GET 200 (access log agrees on {sent}); \
         30 s later: {}; workers in gunicorn_worker_info when the load began: \
         {found_before_load}\n\
         {} workers booted: {booted:?}\n\
         observer series of this app and its own counters:\n{}\n\
         gunicorn error log:\n{}\n\
         observer log (last {} lines):\n{}",
        later.map_or("still short".to_owned(), |n| format!("caught up to {n}")),
        booted.len(),
        own.join("\n"),
        gunicorn.error_log(),
        tail.len(),
        tail.join("\n")
    )
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
fn sighup_reload_hands_the_slots_over_and_counters_never_go_back() {
    let app = common::unique_app("lifecycle-hup");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={app}")));
    let old = gunicorn.worker_pids();
    for _ in 0..10 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    let before = settled(&observer, app, 10.0);
    assert_eq!(total(&before, app), 10.0);

    // A reload (deploys and config changes): new workers boot, then the old ones stop.
    process::signal(gunicorn.master_pid(), libc::SIGHUP).expect("SIGHUP");
    let mut new = wait_for_new_workers(&gunicorn, &old, 2);
    new.sort_unstable();
    for _ in 0..20 {
        assert_eq!(gunicorn.get("/").status, 200);
    }

    gunicorn.wait_for_access_entries(30, Duration::from_secs(10));
    let after = observer.wait_for_metrics(Duration::from_secs(20), "the reload", |m| {
        total(m, app) == 30.0
            && m.get(RESTARTS, &[("app", app), ("reason", "reload")]) == Some(2.0)
            && m.get(WORKERS, &[("app", app)]) == Some(2.0)
    });

    // The new workers hold slots 0 and 1; the old ones are gone from every series.
    let info = worker_info(&after, app);
    let pids: Vec<u32> = info.iter().map(|(_, pid)| *pid).collect();
    let mut sorted = pids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, new, "worker_info {info:?}");
    assert_eq!(
        info.iter().map(|(slot, _)| *slot).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(request_slots(&after, app), vec![0, 1]);

    // Each slot's counter only grew, and each slot counted one reload.
    for slot in ["0", "1"] {
        let labels = [("app", app), ("worker_id", slot)];
        assert!(
            after.sum(common::REQUESTS, &labels) >= before.sum(common::REQUESTS, &labels),
            "slot {slot} went backwards"
        );
        let reloads = [("app", app), ("worker_id", slot), ("reason", "reload")];
        assert_eq!(after.get(SLOT_RESTARTS, &reloads), Some(1.0), "slot {slot}");
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
fn usr2_upgrade_keeps_the_app_label_and_slots_once_the_old_master_is_gone() {
    let app = common::unique_app("lifecycle-usr2");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={app}")));
    let old_master = gunicorn.master_pid();
    let old_workers = gunicorn.worker_pids();
    for _ in 0..10 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    settled(&observer, app, 10.0);

    // The documented zero-downtime upgrade: USR2, then stop the old master. Not through
    // the harness's stop, which would also kill the new master, a child of the old one.
    process::signal(old_master, libc::SIGUSR2).expect("SIGUSR2");
    let new_master = Orphan(upgraded_master(old_master, &old_workers));
    let mut new_workers = process::children_of(new_master.0);
    new_workers.sort_unstable();

    // While both run, the new master's workers hold slots 0 and 1 and the old ones are
    // still listed in them, all under the one label.
    let overlap = observer.wait_for_metrics(Duration::from_secs(20), "four workers", |m| {
        worker_info(m, app).len() == 4
    });
    let info = worker_info(&overlap, app);
    let slots: Vec<u32> = info.iter().map(|w| w.0).collect();
    assert_eq!(
        slots,
        vec![0, 0, 1, 1],
        "worker_info {info:?}\n{}",
        observer.stderr()
    );
    assert_eq!(overlap.get(WORKERS, &[("app", app)]), Some(4.0));

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

    let after = observer.wait_for_metrics(Duration::from_secs(20), "the upgrade", |m| {
        total(m, app) == 30.0 && worker_info(m, app).len() == 2
    });
    let apps: BTreeSet<&str> = after
        .samples()
        .iter()
        .filter_map(|sample| sample.label("app"))
        .filter(|label| label.starts_with(app))
        .collect();
    assert_eq!(apps, BTreeSet::from([app]), "one label for the instance");
    let info = worker_info(&after, app);
    assert_eq!(info.iter().map(|w| w.0).collect::<Vec<_>>(), vec![0, 1]);
    let mut pids: Vec<u32> = info.iter().map(|w| w.1).collect();
    pids.sort_unstable();
    assert_eq!(pids, new_workers);
    assert_eq!(request_slots(&after, app), vec![0, 1]);
    assert_eq!(after.get(WORKERS, &[("app", app)]), Some(2.0));
    // The old workers stopped with their master: no restart to count.
    assert_eq!(after.sum(RESTARTS, &[("app", app)]), 0.0);
}
