//! Scenario 12: async worker classes, where one worker has many requests in flight at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use observer_tests::{Conn, GunicornOpts, WorkerClass};

use crate::common::{access_by_method_status, by_method_status, expect};
use crate::scenario::{DURATION, IN_FLIGHT, Scenario};

const CONCURRENT: usize = 50;

/// Which access log the worker class writes.
#[derive(Clone, Copy)]
enum AccessLog {
    /// Gunicorn's, in the harness's format.
    Gunicorn,
    /// uvicorn's own lines, written through Gunicorn's access-log handler:
    /// `127.0.0.1:44038 - "GET /sleep/10 HTTP/1.1" 200`. They hold the method, the target
    /// (query included) and the status, but no body size and no duration, so only counts
    /// can be compared with them.
    Uvicorn,
}

/// (method, path, status) of each line of uvicorn's access log, once there are `count`.
fn uvicorn_access(s: &Scenario, count: usize) -> BTreeMap<(String, String, String), usize> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(s.gunicorn.access_log_path()).unwrap_or_default();
        let mut seen = BTreeMap::new();
        for line in text.lines() {
            let request_line = line.split('"').nth(1).unwrap_or_else(|| panic!("{line:?}"));
            let status = line.rsplit(' ').next().expect("status");
            let mut words = request_line.split(' ');
            let (method, target) = (words.next().expect("method"), words.next().expect("target"));
            *seen
                .entry((method.to_owned(), target.to_owned(), status.to_owned()))
                .or_default() += 1;
        }
        if seen.values().sum::<usize>() >= count || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `CONCURRENT` clients each GET /sleep/1000 at the same time from one worker; the
/// worker class's access log is checked too.
fn fifty_concurrent_seconds(app: &str, class: WorkerClass, module: &str, access_log: AccessLog) {
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
    match access_log {
        AccessLog::Gunicorn => {
            let log = s.access_log(CONCURRENT);
            assert_eq!(access_by_method_status(&log), want, "access log");
        }
        AccessLog::Uvicorn => {
            let key = ("GET".to_owned(), "/sleep/1000".to_owned(), "200".to_owned());
            let want = [(key, CONCURRENT)].into_iter().collect();
            assert_eq!(uvicorn_access(&s, CONCURRENT), want, "uvicorn's access log");
        }
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
        AccessLog::Gunicorn,
    );
}

#[test]
fn gunicorn_asgi_worker_fifty_concurrent_requests() {
    fifty_concurrent_seconds(
        "fid-asgi",
        WorkerClass::Asgi,
        "fidelity_asgi:application",
        AccessLog::Gunicorn,
    );
}

/// uvicorn writes its own format into Gunicorn's access log (see [`AccessLog::Uvicorn`]):
/// checked for method, path and status; durations only against the app's sleep.
#[test]
fn uvicorn_worker_fifty_concurrent_requests() {
    fifty_concurrent_seconds(
        "fid-uvicorn",
        WorkerClass::Uvicorn,
        "fidelity_asgi:application",
        AccessLog::Uvicorn,
    );
}
