//! Scenarios 4 and 5: request bodies that take their time, and the interim 100 Continue.

use std::time::Duration;

use observer_tests::{Conn, GunicornOpts};

use crate::common::{REQUESTS, access_by_method_status, by_method_status, expect};
use crate::scenario::{DURATION, REQUEST_SIZE, RESPONSE_SIZE, Scenario, logged_seconds};

const CHUNK: usize = 1024;

#[test]
fn chunked_upload_duration_covers_the_upload() {
    chunked_upload(
        "fid-chunked",
        GunicornOpts::gthread(1, 4).arg("--keep-alive=5"),
    );
}

/// Five 1 KiB chunks, 200 ms apart.
pub fn chunked_upload(app: &str, opts: GunicornOpts) {
    let s = Scenario::start(app, opts);
    let mut conn = Conn::open(s.gunicorn.addr()).expect("connect");
    conn.write_raw(
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .expect("head");
    for i in 0..5 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
        chunk.extend(vec![b'u'; CHUNK]);
        chunk.extend_from_slice(b"\r\n");
        if i == 4 {
            chunk.extend_from_slice(b"0\r\n\r\n");
        }
        conn.write_raw(&chunk).expect("chunk");
    }
    let response = conn.read_response("POST").expect("response");
    assert_eq!((response.status, response.text()), (200, "5120".to_owned()));
    conn.close();

    let log = s.access_log(1);
    let metrics = s.settle(1.0);
    let want = expect(&[("POST", "200", 1.0)]);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");

    // Four 200 ms gaps lie between the first chunk and the last: a duration that stopped
    // at the head would be a few milliseconds.
    let h = s.histogram(&metrics, DURATION, &[("route", "/upload")]);
    assert_eq!((h.count(), h.le("0.5")), (1.0, 0.0));
    // Gunicorn times the body read too (its app reads it), and starts later than we do.
    assert!(
        h.sum() >= logged_seconds(&log) - 0.001,
        "observer {} s, access log {} s",
        h.sum(),
        logged_seconds(&log)
    );
    // The body as sent: five "400\r\n" + 1 KiB + "\r\n", then "0\r\n\r\n".
    let sent = 5 * (5 + CHUNK + 2) + 5;
    let request = s.histogram(&metrics, REQUEST_SIZE, &[]);
    assert_eq!((request.count(), request.sum()), (1.0, sent as f64));
    assert_eq!(s.histogram(&metrics, RESPONSE_SIZE, &[]).sum(), 4.0);
}

/// Sends a POST with `Expect: 100-continue`, waits for the interim answer where one comes
/// (`interim`), then the body.
fn expect_continue(conn: &mut Conn, version: &str, interim: bool) -> (Option<u16>, u16) {
    let head = format!(
        "POST /upload {version}\r\nHost: localhost\r\nExpect: 100-continue\r\n\
         Content-Length: 5\r\n\r\n"
    );
    conn.write_raw(head.as_bytes()).expect("head");
    let interim = interim.then(|| conn.read_response("POST").expect("100").status);
    conn.write_raw(b"hello").expect("body");
    let last = conn.read_response("POST").expect("final response");
    assert_eq!(last.text(), "5");
    (interim, last.status)
}

#[test]
fn expect_100_continue_counts_only_the_final_status() {
    // Gunicorn 27 sends 100 Continue to HTTP/1.1 only (RFC 9110 §10.1.1 lets a server
    // ignore the expectation from an HTTP/1.0 client).
    expect_100_continue(
        "fid-continue",
        GunicornOpts::gthread(1, 4).arg("--keep-alive=5"),
        false,
    );
}

/// One POST with `Expect: 100-continue` over HTTP/1.1 and one over HTTP/1.0, which gets
/// the interim answer too if `interim_on_http10`.
pub fn expect_100_continue(app: &str, opts: GunicornOpts, interim_on_http10: bool) {
    let s = Scenario::start(app, opts);
    let mut http11 = Conn::open(s.gunicorn.addr()).expect("connect");
    assert_eq!(
        expect_continue(&mut http11, "HTTP/1.1", true),
        (Some(100), 200)
    );
    http11.close();
    let mut http10 = Conn::open(s.gunicorn.addr()).expect("connect");
    let interim = interim_on_http10.then_some(100);
    assert_eq!(
        expect_continue(&mut http10, "HTTP/1.0", interim_on_http10),
        (interim, 200)
    );
    http10.close();

    let log = s.access_log(2);
    let metrics = s.settle(2.0);
    let want = expect(&[("POST", "200", 2.0)]);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");
    assert_eq!(metrics.sum(REQUESTS, &[("status", "100")]), 0.0);
    // Each request body is "hello" and each answer "5"; the interim head is not body.
    let request = s.histogram(&metrics, REQUEST_SIZE, &[]);
    assert_eq!((request.count(), request.sum()), (2.0, 10.0));
    assert_eq!(s.histogram(&metrics, RESPONSE_SIZE, &[]).sum(), 2.0);
}
