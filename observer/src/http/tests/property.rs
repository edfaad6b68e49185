//! Property: any valid keep-alive conversation, cut into read and write syscalls any way,
//! gives the same requests, statuses and byte counts, with the same start and end syscalls.
//!
//! The generator covers what Gunicorn sees: bodiless methods, Content-Length and chunked
//! uploads (with chunk extensions and trailers), `Expect: 100-continue`, HEAD, 204 and 304
//! answers, chunked responses, and pipelined requests. Bodies reach a few KiB, so reads and
//! writes longer than the kernel's 1 KiB capture happen and body bytes past it are counted
//! from return values alone.

use proptest::prelude::*;

use super::*;

/// One generated request and the answer Gunicorn gives it.
#[derive(Clone, Debug)]
struct Exchange {
    method: Method,
    /// Head and, unless it waits for a 100 Continue, the body.
    request: Vec<u8>,
    /// Body sent only after the interim 100 (empty without `Expect`).
    late_body: Vec<u8>,
    /// The interim response, if the request asked for one.
    interim: Vec<u8>,
    response: Vec<u8>,
    /// The response is chunked: its framing is in chunk headers spread through the body.
    response_chunked: bool,
    status: u16,
}

#[derive(Clone, Debug)]
enum Body {
    None,
    Length(usize),
    Chunked(Vec<usize>),
}

fn body_strategy() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::None),
        (0usize..4096).prop_map(Body::Length),
        prop::collection::vec(1usize..1500, 0..5).prop_map(Body::Chunked),
    ]
}

/// Chunked encoding of `sizes`, with a chunk extension on every other chunk and a trailer.
fn chunked(sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let ext = if i % 2 == 1 { ";ext=1" } else { "" };
        out.extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
        out.extend_from_slice(&filler(*size));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    out
}

fn exchange_strategy() -> impl Strategy<Value = Exchange> {
    let methods = prop::sample::select(vec![
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
    ]);
    let statuses = prop::sample::select(vec![200u16, 201, 204, 301, 304, 404, 500]);
    (
        methods,
        body_strategy(),
        any::<bool>(),
        0usize..6,
        statuses,
        body_strategy(),
    )
        .prop_map(|(method, body, expect, extra, status, answer)| {
            build(method, body, expect, extra, status, answer)
        })
}

fn build(
    method: Method,
    body: Body,
    expect: bool,
    extra_headers: usize,
    status: u16,
    answer: Body,
) -> Exchange {
    let mut head = format!(
        "{} /p/{extra_headers} HTTP/1.1\r\nHost: x\r\n",
        method.as_str()
    );
    for i in 0..extra_headers {
        head.push_str(&format!("X-Extra-{i}: {}\r\n", "v".repeat(i * 10)));
    }
    let body_bytes = match &body {
        Body::None => Vec::new(),
        Body::Length(n) => {
            head.push_str(&format!("Content-Length: {n}\r\n"));
            filler(*n)
        }
        Body::Chunked(sizes) => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            chunked(sizes)
        }
    };
    // Only a Content-Length body waits for the interim answer: its framing never depends on
    // captured chunk headers, which keeps the expected split between request and response
    // exact however the body is cut.
    let waits = expect && matches!(body, Body::Length(n) if n > 0);
    if waits {
        head.push_str("Expect: 100-continue\r\n");
    }
    head.push_str("\r\n");

    let mut request = head.into_bytes();
    let mut late_body = Vec::new();
    if waits {
        late_body = body_bytes;
    } else {
        request.extend_from_slice(&body_bytes);
    }

    // HEAD answers and 204/304 carry no body whatever their headers say.
    let bodiless = method == Method::Head || status == 204 || status == 304;
    let mut response = format!("HTTP/1.1 {status} X\r\nServer: gunicorn\r\n");
    let response_chunked = matches!((&answer, bodiless), (Body::Chunked(_), false));
    let response_body = match (&answer, bodiless) {
        (Body::Chunked(sizes), false) => {
            response.push_str("Transfer-Encoding: chunked\r\n");
            chunked(sizes)
        }
        (Body::Length(n), _) => {
            response.push_str(&format!("Content-Length: {n}\r\n"));
            if bodiless { Vec::new() } else { filler(*n) }
        }
        _ => {
            response.push_str("Content-Length: 0\r\n");
            Vec::new()
        }
    };
    response.push_str("\r\n");
    let mut response = response.into_bytes();
    response.extend_from_slice(&response_body);

    Exchange {
        method,
        request,
        late_body,
        interim: if waits {
            b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()
        } else {
            Vec::new()
        },
        response,
        response_chunked,
        status,
    }
}

/// The write sizes for a response. A chunked response's end is only visible through its
/// chunk headers, and the kernel copies the first `CAPTURE_LEN` bytes of each write, so its
/// writes are kept within the capture, as Gunicorn's are (it sends every chunk with its own
/// header first). Longer cuts fall back to framing by direction, tested in `bodies.rs`.
fn write_sizes_for(exchange: &Exchange, sizes: &[usize]) -> Vec<usize> {
    if exchange.response_chunked {
        sizes.iter().map(|size| (*size).min(CAPTURE_LEN)).collect()
    } else {
        sizes.to_vec()
    }
}

