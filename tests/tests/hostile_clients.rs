//! Hostile clients against one real Gunicorn while well-formed traffic runs beside them:
//! binary garbage, a TLS ClientHello on the plain port, slowloris, 64 KiB of headers,
//! half-closes, resets mid-request and 10,000 idle keep-alive connections. The well-formed
//! requests must count exactly, every hostile connection must end up where the README says,
//! and the observer's per-connection state must go back to where it was.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::LazyLock;
use std::thread;
use std::time::Duration;

use observer_tests::{Addr, Conn, Gunicorn, GunicornOpts, Metrics, Observer, ProcView, http};

use common::{FAILED, access_by_method_status, by_method_status, expect, settled};

/// Unique to this test process (see `common::unique_app`).
static APP: LazyLock<String> = LazyLock::new(|| common::unique_app("hostile-clients"));
/// Plain GETs on fresh connections, sent from a thread while the hostile clients run.
const WELL_FORMED: usize = 200;
/// Keep-alive connections that make one request each and then sit idle.
const IDLE: usize = 10_000;
const GARBAGE: usize = 5;
const TLS_HELLOS: usize = 5;
const BIG_HEADS: usize = 3;
const HALF_CLOSES: usize = 5;
const RESETS: usize = 5;
const OPEN_CONNECTIONS: &str = "gunicorn_observer_open_connections";
const PARSE_ERRORS: &str = "gunicorn_observer_http_parse_errors_total";
const FALLBACKS: &str = "gunicorn_observer_http_fallbacks_total";
/// Growth of the observer's resident memory allowed while it follows the idle connections:
/// a few hundred bytes of state each, plus the hash table's growth.
const MAX_RSS_GROWTH_KIB: u64 = 64 * 1024;
const WAIT: Duration = Duration::from_secs(60);

fn tcp(gunicorn: &Gunicorn) -> std::net::SocketAddr {
    match gunicorn.addr() {
        Addr::Tcp(addr) => *addr,
        Addr::Unix(path) => panic!("expected a TCP bind, got {}", path.display()),
    }
}

