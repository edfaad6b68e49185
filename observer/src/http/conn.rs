//! One connection's state: the requests in flight, in order, and where the parser of each
//! direction stands.
//!
//! Inbound and outbound are followed independently. The read side may run several requests
//! ahead (pipelining); the write side always works on the oldest request still waiting for
//! its response, so responses are matched to requests first in, first out.

use std::collections::VecDeque;

use super::ConnId;
use super::framing::Body;
use super::head::HeadBuf;
use super::output::{AbortReason, Completed, Method, Outcome, Output, Problem};
use super::resync::LinePrefix;
use super::route::{Route, RouteMode};

/// Requests one connection may have waiting for responses. Gunicorn answers one request at a
/// time, so a deeper queue only comes from a client pipelining far ahead; beyond this the
/// extra requests are not followed (counted as [`Problem::PipelineOverflow`]).
pub(crate) const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug)]
pub(crate) struct Conn {
    pub(super) id: ConnId,
    /// Requests whose first byte was read and whose response has not ended, oldest first.
    pub(super) queue: VecDeque<Exchange>,
    pub(super) next_seq: u64,
    pub(super) inbound: Inbound,
    pub(super) outbound: Outbound,
    pub(super) in_head: HeadBuf,
    pub(super) out_head: HeadBuf,
    /// When the client's EOF (or a read error) was seen; requests still open when the
    /// connection ends were cut off by the client at this point.
    pub(super) eof_ns: Option<u64>,
    /// Set when a HEAD response ended: anything the worker writes before the next status line
    /// is a body old Gunicorn versions wrongly sent, not a new response.
    pub(super) after_head_response: bool,
    pub(super) unexpected_reported: bool,
    pub(super) unknown_reported: bool,
    /// How request targets become routes.
    pub(super) route_mode: RouteMode,
}

/// One request and its response.
#[derive(Clone, Copy, Debug)]
pub(super) struct Exchange {
    pub seq: u64,
    pub method: Method,
    pub route: Route,
    pub start_ns: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// The part of `request_bytes` that was head; the rest is body.
    pub request_head_bytes: u64,
    /// The part of `response_bytes` that was heads (interim ones included).
    pub response_head_bytes: u64,
    /// The final status; `None` until the final head is parsed, or if it did not parse.
    pub status: Option<u16>,
    /// The final (non-1xx) response head has gone out, parsed or not.
    pub final_head: bool,
    pub last_write_ns: Option<u64>,
    /// Latest read or write attributed to this request.
    pub last_io_ns: u64,
}

/// Where the read side stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Inbound {
    /// At a request boundary: the next byte read starts a request.
    Idle,
    /// Collecting the head of request `seq` (kept in `in_head`).
    Head { seq: u64 },
    /// Following the body of request `seq`.
    Body { seq: u64, body: Body },
    /// The length of request `seq` is unknown: its bytes run until its final response head
    /// goes out.
    Unframed { seq: u64 },
    /// Framing was lost: wait for a read that begins with a request line. `prefix`: the
    /// reads since were too short to tell, and may be the beginning of one.
    Resync { prefix: Option<LinePrefix> },
    /// A connection whose accept was not seen. `may_start`: a read beginning with a request
    /// line would be at a request boundary (nothing yet, or the worker has just written).
    Unknown { may_start: bool },
    /// No more requests: the client sent EOF, or the connection failed or was shut down.
    Closed,
}

/// Where the write side stands, for the oldest request in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outbound {
    /// Waiting for a status line and headers (kept in `out_head`).
    Head,
    Body(Body),
    /// Body length unknown: it ends when the connection does or the next request starts.
    Delimited,
    /// Writes are no longer followed (shut down, or a write failed).
    Dead,
}

impl Conn {
    pub(crate) fn accepted(id: ConnId, route_mode: RouteMode) -> Self {
        Self::with_inbound(id, Inbound::Idle, route_mode)
    }

    pub(crate) fn unknown(id: ConnId, route_mode: RouteMode) -> Self {
        Self::with_inbound(id, Inbound::Unknown { may_start: true }, route_mode)
    }

    fn with_inbound(id: ConnId, inbound: Inbound, route_mode: RouteMode) -> Self {
        Self {
            id,
            // Gunicorn answers one request at a time, so one slot is all but a pipelining client
            // needs; `VecDeque` would otherwise grow to four on the first push and keep them.
            queue: VecDeque::with_capacity(1),
            next_seq: 0,
            inbound,
            outbound: Outbound::Head,
            in_head: HeadBuf::default(),
            out_head: HeadBuf::default(),
            eof_ns: None,
            after_head_response: false,
            unexpected_reported: false,
            unknown_reported: false,
            route_mode,
        }
    }

    /// The worker shut the connection down. Gunicorn does this (`SHUT_WR` or `SHUT_RDWR`)
    /// once it will write nothing more; the reads that may follow only drain the socket.
    pub(crate) fn shutdown(&mut self, ts_ns: u64, sink: &mut impl FnMut(Output)) {
        self.finish(ts_ns, AbortReason::ClientDisconnect, sink);
    }

    /// close(2): the connection ends; the caller drops it.
    pub(crate) fn close(mut self, ts_ns: u64, sink: &mut impl FnMut(Output)) {
        self.finish(ts_ns, AbortReason::ClientDisconnect, sink);
    }

