//! Requests that end without a complete response, and connections that carry none.

use super::*;

const POST_10: &[u8] = b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

fn errno(e: i32) -> i64 {
    -i64::from(e)
}

#[test]
fn client_eof_before_the_response() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.read(3, 1_000, POST_10);
    sim.read(3, 1_100, b"0123");
    sim.eof(3, 1_200);
    assert_eq!(sim.take(), []);

    // Gunicorn gives up on the short body and closes: the request ended at the EOF.
    sim.shutdown(3, 1_300);
    assert_eq!(
        sim.take(),
        [aborted(
            3,
            Method::Post,
            AbortReason::ClientDisconnect,
            (1_000, 1_200),
            (44, 0)
        )]
    );
    sim.close(3, 1_400);
    assert_eq!(sim.take(), []);
    assert!(sim.table.is_empty());
}

#[test]
fn client_half_close_still_gets_its_response() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.read(3, 1_000, GET);
    sim.eof(3, 1_050);
    sim.write(3, 1_100, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    sim.close(3, 1_200);
    assert_eq!(
        sim.take(),
        [done(3, Method::Get, 200, (1_000, 1_100), (18, 38))]
    );
}

#[test]
fn headers_out_but_body_cut_short_is_aborted_at_close() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.read(3, 1_000, GET);
    sim.write(3, 1_100, &head_with_length("200 OK", 1_000));
    sim.write(3, 1_200, &filler(400));
    sim.close(3, 1_300);
    assert_eq!(
        sim.take(),
        [aborted(
            3,
            Method::Get,
            AbortReason::ClientDisconnect,
            (1_000, 1_300),
            (18, 83 + 400)
        )]
    );
}

#[test]
fn process_exit_mid_request() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.accept(4, 0);
    sim.accept(5, 0);
    sim.accept(6, 0);
    // fd 3: waiting on the app. fd 4: headers sent, body cut short. fd 5: idle keep-alive.
    // fd 6: a close-delimited body that may or may not have been finished.
    sim.read(3, 1_000, GET);
    sim.read(4, 1_010, GET);
    sim.write(4, 1_020, &head_with_length("200 OK", 50));
    sim.read(5, 1_030, GET);
    sim.write(5, 1_040, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    sim.read(6, 1_050, b"GET / HTTP/1.0\r\n\r\n");
    sim.write(6, 1_060, b"HTTP/1.0 200 OK\r\n\r\nstreaming");
    assert_eq!(
        sim.take(),
        [done(5, Method::Get, 200, (1_030, 1_040), (18, 38))]
    );

    // Another worker's connection is untouched.
    let other = ConnId {
        tgid: TGID + 1,
        fd: 3,
    };
    sim.table
        .on_accept(other, 0, &mut |_| panic!("nothing to emit"));

    sim.exit(TGID, 2_000);
    assert_eq!(
        sim.take(),
        [
            aborted(
                3,
                Method::Get,
                AbortReason::WorkerDied,
                (1_000, 2_000),
                (18, 0)
            ),
            aborted(
                4,
                Method::Get,
                AbortReason::WorkerDied,
                (1_010, 2_000),
                (18, 81)
            ),
            aborted(
                6,
                Method::Get,
                AbortReason::WorkerDied,
                (1_050, 2_000),
                (18, 28)
            ),
        ]
    );
    assert_eq!(sim.table.len(), 1);
}

#[test]
fn silent_connections_produce_nothing() {
    let mut sim = Sim::new();
    // Opened and closed.
    sim.accept(3, 0);
    sim.close(3, 10);
    // EOF at once (a health check's TCP connect), then Gunicorn's shutdown and close.
    sim.accept(3, 20);
    sim.eof(3, 30);
    sim.shutdown(3, 40);
    sim.close(3, 50);
    // Non-blocking reads with nothing to read, then the keep-alive timeout.
    sim.accept(4, 60);
    sim.read_ret(4, 70, errno(libc::EAGAIN), b"");
    sim.read_ret(4, 80, errno(libc::EINTR), b"");
    sim.close(4, 90);
    // A worker exit with an idle connection.
    sim.accept(5, 100);
    sim.exit(TGID, 110);
    assert_eq!(sim.take(), []);
    assert!(sim.table.is_empty());
}

