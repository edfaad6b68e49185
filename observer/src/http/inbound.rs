//! The read side of a connection: where requests start, where their heads and bodies end.

use super::conn::{Conn, Exchange, Inbound, MAX_IN_FLIGHT, Outbound, is_transient, visible};
use super::framing::{Body, End};
use super::head::Feed;
use super::output::{Method, Output, Problem};
use super::request::{
    BadRequest, RequestBody, RequestHead, method_of, parse_request_head, route_of, starts_request,
};
use super::route::Route;

/// What offering bytes to the request head buffer gave, detached from the buffer's borrow.
enum HeadResult {
    Complete(Result<RequestHead, BadRequest>, Route, usize),
    Partial,
    Overflow(Method, Route),
}

impl Conn {
    /// A read returned `ret` at `ts_ns`, of which `captured` are the first bytes.
    pub(crate) fn read(
        &mut self,
        ts_ns: u64,
        ret: i64,
        captured: &[u8],
        sink: &mut impl FnMut(Output),
    ) {
        if is_transient(ret) {
            return;
        }
        if ret <= 0 {
            // EOF or a reset: the client sends nothing more. Requests it left open are
            // aborted when the connection ends, unless the worker still completes them.
            self.eof_ns.get_or_insert(ts_ns);
            if !matches!(self.inbound, Inbound::Unknown { .. }) {
                self.inbound = Inbound::Closed;
            }
            return;
        }

        let total = ret.unsigned_abs();
        let visible = visible(captured, total);
        if let Inbound::Unknown { may_start } = self.inbound {
            if !(may_start && starts_request(visible)) {
                self.inbound = Inbound::Unknown { may_start: false };
                self.report_unknown(sink);
                return;
            }
            self.inbound = Inbound::Idle;
        }
        self.consume(ts_ns, visible, total, sink);
    }

    /// Walk one read's bytes through the request states; one read may end a body and carry
    /// several whole pipelined requests.
    pub(super) fn consume(
        &mut self,
        ts_ns: u64,
        mut visible: &[u8],
        mut remaining: u64,
        sink: &mut impl FnMut(Output),
    ) {
        while remaining > 0 {
            let taken = match self.inbound {
                Inbound::Idle => {
                    // Blank lines before a request are tolerated (RFC 9112 §2.2) and belong
                    // to no request.
                    let blank = visible
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    if blank == 0 && !self.begin(ts_ns, sink) {
                        break;
                    }
                    blank as u64
                }
                Inbound::Resync { prefix } => {
                    if !self.resync(prefix, ts_ns, visible, remaining, sink) {
                        break;
                    }
                    0
                }
                Inbound::Head { seq } => {
                    self.request_head_bytes(seq, ts_ns, visible, remaining, sink)
                }
                Inbound::Body { seq, mut body } => {
                    let step = body.feed(visible, remaining);
                    self.add_request_bytes(seq, step.used, ts_ns);
                    self.inbound = match step.end {
                        End::More => Inbound::Body { seq, body },
                        End::Done => Inbound::Idle,
                        End::Lost => {
                            sink(Output::Problem(Problem::LostFraming));
                            Inbound::Unframed { seq }
                        }
                    };
                    step.used
                }
                Inbound::Unframed { seq } => {
                    // Without a length, a request runs until the worker starts its answer.
                    if self.exchange_mut(seq).is_some_and(|ex| !ex.final_head) {
                        self.add_request_bytes(seq, remaining, ts_ns);
                        remaining
                    } else {
                        self.inbound = Inbound::Resync { prefix: None };
                        0
                    }
                }
                Inbound::Unknown { .. } | Inbound::Closed => break,
            };
            let taken = taken.min(remaining);
            remaining -= taken;
            visible = visible
                .get(usize::try_from(taken).unwrap_or(usize::MAX)..)
                .unwrap_or_default();
        }
    }

