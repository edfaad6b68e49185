//! Queueing before the worker: one sync worker held busy by a sleeping request, a small
//! `--backlog`, and connections the test itself puts in the accept queue.
//!
//! Everything asserted is under the test's control. A client's `connect()` returns once the
//! handshake is complete, and on loopback the server's side of it completes inside that
//! same call, so after N connects the accept queue of a busy worker holds exactly N. With
//! `--backlog 4` the kernel accepts into the queue while it holds at most 4 (it is "full"
//! only past the backlog), so 5 fit. A further SYN is dropped and counted by
//! `tcp_listendrop()`; closing the client socket before its 1 s SYN retransmit means each
//! extra client costs exactly one drop.

mod common;

use std::{
    net::SocketAddr,
    thread,
    time::{Duration, Instant},
};

use observer_tests::{Addr, Bind, Conn, Gunicorn, GunicornOpts, Metrics, Observer};

const DEPTH: &str = "gunicorn_listen_queue_depth";
const DEPTH_MAX: &str = "gunicorn_listen_queue_depth_max";
const BACKLOG: &str = "gunicorn_listen_backlog";
const OVERFLOWS: &str = "gunicorn_listen_overflows_total";
const WAIT_COUNT: &str = "gunicorn_listen_queue_wait_seconds_count";
const WAIT_BUCKET: &str = "gunicorn_listen_queue_wait_seconds_bucket";
const STATE: &str = "gunicorn_worker_state";

/// Sample the queues every second, so a held queue is seen within the hold.
const OBSERVER_ARGS: &[&str] = &["--sample-secs", "1"];
const WAIT: Duration = Duration::from_secs(15);
/// How long the first request holds the only worker. Long enough for several samples and
/// scrapes on a loaded machine; nothing is asserted about time itself.
const HOLD: &str = "/sleep/8000";
const BACKLOG_ARG: u32 = 4;

fn listener_label(addr: &Addr) -> String {
    addr.to_string()
}

fn value(metrics: &Metrics, name: &str, app: &str, listener: &str) -> Option<f64> {
    metrics.get(name, &[("app", app), ("listener", listener)])
}

fn busy(metrics: &Metrics, app: &str) -> bool {
    metrics.get(
        STATE,
        &[("app", app), ("worker_id", "0"), ("state", "busy")],
    ) == Some(1.0)
}

/// Sends `path` on a fresh connection without reading the answer.
fn send(addr: &Addr, path: &str) -> Conn {
    let mut conn = Conn::open(addr).expect("connecting to gunicorn");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    conn.write_raw(request.as_bytes())
        .expect("sending a request");
    conn
}

/// Reads each connection's response and closes it, so the worker moves on at once.
fn finish(conns: Vec<Conn>) {
    for mut conn in conns {
        let response = conn.read_response("GET").expect("reading a response");
        assert_eq!(response.status, 200);
        conn.close();
    }
}

/// Sends one SYN to `addr` and abandons the attempt before any retransmit: a non-blocking
/// connect, then close. Returns the connect's errno (EINPROGRESS when the SYN went out).
fn lone_syn(addr: SocketAddr) -> i32 {
    let SocketAddr::V4(v4) = addr else {
        panic!("the test binds IPv4")
    };
    let sockaddr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: plain socket calls on a descriptor this function owns and closes; the address
    // points at a live sockaddr_in of the length passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let rc = libc::connect(
            fd,
            (&raw const sockaddr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        let errno = if rc == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        };
        libc::close(fd);
        errno
    }
}

