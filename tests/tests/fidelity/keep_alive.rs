//! Scenario 1: requests on one kept-alive connection each take their own time, never the
//! idle time between them.

use std::time::Duration;

use observer_tests::{Conn, GunicornOpts};

use crate::common::{access_by_method_status, by_method_status, expect};
use crate::scenario::{DURATION, IN_FLIGHT, Scenario, logged_seconds, tolerance};

#[test]
fn three_gets_a_second_apart_each_take_200_ms() {
    keep_alive(
        "fid-keepalive",
        GunicornOpts::gthread(1, 4).arg("--keep-alive=5"),
    );
}

/// Three GETs of a 200 ms endpoint on one connection, a second apart.
pub fn keep_alive(app: &str, opts: GunicornOpts) {
    let s = Scenario::start(app, opts);
    let mut conn = Conn::open(s.gunicorn.addr()).expect("connect");
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let response = conn.send("GET", "/sleep/200", None, true).expect("GET");
        assert_eq!(response.status, 200);
    }
    conn.close();

    let log = s.access_log(3);
    let metrics = s.settle(3.0);
    let want = expect(&[("GET", "200", 3.0)]);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");

    // All three fall in (0.1 s, 0.25 s]: a duration holding the 1 s keep-alive gaps, or the
    // connection's life, would land past 1 s.
    let h = s.histogram(&metrics, DURATION, &[("route", "/sleep/:id")]);
    assert_eq!(h.count(), 3.0);
    assert_eq!(h.le("0.1"), 0.0);
    assert_eq!(h.le("0.25"), 3.0);
    // Never shorter than the app's sleep; and as long as Gunicorn's own timing.
    assert!(h.sum() >= 0.6, "sum {}", h.sum());
    let logged = logged_seconds(&log);
    assert!(
        (h.sum() - logged).abs() <= tolerance(&log),
        "observer {} s, access log {logged} s",
        h.sum()
    );
    assert_eq!(
        metrics.get(IN_FLIGHT, &[("app", &s.app), ("worker_id", "0")]),
        Some(0.0)
    );
}
