//! Several requests on one connection: keep-alive, pipelining, HEAD.

use super::*;

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const GET_B: &[u8] = b"GET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\n";
const POST_C: &[u8] = b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
const HEAD_D: &[u8] = b"HEAD /d HTTP/1.1\r\nHost: x\r\n\r\n";
const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld";
const CREATED_0: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
const NOT_FOUND_HEAD: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n";

#[test]
fn message_sizes() {
    assert_eq!(
        [GET_A.len(), GET_B.len(), POST_C.len(), HEAD_D.len()],
        [28, 32, 53, 29]
    );
    assert_eq!(
        [OK_5.len(), CREATED_0.len(), NOT_FOUND_HEAD.len()],
        [43, 43, 45]
    );
}

#[test]
fn keep_alive_requests_each_get_their_own_times() {
    let mut sim = Sim::new();
    sim.accept(7, 100);

    // First: head and body in one write.
    sim.read(7, 1_000, GET_A);
    assert_eq!(sim.take(), []);
    sim.write(7, 1_500, OK_5);
    assert_eq!(
        sim.take(),
        [done(7, Method::Get, 200, (1_000, 1_500), (28, 43))]
    );

    // Idle keep-alive gap, then head and body in separate writes.
    sim.read(7, 5_000, POST_C);
    sim.write(7, 5_200, NOT_FOUND_HEAD);
    assert_eq!(sim.take(), []);
    sim.write(7, 5_300, b"not found");
    assert_eq!(
        sim.take(),
        [done(7, Method::Post, 404, (5_000, 5_300), (53, 54))]
    );

    // Another gap; a bodiless 201.
    sim.read(7, 9_000, GET_B);
    sim.write(7, 9_050, CREATED_0);
    assert_eq!(
        sim.take(),
        [done(7, Method::Get, 201, (9_000, 9_050), (32, 43))]
    );

    // The client leaves; the worker closes. Idle time is never part of a request.
    sim.eof(7, 20_000);
    sim.close(7, 20_001);
    assert_eq!(sim.take(), []);
    assert_eq!(sim.table.len(), 0);
}

#[test]
fn three_pipelined_requests_in_one_read() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    let mut read = GET_A.to_vec();
    read.extend_from_slice(POST_C);
    read.extend_from_slice(GET_B);
    sim.read(3, 1_000, &read);
    assert_eq!(sim.take(), []);

    sim.write(3, 1_100, OK_5);
    sim.write(3, 1_200, CREATED_0);
    sim.write(3, 1_300, NOT_FOUND_HEAD);
    sim.write(3, 1_400, b"not found");
    assert_eq!(
        sim.take(),
        [
            done(3, Method::Get, 200, (1_000, 1_100), (28, 43)),
            done(3, Method::Post, 201, (1_000, 1_200), (53, 43)),
            done(3, Method::Get, 404, (1_000, 1_400), (32, 54)),
        ]
    );
}

#[test]
fn pipelined_request_split_across_reads() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    // The third request's head straddles two reads; it starts with the first.
    let mut stream = GET_A.to_vec();
    stream.extend_from_slice(GET_B);
    stream.extend_from_slice(POST_C);
    let cut = 28 + 32 + 10;
    sim.read(3, 1_000, &stream[..cut]);
    sim.read(3, 1_010, &stream[cut..]);
    for ts in [1_100, 1_200, 1_300] {
        sim.write(3, ts, OK_5);
    }
    assert_eq!(
        sim.take(),
        [
            done(3, Method::Get, 200, (1_000, 1_100), (28, 43)),
            done(3, Method::Get, 200, (1_000, 1_200), (32, 43)),
            done(3, Method::Post, 200, (1_000, 1_300), (53, 43)),
        ]
    );
}

#[test]
fn head_response_has_no_body_then_get() {
    let mut sim = Sim::new();
    sim.accept(4, 0);
    sim.read(4, 100, HEAD_D);
    // Content-Length describes the GET body; a HEAD response ends with its headers.
    sim.write(4, 150, NOT_FOUND_HEAD);
    assert_eq!(
        sim.take(),
        [done(4, Method::Head, 404, (100, 150), (29, 45))]
    );

    sim.read(4, 300, GET_A);
    sim.write(4, 350, OK_5);
    assert_eq!(
        sim.take(),
        [done(4, Method::Get, 200, (300, 350), (28, 43))]
    );
}

