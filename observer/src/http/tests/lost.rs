//! Kernel events lost on a connection: what was in flight is reported as unknown, never
//! guessed, and the connection is followed again from its next request.

use super::*;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn request_in_flight_when_events_are_lost_is_unknown_and_the_next_one_counts() {
    let mut sim = Sim::new();
    sim.accept(1, 0);
    sim.read(1, 10, GET);
    // The response write was lost; the kernel says so ahead of the next record.
    assert_eq!(sim.lost(1, 20), 1);
    assert_eq!(sim.table.in_flight(TGID), 0);
    assert_eq!(
        sim.take(),
        vec![aborted(
            1,
            Method::Get,
            AbortReason::Unknown,
            (10, 20),
            (GET.len() as u64, 0)
        )]
    );

    // The next request on the same connection starts at a boundary and is counted whole.
    let response = head_with_length("200 OK", 0);
    sim.read(1, 30, GET);
    sim.write(1, 40, &response);
    sim.close(1, 50);
    assert_eq!(
        sim.take(),
        vec![done(
            1,
            Method::Get,
            200,
            (30, 40),
            (GET.len() as u64, response.len() as u64)
        )]
    );
}

#[test]
fn loss_on_an_idle_or_unknown_connection_reports_nothing() {
    let mut sim = Sim::new();
    sim.accept(1, 0);
    assert_eq!(sim.lost(1, 5), 0);
    assert_eq!(sim.lost(2, 6), 0);
    assert!(sim.take().is_empty());
    assert!(
        sim.table.is_empty(),
        "the lost connection's state is dropped"
    );
}

#[test]
fn lost_close_then_reused_fd_counts_the_new_connection_only() {
    let mut sim = Sim::new();
    sim.accept(1, 0);
    sim.read(1, 10, GET);
    // Response and close lost; the reused fd's accept comes after the notice.
    assert_eq!(sim.lost(1, 20), 1);
    sim.accept(1, 30);
    sim.read(1, 40, GET);
    sim.write(1, 50, &head_with_length("404 Not Found", 0));
    let outputs = sim.take();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(matches!(
        outputs[0],
        Output::Request(Completed {
            outcome: Outcome::Aborted(AbortReason::Unknown),
            ..
        })
    ));
    assert!(matches!(
        outputs[1],
        Output::Request(Completed {
            outcome: Outcome::Status(404),
            start_ns: 40,
            end_ns: 50,
            ..
        })
    ));
}