    /// The worker process exited with this connection open.
    pub(crate) fn worker_died(mut self, ts_ns: u64, sink: &mut impl FnMut(Output)) {
        self.finish(ts_ns, AbortReason::WorkerDied, sink);
    }

    /// The connection ends: anything still open is aborted for `reason`, except a body
    /// delimited by close when the worker closed on purpose. A worker that died mid-body may
    /// have been cut short, and a status is never reported for what may not have gone out.
    fn finish(&mut self, ts_ns: u64, reason: AbortReason, sink: &mut impl FnMut(Output)) {
        if self.outbound == Outbound::Delimited && reason != AbortReason::WorkerDied {
            let end = self.queue.front().and_then(|ex| ex.last_write_ns);
            self.complete_front(end.unwrap_or(ts_ns), sink);
        }

        // A client that sent EOF ended its requests then, not when the worker noticed;
        // a dying worker ends them at its exit.
        let eof_ns = self
            .eof_ns
            .filter(|_| reason == AbortReason::ClientDisconnect);
        while let Some(ex) = self.queue.pop_front() {
            let end = match eof_ns {
                Some(eof) => eof.max(ex.last_io_ns),
                None => ts_ns,
            };
            self.emit(&ex, Outcome::Aborted(reason), end, sink);
        }
        self.inbound = Inbound::Closed;
        self.outbound = Outbound::Dead;
    }

    /// The oldest request's response ended with the write at `end_ns`.
    pub(super) fn complete_front(&mut self, end_ns: u64, sink: &mut impl FnMut(Output)) {
        if let Some(ex) = self.queue.pop_front() {
            // A status line that did not parse was counted as a problem when it was seen.
            if let Some(status) = ex.status {
                self.emit(&ex, Outcome::Status(status), end_ns, sink);
            }
        }
        self.outbound = Outbound::Head;
        self.out_head.clear();

        // A pipelining burst grew the queue; an idle keep-alive connection keeps one slot.
        if self.queue.is_empty() && self.queue.capacity() > 1 {
            self.queue.shrink_to(1);
        }
    }

    /// Abort every request in flight at once: the connection cannot carry responses anymore.
    pub(super) fn abort_all(
        &mut self,
        reason: AbortReason,
        end_ns: u64,
        sink: &mut impl FnMut(Output),
    ) {
        while let Some(ex) = self.queue.pop_front() {
            self.emit(&ex, Outcome::Aborted(reason), end_ns, sink);
        }
        self.inbound = Inbound::Closed;
        self.outbound = Outbound::Dead;
    }

    fn emit(&self, ex: &Exchange, outcome: Outcome, end_ns: u64, sink: &mut impl FnMut(Output)) {
        // Events from different CPUs can arrive slightly out of order; a request never ends
        // before it starts.
        sink(Output::Request(Completed {
            conn: self.id,
            method: ex.method,
            route: ex.route,
            outcome,
            start_ns: ex.start_ns,
            end_ns: end_ns.max(ex.start_ns),
            request_bytes: ex.request_bytes,
            response_bytes: ex.response_bytes,
            request_body_bytes: ex.request_bytes.saturating_sub(ex.request_head_bytes),
            response_body_bytes: ex.response_bytes.saturating_sub(ex.response_head_bytes),
        }));
    }

    pub(super) fn exchange_mut(&mut self, seq: u64) -> Option<&mut Exchange> {
        self.queue.iter_mut().rev().find(|ex| ex.seq == seq)
    }

    /// Attribute inbound bytes to request `seq`, if it is still in flight.
    pub(super) fn add_request_bytes(&mut self, seq: u64, n: u64, ts_ns: u64) {
        if let Some(ex) = self.exchange_mut(seq) {
            ex.request_bytes = ex.request_bytes.saturating_add(n);
            ex.last_io_ns = ex.last_io_ns.max(ts_ns);
        }
    }

    /// Attribute inbound head bytes to request `seq`.
    pub(super) fn add_request_head_bytes(&mut self, seq: u64, n: u64, ts_ns: u64) {
        self.add_request_bytes(seq, n, ts_ns);
        if let Some(ex) = self.exchange_mut(seq) {
            ex.request_head_bytes = ex.request_head_bytes.saturating_add(n);
        }
    }

    pub(super) fn set_route(&mut self, seq: u64, route: Route) {
        if let Some(ex) = self.exchange_mut(seq) {
            ex.route = route;
        }
    }

    pub(super) fn set_method(&mut self, seq: u64, method: Method) {
        if let Some(ex) = self.exchange_mut(seq) {
            ex.method = method;
        }
    }

    pub(super) fn report_unknown(&mut self, sink: &mut impl FnMut(Output)) {
        if !self.unknown_reported {
            self.unknown_reported = true;
            sink(Output::Problem(Problem::DataOnUnknownConn));
        }
    }
}

/// `EAGAIN` (= `EWOULDBLOCK`) and `EINTR` come from non-blocking gthread and gevent sockets
/// and interrupted calls; they move no bytes and change nothing.
pub(super) fn is_transient(ret: i64) -> bool {
    ret == -i64::from(libc::EAGAIN) || ret == -i64::from(libc::EINTR)
}

/// The captured bytes of a syscall that moved `total` bytes: never more than moved.
pub(super) fn visible(captured: &[u8], total: u64) -> &[u8] {
    let moved = usize::try_from(total).unwrap_or(usize::MAX);
    captured.get(..moved).unwrap_or(captured)
}