    /// Start a request at this read. `false` if it cannot be followed.
    fn begin(&mut self, ts_ns: u64, sink: &mut impl FnMut(Output)) -> bool {
        // A response of unknown length ended with its last write, which came before this
        // read: the worker only reads the next request once it has answered.
        if self.outbound == Outbound::Delimited {
            let last_write = self.queue.front().and_then(|ex| ex.last_write_ns);
            self.complete_front(last_write.unwrap_or(ts_ns), sink);
        }

        if self.queue.len() >= MAX_IN_FLIGHT {
            sink(Output::Problem(Problem::PipelineOverflow));
            self.inbound = Inbound::Resync { prefix: None };
            return false;
        }

        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Exchange {
            seq,
            method: Method::Other,
            route: Route::unseen(self.route_mode),
            start_ns: ts_ns,
            request_bytes: 0,
            response_bytes: 0,
            request_head_bytes: 0,
            response_head_bytes: 0,
            status: None,
            final_head: false,
            last_write_ns: None,
            last_io_ns: ts_ns,
        });
        self.inbound = Inbound::Head { seq };
        self.after_head_response = false;
        self.unexpected_reported = false;
        true
    }

    /// Bytes of request `seq`'s head; returns how many of `remaining` were taken.
    fn request_head_bytes(
        &mut self,
        seq: u64,
        ts_ns: u64,
        visible: &[u8],
        remaining: u64,
        sink: &mut impl FnMut(Output),
    ) -> u64 {
        if self.exchange_mut(seq).is_none() {
            // The worker answered before the head ended (400, 431): where the next request
            // starts is unknown.
            self.in_head.clear();
            self.inbound = Inbound::Resync { prefix: None };
            return 0;
        }
        if visible.is_empty() {
            // The rest of the head lies beyond the captured bytes.
            let method = method_of(self.in_head.contents());
            let route = route_of(self.in_head.contents(), self.route_mode);
            self.in_head.clear();
            self.set_route(seq, route);
            self.lose_request_head(seq, method, sink);
            self.add_request_bytes(seq, remaining, ts_ns);
            return remaining;
        }

        let mode = self.route_mode;
        let result = match self.in_head.feed(visible) {
            Feed::Complete { head, consumed } => {
                HeadResult::Complete(parse_request_head(head), route_of(head, mode), consumed)
            }
            Feed::Partial => HeadResult::Partial,
            Feed::Overflow(kept) => HeadResult::Overflow(method_of(kept), route_of(kept, mode)),
        };
        match result {
            HeadResult::Complete(parsed, route, consumed) => {
                self.in_head.clear();
                let consumed = consumed as u64;
                self.add_request_head_bytes(seq, consumed, ts_ns);
                self.set_route(seq, route);
                self.inbound = match parsed {
                    Ok(head) => {
                        self.set_method(seq, head.method);
                        match head.body {
                            RequestBody::Empty | RequestBody::Length(0) => Inbound::Idle,
                            RequestBody::Length(n) => Inbound::Body {
                                seq,
                                body: Body::length(n),
                            },
                            RequestBody::Chunked => Inbound::Body {
                                seq,
                                body: Body::chunked(),
                            },
                        }
                    }
                    Err(bad) => {
                        self.set_method(seq, bad.method);
                        sink(Output::Problem(Problem::BadRequestHead));
                        Inbound::Unframed { seq }
                    }
                };
                consumed
            }
            HeadResult::Partial => {
                // The method is known as soon as the request line's first space is, which
                // matters if the worker answers before the head ends.
                let method = method_of(self.in_head.contents());
                self.set_method(seq, method);
                let taken = visible.len() as u64;
                self.add_request_head_bytes(seq, taken, ts_ns);
                taken
            }
            HeadResult::Overflow(method, route) => {
                self.in_head.clear();
                self.set_route(seq, route);
                self.lose_request_head(seq, method, sink);
                self.add_request_bytes(seq, remaining, ts_ns);
                remaining
            }
        }
    }

    /// The head of request `seq` will never be seen whole: frame it by direction instead.
    fn lose_request_head(&mut self, seq: u64, method: Method, sink: &mut impl FnMut(Output)) {
        self.set_method(seq, method);
        sink(Output::Problem(Problem::TruncatedHead));
        self.inbound = Inbound::Unframed { seq };
    }
}
