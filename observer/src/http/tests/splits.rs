//! The same conversation cut into syscalls at every possible point gives the same requests.

use super::*;

/// (method, request, response, status): three keep-alive exchanges exercising a chunked
/// response, a chunked upload with a trailer, and an interim 100 before a bodiless 204.
const EXCHANGES: [(Method, &[u8], &[u8], u16); 3] = [
    (
        Method::Get,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        200,
    ),
    (
        Method::Post,
        b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone",
        201,
    ),
    (
        Method::Put,
        b"PUT /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\nabcdef",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
        204,
    ),
];

/// `bytes` cut at each of `cuts` that falls inside it.
fn pieces<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < bytes.len())
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        out.push(&bytes[from..p]);
        from = p;
    }
    out
}

/// Run the exchanges one after another, each request read and each response written in
/// pieces. The first read of exchange `i` is at `i * 1000 + 1` and its last write at
/// `i * 1000 + 500`, however the bytes are cut.
fn run_sequential(request_cuts: &[usize], response_cuts: &[usize]) -> Vec<Output> {
    let mut sim = Sim::new();
    sim.accept(1, 0);
    for (i, (_, request, response, _)) in EXCHANGES.iter().enumerate() {
        let base = 1_000 * i as u64;
        for (k, piece) in pieces(request, request_cuts).iter().enumerate() {
            sim.read(1, base + 1 + k as u64, piece);
        }
        let parts = pieces(response, response_cuts);
        for (k, piece) in parts.iter().enumerate() {
            let ts = if k + 1 == parts.len() {
                base + 500
            } else {
                base + 100 + k as u64
            };
            sim.write(1, ts, piece);
        }
    }
    sim.close(1, 10_000);
    sim.take()
}

fn expected_sequential() -> Vec<Output> {
    EXCHANGES
        .iter()
        .enumerate()
        .map(|(i, (method, request, response, status))| {
            let base = 1_000 * i as u64;
            done(
                1,
                *method,
                *status,
                (base + 1, base + 500),
                (request.len() as u64, response.len() as u64),
            )
        })
        .collect()
}

#[test]
fn every_two_way_cut_gives_the_same_requests() {
    let expected = expected_sequential();
    assert_eq!(run_sequential(&[], &[]), expected);
    for cut in 1..90 {
        assert_eq!(
            run_sequential(&[cut], &[]),
            expected,
            "request cut at {cut}"
        );
        assert_eq!(
            run_sequential(&[], &[cut]),
            expected,
            "response cut at {cut}"
        );
    }
}

#[test]
fn three_way_cuts_on_both_sides() {
    let expected = expected_sequential();
    for a in (1..90).step_by(3) {
        for b in (a + 1..90).step_by(7) {
            assert_eq!(
                run_sequential(&[a, b], &[b, a]),
                expected,
                "cuts at {a}, {b}"
            );
        }
    }
}

#[test]
fn byte_at_a_time() {
    let every: Vec<usize> = (1..90).collect();
    assert_eq!(run_sequential(&every, &every), expected_sequential());
}

#[test]
fn pipelined_stream_cut_anywhere() {
    let stream: Vec<u8> = EXCHANGES
        .iter()
        .flat_map(|(_, r, _, _)| r.iter().copied())
        .collect();
    let offsets = [
        0,
        EXCHANGES[0].1.len(),
        EXCHANGES[0].1.len() + EXCHANGES[1].1.len(),
    ];
    assert_eq!(offsets, [0, 28, 28 + 83]);
    assert_eq!(stream.len(), 28 + 83 + 66);

    for p in 0..=stream.len() {
        for q in (p..=stream.len()).step_by(5) {
            let mut sim = Sim::new();
            sim.accept(1, 0);
            let reads = [(100, 0, p), (200, p, q), (300, q, stream.len())];
            for (ts, from, to) in reads.into_iter().filter(|(_, f, t)| f < t) {
                sim.read(1, ts, &stream[from..to]);
            }
            for (i, (_, _, response, _)) in EXCHANGES.iter().enumerate() {
                sim.write(1, 1_000 * (i as u64 + 1), response);
            }

            // Each request starts with the read that carried its first byte.
            let start = |offset: usize| match offset {
                o if o < p => 100,
                o if o < q => 200,
                _ => 300,
            };
            let expected: Vec<Output> = EXCHANGES
                .iter()
                .zip(offsets)
                .enumerate()
                .map(|(i, ((method, request, response, status), offset))| {
                    done(
                        1,
                        *method,
                        *status,
                        (start(offset), 1_000 * (i as u64 + 1)),
                        (request.len() as u64, response.len() as u64),
                    )
                })
                .collect();
            assert_eq!(sim.take(), expected, "reads cut at {p} and {q}");
        }
    }
}
