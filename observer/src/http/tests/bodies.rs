//! Request and response bodies: lengths, chunking, 100-continue, close-delimited, capture
//! limits.

use super::*;

const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld";
const GET_NEXT: &[u8] = b"GET /next HTTP/1.1\r\n\r\n";
const CHUNKED_UPLOAD: &[u8] = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
const CHUNKED_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn chunked_upload_in_five_chunks() {
    let mut sim = Sim::new();
    sim.accept(8, 0);
    sim.read(8, 1_000, CHUNKED_UPLOAD);
    let chunks: [&[u8]; 5] = [
        b"5\r\nhello\r\n",
        b"6\r\n world\r\n",
        b"3\r\n, a\r\n",
        b"A\r\n0123456789\r\n",
        b"4\r\nlast\r\n0\r\n\r\n",
    ];
    for (i, chunk) in chunks.iter().enumerate() {
        sim.read(8, 1_100 + 100 * i as u64, chunk);
    }
    assert_eq!(sim.take(), []);

    // The duration covers the whole upload: from the head's read to the reply.
    sim.write(8, 1_600, OK_5);
    assert_eq!(
        sim.take(),
        [done(8, Method::Post, 200, (1_000, 1_600), (58 + 58, 43))]
    );

    // The chunked body ended exactly: the next request is recognised.
    sim.read(8, 3_000, GET_NEXT);
    sim.write(8, 3_100, OK_5);
    assert_eq!(
        sim.take(),
        [done(8, Method::Get, 200, (3_000, 3_100), (22, 43))]
    );
}

#[test]
fn chunk_header_beyond_the_capture_falls_back_to_direction() {
    let mut body = b"FA0\r\n".to_vec();
    body.extend(filler(4000));
    body.extend_from_slice(b"\r\n3E3\r\n");
    body.extend(filler(995));
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(body.len(), 5_014);

    let mut sim = Sim::new();
    sim.accept(8, 0);
    sim.read(8, 1_000, CHUNKED_UPLOAD);
    // The second chunk's header sits at byte 4007 of this read; only 1024 are captured.
    sim.read(8, 1_100, &body[..5_000]);
    assert_eq!(sim.take(), [problem(Problem::LostFraming)]);
    sim.read(8, 1_200, &body[5_000..]);

    // The request ends where the worker starts its final answer.
    sim.write(8, 1_300, OK_5);
    assert_eq!(
        sim.take(),
        [done(8, Method::Post, 200, (1_000, 1_300), (58 + 5_014, 43))]
    );

    // The next read that begins with a request line starts the next request.
    sim.read(8, 2_000, GET_NEXT);
    sim.write(8, 2_100, OK_5);
    assert_eq!(
        sim.take(),
        [done(8, Method::Get, 200, (2_000, 2_100), (22, 43))]
    );
}

