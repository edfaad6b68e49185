//! Scenario 7: clients that go away mid-response and before it. No status is invented.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use observer_tests::{Conn, GunicornOpts};

use crate::common::{FAILED, REQUESTS};
use crate::scenario::Scenario;

/// Closes with an RST, as a crashed client would.
fn reset(stream: TcpStream) {
    let conn = Conn::from_tcp(stream);
    conn.reset();
}

#[test]
fn resets_mid_response_and_before_it_are_client_disconnects() {
    let s = Scenario::start("fid-disconnect", GunicornOpts::sync(1));

    // Mid-response: the head and 1 MiB of a 64 MiB body arrive, then the reset.
    let mut stream = TcpStream::connect(s.tcp()).expect("connect");
    stream
        .write_all(b"GET /bytes/67108864 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut got = vec![0u8; 1 << 20];
    stream.read_exact(&mut got).expect("the first MiB");
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    reset(stream);

    // Before the head: the app is still sleeping when the reset arrives.
    let mut stream = TcpStream::connect(s.tcp()).expect("connect");
    stream
        .write_all(b"GET /sleep/300 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    std::thread::sleep(Duration::from_millis(50));
    reset(stream);

    let metrics = s.settle_failed(2.0);
    assert_eq!(
        metrics.by_label(FAILED, &[("app", &s.app)], "error_type"),
        [("client_disconnect".to_owned(), 2.0)]
            .into_iter()
            .collect()
    );
    // No 4xx or any other status was made up for them.
    assert_eq!(metrics.sum(REQUESTS, &[("app", &s.app)]), 0.0);

    // Gunicorn's access log is wrong here: it logs in a `finally` after the failed write,
    // with the status the app chose, so both read 200 though no answer ever arrived whole.
    let log = s.access_log(2);
    let statuses: Vec<u16> = log.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [200, 200], "{log:?}");
}
