//! Picking the next request up after framing was lost, when its request line arrives a few
//! bytes a read.

use super::*;

const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld";
const GET_NEXT: &[u8] = b"GET /next HTTP/1.1\r\n\r\n";
const CHUNKED_UPLOAD: &[u8] = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A chunked upload on fd 8 whose second chunk header lies beyond the capture, answered at
/// 1_300: the connection is left waiting for a read that begins with a request line.
fn after_lost_framing() -> Sim {
    let mut body = b"FA0\r\n".to_vec();
    body.extend(filler(4000));
    body.extend_from_slice(b"\r\n3E3\r\n");
    body.extend(filler(995));
    body.extend_from_slice(b"\r\n0\r\n\r\n");

    let mut sim = Sim::new();
    sim.accept(8, 0);
    sim.read(8, 1_000, CHUNKED_UPLOAD);
    sim.read(8, 1_100, &body);
    sim.write(8, 1_300, OK_5);
    assert_eq!(
        sim.take(),
        [
            problem(Problem::LostFraming),
            done(8, Method::Post, 200, (1_000, 1_300), (58 + 5_014, 43))
        ]
    );
    sim
}

#[test]
fn request_line_in_pieces_after_lost_framing_is_counted() {
    let mut sim = after_lost_framing();

    // "GE", "T", " /", then the rest: none of the first three can be told from body bytes.
    sim.read(8, 2_000, &GET_NEXT[..2]);
    sim.read(8, 2_010, &GET_NEXT[2..3]);
    sim.read(8, 2_020, &GET_NEXT[3..5]);
    sim.read(8, 2_030, &GET_NEXT[5..]);
    sim.write(8, 2_100, OK_5);
    assert_eq!(
        sim.take(),
        [done(8, Method::Get, 200, (2_000, 2_100), (22, 43))]
    );

    // The connection is back at request boundaries: the next one needs no resync.
    sim.read(8, 3_000, GET_NEXT);
    sim.write(8, 3_100, OK_5);
    assert_eq!(
        sim.take(),
        [done(8, Method::Get, 200, (3_000, 3_100), (22, 43))]
    );
}

#[test]
fn a_kept_beginning_that_is_no_request_line_is_dropped() {
    let mut sim = after_lost_framing();

    // "XY" may begin a method; "Z\r\n" ends the line without one. Then a request arrives
    // whole, and then one in pieces.
    sim.read(8, 2_000, b"XY");
    sim.read(8, 2_010, b"Z\r\n");
    assert_eq!(sim.take(), []);
    sim.read(8, 2_020, GET_NEXT);
    sim.write(8, 2_100, OK_5);
    sim.read(8, 3_000, &GET_NEXT[..1]);
    sim.read(8, 3_010, &GET_NEXT[1..]);
    sim.write(8, 3_100, OK_5);
    assert_eq!(
        sim.take(),
        [
            done(8, Method::Get, 200, (2_020, 2_100), (22, 43)),
            done(8, Method::Get, 200, (3_000, 3_100), (22, 43))
        ]
    );
}

#[test]
fn a_beginning_longer_than_any_request_line_start_is_given_up() {
    let mut sim = after_lost_framing();

    // 21 method characters: longer than any method, so no request; the request whose
    // line then comes whole is still picked up.
    sim.read(8, 2_000, b"ABCDEFGHIJ");
    sim.read(8, 2_010, b"KLMNOPQRSTU");
    sim.read(8, 2_020, GET_NEXT);
    sim.write(8, 2_100, OK_5);
    assert_eq!(
        sim.take(),
        [done(8, Method::Get, 200, (2_020, 2_100), (22, 43))]
    );
}

#[test]
fn leftover_method_like_bytes_do_not_swallow_a_known_method() {
    let mut sim = after_lost_framing();

    // "DONE" may begin a method, but the read after it begins a GET on its own.
    sim.read(8, 2_000, b"DONE");
    sim.read(8, 2_020, GET_NEXT);
    sim.write(8, 2_100, OK_5);
    // A known method split across reads is still joined.
    sim.read(8, 3_000, b"P");
    sim.read(8, 3_010, b"OST /next HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    sim.write(8, 3_100, OK_5);
    assert_eq!(
        sim.take(),
        [
            done(8, Method::Get, 200, (2_020, 2_100), (22, 43)),
            done(8, Method::Post, 200, (3_000, 3_100), (42, 43))
        ]
    );
}