#[test]
fn a_flooded_tcp_listener_shows_depth_overflows_and_queue_wait() {
    let app = common::unique_app("queue-tcp");
    let app = app.as_str();
    let observer = Observer::start(OBSERVER_ARGS);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(1)
            .arg(&format!("--backlog={BACKLOG_ARG}"))
            .arg(&format!("--name={app}")),
    );
    let Addr::Tcp(socket_addr) = gunicorn.addr().clone() else {
        panic!("TCP bind expected")
    };
    let listener = listener_label(gunicorn.addr());

    // The listener is known (and its port in the kernel's map) before any traffic.
    let before = observer.wait_for_metrics(WAIT, "the listener's backlog", |m| {
        value(m, BACKLOG, app, &listener) == Some(f64::from(BACKLOG_ARG))
    });
    assert_eq!(value(&before, DEPTH, app, &listener), Some(0.0));
    assert_eq!(value(&before, OVERFLOWS, app, &listener), Some(0.0));
    assert_eq!(value(&before, WAIT_COUNT, app, &listener), Some(0.0));

    // The only worker takes the first request and sleeps on it.
    let holder = send(gunicorn.addr(), HOLD);
    observer.wait_for_metrics(WAIT, "the worker busy", |m| busy(m, app));

    // Five more connections fill the queue to its limit (backlog + 1) without a drop.
    let queued: Vec<Conn> = (0..BACKLOG_ARG + 1)
        .map(|_| send(gunicorn.addr(), "/"))
        .collect();
    let full = observer.wait_for_metrics(WAIT, "five connections queued", |m| {
        value(m, DEPTH, app, &listener) == Some(5.0)
    });
    assert_eq!(value(&full, DEPTH_MAX, app, &listener), Some(5.0));
    assert_eq!(value(&full, OVERFLOWS, app, &listener), Some(0.0));
    assert!(
        busy(&full, app),
        "the hold ended before the queue was seen full"
    );

    // Three more SYNs find the queue full: exactly three drops.
    for _ in 0..3 {
        assert_eq!(lone_syn(socket_addr), libc::EINPROGRESS);
    }
    observer.wait_for_metrics(WAIT, "three overflows", |m| {
        value(m, OVERFLOWS, app, &listener) == Some(3.0)
    });

    // The worker wakes and serves everyone: six accepts, six measured waits, an empty queue.
    finish(vec![holder]);
    finish(queued);
    let drained = observer.wait_for_metrics(WAIT, "six queue waits and an empty queue", |m| {
        value(m, WAIT_COUNT, app, &listener) == Some(6.0)
            && value(m, DEPTH, app, &listener) == Some(0.0)
    });
    assert_eq!(value(&drained, OVERFLOWS, app, &listener), Some(3.0));
    // The five queued behind a multi-second hold waited longer than the 0.5 s bucket; only
    // the holder, accepted by an idle worker, can be below it.
    let fast = drained
        .get(
            WAIT_BUCKET,
            &[("app", app), ("listener", &listener), ("le", "0.5")],
        )
        .expect("the 0.5 s bucket");
    assert!(fast <= 1.0, "{fast} waits under 0.5 s");

    // Nothing else moves afterwards (a scrape later, after another sample).
    thread::sleep(Duration::from_millis(2500));
    let later = observer.metrics();
    assert_eq!(value(&later, WAIT_COUNT, app, &listener), Some(6.0));
    assert_eq!(value(&later, OVERFLOWS, app, &listener), Some(3.0));
    assert_eq!(value(&later, DEPTH_MAX, app, &listener), Some(0.0));

    // The instance's listener series go with its master.
    drop(gunicorn);
    observer.wait_for_metrics(WAIT, "the listener series gone", |m| {
        value(m, BACKLOG, app, &listener).is_none()
            && value(m, WAIT_COUNT, app, &listener).is_none()
    });
}

#[test]
fn a_unix_listener_shows_its_depth_and_backlog() {
    let app = common::unique_app("queue-unix");
    let app = app.as_str();
    let observer = Observer::start(OBSERVER_ARGS);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(1)
            .bind(Bind::Unix)
            .arg(&format!("--backlog={BACKLOG_ARG}"))
            .arg(&format!("--name={app}")),
    );
    let listener = listener_label(gunicorn.addr());
    assert!(listener.starts_with("unix:/"), "{listener}");

    observer.wait_for_metrics(WAIT, "the unix listener's backlog", |m| {
        value(m, BACKLOG, app, &listener) == Some(f64::from(BACKLOG_ARG))
            && value(m, DEPTH, app, &listener) == Some(0.0)
    });

    let holder = send(gunicorn.addr(), HOLD);
    observer.wait_for_metrics(WAIT, "the worker busy", |m| busy(m, app));
    let started = Instant::now();
    let queued: Vec<Conn> = (0..3).map(|_| send(gunicorn.addr(), "/")).collect();
    let full = observer.wait_for_metrics(WAIT, "three unix connections queued", |m| {
        value(m, DEPTH, app, &listener) == Some(3.0)
    });
    assert_eq!(value(&full, DEPTH_MAX, app, &listener), Some(3.0));
    assert!(
        busy(&full, app),
        "the hold ended after {:?}",
        started.elapsed()
    );
    // A unix listener has no handshake to time and no drop counter.
    assert_eq!(value(&full, WAIT_COUNT, app, &listener), None);
    assert_eq!(value(&full, OVERFLOWS, app, &listener), None);

    finish(vec![holder]);
    finish(queued);
    observer.wait_for_metrics(WAIT, "the unix queue empty", |m| {
        value(m, DEPTH, app, &listener) == Some(0.0)
    });
}

/// Workers that recycle after every request (`--max-requests 1`) come and go between
/// samples; every accept is still timed. The hour-long sample interval leaves the first
/// worker's fork as the only time the listeners are read, so a worker tearing down must
/// never make them look gone.
#[test]
fn every_accept_of_a_recycling_instance_is_timed() {
    let app = common::unique_app("queue-recycle");
    let app = app.as_str();
    let observer = Observer::start(&["--sample-secs", "3600"]);
    let gunicorn = Gunicorn::start(
        GunicornOpts::sync(1)
            .arg("--max-requests=1")
            .arg(&format!("--name={app}")),
    );
    let listener = listener_label(gunicorn.addr());
    observer.wait_for_metrics(WAIT, "the listener", |m| {
        value(m, WAIT_COUNT, app, &listener) == Some(0.0)
    });

    const REQUESTS: u32 = 10;
    for _ in 0..REQUESTS {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    let done = observer.wait_for_metrics(WAIT, "every accept timed", |m| {
        value(m, WAIT_COUNT, app, &listener) == Some(f64::from(REQUESTS))
    });
    let restarts = done
        .get(
            "gunicorn_master_worker_restart_total",
            &[("app", app), ("reason", "max_requests")],
        )
        .unwrap_or(0.0);
    assert!(restarts >= f64::from(REQUESTS - 1), "{restarts} recycles");
}
