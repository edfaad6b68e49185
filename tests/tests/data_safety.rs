//! What flows through the watched sockets stays there: a secret carried in an Authorization
//! header, a cookie, a query string and a request body never shows up in /metrics, in the
//! observer's logs (even at trace level) or in its request log.

mod common;

use std::io::Read as _;
use std::sync::LazyLock;

use observer_tests::{Conn, Gunicorn, GunicornOpts, Observer, tempdir::TempDir};

use common::{by_method_status, expect, settled};

/// Unique to this test process (see `common::unique_app`).
static APP: LazyLock<String> = LazyLock::new(|| common::unique_app("data-safety"));

/// A value no other test, log line or metric could contain by chance.
fn unique_secret() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("tok{hex}")
}

fn request_with_secret(secret: &str, body: bool) -> Vec<u8> {
    let payload = format!("password={secret}");
    let mut request = format!(
        "{} /echo?token={secret} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {secret}\r\n\
         Cookie: theme=dark; session={secret}\r\nConnection: keep-alive\r\n",
        if body { "POST" } else { "GET" }
    );
    if body {
        request.push_str(&format!("Content-Length: {}\r\n", payload.len()));
    }
    request.push_str("\r\n");
    if body {
        request.push_str(&payload);
    }
    request.into_bytes()
}

#[test]
fn a_secret_in_headers_cookies_and_bodies_never_reaches_metrics_or_logs() {
    let secret = unique_secret();
    let dir = TempDir::new("data-safety");
    let request_log = dir.path().join("requests.jsonl");
    let observer = Observer::start(&[
        "--log",
        "trace",
        "--request-log",
        request_log.to_str().expect("utf-8 temp path"),
    ]);
    let gunicorn = Gunicorn::start(GunicornOpts::gthread(1, 2).arg(&format!("--name={}", *APP)));

    // Whole requests, and the same bytes dribbled so the secret straddles syscalls.
    let mut conn = Conn::open(gunicorn.addr()).expect("connect");
    for body in [false, true] {
        for _ in 0..5 {
            conn.write_raw(&request_with_secret(&secret, body))
                .expect("request");
            let method = if body { "POST" } else { "GET" };
            conn.read_response(method).expect("response");
        }
        for piece in request_with_secret(&secret, body).chunks(7) {
            conn.write_raw(piece).expect("piece");
        }
        conn.read_response(if body { "POST" } else { "GET" })
            .expect("response");
    }
    conn.close();

    // The app answers GET /echo 404 and echoes a POST's length.
    let after = settled(&observer, APP.as_str(), 12.0);
    assert_eq!(
        by_method_status(&after, APP.as_str()),
        expect(&[("GET", "404", 6.0), ("POST", "200", 6.0)])
    );

    let metrics = observer.scrape();
    assert!(!metrics.contains(&secret), "the secret is in /metrics");
    let (status, logs) = observer.stop_with_logs();
    assert!(status.success(), "observer exit: {status}");
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the observer did not log at trace level:\n{logs}"
    );
    assert!(
        !logs.contains(&secret),
        "the secret is in the observer's logs"
    );
    // Not even a fragment long enough to matter: the secret's second half alone.
    assert!(!logs.contains(&secret[secret.len() / 2..]));

    // The request log has a line for each request, with the route and no query.
    let lines = std::fs::read_to_string(&request_log).expect("request log");
    let ours: Vec<&str> = lines
        .lines()
        .filter(|line| line.contains(&format!(r#""app":"{}""#, *APP)))
        .collect();
    assert_eq!(ours.len(), 12, "{lines}");
    assert!(ours.iter().all(|line| line.contains(r#""route":"/echo","#)));
    assert!(!lines.contains(&secret[secret.len() / 2..]));
}