#[test]
fn body_wrongly_sent_after_head_response_is_not_a_response() {
    let mut sim = Sim::new();
    sim.accept(4, 0);
    sim.read(4, 100, HEAD_D);
    sim.write(4, 150, NOT_FOUND_HEAD);
    // Old Gunicorn: the body follows anyway, in its own send and via sendfile.
    sim.write(4, 160, b"not found");
    sim.sendfile(4, 170, 4096);
    assert_eq!(
        sim.take(),
        [done(4, Method::Head, 404, (100, 150), (29, 45))]
    );

    sim.read(4, 300, GET_A);
    sim.write(4, 350, OK_5);
    assert_eq!(
        sim.take(),
        [done(4, Method::Get, 200, (300, 350), (28, 43))]
    );
}

#[test]
fn pipelined_head_with_stray_body_then_get() {
    let mut sim = Sim::new();
    sim.accept(4, 0);
    let mut read = HEAD_D.to_vec();
    read.extend_from_slice(GET_A);
    sim.read(4, 100, &read);

    // Headers and the stray body in one send, then the GET's response.
    let mut write = NOT_FOUND_HEAD.to_vec();
    write.extend_from_slice(b"not found");
    sim.write(4, 150, &write);
    sim.write(4, 160, OK_5);
    assert_eq!(
        sim.take(),
        [
            done(4, Method::Head, 404, (100, 150), (29, 45)),
            done(4, Method::Get, 200, (100, 160), (28, 43)),
        ]
    );
}

#[test]
fn gunicorn_400_for_a_bad_request_line_counts() {
    let mut sim = Sim::new();
    sim.accept(5, 0);
    let bad = b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n";
    sim.read(5, 100, bad);
    assert_eq!(sim.take(), [problem(Problem::BadRequestHead)]);

    let reply = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: 4\r\n\r\nnope";
    sim.write(5, 200, reply);
    sim.shutdown(5, 210);
    sim.eof(5, 220);
    sim.close(5, 230);
    assert_eq!(
        sim.take(),
        [done(5, Method::Get, 400, (100, 200), (32, 95))]
    );
}

#[test]
fn worker_answers_before_the_head_ends() {
    // Gunicorn refuses an oversized header field with 431 without reading the rest.
    let mut sim = Sim::new();
    sim.accept(5, 0);
    let mut head = b"GET /big HTTP/1.1\r\nCookie: ".to_vec();
    head.resize(1000, b'c');
    sim.read(5, 100, &head);
    sim.read(5, 110, &[b'c'; 900]);

    let reply = head_with_length("431 Request Header Fields Too Large", 0);
    sim.write(5, 200, &reply);
    // More of the refused head arrives while the worker drains the socket.
    sim.read(5, 210, &[b'c'; 50]);
    sim.close(5, 220);
    assert_eq!(
        sim.take(),
        [done(5, Method::Get, 431, (100, 200), (1_900, 109))]
    );
}

#[test]
fn bare_lf_heads_and_blank_lines_between_requests() {
    let mut sim = Sim::new();
    sim.accept(6, 0);
    sim.read(6, 100, b"PUT /x HTTP/1.1\nContent-Length: 2\n\nhi");
    sim.write(6, 110, CREATED_0);
    // A stray CRLF after a body belongs to no request (RFC 9112 section 2.2).
    sim.read(6, 200, b"\r\nDELETE /x HTTP/1.1\r\n\r\n");
    sim.write(6, 210, CREATED_0);
    assert_eq!(
        sim.take(),
        [
            done(6, Method::Put, 201, (100, 110), (37, 43)),
            done(6, Method::Delete, 201, (200, 210), (22, 43)),
        ]
    );
}

#[test]
fn unusual_methods_are_bounded() {
    let mut sim = Sim::new();
    sim.accept(6, 0);
    sim.read(6, 100, b"PROPFIND /d HTTP/1.1\r\n\r\n");
    sim.write(6, 110, CREATED_0);
    sim.read(6, 200, b"OPTIONS * HTTP/1.1\r\n\r\n");
    sim.write(6, 210, CREATED_0);
    assert_eq!(
        sim.take(),
        [
            done(6, Method::Other, 201, (100, 110), (24, 43)),
            done(6, Method::Options, 201, (200, 210), (22, 43)),
        ]
    );
}
