use std::sync::Arc;

use super::*;
use crate::{
    http::{AbortReason, Completed, ConnId, Method, Outcome},
    lifecycle::RestartReason,
};

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
        cpu_seconds: 0.5,
        uptime_seconds: 3.0,
        threads: 1,
        open_fds: Some(9),
    };
    stats.set_worker_resources("shop", 1, 20, sample);

    stats.worker_stopped("shop", 1, 20);
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

const S: u64 = 1_000_000_000;

#[test]
fn busy_time_accumulates_per_slot_across_workers_and_never_goes_back() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]);
    stats.worker_started(&app, 0, 10);
    let busy = |stats: &Stats, now: u64| stats.apps["shop"].slots[&0].busy_seconds(now);

    stats.worker_busy("shop", 0, 10, S);
    // A second request starting while busy does not restart the interval.
    stats.worker_busy("shop", 0, 10, 2 * S);
    assert_eq!(busy(&stats, 3 * S), 2.0, "the open interval counts");
    stats.worker_idle("shop", 0, 10, 3 * S);
    assert_eq!(busy(&stats, 100 * S), 2.0);

    // A scrape showed 2.5 s of an interval whose end (at 5.2 s) arrives after it.
    stats.worker_busy("shop", 0, 10, 5 * S);
    stats.rendering_at(7 * S + S / 2);
    assert_eq!(busy(&stats, 7 * S + S / 2), 4.5);
    stats.worker_idle("shop", 0, 10, 5 * S + S / 5);
    assert_eq!(busy(&stats, 8 * S), 4.5, "not back to 2.2");

    // The replacement worker continues the slot's counter.
    stats.worker_stopped("shop", 0, 10);
    stats.worker_started(&app, 0, 11);
    stats.worker_busy("shop", 0, 11, 10 * S);
    stats.worker_idle("shop", 0, 11, 11 * S);
    assert_eq!(busy(&stats, 20 * S), 5.5);

    // Busy or idle of a slot that does not exist changes nothing.
    stats.worker_busy("shop", 7, 11, S);
    stats.worker_idle("nope", 0, 11, S);
    assert!(!stats.apps["shop"].slots.contains_key(&7));
}

#[test]
fn restarts_count_per_slot_and_instance_and_a_scaled_down_slot_goes() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]);
    stats.master_started(&app);
    stats.worker_started(&app, 0, 10);
    stats.worker_started(&app, 1, 11);
    stats.record(&app, 0, &request(Method::Get, Outcome::Status(200), 1));

    stats.worker_stopped("shop", 0, 10);
    stats.worker_restarted(&app, 0, RestartReason::MaxRequests);
    stats.worker_stopped("shop", 1, 11);
    stats.worker_restarted(&app, 1, RestartReason::ScaleDown);
    stats.remove_slot("shop", 1);

    let shop = &stats.apps["shop"];
    assert_eq!(shop.slots[&0].restarts[&RestartReason::MaxRequests], 1);
    assert!(!shop.slots.contains_key(&1));
    assert_eq!(
        shop.restarts.iter().collect::<Vec<_>>(),
        [
            (&RestartReason::MaxRequests, &1),
            (&RestartReason::ScaleDown, &1)
        ]
    );
}

#[test]
fn failures_during_a_restart_take_its_reason() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]);
    let cause = Some(RestartReason::Timeout);
    // Gunicorn's 500 for the aborted request, and a request cut off at the exit.
    stats.record_with_cause(
        &app,
        0,
        &request(Method::Get, Outcome::Status(500), 9),
        cause,
    );
    let died = Outcome::Aborted(AbortReason::WorkerDied);
    stats.record_with_cause(&app, 0, &request(Method::Post, died, 9), cause);
    // A success is a success whatever happens to its worker.
    stats.record_with_cause(
        &app,
        0,
        &request(Method::Get, Outcome::Status(200), 9),
        cause,
    );

    let slot = &stats.apps["shop"].slots[&0];
    let timeout = ErrorType::Restart(RestartReason::Timeout);
    assert_eq!(
        slot.failed.iter().collect::<Vec<_>>(),
        [
            ((&(Method::Get, timeout)), &1),
            (&(Method::Post, timeout), &1)
        ]
    );
    assert_eq!(
        slot.requests[&(Method::Get, 500)],
        1,
        "the 500 went on the wire"
    );
    assert_eq!(slot.requests[&(Method::Get, 200)], 1);
    assert_eq!(timeout.as_str(), "timeout");
}

#[test]
fn a_handover_keeps_the_leaving_worker_in_its_slot_until_it_exits() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]);
    stats.worker_started(&app, 0, 10);
    let sample = |cpu_seconds| Resources {
        rss_bytes: 4096,
        pss_bytes: None,
        uss_bytes: None,
        cpu_percent: None,
        cpu_seconds,
        uptime_seconds: 3.0,
        threads: 1,
        open_fds: Some(9),
    };
    stats.set_worker_resources("shop", 0, 10, sample(2.0));
    // The old worker is busy with a long request when its successor takes the slot.
    stats.worker_busy("shop", 0, 10, S);
    stats.worker_started(&app, 0, 20);
    let slot = &stats.apps["shop"].slots[&0];
    assert_eq!((slot.pid, slot.leaving.as_slice()), (Some(20), &[10][..]));
    assert_eq!(
        slot.resources, None,
        "the old worker's sample is not the new one's"
    );
    assert_eq!(stats.apps["shop"].live_workers(), 2);

    // Both count CPU; only the holder's sample shows as the slot's gauges.
    stats.set_worker_resources("shop", 0, 10, sample(2.5));
    stats.set_worker_resources("shop", 0, 20, sample(0.25));
    let slot = &stats.apps["shop"].slots[&0];
    assert_eq!(slot.cpu.total(), Some(2.75));
    assert_eq!(slot.resources, Some(sample(0.25)));

    // The new worker goes busy, the old one finishes: the slot stays busy throughout.
    stats.worker_busy("shop", 0, 20, 2 * S);
    stats.worker_idle("shop", 0, 10, 3 * S);
    assert!(stats.apps["shop"].slots[&0].busy_since_ns.is_some());
    stats.worker_idle("shop", 0, 20, 4 * S);
    assert_eq!(stats.apps["shop"].slots[&0].busy_seconds(9 * S), 3.0);

    // The old worker exits: its CPU stays counted, the holder is untouched.
    stats.worker_stopped("shop", 0, 10);
    let slot = &stats.apps["shop"].slots[&0];
    assert_eq!((slot.pid, slot.leaving.len()), (Some(20), 0));
    assert_eq!(slot.cpu.total(), Some(2.75));
    assert_eq!(stats.apps["shop"].live_workers(), 1);
}

#[test]
fn only_a_slot_nothing_was_counted_in_is_removed_as_unused() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]);
    stats.worker_started(&app, 0, 10);
    stats.worker_started(&app, 2, 30);
    stats.remove_slot_if_unused("shop", 2);
    assert!(stats.apps["shop"].slots.contains_key(&2), "still held");
    stats.worker_stopped("shop", 2, 30);
    stats.remove_slot_if_unused("shop", 2);
    assert!(!stats.apps["shop"].slots.contains_key(&2));

    stats.record(&app, 0, &request(Method::Get, Outcome::Status(200), 1));
    stats.worker_stopped("shop", 0, 10);
    stats.remove_slot_if_unused("shop", 0);
    assert!(
        stats.apps["shop"].slots.contains_key(&0),
        "it has a request"
    );
}