/// Lets this process, and the Gunicorn it starts, hold `need` fds: raises the soft limit
/// to the hard one (raising the hard limit needs CAP_SYS_RESOURCE, which a container may
/// not grant).
fn raise_nofile(need: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer to a live rlimit.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    assert!(
        limit.rlim_max >= need,
        "RLIMIT_NOFILE hard limit {} is below the {need} fds this test needs",
        limit.rlim_max
    );
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: a valid pointer to a live rlimit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Sends `bytes`, half-closes, and returns everything Gunicorn answered.
fn send_and_drain(gunicorn: &Gunicorn, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(tcp(gunicorn)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    stream.write_all(bytes).expect("send");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = Vec::new();
    // A reset after Gunicorn's answer is still an answer.
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// 4 KiB from a fixed xorshift sequence, starting with a NUL so it is never a method.
fn garbage(seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    let mut bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    bytes[0] = 0;
    bytes
}

/// A TLS 1.2 record carrying a ClientHello with one cipher suite and no extensions.
fn client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03]; // client_version TLS 1.2
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // session id: none
    hello.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// A GET with 82 headers of 800 bytes: over 64 KiB of head, within Gunicorn's limits of 100
/// fields of 8190 bytes.
fn big_head() -> Vec<u8> {
    let mut head = String::from("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for i in 0..82 {
        head.push_str(&format!("X-Filler-{i:02}: {}\r\n", "h".repeat(800)));
    }
    head.push_str("\r\n");
    assert!(head.len() > 64 * 1024);
    head.into_bytes()
}

/// The whole head at one byte a second, as the issue describes slowloris: every read the
/// worker makes is one byte, the request line included.
fn slowloris(addr: Addr) {
    let request = http::encode_request("GET", "/", None, false);
    let mut conn = Conn::open(&addr).expect("connect");
    for byte in &request {
        conn.write_raw(std::slice::from_ref(byte)).expect("dribble");
        thread::sleep(Duration::from_secs(1));
    }
    let response = conn.read_response("GET").expect("slowloris response");
    assert_eq!(response.status, 200);
}

fn busy_workers(metrics: &Metrics) -> f64 {
    metrics.sum(
        "gunicorn_worker_state",
        &[("app", APP.as_str()), ("state", "busy")],
    )
}

fn client_disconnects(metrics: &Metrics) -> f64 {
    metrics.sum(
        FAILED,
        &[("app", APP.as_str()), ("error_type", "client_disconnect")],
    )
}

/// A POST whose body stops after 100 of 1000 bytes, reset once the worker is reading it.
/// Waiting for the observer to show the worker busy makes sure the head was read before the
/// reset, so the request exists for both sides.
fn reset_mid_request(observer: &Observer, gunicorn: &Gunicorn, done: usize) {
    let mut conn = Conn::open(gunicorn.addr()).expect("connect");
    let mut partial =
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n".to_vec();
    partial.extend_from_slice(&[b'r'; 100]);
    conn.write_raw(&partial).expect("partial POST");
    observer.wait_for_metrics(WAIT, "the worker reading the partial POST", |m| {
        busy_workers(m) == 1.0
    });
    conn.reset();
    observer.wait_for_metrics(WAIT, "the reset POST counted as a disconnect", |m| {
        client_disconnects(m) == (done + 1) as f64
    });
}

/// Opens `count` keep-alive connections from four threads, one GET each, and keeps them.
fn open_idle(addr: &Addr, count: usize) -> Vec<Conn> {
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let addr = addr.clone();
            let share = count / 4 + usize::from(i < count % 4);
            thread::spawn(move || {
                (0..share)
                    .map(|_| {
                        let mut conn = Conn::open(&addr).expect("connect an idle connection");
                        let response = conn.send("GET", "/", None, true).expect("keep-alive GET");
                        assert_eq!(response.status, 200);
                        conn
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("idle-connection thread"))
        .collect()
}

#[test]
fn hostile_clients_leave_well_formed_counts_exact_and_connection_state_bounded() {
    // The client ends here, half the server ends in each of the two workers.
    raise_nofile(IDLE as u64 + 1024);
    let gunicorn = Gunicorn::start(
        GunicornOpts::gthread(2, 8)
            .arg(&format!("--name={}", *APP))
            .arg("--keep-alive=600")
            .arg("--worker-connections=8000"),
    );
    // The open-connection gauge and the parse-error counter are host-wide: show the observer
    // this Gunicorn only, so other ones on a shared machine do not move them.
    let mut pids = gunicorn.worker_pids();
    pids.push(gunicorn.master_pid());
    let view = ProcView::of(&pids);
    let observer = Observer::start(&["--proc-root", view.path().to_str().expect("utf-8")]);
    observer.wait_for_metrics(WAIT, "the instance found", |m| {
        common::worker_info(m, APP.as_str()).len() == 2
    });
    let before = observer.metrics();
    let open_before = before.sum(OPEN_CONNECTIONS, &[]);
    let rss_before = rss_kib(observer.pid());

    // Resets first, alone: they wait on the busy gauge, which other traffic would disturb.
    for done in 0..RESETS {
        reset_mid_request(&observer, &gunicorn, done);
    }

    let steady = {
        let addr = gunicorn.addr().clone();
        thread::spawn(move || {
            for _ in 0..WELL_FORMED {
                assert_eq!(http::get(&addr, "/").expect("well-formed GET").status, 200);
            }
        })
    };
    let slow = {
        let addr = gunicorn.addr().clone();
        thread::spawn(move || slowloris(addr))
    };

    let mut bad_requests = 0;
    // Gunicorn 27 closes a ClientHello's connection without a word.
    let mut unanswered = 0;
    for i in 0..GARBAGE {
        let answer = send_and_drain(&gunicorn, &garbage(i as u64 + 1));
        bad_requests += usize::from(answer.starts_with(b"HTTP/1.1 400 "));
    }
    assert_eq!(bad_requests, GARBAGE, "Gunicorn answers binary garbage 400");
    for _ in 0..TLS_HELLOS {
        let answer = send_and_drain(&gunicorn, &client_hello());
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 400 "),
            "Gunicorn answered a ClientHello with {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        );
        bad_requests += usize::from(!answer.is_empty());
        unanswered += usize::from(answer.is_empty());
    }
    for _ in 0..BIG_HEADS {
        let answer = send_and_drain(&gunicorn, &big_head());
        assert!(
            answer.starts_with(b"HTTP/1.1 200 "),
            "64 KiB head not answered 200"
        );
    }
    for _ in 0..HALF_CLOSES {
        let request = http::encode_request("GET", "/", None, false);
        let answer = send_and_drain(&gunicorn, &request);
        assert!(
            answer.starts_with(b"HTTP/1.1 200 "),
            "half-closed GET not answered"
        );
    }

    let idle = open_idle(gunicorn.addr(), IDLE);
    steady.join().expect("well-formed traffic");
    slow.join().expect("slowloris");

    // Every idle connection is followed; then closing them drops every byte of their state.
    let held = observer.wait_for_metrics(WAIT, "the idle connections followed", |m| {
        m.sum(OPEN_CONNECTIONS, &[]) >= open_before + IDLE as f64
    });
    let rss_held = rss_kib(observer.pid());
    for conn in idle {
        conn.close();
    }
    observer.wait_for_metrics(WAIT, "connection state back to its baseline", |m| {
        m.sum(OPEN_CONNECTIONS, &[]) == open_before
    });
    let rss_after = rss_kib(observer.pid());
    eprintln!(
        "observer RSS: {rss_before} KiB before, {rss_held} KiB following {} connections, \
         {rss_after} KiB after they closed",
        held.sum(OPEN_CONNECTIONS, &[])
    );

    let good = (WELL_FORMED + 1 + BIG_HEADS + HALF_CLOSES + IDLE) as f64;
    let entries = gunicorn.wait_for_access_entries(good as usize, WAIT);
    assert_eq!(
        access_by_method_status(&entries),
        expect(&[("GET", "200", good)]),
        "access log"
    );
    let after = settled(&observer, APP.as_str(), good + bad_requests as f64);
    assert_eq!(
        by_method_status(&after, APP.as_str()),
        expect(&[("GET", "200", good), ("other", "400", bad_requests as f64)]),
        "observer: the well-formed requests, and Gunicorn's own 400s"
    );
    let failed = |method: &str| {
        after.sum(
            FAILED,
            &[
                ("app", APP.as_str()),
                ("method", method),
                ("error_type", "client_disconnect"),
            ],
        )
    };
    assert_eq!(failed("POST"), RESETS as f64, "the resets");
    // Bytes that were read and never answered are an aborted request of an unknown method;
    // the client's half-close is what the kernel saw end it.
    assert_eq!(
        failed("other"),
        unanswered as f64,
        "unanswered ClientHellos"
    );
    assert_eq!(
        after.sum(FAILED, &[("app", APP.as_str())]),
        (RESETS + unanswered) as f64,
        "nothing else failed"
    );
    let problems = |m: &Metrics| {
        let mut all = m.by_label(PARSE_ERRORS, &[], "problem");
        for (reason, count) in m.by_label(FALLBACKS, &[], "reason") {
            *all.entry(reason).or_default() += count;
        }
        all
    };
    let (problems_before, problems_after) = (problems(&before), problems(&after));
    let new: Vec<(String, f64)> = problems_after
        .iter()
        .map(|(problem, count)| {
            let was = problems_before.get(problem).copied().unwrap_or(0.0);
            (problem.clone(), count - was)
        })
        .filter(|(_, count)| *count != 0.0)
        .collect();
    eprintln!("problems counted: {new:?}");
    assert_eq!(
        new,
        [("truncated_head".to_owned(), (GARBAGE + BIG_HEADS) as f64)],
        "a head that does not end within the 1 KiB capture: each garbage connection and \
         each 64 KiB head (a short ClientHello is an unfinished head, counted as failed)"
    );
    assert!(
        rss_held.saturating_sub(rss_before) <= MAX_RSS_GROWTH_KIB,
        "observer RSS grew from {rss_before} KiB to {rss_held} KiB"
    );
}
