//! Requests in flight per worker: what makes a worker busy, and what ends it.

use super::*;

const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn busy_from_the_first_byte_read_to_the_last_byte_written() {
    let mut sim = Sim::new();
    sim.accept(3, 0);
    // An accepted connection with nothing read yet is no request.
    assert_eq!(sim.table.in_flight(TGID), 0);

    sim.read(3, 1_000, b"GET / HT");
    assert_eq!(sim.table.in_flight(TGID), 1);
    sim.read(3, 1_100, b"TP/1.1\r\n\r\n");
    sim.write(3, 1_200, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(sim.table.in_flight(TGID), 1, "body not written yet");
    sim.write(3, 1_300, b"ok");
    assert_eq!(sim.table.in_flight(TGID), 0);

    // Keep-alive: idle between requests, busy again on the next one.
    sim.read(3, 2_000, GET);
    assert_eq!(sim.table.in_flight(TGID), 1);
    sim.write(3, 2_100, OK);
    sim.close(3, 2_200);
    assert_eq!(sim.table.in_flight(TGID), 0);
    assert_eq!(sim.take().len(), 2);
}

#[test]
fn counts_are_per_process_over_all_its_connections() {
    let mut table = ConnTable::new(16);
    let mut sink = |_| {};
    let (a, b) = (ConnId { tgid: 10, fd: 5 }, ConnId { tgid: 10, fd: 6 });
    let other = ConnId { tgid: 20, fd: 5 };
    for id in [a, b, other] {
        table.on_accept(id, 0, &mut sink);
        table.on_read(id, 1, GET.len() as i64, GET, &mut sink);
    }
    assert_eq!((table.in_flight(10), table.in_flight(20)), (2, 1));

    // Two pipelined requests on one connection are two in flight.
    table.on_read(a, 2, GET.len() as i64, GET, &mut sink);
    assert_eq!(table.in_flight(10), 3);
    table.on_write(a, 3, OK.len() as i64, OK, &mut sink);
    assert_eq!(table.in_flight(10), 2);

    // A client that goes away ends its requests; a dying worker ends all of its own.
    table.on_close(b, 4, &mut sink);
    assert_eq!(table.in_flight(10), 1);
    table.on_process_exit(20, 5, &mut sink);
    assert_eq!((table.in_flight(10), table.in_flight(20)), (1, 0));
    table.on_shutdown(a, 6, &mut sink);
    assert_eq!(table.in_flight(10), 0);
}

#[test]
fn requests_on_connections_whose_accept_was_missed_count_too() {
    let mut sim = Sim::new();
    sim.read(4, 1_000, GET);
    assert_eq!(sim.table.in_flight(TGID), 1);
    // The fd comes back in a new accept: the stale connection and its request go.
    sim.accept(4, 2_000);
    assert_eq!(sim.table.in_flight(TGID), 0);
}
