//! What a completed request carries besides its framing: the route of its target, and how
//! its bytes split into heads and bodies.

use super::*;

const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld";

/// `(route, request body bytes, response body bytes)` of each request emitted.
fn details(out: &[Output]) -> Vec<(String, u64, u64)> {
    out.iter()
        .filter_map(|output| match output {
            Output::Request(r) => Some((
                r.route.as_str().to_owned(),
                r.request_body_bytes,
                r.response_body_bytes,
            )),
            Output::Problem(_) => None,
        })
        .collect()
}

#[test]
fn routes_are_templated_from_the_request_line() {
    let mut sim = Sim::with_routes(RouteMode::Template);
    sim.accept(5, 0);
    sim.read(
        5,
        10,
        b"GET /users/42/orders?page=2 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    sim.write(5, 20, OK_5);
    // A head split across reads is routed once it is whole.
    sim.read(5, 30, b"GET /items/123e4567-e89b-12d3-a456-42661417");
    sim.read(5, 40, b"4000 HTTP/1.1\r\n\r\n");
    sim.write(5, 50, OK_5);
    assert_eq!(
        details(&sim.take_full()),
        [
            ("/users/:id/orders".to_owned(), 0, 5),
            ("/items/:uuid".to_owned(), 0, 5)
        ]
    );
}

#[test]
fn raw_routes_keep_ids_and_off_has_none() {
    for (mode, want) in [(RouteMode::Raw, "/users/42"), (RouteMode::Off, "")] {
        let mut sim = Sim::with_routes(mode);
        sim.accept(5, 0);
        sim.read(5, 10, b"GET /users/42?x=1 HTTP/1.1\r\n\r\n");
        sim.write(5, 20, OK_5);
        assert_eq!(details(&sim.take_full()), [(want.to_owned(), 0, 5)]);
    }
}

#[test]
fn a_refused_request_line_has_an_unknown_route() {
    let mut sim = Sim::with_routes(RouteMode::Template);
    sim.accept(5, 0);
    sim.read(5, 10, b"GET /a b HTTP/1.1\r\n\r\n");
    let reply =
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 11\r\n\r\nBad Request";
    sim.write(5, 20, reply);
    sim.close(5, 30);
    assert_eq!(details(&sim.take_full()), [("unknown".to_owned(), 0, 11)]);
}

#[test]
fn a_head_beyond_the_capture_keeps_a_visible_request_line() {
    let mut sim = Sim::with_routes(RouteMode::Template);
    sim.accept(5, 0);
    let mut head = b"GET /big/7 HTTP/1.1\r\nCookie: ".to_vec();
    head.extend(filler(3000));
    head.extend_from_slice(b"\r\n\r\n");
    sim.read(5, 10, &head);
    sim.write(5, 20, OK_5);
    let out = sim.take_full();
    assert_eq!(details(&out)[0].0, "/big/:id");
}

#[test]
fn bodies_exclude_heads_and_interim_responses() {
    let mut sim = Sim::with_routes(RouteMode::Template);
    sim.accept(9, 0);
    let head = b"POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n";
    sim.read(9, 1_000, head);
    sim.write(9, 1_100, b"HTTP/1.1 100 Continue\r\n\r\n");
    sim.read(9, 1_200, b"0123456789");
    // Head and body in separate writes, the body larger than the capture window.
    sim.write(9, 1_300, b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
    sim.write(9, 1_400, &filler(5000));
    let out = sim.take_full();
    assert_eq!(details(&out), [("/e".to_owned(), 10, 5000)]);
    let Output::Request(request) = out[0] else {
        panic!("expected a request, got {out:?}")
    };
    // Totals still hold the heads: 25 for the interim 100, 41 for the final one.
    assert_eq!(request.request_bytes, head.len() as u64 + 10);
    assert_eq!(request.response_bytes, 25 + 41 + 5000);
}

#[test]
fn chunked_bodies_count_their_framing() {
    let mut sim = Sim::with_routes(RouteMode::Template);
    sim.accept(8, 0);
    sim.read(
        8,
        1_000,
        b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    sim.read(8, 1_100, b"5\r\nhello\r\n0\r\n\r\n");
    sim.write(8, 1_200, OK_5);
    assert_eq!(details(&sim.take_full()), [("/up".to_owned(), 15, 5)]);
}
