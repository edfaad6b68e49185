//! The soak run behind `cargo xtask soak` (ignored in the normal suite): moderate load on a
//! Gunicorn whose workers recycle every few seconds (`--max-requests`), for
//! `GUNICORN_OBSERVER_SOAK_MINUTES` (30 by default). Every minute the load pauses and the
//! observer must match the access log exactly, and its RSS, fd count and series count must
//! stay where they were after the first minute.

mod common;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use observer_tests::{Gunicorn, GunicornOpts, Observer};

use common::{settled, total};

const APP: &str = "soak";
/// With the load below, a worker reaches it every few seconds.
const MAX_REQUESTS: u32 = 100;
/// About 40 requests a second.
const PAUSE: Duration = Duration::from_millis(25);
const CHECKPOINT: Duration = Duration::from_secs(60);
/// Label sets appear as they are first used (a slot's first restart reason, a first failed
/// request during a recycle); after this many minutes none may be new.
const WARM_UP_MINUTES: u64 = 2;
/// RSS may wiggle with the allocator; a leak of a few hundred bytes per request would
/// cross this within minutes.
const RSS_SLACK_KIB: u64 = 4 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count()
}

/// Series of this instance in /metrics, by name and labels (other Gunicorns on the host
/// come and go).
fn series(observer: &Observer) -> BTreeSet<String> {
    let label = format!("app=\"{APP}\"");
    observer
        .scrape()
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains(&label))
        .filter_map(|line| line.rsplit_once(' ').map(|(key, _)| key.to_owned()))
        .collect()
}

#[test]
#[ignore = "long: run with `cargo xtask soak`"]
fn soak() {
    let minutes: u64 = std::env::var("GUNICORN_OBSERVER_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(2)
            .arg(&format!("--name={APP}"))
            .arg(&format!("--max-requests={MAX_REQUESTS}")),
    );

    let mut sent = 0usize;
    let mut baseline: Option<(u64, usize, BTreeSet<String>)> = None;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let started = Instant::now();
    for minute in 1..=minutes {
        let until = started + CHECKPOINT * minute as u32;
        while Instant::now() < until {
            assert_eq!(gunicorn.get("/").status, 200);
            sent += 1;
            thread::sleep(PAUSE);
        }

        let entries = gunicorn.wait_for_access_entries(sent, Duration::from_secs(30));
        assert_eq!(entries.len(), sent, "access log at minute {minute}");
        let metrics = settled(&observer, APP, sent as f64);
        assert_eq!(
            total(&metrics, APP),
            sent as f64,
            "count at minute {minute}"
        );

        let restarts = metrics.sum(
            "gunicorn_master_worker_restart_total",
            &[("app", APP), ("reason", "max_requests")],
        );
        let now = series(&observer);
        let new: Vec<&String> = now.difference(&seen).collect();
        let (rss, fds) = (rss_kib(observer.pid()), fd_count(observer.pid()));
        eprintln!(
            "soak minute {minute}: {sent} requests, {restarts} max_requests restarts, \
             observer RSS {rss} KiB, {fds} fds, {} series, new: {new:?}",
            now.len()
        );
        if minute > WARM_UP_MINUTES {
            assert!(new.is_empty(), "new series at minute {minute}: {new:?}");
        }
        seen.extend(now.iter().cloned());
        if minute < WARM_UP_MINUTES {
            continue;
        }
        let (rss0, fds0, series0) = baseline.get_or_insert((rss, fds, now.clone()));
        assert_eq!(fds, *fds0, "observer fd count moved at minute {minute}");
        assert_eq!(
            now.len(),
            series0.len(),
            "series count moved at minute {minute}"
        );
        assert!(
            rss <= *rss0 + RSS_SLACK_KIB,
            "observer RSS grew from {rss0} KiB to {rss} KiB by minute {minute}"
        );
    }
}
