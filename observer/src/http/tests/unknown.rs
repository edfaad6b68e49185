//! Connections whose accept was not seen, a full table, and lost close events.

use super::super::conn::MAX_IN_FLIGHT;
use super::*;

const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
const OK_0: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn unknown_connection_starting_with_a_request_is_followed() {
    let mut sim = Sim::new();
    sim.read(20, 1_000, GET);
    sim.write(20, 1_100, OK_0);
    sim.close(20, 1_200);
    assert_eq!(
        sim.take(),
        [done(20, Method::Get, 200, (1_000, 1_100), (18, 38))]
    );
    assert!(sim.table.is_empty());
}

#[test]
fn unknown_connection_mid_response_waits_for_the_next_request() {
    let mut sim = Sim::new();
    // The tail of a response to a request read before the observer started.
    sim.write(21, 1_000, b"...end of a body");
    sim.write(21, 1_010, b"more");
    assert_eq!(sim.take(), [problem(Problem::DataOnUnknownConn)]);

    // Keep-alive: the worker reads the next request right after answering.
    sim.read(21, 2_000, GET);
    sim.write(21, 2_100, OK_0);
    assert_eq!(
        sim.take(),
        [done(21, Method::Get, 200, (2_000, 2_100), (18, 38))]
    );
}

#[test]
fn unknown_connection_mid_body_is_ignored_until_close() {
    let mut sim = Sim::new();
    // Body bytes of an upload that began before the observer did.
    sim.read(22, 1_000, b"xxxxxxxxxxxxxxx");
    // Even bytes that look like a request line are not trusted after a read: they could be
    // body.
    sim.read(22, 1_100, GET);
    sim.eof(22, 1_150);
    assert_eq!(sim.table.len(), 1);
    sim.close(22, 1_200);
    assert_eq!(sim.take(), [problem(Problem::DataOnUnknownConn)]);
    assert!(sim.table.is_empty());
}

#[test]
fn full_table_refuses_and_counts() {
    let mut sim = Sim::with_cap(1);
    sim.accept(3, 0);
    sim.accept(4, 10);
    assert_eq!(sim.take(), [problem(Problem::TableFull)]);
    assert_eq!(sim.table.len(), 1);

    // The refused connection's request would have started one: counted again.
    sim.read(4, 100, GET);
    // Bytes that start nothing are just not followed.
    sim.write(4, 110, OK_0);
    sim.read(4, 120, b"body bytes");
    assert_eq!(sim.take(), [problem(Problem::TableFull)]);

    // The admitted connection works; once it closes, there is room again.
    sim.read(3, 200, GET);
    sim.write(3, 210, OK_0);
    sim.close(3, 220);
    sim.accept(4, 300);
    assert_eq!(
        sim.take(),
        [done(3, Method::Get, 200, (200, 210), (18, 38))]
    );
    assert_eq!(sim.table.len(), 1);
}

#[test]
fn accept_on_a_live_entry_means_its_close_was_lost() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    sim.read(3, 100, b"GET / HTTP/1.1\r\nHo");
    sim.accept(3, 500);
    assert_eq!(
        sim.take(),
        [
            problem(Problem::StaleConn),
            aborted(
                3,
                Method::Get,
                AbortReason::ClientDisconnect,
                (100, 500),
                (18, 0)
            ),
        ]
    );
    // The new connection starts clean.
    sim.read(3, 600, GET);
    sim.write(3, 610, OK_0);
    assert_eq!(
        sim.take(),
        [done(3, Method::Get, 200, (600, 610), (18, 38))]
    );
}

#[test]
fn pipelining_beyond_the_cap_is_counted() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    // Captured whole here so that every head is visible.
    let many: Vec<u8> = GET.repeat(MAX_IN_FLIGHT + 2);
    sim.read_ret(3, 100, many.len() as i64, &many);
    assert_eq!(sim.take(), [problem(Problem::PipelineOverflow)]);
    sim.close(3, 200);
    let out = sim.take();
    assert_eq!(out.len(), MAX_IN_FLIGHT);
    assert_eq!(
        out[0],
        aborted(
            3,
            Method::Get,
            AbortReason::ClientDisconnect,
            (100, 200),
            (18, 0)
        )
    );
}
