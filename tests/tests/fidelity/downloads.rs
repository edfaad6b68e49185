//! Scenarios 6 and 9: large responses to slow readers, a worker killed mid-transfer, and
//! sendfile against plain writes.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use observer_tests::GunicornOpts;

use crate::common::{FAILED, REQUESTS, access_by_method_status, by_method_status, expect};
use crate::scenario::{
    DURATION, RESPONSE_SIZE, Scenario, body_offset, read_throttled, small_receive_buffer,
};

const MIB: usize = 1 << 20;

/// GETs `path` with `Connection: close` and reads the answer at `rate` bytes a second.
/// Returns the raw bytes and the time from the request's write to the last byte read.
fn slow_get(s: &Scenario, path: &str, rate: f64) -> (Vec<u8>, Duration) {
    let mut stream = TcpStream::connect(s.tcp()).expect("connect");
    small_receive_buffer(&stream, 64 * 1024);
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let started = Instant::now();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    let raw = read_throttled(&mut stream, rate);
    (raw, started.elapsed())
}

/// The size and rate: 100 MiB to a client reading at 2 MiB/s, about 50 s.
#[test]
fn slow_download_lasts_until_the_last_byte() {
    // A sync worker does not beat its heartbeat while it serves, so the master's timeout
    // must outlast the transfer. Buckets around the expected end make it visible.
    let s = Scenario::observed_with(
        &["--duration-buckets", "10,40,120"],
        "fid-slow-download",
        "fidelity:application",
        GunicornOpts::sync(1).arg("--timeout=120"),
    );
    let size = 100 * MIB;
    let (raw, elapsed) = slow_get(&s, &format!("/bytes/{size}"), 2.0 * MIB as f64);
    assert_eq!(
        raw.len() - body_offset(&raw),
        size,
        "whole body on the wire"
    );

    let log = s.access_log(1);
    let metrics = s.settle(1.0);
    let want = expect(&[("GET", "200", 1.0)]);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");

    // The last write returns once all but the socket buffers' few MiB are read: after at
    // least (100 - 8) MiB / 2 MiB/s = 46 s. An end taken at the head or the first write
    // would be milliseconds.
    let h = s.histogram(&metrics, DURATION, &[]);
    assert_eq!((h.count(), h.le("40"), h.le("120")), (1.0, 0.0, 1.0));
    // The worker's last write returns before the client reads its last byte.
    assert!(
        h.sum() <= elapsed.as_secs_f64(),
        "observer {} s, client {elapsed:?}",
        h.sum()
    );
    assert_eq!(s.histogram(&metrics, RESPONSE_SIZE, &[]).sum(), size as f64);
}

#[test]
fn worker_killed_mid_download_is_an_aborted_request() {
    let s = Scenario::start(
        "fid-timeout-download",
        GunicornOpts::sync(1).arg("--timeout=2"),
    );
    // 100 MiB at 2 MiB/s would take 50 s; the master kills the silent worker after 2-3 s.
    let size = 100 * MIB;
    let (raw, _) = slow_get(&s, &format!("/bytes/{size}"), 2.0 * MIB as f64);
    let received = raw.len() - body_offset(&raw);
    assert!(received < size, "the body was cut short: {received} bytes");
    assert!(
        raw.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "the head had gone out"
    );

    let metrics = s.settle_failed(1.0);
    // A 200 head went out, but the response never finished: no status, one failure whose
    // type is the restart that cut it off.
    assert_eq!(metrics.sum(REQUESTS, &[("app", &s.app)]), 0.0, "no status");
    assert_eq!(
        metrics.by_label(FAILED, &[("app", &s.app)], "error_type"),
        [("timeout".to_owned(), 1.0)].into_iter().collect()
    );
    assert_eq!(
        metrics.get(
            "gunicorn_master_worker_restart_total",
            &[("app", &s.app), ("reason", "timeout")]
        ),
        Some(1.0)
    );
}

/// One 10 MiB `wsgi.file_wrapper` response read at 10 MiB/s, with Gunicorn's default
/// sendfile or `--no-sendfile`: counted, sized and ended the same way. `logged` is the body
/// size Gunicorn's access log gives.
fn file_response(app: &str, opts: GunicornOpts, logged: u64) {
    let s = Scenario::start(app, opts);
    let size = 10 * MIB;
    let (raw, elapsed) = slow_get(&s, &format!("/file/{size}"), 10.0 * MIB as f64);
    assert_eq!(raw.len() - body_offset(&raw), size);

    let log = s.access_log(1);
    let metrics = s.settle(1.0);
    let want = expect(&[("GET", "200", 1.0)]);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(log[0].bytes, Some(logged));
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");

    let body = s.histogram(&metrics, RESPONSE_SIZE, &[]);
    assert_eq!((body.count(), body.sum()), (1.0, size as f64));
    // The end is the last byte's sendfile or write: past 0.5 s at this rate, before the
    // client has read it.
    let h = s.histogram(&metrics, DURATION, &[]);
    assert_eq!((h.count(), h.le("0.5")), (1.0, 0.0));
    assert!(
        h.sum() <= elapsed.as_secs_f64(),
        "observer {} s, client {elapsed:?}",
        h.sum()
    );
}

#[test]
fn file_wrapper_response_with_sendfile() {
    // Gunicorn's access log is wrong here: its sendfile path does not add what it sent to
    // the byte count, so `%(b)s` reads 0 for a body of 10 MiB.
    file_response("fid-sendfile", GunicornOpts::sync(1), 0);
}

#[test]
fn file_wrapper_response_without_sendfile() {
    file_response(
        "fid-no-sendfile",
        GunicornOpts::sync(1).arg("--no-sendfile"),
        10 * MIB as u64,
    );
}
