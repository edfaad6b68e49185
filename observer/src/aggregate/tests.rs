use std::sync::Arc;

use super::*;
use crate::{
    http::{AbortReason, Completed, ConnId, Method, Outcome, Route, RouteMode},
    lifecycle::RestartReason,
};

/// The id the first route an app sees gets: every request here is for `/x`.
const R: RouteId = 1;

fn request(method: Method, outcome: Outcome, duration_ms: u64) -> Completed {
    Completed {
        conn: ConnId { tgid: 10, fd: 5 },
        method,
        route: Route::of_target(b"/x", RouteMode::Template),
        outcome,
        start_ns: 1_000_000_000,
        end_ns: 1_000_000_000 + duration_ms * 1_000_000,
        request_bytes: 100,
        response_bytes: 200,
        request_body_bytes: 40,
        response_body_bytes: 150,
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
    assert_eq!(slot.requests[&(Method::Get, R, 200)], 2);
    assert_eq!(slot.requests[&(Method::Get, R, 503)], 1);
    assert_eq!(slot.requests.len(), 2, "aborted requests get no status");
    assert_eq!(slot.failed[&(Method::Get, R, ErrorType::ServerError)], 1);
    let died = ErrorType::Aborted(AbortReason::WorkerDied);
    assert_eq!(slot.failed[&(Method::Post, R, died)], 1);

    let durations = &slot.durations[&(Method::Get, R)];
    assert_eq!(durations.count(), 3);
    assert_eq!(
        durations.cumulative().collect::<Vec<_>>(),
        [(0.1, 2), (0.25, 3)]
    );
    assert!(
        !slot.durations.contains_key(&(Method::Post, R)),
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
        stats.apps["shop"].slots[&1].requests[&(Method::Get, R, 200)],
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
            (&(Method::Get, R, timeout), &1),
            (&(Method::Post, R, timeout), &1)
        ]
    );
    assert_eq!(
        slot.requests[&(Method::Get, R, 500)],
        1,
        "the 500 went on the wire"
    );
    assert_eq!(slot.requests[&(Method::Get, R, 200)], 1);
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

#[test]
fn body_sizes_of_answered_requests_fill_the_size_histograms() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]);
    stats.record(&app, 0, &request(Method::Get, Outcome::Status(200), 1));
    stats.record(&app, 0, &request(Method::Get, Outcome::Status(404), 1));
    let reset = Outcome::Aborted(AbortReason::ClientDisconnect);
    stats.record(&app, 0, &request(Method::Get, reset, 1));

    let slot = &stats.apps["shop"].slots[&0];
    let requests = &slot.request_sizes[&Method::Get];
    let responses = &slot.response_sizes[&Method::Get];
    assert_eq!((requests.count(), requests.sum()), (2, 80.0));
    assert_eq!((responses.count(), responses.sum()), (2, 300.0));
    // 40 B falls in the first decade, 150 B in the second.
    assert_eq!(requests.cumulative().next(), Some((100.0, 2)));
    assert_eq!(
        responses.cumulative().take(2).collect::<Vec<_>>(),
        [(100.0, 0), (1000.0, 2)]
    );
}

#[test]
fn routes_past_the_app_limit_fold_into_other() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]).with_route_limit(2);
    for (path, slot) in [("/a", 0), ("/b", 1), ("/c", 0), ("/d", 1), ("/a", 1)] {
        let mut r = request(Method::Get, Outcome::Status(200), 1);
        r.route = Route::of_target(path.as_bytes(), RouteMode::Template);
        stats.record(&app, slot, &r);
    }
    let app_stats = &stats.apps["shop"];
    let by_route = |slot: u32| {
        app_stats.slots[&slot]
            .requests
            .iter()
            .map(|(&(_, route, _), &n)| (app_stats.routes.name(route).as_str().to_owned(), n))
            .collect::<Vec<_>>()
    };
    // The cap is per app, across slots.
    assert_eq!(by_route(0), [("other".to_owned(), 1), ("/a".to_owned(), 1)]);
    assert_eq!(
        by_route(1),
        [
            ("other".to_owned(), 1),
            ("/a".to_owned(), 1),
            ("/b".to_owned(), 1)
        ]
    );
}

#[test]
fn in_flight_follows_the_slots_live_workers_only() {
    let app: Arc<str> = Arc::from("shop");
    let mut stats = Stats::new(&[1.0]);
    let in_flight =
        |stats: &Stats| -> usize { stats.apps["shop"].slots[&0].in_flight.values().sum() };
    stats.set_in_flight("shop", 0, 10, 3);
    assert!(
        stats.apps.is_empty(),
        "no slot is made for a worker not started"
    );
    stats.worker_started(&app, 0, 10);
    stats.set_in_flight("shop", 0, 10, 3);
    assert_eq!(in_flight(&stats), 3);
    stats.set_in_flight("shop", 0, 99, 5);
    assert_eq!(in_flight(&stats), 3, "pid 99 is not in the slot");

    // During a handover the leaving worker's last requests still count.
    stats.worker_started(&app, 0, 20);
    stats.set_in_flight("shop", 0, 20, 1);
    assert_eq!(in_flight(&stats), 4);
    stats.worker_stopped("shop", 0, 10);
    assert_eq!(in_flight(&stats), 1);
    stats.set_in_flight("shop", 0, 20, 0);
    assert_eq!(in_flight(&stats), 0);
}
