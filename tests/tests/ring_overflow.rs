//! A ring buffer far too small for a burst: every record that does not fit is counted, the
//! connections that lost records are reported as unknown rather than guessed, and counting is
//! exact again once the burst is over.

mod common;

use std::sync::LazyLock;
use std::thread;
use std::time::Duration;

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer, ProcView, http};

use common::{FAILED, REQUESTS, by_method_status, expect, total};

/// Unique to this test process (see `common::unique_app`).
static APP: LazyLock<String> = LazyLock::new(|| common::unique_app("ring-overflow"));
/// Two pages: room for a few requests' records between drains.
const RING_BYTES: &str = "8192";
/// Drain four times a second: a burst outruns that, one request at a time does not.
const DRAIN_MS: &str = "250";
const BURST_THREADS: usize = 8;
const BURST_PER_THREAD: usize = 50;
const AFTER: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

fn ring_full(metrics: &Metrics) -> f64 {
    metrics.sum(
        "gunicorn_observer_events_dropped_total",
        &[("reason", "ringbuf_full")],
    )
}

fn lost(metrics: &Metrics) -> f64 {
    metrics.sum("gunicorn_observer_connections_lost_total", &[])
}

fn failed(metrics: &Metrics, error_type: &str) -> f64 {
    metrics.sum(FAILED, &[("app", APP.as_str()), ("error_type", error_type)])
}

#[test]
fn overflow_is_counted_lost_requests_are_unknown_and_counting_recovers() {
    let gunicorn = Gunicorn::start(GunicornOpts::gthread(2, 4).arg(&format!("--name={}", *APP)));
    // Only this Gunicorn: another one's traffic on the host would overflow the tiny ring too.
    let mut pids = gunicorn.worker_pids();
    pids.push(gunicorn.master_pid());
    let view = ProcView::of(&pids);
    let proc_root = view.path().to_str().expect("utf-8 temp path");
    let observer = Observer::start(&[
        "--ring-buffer-bytes",
        RING_BYTES,
        "--drain-ms",
        DRAIN_MS,
        "--proc-root",
        proc_root,
    ]);
    observer.wait_for_metrics(WAIT, "the instance found", |m| {
        common::worker_info(m, APP.as_str()).len() == 2
    });
    let before = observer.metrics();
    assert_eq!(lost(&before), 0.0, "the series exists at zero");
    assert_eq!(ring_full(&before), 0.0, "nothing dropped before the burst");

    let burst: Vec<_> = (0..BURST_THREADS)
        .map(|_| {
            let addr = gunicorn.addr().clone();
            thread::spawn(move || {
                for _ in 0..BURST_PER_THREAD {
                    assert_eq!(http::get(&addr, "/").expect("burst GET").status, 200);
                }
            })
        })
        .collect();
    for thread in burst {
        thread.join().expect("burst thread");
    }
    let burst_total = BURST_THREADS * BURST_PER_THREAD;
    gunicorn.wait_for_access_entries(burst_total, WAIT);

    // Drop counters are read once a second; wait for the burst's losses to show.
    let overflowed = observer.wait_for_metrics(WAIT, "ring-buffer drops counted", |m| {
        ring_full(m) > ring_full(&before)
    });
    let counted = total(&overflowed, APP.as_str());
    eprintln!(
        "burst of {burst_total}: {counted} counted, {} records dropped",
        ring_full(&overflowed) - ring_full(&before),
    );
    assert!(
        counted < burst_total as f64,
        "a burst that overflowed the ring buffer cannot have been counted whole"
    );
    // What was counted is exact: nothing lost passed off as another status.
    assert_eq!(
        by_method_status(&overflowed, APP.as_str()),
        expect(&[("GET", "200", counted)])
    );

    // One request at a time, each waited for: all of them fit, all of them count. Their
    // accepts reuse the fds of burst connections whose close was lost, and those losses are
    // announced now.
    let mut expected = counted;
    for _ in 0..AFTER {
        assert_eq!(gunicorn.get("/").status, 200);
        expected += 1.0;
        observer.wait_for_metrics(WAIT, "the request after the burst counted", |m| {
            total(m, APP.as_str()) == expected
        });
    }
    gunicorn.wait_for_access_entries(burst_total + AFTER, WAIT);
    std::thread::sleep(Duration::from_secs(2));
    let after = observer.metrics();
    assert_eq!(
        after.sum(REQUESTS, &[("app", APP.as_str())]) - counted,
        AFTER as f64,
        "every request after the burst counted once"
    );
    eprintln!(
        "after: {} connection losses announced, {} requests unknown, {} records dropped",
        lost(&after),
        failed(&after, "unknown"),
        ring_full(&after) - ring_full(&before)
    );
    assert!(lost(&after) > 0.0, "no connection was reported lost");
    assert!(
        ring_full(&after) - ring_full(&before) >= lost(&after),
        "each loss notice stands for at least one dropped record"
    );
    // An unknown request is one that was sent: answered plus unknown never exceeds what the
    // client sent (none of them is counted twice, once answered and once unknown).
    assert!(
        total(&after, APP.as_str()) + failed(&after, "unknown") <= (burst_total + AFTER) as f64,
        "more requests answered or unknown than were sent"
    );
    // Never guessed: a connection that lost records is not passed off as a disconnect, a
    // write error or a dead worker.
    for guessed in ["client_disconnect", "write_error", "worker_died", "5xx"] {
        assert_eq!(failed(&after, guessed), 0.0, "{guessed}");
    }
}
