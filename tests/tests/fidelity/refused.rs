//! Scenarios 10 and 11: HTTP/1.0 framing, bare line feeds, and the heads Gunicorn refuses
//! itself before the app runs. Gunicorn's access log omits what it refuses, so the status
//! the client read is the truth the observer must match.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use observer_tests::GunicornOpts;

use crate::common::{access_by_method_status, by_method_status, expect};
use crate::scenario::{RESPONSE_SIZE, Scenario, body_offset};

/// Writes `request` on a fresh connection and reads until Gunicorn closes it.
fn exchange(s: &Scenario, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(s.tcp()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    stream.write_all(request).expect("request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("response");
    raw
}

fn status_of(raw: &[u8]) -> u16 {
    let line = String::from_utf8_lossy(&raw[..raw.len().min(12)]).into_owned();
    line.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {:?}", String::from_utf8_lossy(raw)))
}

#[test]
fn http10_response_without_length_ends_at_close() {
    let s = Scenario::start("fid-http10", GunicornOpts::sync(1));
    let raw = exchange(&s, b"GET /nolength/5000 HTTP/1.0\r\n\r\n");
    assert_eq!(status_of(&raw), 200);
    let head = String::from_utf8_lossy(&raw[..body_offset(&raw)]).to_lowercase();
    assert!(
        !head.contains("content-length") && !head.contains("chunked"),
        "{head}"
    );
    assert_eq!(raw.len() - body_offset(&raw), 5000);

    let log = s.access_log(1);
    let metrics = s.settle(1.0);
    let want = expect(&[("GET", "200", 1.0)]);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");
    assert_eq!(s.histogram(&metrics, RESPONSE_SIZE, &[]).sum(), 5000.0);
}

#[test]
fn errors_gunicorn_answers_itself_are_counted() {
    // Gunicorn 27 answers an oversized request line 414, not the 400 older ones sent, and
    // refuses bare LF line ends as an invalid request line.
    refused_heads(
        "fid-refused",
        GunicornOpts::sync(1),
        414,
        Some((b"GET / HTTP/1.1\nHost: a\n\n", 400)),
    );
}

/// Heads Gunicorn answers itself: an oversized request line (answered `long_line`), too
/// many header fields and an oversized one (431), and `extra`, a request with the status
/// it gets.
pub fn refused_heads(app: &str, opts: GunicornOpts, long_line: u16, extra: Option<(&[u8], u16)>) {
    // Default limits (a 4094-byte request line, 100 header fields) but 2000 bytes a field:
    // a head past the default 8190 would be longer than what Gunicorn reads before it
    // answers, and closing on unread bytes sends a reset that can beat the answer.
    let s = Scenario::start(app, opts.arg("--limit-request-field_size=2000"));
    let long_line_request = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(5000));
    let many_fields: String = (0..150).map(|i| format!("X-{i}: y\r\n")).collect();
    let many_fields = format!("GET / HTTP/1.1\r\nHost: a\r\n{many_fields}\r\n");
    let long_field = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(3000)
    );
    let mut cases: Vec<(&[u8], u16)> = vec![
        (long_line_request.as_bytes(), long_line),
        (many_fields.as_bytes(), 431),
        (long_field.as_bytes(), 431),
    ];
    cases.extend(extra);
    let mut want = BTreeMap::from([(("GET".to_owned(), "200".to_owned()), 1.0)]);
    for (request, status) in &cases {
        assert_eq!(status_of(&exchange(&s, request)), *status);
        *want
            .entry(("GET".to_owned(), status.to_string()))
            .or_default() += 1.0;
    }
    // One ordinary request afterwards: the access log then holds exactly that one.
    assert_eq!(s.gunicorn.get("/").status, 200);

    let log = s.access_log(1);
    assert_eq!(
        access_by_method_status(&log),
        expect(&[("GET", "200", 1.0)]),
        "Gunicorn's access log omits the refused heads"
    );
    let metrics = s.settle(cases.len() as f64 + 1.0);
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");
}
