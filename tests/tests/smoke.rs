//! Checks the harness itself against real Gunicorn, with no observer involved.

use std::time::Duration;

use observer_tests::{AccessEntry, Bind, Gunicorn, GunicornOpts, http};

#[test]
fn ten_gets_to_two_sync_workers_are_ten_access_log_lines() {
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2));
    let mut booted = gunicorn.booted_worker_pids();
    booted.sort_unstable();
    assert_eq!(booted.len(), 2);
    assert_eq!(booted, gunicorn.worker_pids());

    for _ in 0..10 {
        let response = gunicorn.get("/");
        assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    }

    let entries = gunicorn.wait_for_access_entries(10, Duration::from_secs(10));
    let expected = |entry: &AccessEntry| {
        (
            entry.method.as_str(),
            entry.path.as_str(),
            entry.status,
            entry.bytes,
        ) == ("GET", "/", 200, Some(5))
    };
    assert_eq!(entries.len(), 10);
    assert!(entries.iter().all(expected), "{entries:?}");
}

#[test]
fn every_route_answers_as_documented_over_a_unix_socket() {
    let gunicorn = Gunicorn::start(GunicornOpts::gthread(1, 4).bind(Bind::Unix));

    // (method, path, body, status, response text); /error's text is Gunicorn's own page.
    type Case = (
        &'static str,
        &'static str,
        Option<&'static [u8]>,
        u16,
        &'static str,
    );
    let cases: [Case; 6] = [
        ("GET", "/status/503", None, 503, ""),
        ("GET", "/sleep/20", None, 200, "slept"),
        ("POST", "/echo", Some(b"0123456789"), 200, "10"),
        ("GET", "/error", None, 500, ""),
        ("GET", "/nowhere", None, 404, ""),
        ("GET", "/status/204", None, 204, ""),
    ];
    for (method, path, body, status, text) in cases {
        let response = gunicorn.request(method, path, body);
        assert_eq!(response.status, status, "{method} {path}");
        if status != 500 {
            assert_eq!(response.text(), text, "{method} {path}");
        }
    }

    // gthread workers log after the response is sent, from whichever thread served it, so
    // the log's order need not be the order of the requests.
    let entries = gunicorn.wait_for_access_entries(cases.len(), Duration::from_secs(10));
    let mut statuses: Vec<u16> = entries.iter().map(|entry| entry.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 204, 404, 500, 503]);
    let slept = entries
        .iter()
        .find(|entry| entry.path == "/sleep/20")
        .expect("the /sleep/20 entry");
    assert!(slept.duration_us >= 20_000, "{slept:?}");
}

#[test]
fn keep_alive_serves_several_requests_on_one_gthread_connection() {
    let gunicorn = Gunicorn::start(GunicornOpts::gthread(1, 2));
    let mut conn = http::Conn::open(gunicorn.addr()).expect("connecting");
    for _ in 0..3 {
        let response = conn
            .send("GET", "/", None, true)
            .expect("keep-alive request");
        assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    }
    conn.close();

    let entries = gunicorn.wait_for_access_entries(3, Duration::from_secs(10));
    assert_eq!(entries.len(), 3);
}
