//! Scenario 12: async worker classes, where one worker has many requests in flight at once.

use observer_tests::{Conn, GunicornOpts, WorkerClass};

use crate::common::{access_by_method_status, by_method_status, expect};
use crate::scenario::{DURATION, IN_FLIGHT, Scenario};

const CONCURRENT: usize = 50;

/// `CONCURRENT` clients each GET /sleep/1000 at the same time from one worker. With
/// `access_log`, Gunicorn's log (in the harness's format) is checked too.
fn fifty_concurrent_seconds(app: &str, class: WorkerClass, module: &str, access_log: bool) {
    let s = Scenario::serving(
        app,
        module,
        GunicornOpts::sync(1)
            .worker_class(class)
            .arg("--worker-connections=200"),
    );
    let addr = s.gunicorn.addr().clone();
    let clients: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr).expect("connect");
                let response = conn.send("GET", "/sleep/1000", None, false).expect("GET");
                conn.close();
                response.status
            })
        })
        .collect();
    let statuses: Vec<u16> = clients
        .into_iter()
        .map(|client| client.join().expect("client thread"))
        .collect();
    assert_eq!(statuses, [200; CONCURRENT]);

    let want = expect(&[("GET", "200", CONCURRENT as f64)]);
    if access_log {
        let log = s.access_log(CONCURRENT);
        assert_eq!(access_by_method_status(&log), want, "access log");
    }
    let metrics = s.settle(CONCURRENT as f64);
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");

    // Each one is the app's full second and no more than a loaded machine adds: none at or
    // under 1 s, all by 2.5 s. Requests overlapping on one worker do not share a clock.
    let h = s.histogram(&metrics, DURATION, &[("route", "/sleep/:id")]);
    assert_eq!(h.count(), CONCURRENT as f64);
    assert_eq!(h.le("1"), 0.0);
    assert_eq!(h.le("2.5"), CONCURRENT as f64);
    assert_eq!(
        metrics.get(IN_FLIGHT, &[("app", &s.app), ("worker_id", "0")]),
        Some(0.0)
    );
}

#[test]
fn gevent_worker_fifty_concurrent_requests() {
    fifty_concurrent_seconds(
        "fid-gevent",
        WorkerClass::Gevent,
        "fidelity:application",
        true,
    );
}

#[test]
fn gunicorn_asgi_worker_fifty_concurrent_requests() {
    fifty_concurrent_seconds(
        "fid-asgi",
        WorkerClass::Asgi,
        "fidelity_asgi:application",
        true,
    );
}

/// uvicorn writes its own access log format into Gunicorn's access log, so the client's
/// count is the only ground truth here.
#[test]
fn uvicorn_worker_fifty_concurrent_requests() {
    fifty_concurrent_seconds(
        "fid-uvicorn",
        WorkerClass::Uvicorn,
        "fidelity_asgi:application",
        false,
    );
}