#[test]
fn expect_100_continue_reports_only_the_final_status() {
    let mut sim = Sim::new();
    sim.accept(9, 0);
    let head = b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n";
    sim.read(9, 1_000, head);
    sim.write(9, 1_100, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(sim.take(), []);
    sim.read(9, 1_200, b"0123456789");
    sim.write(9, 1_300, OK_5);
    assert_eq!(
        sim.take(),
        [done(
            9,
            Method::Post,
            200,
            (1_000, 1_300),
            (71 + 10, 25 + 43)
        )]
    );
}

#[test]
fn close_delimited_http10_response_ends_with_its_last_write() {
    let mut sim = Sim::new();
    sim.accept(10, 0);
    sim.read(10, 1_000, b"GET /old HTTP/1.0\r\n\r\n");
    sim.write(
        10,
        1_100,
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    );
    sim.write(10, 1_200, b"part one ");
    sim.write(10, 1_300, b"part two");
    assert_eq!(sim.take(), []);

    // Gunicorn shuts the socket down, drains it, then closes it.
    sim.shutdown(10, 1_400);
    assert_eq!(
        sim.take(),
        [done(10, Method::Get, 200, (1_000, 1_300), (21, 45 + 9 + 8))]
    );
    sim.eof(10, 1_500);
    sim.close(10, 1_600);
    assert_eq!(sim.take(), []);
}

#[test]
fn unframable_response_on_keep_alive_ends_before_the_next_request() {
    let mut sim = Sim::new();
    sim.accept(11, 0);
    sim.read(11, 1_000, b"GET /cookie HTTP/1.1\r\n\r\n");

    // A 1500-byte head: its end, and its Content-Length, lie past the captured 1024 bytes.
    let mut head = b"HTTP/1.1 200 OK\r\nSet-Cookie: ".to_vec();
    head.resize(1_440, b'k');
    head.extend_from_slice(b"\r\nContent-Length: 100\r\nX: y\r\n\r\n");
    assert_eq!(head.len(), 1_471);
    sim.write(11, 1_100, &head);
    assert_eq!(sim.take(), [problem(Problem::TruncatedHead)]);
    sim.write(11, 1_200, &filler(100));

    // Idle until the next request: its read closes the previous response at 1_200.
    sim.read(11, 9_000, GET_NEXT);
    assert_eq!(
        sim.take(),
        [done(11, Method::Get, 200, (1_000, 1_200), (24, 1_571))]
    );
    sim.write(11, 9_100, OK_5);
    assert_eq!(
        sim.take(),
        [done(11, Method::Get, 200, (9_000, 9_100), (22, 43))]
    );
}

#[test]
fn response_in_header_write_body_writes_and_sendfile() {
    let mut sim = Sim::new();
    sim.accept(12, 0);
    sim.read(12, 1_000, b"GET /file HTTP/1.1\r\n\r\n");
    sim.write(12, 1_100, &head_with_length("200 OK", 10_000));
    sim.write(12, 1_200, &filler(1_000));
    assert_eq!(sim.take(), []);
    sim.sendfile(12, 1_300, 9_000);
    assert_eq!(
        sim.take(),
        [done(
            12,
            Method::Get,
            200,
            (1_000, 1_300),
            (22, 84 + 10_000)
        )]
    );
}

#[test]
fn chunked_response_with_large_and_sendfile_chunks() {
    let mut sim = Sim::new();
    sim.accept(13, 0);
    sim.read(13, 1_000, GET_NEXT);
    sim.write(13, 1_100, CHUNKED_REPLY);
    sim.write(13, 1_200, b"5\r\nhello\r\n");

    // One send per chunk: only the chunk's first 1024 bytes are captured.
    let mut big = b"BB8\r\n".to_vec();
    big.extend(filler(3_000));
    big.extend_from_slice(b"\r\n");
    sim.write(13, 1_300, &big);

    // A file chunk: size line, sendfile, CRLF.
    sim.write(13, 1_400, b"7D0\r\n");
    sim.sendfile(13, 1_500, 2_000);
    sim.write(13, 1_600, b"\r\n");
    assert_eq!(sim.take(), []);

    sim.write(13, 1_700, b"0\r\n\r\n");
    let sent = 47 + 10 + 3_007 + 5 + 2_000 + 2 + 5;
    assert_eq!(
        sim.take(),
        [done(13, Method::Get, 200, (1_000, 1_700), (22, sent))]
    );
}

#[test]
fn large_bodies_seen_only_through_the_capture_window() {
    let mut request = b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".to_vec();
    request.extend(filler(100_000));
    assert_eq!(request.len(), 100_055);

    let mut sim = Sim::new();
    sim.accept(14, 0);
    sim.read(14, 1_000, &request[..8_192]);
    sim.read(14, 1_100, &request[8_192..73_728]);
    sim.read(14, 1_200, &request[73_728..]);

    sim.write(14, 1_300, &head_with_length("200 OK", 200_000));
    let body = filler(200_000);
    sim.write(14, 1_400, &body[..65_536]);
    sim.write(14, 1_500, &body[65_536..131_072]);
    assert_eq!(sim.take(), []);
    sim.write(14, 1_600, &body[131_072..]);
    assert_eq!(
        sim.take(),
        [done(
            14,
            Method::Post,
            200,
            (1_000, 1_600),
            (100_055, 200_085)
        )]
    );

    // Framing held through the invisible bytes: the next request parses.
    sim.read(14, 2_000, GET_NEXT);
    sim.write(14, 2_100, OK_5);
    assert_eq!(
        sim.take(),
        [done(14, Method::Get, 200, (2_000, 2_100), (22, 43))]
    );
}

#[test]
fn not_modified_and_no_content_have_no_body() {
    let mut sim = Sim::new();
    sim.accept(15, 0);
    sim.read(15, 1_000, GET_NEXT);
    sim.write(
        15,
        1_100,
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5000\r\n\r\n",
    );
    sim.read(15, 2_000, GET_NEXT);
    sim.write(
        15,
        2_100,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
    );
    assert_eq!(
        sim.take(),
        [
            done(15, Method::Get, 304, (1_000, 1_100), (22, 51)),
            done(15, Method::Get, 204, (2_000, 2_100), (22, 46)),
        ]
    );
}

#[test]
fn switching_protocols_runs_until_close() {
    let mut sim = Sim::new();
    sim.accept(16, 0);
    sim.read(
        16,
        1_000,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    sim.write(
        16,
        1_100,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    // Frames both ways are not HTTP.
    sim.read(16, 1_200, b"\x81\x85abcdefghi");
    sim.write(16, 1_300, b"\x81\x05hello");
    sim.eof(16, 1_400);
    assert_eq!(sim.take(), []);
    sim.close(16, 1_500);
    assert_eq!(
        sim.take(),
        [done(16, Method::Get, 101, (1_000, 1_300), (61, 77 + 7))]
    );
}
