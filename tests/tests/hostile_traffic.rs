//! Traffic a production Gunicorn sees that the happy-path tests do not: connections that
//! never make a request, heads over the 1 KiB capture, large and chunked bodies, sendfile
//! responses, and a unix-socket bind. Counts are checked against the access log.

mod common;

use std::io::Read as _;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use observer_tests::{Addr, Bind, Conn, Gunicorn, GunicornOpts, Observer};

use common::{FAILED, access_by_method_status, by_method_status, expect, settled, total};

const MIB: usize = 1 << 20;

fn tcp_addr(gunicorn: &Gunicorn) -> std::net::SocketAddr {
    match gunicorn.addr() {
        Addr::Tcp(addr) => *addr,
        Addr::Unix(path) => panic!("expected a TCP bind, got {}", path.display()),
    }
}

/// Ten of each: open and close, open and reset, and a half-close that waits for Gunicorn
/// to close its end. None of them sends a byte.
fn send_silent_connections(gunicorn: &Gunicorn) {
    for _ in 0..10 {
        Conn::open(gunicorn.addr()).expect("connect").close();
    }
    for _ in 0..10 {
        Conn::open(gunicorn.addr()).expect("connect").reset();
    }
    for _ in 0..10 {
        let mut stream = TcpStream::connect(tcp_addr(gunicorn)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream.shutdown(Shutdown::Write).expect("half-close");
        let mut rest = Vec::new();
        // Gunicorn answers a request-less EOF by closing; a reset is an answer too.
        let _ = stream.read_to_end(&mut rest);
        assert!(rest.is_empty(), "Gunicorn sent {rest:?} to a silent client");
    }
}

fn silent_connections_count_nothing(opts: GunicornOpts, app: &str) {
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(opts.arg(&format!("--name={app}")));
    let before = observer.metrics();

    send_silent_connections(&gunicorn);
    // Real requests afterwards prove the observer was watching this instance all along.
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/").status, 200);
    }

    let entries = gunicorn.wait_for_access_entries(5, Duration::from_secs(10));
    assert_eq!(entries.len(), 5);
    let after = settled(&observer, app, 5.0);
    assert_eq!(
        by_method_status(&after, app),
        expect(&[("GET", "200", 5.0)]),
        "only the real requests"
    );
    let failed = |m: &observer_tests::Metrics| m.sum(FAILED, &[("app", app)]);
    assert_eq!(failed(&after) - failed(&before), 0.0, "no aborted requests");
}

#[test]
fn silent_reset_and_half_closed_connections_count_nothing_on_sync_workers() {
    silent_connections_count_nothing(
        GunicornOpts::sync(2),
        &common::unique_app("hostile-silent-sync"),
    );
}

#[test]
fn silent_reset_and_half_closed_connections_count_nothing_on_gthread_workers() {
    silent_connections_count_nothing(
        GunicornOpts::gthread(2, 4),
        &common::unique_app("hostile-silent-gthread"),
    );
}

/// A chunked POST of `chunks` chunks of 1000 bytes each, to /upload.
fn chunked_upload(conn: &mut Conn, chunks: usize, keep_alive: bool) -> u16 {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut bytes = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..chunks {
        bytes.extend_from_slice(b"3e8\r\n");
        bytes.extend_from_slice(&[b'c'; 1000]);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    conn.write_raw(&bytes).expect("chunked upload");
    let response = conn.read_response("POST").expect("upload response");
    assert_eq!(response.text(), (chunks * 1000).to_string());
    response.status
}

/// A GET whose Cookie header alone is 3 KiB, three times the kernel's capture.
fn big_head_get(conn: &mut Conn, keep_alive: bool) -> u16 {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let cookie = "c".repeat(3 * 1024);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nCookie: session={cookie}\r\n\
         Connection: {connection}\r\n\r\n"
    );
    conn.write_raw(request.as_bytes())
        .expect("big-head request");
    conn.read_response("GET").expect("big-head response").status
}

