//! What a connection keeps allocated once its requests are done: the idle keep-alive
//! connections of a busy node must not each hold the peak of their past.

use super::*;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn a_pipelining_burst_gives_its_request_slots_back() {
    let mut sim = Sim::new();
    sim.accept(5, 1);
    assert_eq!(sim.table.conn_capacity(conn(5)), Some((1, 0, 0)));

    // Three requests in one read: the queue grows to hold them all.
    let three = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
    sim.read(5, 2, three);
    let (slots, _, _) = sim.table.conn_capacity(conn(5)).expect("followed");
    assert!(slots >= 3, "room for three requests, got {slots}");

    for ts in 3..6 {
        sim.write(5, ts, OK);
    }
    assert_eq!(sim.take().len(), 3, "three requests completed");
    assert_eq!(sim.table.conn_capacity(conn(5)), Some((1, 0, 0)));
}

#[test]
fn a_split_head_frees_its_buffer_once_it_ends() {
    let mut sim = Sim::new();
    sim.accept(5, 1);
    sim.read(5, 2, b"GET / HTTP/1.1\r\nHo");
    let (_, inbound, _) = sim.table.conn_capacity(conn(5)).expect("followed");
    assert!(
        inbound >= 18,
        "the head's first part is kept, got {inbound} bytes"
    );

    sim.read(5, 3, b"st: x\r\n\r\n");
    sim.write(5, 4, b"HTTP/1.1 200 OK\r\nCont");
    sim.write(5, 5, b"ent-Length: 2\r\n\r\nok");
    assert_eq!(
        sim.take(),
        vec![done(5, Method::Get, 200, (2, 5), (27, 40))]
    );
    assert_eq!(sim.table.conn_capacity(conn(5)), Some((1, 0, 0)));
}

#[test]
fn the_connection_map_shrinks_after_a_burst_closes() {
    let mut sim = Sim::with_cap(10_000);
    for fd in 0..4096 {
        sim.accept(fd, 1);
    }
    assert!(sim.table.map_capacity() >= 4096);

    for fd in 10..4096 {
        sim.close(fd, 2);
    }
    assert_eq!(sim.table.len(), 10);
    // The 4096 or more slots the burst needed went; what is left is under the size that
    // is never shrunk.
    let capacity = sim.table.map_capacity();
    assert!(
        (10..=2048).contains(&capacity),
        "capacity {capacity} after the burst"
    );
}