#[test]
fn epipe_and_reset_mean_the_client_left() {
    for (fd, err) in [(3, libc::EPIPE), (4, libc::ECONNRESET)] {
        let mut sim = Sim::new();
        sim.accept(fd, 0);
        sim.read(fd, 1_000, GET);
        sim.write(fd, 1_100, &head_with_length("200 OK", 5_000));
        sim.write_ret(fd, 1_200, errno(err), b"");
        assert_eq!(
            sim.take(),
            [aborted(
                fd,
                Method::Get,
                AbortReason::ClientDisconnect,
                (1_000, 1_200),
                (18, 83)
            )]
        );
        // Nothing more is followed on this connection.
        sim.write(fd, 1_300, &filler(10));
        sim.close(fd, 1_400);
        assert_eq!(sim.take(), []);
    }
}

#[test]
fn other_write_errors_and_transient_ones() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.read(3, 1_000, GET);
    // gthread and gevent sockets are non-blocking: EAGAIN moves nothing and means nothing.
    sim.write_ret(3, 1_050, errno(libc::EAGAIN), b"");
    sim.write(3, 1_100, &head_with_length("200 OK", 10));
    sim.write_ret(3, 1_150, errno(libc::EAGAIN), b"");
    sim.write_ret(3, 1_200, errno(libc::EIO), b"");
    assert_eq!(
        sim.take(),
        [aborted(
            3,
            Method::Get,
            AbortReason::WriteError,
            (1_000, 1_200),
            (18, 81)
        )]
    );
}

#[test]
fn a_write_failure_aborts_pipelined_requests_too() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    let mut read = GET.to_vec();
    read.extend_from_slice(GET);
    sim.read(3, 1_000, &read);
    sim.write_ret(3, 1_100, errno(libc::EPIPE), b"");
    assert_eq!(
        sim.take(),
        [
            aborted(
                3,
                Method::Get,
                AbortReason::ClientDisconnect,
                (1_000, 1_100),
                (18, 0)
            ),
            aborted(
                3,
                Method::Get,
                AbortReason::ClientDisconnect,
                (1_000, 1_100),
                (18, 0)
            ),
        ]
    );
}

#[test]
fn read_reset_ends_requests_at_the_reset() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.read(3, 1_000, b"GET / HTTP/1.1\r\nHost");
    sim.read_ret(3, 1_100, errno(libc::ECONNRESET), b"");
    sim.close(3, 5_000);
    assert_eq!(
        sim.take(),
        [aborted(
            3,
            Method::Get,
            AbortReason::ClientDisconnect,
            (1_000, 1_100),
            (20, 0)
        )]
    );
}

#[test]
fn close_without_eof_ends_requests_at_the_close() {
    // The worker times a stalled client out without having seen EOF.
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.read(3, 1_000, POST_10);
    sim.close(3, 31_000);
    assert_eq!(
        sim.take(),
        [aborted(
            3,
            Method::Post,
            AbortReason::ClientDisconnect,
            (1_000, 31_000),
            (40, 0)
        )]
    );
}

#[test]
fn writes_without_a_request_are_counted_once_per_run() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.write(3, 100, b"stray");
    sim.write(3, 110, b"stray");
    assert_eq!(sim.take(), [problem(Problem::UnexpectedWrite)]);

    sim.read(3, 200, GET);
    sim.write(3, 210, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    sim.write(3, 220, b"stray");
    assert_eq!(
        sim.take(),
        [
            done(3, Method::Get, 200, (200, 210), (18, 38)),
            problem(Problem::UnexpectedWrite),
        ]
    );
}

#[test]
fn unparseable_status_line_is_counted_not_reported() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.read(3, 1_000, GET);
    sim.write(3, 1_100, b"<html>oops</html>\r\n\r\n");
    sim.close(3, 1_200);
    assert_eq!(sim.take(), [problem(Problem::BadStatusLine)]);
}