/// Sends the large-message mix, over fresh connections and, with `keep_alive`, part of it
/// over one persistent connection. Returns nothing: the access log is the ground truth.
fn send_large_mix(gunicorn: &Gunicorn, keep_alive: bool) {
    let body = vec![b'p'; MIB];
    let mut kept = keep_alive.then(|| Conn::open(gunicorn.addr()).expect("connect"));
    let fresh = || Conn::open(gunicorn.addr()).expect("connect");

    for i in 0..10 {
        let status = match kept.as_mut() {
            Some(conn) if i % 2 == 0 => big_head_get(conn, true),
            _ => big_head_get(&mut fresh(), false),
        };
        assert_eq!(status, 200);
    }
    for i in 0..5 {
        let response = match kept.as_mut() {
            Some(conn) if i % 2 == 0 => conn.send("POST", "/upload", Some(&body), true),
            _ => fresh().send("POST", "/upload", Some(&body), false),
        }
        .expect("1 MiB POST");
        assert_eq!((response.status, response.text()), (200, MIB.to_string()));
    }
    for i in 0..5 {
        let status = match kept.as_mut() {
            Some(conn) if i % 2 == 0 => chunked_upload(conn, 1000, true),
            _ => chunked_upload(&mut fresh(), 1000, false),
        };
        assert_eq!(status, 200);
    }
    for path in ["/big/10485760", "/file/10485760"] {
        for i in 0..3 {
            let response = match kept.as_mut() {
                Some(conn) if i % 2 == 0 => conn.send("GET", path, None, true),
                _ => fresh().send("GET", path, None, false),
            }
            .expect("10 MiB response");
            assert_eq!((response.status, response.body.len()), (200, 10 * MIB));
        }
    }
    if let Some(conn) = kept {
        conn.close();
    }
}

fn large_messages_count_exactly(opts: GunicornOpts, app: &str, keep_alive: bool) {
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(
        opts.app("hostile:application")
            .arg(&format!("--name={app}")),
    );

    send_large_mix(&gunicorn, keep_alive);

    // 10 big-head GETs, 5 + 5 uploads, 3 + 3 ten-MiB answers.
    let expected = expect(&[("GET", "200", 16.0), ("POST", "200", 10.0)]);
    let entries = gunicorn.wait_for_access_entries(26, Duration::from_secs(20));
    assert_eq!(access_by_method_status(&entries), expected, "access log");
    let after = settled(&observer, app, 26.0);
    assert_eq!(by_method_status(&after, app), expected, "observer");
    assert_eq!(
        after.sum(FAILED, &[("app", app)]),
        0.0,
        "no aborted requests"
    );
}

#[test]
fn large_heads_bodies_chunked_uploads_and_sendfile_count_exactly_on_sync_workers() {
    large_messages_count_exactly(
        GunicornOpts::sync(2),
        &common::unique_app("hostile-large-sync"),
        false,
    );
}

#[test]
fn large_heads_bodies_chunked_uploads_and_sendfile_count_exactly_on_gthread_keep_alive() {
    large_messages_count_exactly(
        GunicornOpts::gthread(2, 4),
        &common::unique_app("hostile-large-gthread"),
        true,
    );
}

fn unix_socket_counts_exactly(opts: GunicornOpts, app: &str, keep_alive: bool) {
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(opts.bind(Bind::Unix).arg(&format!("--name={app}")));

    // Sync workers close every connection after one response; gthread keeps it.
    let mut kept = keep_alive.then(|| Conn::open(gunicorn.addr()).expect("connect"));
    for i in 0..100 {
        let response = match kept.as_mut() {
            Some(conn) if i % 3 == 0 => conn.send("GET", "/", None, true).expect("keep-alive GET"),
            _ => gunicorn.get("/"),
        };
        assert_eq!(response.status, 200);
    }
    if let Some(conn) = kept {
        conn.close();
    }
    for _ in 0..7 {
        assert_eq!(gunicorn.get("/status/404").status, 404);
    }
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/error").status, 500);
    }
    for _ in 0..3 {
        let response = gunicorn.request("POST", "/echo", Some(b"0123456789"));
        assert_eq!((response.status, response.text().as_str()), (200, "10"));
    }

    let expected = expect(&[
        ("GET", "200", 100.0),
        ("GET", "404", 7.0),
        ("GET", "500", 5.0),
        ("POST", "200", 3.0),
    ]);
    let entries = gunicorn.wait_for_access_entries(115, Duration::from_secs(10));
    assert_eq!(access_by_method_status(&entries), expected, "access log");
    let after = settled(&observer, app, 115.0);
    assert_eq!(by_method_status(&after, app), expected, "observer");
    assert_eq!(total(&after, app), 115.0);
}

#[test]
fn unix_socket_bind_counts_exactly_on_sync_workers() {
    unix_socket_counts_exactly(
        GunicornOpts::sync(2),
        &common::unique_app("hostile-unix-sync"),
        false,
    );
}

#[test]
fn unix_socket_bind_counts_exactly_on_gthread_workers() {
    unix_socket_counts_exactly(
        GunicornOpts::gthread(2, 4),
        &common::unique_app("hostile-unix-gthread"),
        true,
    );
}