/// Cuts `bytes` into pieces whose sizes cycle through `sizes`.
fn cut<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut from = 0;
    for size in sizes.iter().cycle() {
        if from >= bytes.len() {
            break;
        }
        let to = (from + size).min(bytes.len());
        pieces.push(&bytes[from..to]);
        from = to;
    }
    pieces
}

/// Feeds the conversation one request then its answer at a time, and returns what the
/// table emitted next to what it should have.
fn run_in_turn(
    exchanges: &[Exchange],
    read_sizes: &[usize],
    write_sizes: &[usize],
) -> (Vec<Output>, Vec<Output>) {
    let mut sim = Sim::new();
    let mut ts = 0;
    let mut tick = || {
        ts += 1;
        ts
    };
    sim.accept(1, tick());
    let mut expected = Vec::new();
    for exchange in exchanges {
        let mut start = None;
        for piece in cut(&exchange.request, read_sizes) {
            let now = tick();
            start.get_or_insert(now);
            sim.read(1, now, piece);
        }
        if !exchange.interim.is_empty() {
            sim.write(1, tick(), &exchange.interim);
            for piece in cut(&exchange.late_body, read_sizes) {
                sim.read(1, tick(), piece);
            }
        }
        let mut end = 0;
        for piece in cut(&exchange.response, &write_sizes_for(exchange, write_sizes)) {
            end = tick();
            sim.write(1, end, piece);
        }
        expected.push(expected_done(exchange, start.unwrap_or(0), end));
    }
    sim.close(1, tick());
    (sim.take(), expected)
}

/// Feeds every request as one inbound stream cut across request boundaries, reading ahead
/// as far as the cut takes it before each answer, as a pipelining client makes a worker do.
/// Pieces stay within the capture so every request's head starts inside a captured window.
fn run_pipelined(
    exchanges: &[Exchange],
    read_sizes: &[usize],
    write_sizes: &[usize],
) -> (Vec<Output>, Vec<Output>) {
    let stream: Vec<u8> = exchanges.iter().flat_map(|e| e.request.clone()).collect();
    let reads = cut(&stream, read_sizes);
    let mut sim = Sim::new();
    let mut ts = 0;
    sim.accept(1, ts);

    let mut consumed = 0;
    let mut next_read = 0;
    // (offset of the first byte, ts of the read that carried it) for every read so far.
    let mut read_at: Vec<(usize, u64)> = Vec::new();
    let mut expected = Vec::new();
    let mut offset = 0;
    for exchange in exchanges {
        let end_of_request = offset + exchange.request.len();
        while consumed < end_of_request {
            ts += 1;
            read_at.push((consumed, ts));
            sim.read(1, ts, reads[next_read]);
            consumed += reads[next_read].len();
            next_read += 1;
        }
        let start = read_at
            .iter()
            .rev()
            .find(|(from, _)| *from <= offset)
            .map(|(_, at)| *at)
            .unwrap_or(0);
        for piece in cut(&exchange.response, &write_sizes_for(exchange, write_sizes)) {
            ts += 1;
            sim.write(1, ts, piece);
        }
        expected.push(expected_done(exchange, start, ts));
        offset = end_of_request;
    }
    ts += 1;
    sim.close(1, ts);
    (sim.take(), expected)
}

fn expected_done(exchange: &Exchange, start: u64, end: u64) -> Output {
    done(
        1,
        exchange.method,
        exchange.status,
        (start, end),
        (
            (exchange.request.len() + exchange.late_body.len()) as u64,
            (exchange.interim.len() + exchange.response.len()) as u64,
        ),
    )
}

/// Splits what the table emitted into requests and real problems; fallback notices (a head
/// or chunk header past the capture changes how the end is found, not what is counted) are
/// dropped.
fn requests_and_problems(outputs: Vec<Output>) -> (Vec<Output>, Vec<Problem>) {
    let mut requests = Vec::new();
    let mut problems = Vec::new();
    for output in outputs {
        match output {
            Output::Problem(p) if p.is_fallback() => {}
            Output::Problem(p) => problems.push(p),
            request => requests.push(request),
        }
    }
    (requests, problems)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_cut_of_a_conversation_gives_the_same_requests(
        exchanges in prop::collection::vec(exchange_strategy(), 1..6),
        read_sizes in prop::collection::vec(1usize..3000, 1..6),
        write_sizes in prop::collection::vec(1usize..3000, 1..6),
    ) {
        let (outputs, expected) = run_in_turn(&exchanges, &read_sizes, &write_sizes);
        let (seen, problems) = requests_and_problems(outputs);
        prop_assert_eq!(problems, vec![]);
        prop_assert_eq!(seen, expected);
    }

    #[test]
    fn any_cut_of_a_pipelined_stream_gives_the_same_requests(
        exchanges in prop::collection::vec(exchange_strategy(), 1..6),
        read_sizes in prop::collection::vec(1usize..=CAPTURE_LEN, 1..6),
        write_sizes in prop::collection::vec(1usize..3000, 1..6),
    ) {
        let exchanges: Vec<Exchange> = exchanges
            .into_iter()
            .filter(|e| e.interim.is_empty())
            .collect();
        let (outputs, expected) = run_pipelined(&exchanges, &read_sizes, &write_sizes);
        let (seen, problems) = requests_and_problems(outputs);
        prop_assert_eq!(problems, vec![]);
        prop_assert_eq!(seen, expected);
    }
}
