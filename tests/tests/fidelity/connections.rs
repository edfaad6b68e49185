//! Scenarios 2 and 3: several requests on one connection, pipelined or one after the other;
//! and scenario 8, the same traffic over a unix socket.

use std::collections::BTreeMap;

use observer_tests::{Bind, Conn, GunicornOpts, http::encode_request};

use crate::common::{access_by_method_status, by_method_status, expect};
use crate::scenario::{DURATION, REQUEST_SIZE, RESPONSE_SIZE, Scenario};

/// Three GETs in one write; the client counts the responses that come back before the
/// connection ends. That count, not the number sent, is what the observer must show.
pub fn pipelined(app: &str, opts: GunicornOpts, answered: usize) {
    let s = Scenario::start(app, opts);
    let mut conn = Conn::open(s.gunicorn.addr()).expect("connect");
    let mut burst = Vec::new();
    for _ in 0..3 {
        burst.extend(encode_request("GET", "/", None, true));
    }
    conn.write_raw(&burst).expect("pipelined write");
    let mut seen = 0;
    while seen < 3 {
        match conn.read_response("GET") {
            Ok(response) => {
                assert_eq!((response.status, response.text().as_str()), (200, "hello"));
                seen += 1;
            }
            // The worker closed the connection after what it was willing to answer.
            Err(_) => break,
        }
    }
    conn.close();
    assert_eq!(seen, answered, "responses on the wire");

    let log = s.access_log(seen);
    let metrics = s.settle(seen as f64);
    let want = expect(&[("GET", "200", seen as f64)]);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");
}

#[test]
fn pipelined_gets_on_gthread_are_all_answered() {
    pipelined(
        "fid-pipeline-gthread",
        GunicornOpts::gthread(1, 4).arg("--keep-alive=5"),
        3,
    );
}

/// A sync worker answers one request per connection (`Connection: close`) and drops the
/// rest of what the client sent.
#[test]
fn pipelined_gets_on_sync_get_one_answer() {
    pipelined("fid-pipeline-sync", GunicornOpts::sync(1), 1);
}

#[test]
fn head_then_get_on_one_connection() {
    head_then_get(
        "fid-head-get",
        GunicornOpts::gthread(1, 4).arg("--keep-alive=5"),
        false,
    );
}

/// A HEAD and then a GET on one connection. `body_on_head`: the Gunicorn (before 26.1)
/// wrongly sends the body after a HEAD answer's head; the client reads it off the wire as
/// a GET answer would, and the observer must not take it for a response.
pub fn head_then_get(app: &str, opts: GunicornOpts, body_on_head: bool) {
    let s = Scenario::start(app, opts);
    let mut conn = Conn::open(s.gunicorn.addr()).expect("connect");
    conn.write_raw(&encode_request("HEAD", "/", None, true))
        .expect("HEAD");
    let head = conn
        .read_response(if body_on_head { "GET" } else { "HEAD" })
        .expect("HEAD answer");
    let wire_body: &[u8] = if body_on_head { b"hello" } else { b"" };
    assert_eq!((head.status, head.body.as_slice()), (200, wire_body));
    let get = conn.send("GET", "/", None, true).expect("GET");
    assert_eq!((get.status, get.text().as_str()), (200, "hello"));
    conn.close();

    let log = s.access_log(2);
    let metrics = s.settle(2.0);
    let want = expect(&[("GET", "200", 1.0), ("HEAD", "200", 1.0)]);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");
    // The HEAD answer announces 5 bytes and sends none; the GET sends them.
    let body = |method| {
        s.histogram(&metrics, RESPONSE_SIZE, &[("method", method)])
            .sum()
    };
    assert_eq!((body("HEAD"), body("GET")), (0.0, 5.0));
}

/// What the observer counted of [`mixed_exchange`].
#[derive(Debug, PartialEq)]
struct Counted {
    by_method_status: BTreeMap<(String, String), f64>,
    /// Request body bytes, response body bytes, durations observed.
    sizes: [f64; 3],
}

/// The same exchange on one kept-alive connection and on fresh ones: 10 GETs, 3 uploads
/// of 10 bytes, 2 answers of 404.
fn mixed_exchange(app: &str, bind: Bind) -> Counted {
    let s = Scenario::start(
        app,
        GunicornOpts::gthread(1, 4).arg("--keep-alive=5").bind(bind),
    );
    let mut kept = Conn::open(s.gunicorn.addr()).expect("connect");
    for i in 0..10 {
        let response = match i % 2 {
            0 => kept.send("GET", "/", None, true).expect("keep-alive GET"),
            _ => s.gunicorn.get("/"),
        };
        assert_eq!(response.status, 200);
    }
    for _ in 0..3 {
        let response = kept.send("POST", "/upload", Some(b"0123456789"), true);
        assert_eq!(response.expect("POST").text(), "10");
    }
    for _ in 0..2 {
        assert_eq!(s.gunicorn.get("/status/404").status, 404);
    }
    kept.close();

    let want = expect(&[
        ("GET", "200", 10.0),
        ("GET", "404", 2.0),
        ("POST", "200", 3.0),
    ]);
    assert_eq!(
        access_by_method_status(&s.access_log(15)),
        want,
        "access log"
    );
    let metrics = s.settle(15.0);
    let counted = by_method_status(&metrics, &s.app);
    assert_eq!(counted, want, "observer");
    let sizes = [
        s.histogram(&metrics, REQUEST_SIZE, &[]).sum(),
        s.histogram(&metrics, RESPONSE_SIZE, &[]).sum(),
        s.histogram(&metrics, DURATION, &[]).count(),
    ];
    Counted {
        by_method_status: counted,
        sizes,
    }
}

/// Scenario 8: behind nginx Gunicorn listens on a unix socket; every request counts exactly
/// as it does over TCP.
#[test]
fn unix_socket_bind_counts_as_tcp_does() {
    let tcp = mixed_exchange("fid-bind-tcp", Bind::Tcp);
    let unix = mixed_exchange("fid-bind-unix", Bind::Unix);
    // 30 bytes uploaded; 10 x "hello" and 3 x "10" answered (404s have no body).
    assert_eq!(tcp.sizes, [30.0, 56.0, 15.0]);
    assert_eq!(unix, tcp);
}
