use std::sync::Arc;

use super::*;
use crate::http::{AbortReason, Completed, ConnId, Method, Outcome};

fn request(method: Method, outcome: Outcome, duration_ms: u64) -> Completed {
    Completed {
        conn: ConnId { tgid: 10, fd: 5 },
        method,
        outcome,
        start_ns: 1_000_000_000,
        end_ns: 1_000_000_000 + duration_ms * 1_000_000,
        request_bytes: 100,
        response_bytes: 200,
    }
}

#[test]
fn statuses_failures_and_durations_are_counted_per_slot() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[0.1, 0.25]);
    stats.worker_started(&app, 0, 10);

    stats.record(&app, 0, &request(Method::Get, Outcome::Status(200), 5));
    stats.record(&app, 0, &request(Method::Get, Outcome::Status(200), 200));
    stats.record(&app, 0, &request(Method::Get, Outcome::Status(503), 1));
    let aborted = Outcome::Aborted(AbortReason::WorkerDied);
    stats.record(&app, 0, &request(Method::Post, aborted, 30_000));

    let slot = &stats.apps["shop"].slots[&0];
    assert_eq!(slot.requests[&(Method::Get, 200)], 2);
    assert_eq!(slot.requests[&(Method::Get, 503)], 1);
    assert_eq!(slot.requests.len(), 2, "aborted requests get no status");
    assert_eq!(slot.failed[&(Method::Get, ErrorType::ServerError)], 1);
    let died = ErrorType::Aborted(AbortReason::WorkerDied);
    assert_eq!(slot.failed[&(Method::Post, died)], 1);

    let durations = &slot.durations[&Method::Get];
    assert_eq!(durations.count(), 3);
    assert_eq!(
        durations.cumulative().collect::<Vec<_>>(),
        [(0.1, 2), (0.25, 3)]
    );
    assert!(
        !slot.durations.contains_key(&Method::Post),
        "no duration for an abort"
    );
}

#[test]
fn a_replacement_worker_continues_its_slot_and_an_exit_clears_resources() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]);
    stats.worker_started(&app, 1, 20);
    stats.record(&app, 1, &request(Method::Get, Outcome::Status(200), 1));
    let sample = Resources {
        rss_bytes: 4096,
        pss_bytes: None,
        uss_bytes: None,
        cpu_percent: Some(12.5),
        uptime_seconds: 3.0,
    };
    stats.set_worker_resources("shop", 1, 20, sample);

    stats.worker_stopped("shop", 1);
    assert_eq!(stats.apps["shop"].live_workers(), 0);
    assert_eq!(stats.apps["shop"].slots[&1].resources, None);

    // A late sample of the dead worker must not land on its successor's slot.
    stats.worker_started(&app, 1, 21);
    stats.set_worker_resources("shop", 1, 20, sample);
    assert_eq!(stats.apps["shop"].slots[&1].resources, None);

    stats.record(&app, 1, &request(Method::Get, Outcome::Status(200), 1));
    assert_eq!(
        stats.apps["shop"].slots[&1].requests[&(Method::Get, 200)],
        2
    );
    assert_eq!(stats.apps["shop"].slots[&1].pid, Some(21));

    stats.remove_app("shop");
    assert!(stats.apps.is_empty());
}
