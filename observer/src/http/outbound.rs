//! The write side of a connection: the oldest waiting request's response, from its status
//! line to its last byte.

use super::conn::{Conn, Inbound, Outbound, is_transient, visible};
use super::framing::{Body, End};
use super::head::Feed;
use super::output::{AbortReason, Method, Output, Problem};
use super::response::{
    ResponseBody, ResponseHead, may_start_response, parse_response_head, status_of,
};

/// What offering bytes to the response head buffer gave, detached from the buffer's borrow.
enum HeadResult {
    Complete(Option<ResponseHead>, usize),
    Partial,
    Overflow(Option<u16>),
}

impl Conn {
    /// A write (or sendfile, with nothing captured) returned `ret` at `ts_ns`.
    pub(crate) fn write(
        &mut self,
        ts_ns: u64,
        ret: i64,
        captured: &[u8],
        sink: &mut impl FnMut(Output),
    ) {
        if is_transient(ret) || ret == 0 {
            return;
        }
        if let Inbound::Unknown { .. } = self.inbound {
            // The answer to a request read before we were watching; the next read may start
            // a request we can follow.
            if ret > 0 {
                self.inbound = Inbound::Unknown { may_start: true };
                self.report_unknown(sink);
            }
            return;
        }
        if ret < 0 {
            // The connection cannot carry any more responses.
            let reason = if ret == -i64::from(libc::EPIPE) || ret == -i64::from(libc::ECONNRESET) {
                AbortReason::ClientDisconnect
            } else {
                AbortReason::WriteError
            };
            self.abort_all(reason, ts_ns, sink);
            return;
        }

        let total = ret.unsigned_abs();
        self.produce(ts_ns, visible(captured, total), total, sink);
    }

    /// Walk one write's bytes through the response states.
    fn produce(
        &mut self,
        ts_ns: u64,
        mut visible: &[u8],
        mut remaining: u64,
        sink: &mut impl FnMut(Output),
    ) {
        while remaining > 0 {
            if self.outbound == Outbound::Dead {
                break;
            }
            if self.queue.is_empty() {
                // After a HEAD response this is the body old Gunicorn wrongly sent.
                if !self.after_head_response && !self.unexpected_reported {
                    self.unexpected_reported = true;
                    sink(Output::Problem(Problem::UnexpectedWrite));
                }
                break;
            }
            let taken = match self.outbound {
                Outbound::Head => {
                    if self.after_head_response
                        && self.out_head.is_empty()
                        && !may_start_response(visible)
                    {
                        break;
                    }
                    self.response_head_bytes(ts_ns, visible, remaining, sink)
                }
                Outbound::Body(mut body) => {
                    let step = body.feed(visible, remaining);
                    self.add_response_bytes(step.used, ts_ns);
                    match step.end {
                        End::More => self.outbound = Outbound::Body(body),
                        End::Done => self.complete_front(ts_ns, sink),
                        End::Lost => {
                            sink(Output::Problem(Problem::LostFraming));
                            self.outbound = Outbound::Delimited;
                        }
                    }
                    step.used
                }
                Outbound::Delimited => {
                    self.add_response_bytes(remaining, ts_ns);
                    remaining
                }
                Outbound::Dead => 0,
            };
            let taken = taken.min(remaining);
            remaining -= taken;
            visible = visible
                .get(usize::try_from(taken).unwrap_or(usize::MAX)..)
                .unwrap_or_default();
        }
    }

    /// Bytes of a response head; returns how many of `remaining` were taken.
    fn response_head_bytes(
        &mut self,
        ts_ns: u64,
        visible: &[u8],
        remaining: u64,
        sink: &mut impl FnMut(Output),
    ) -> u64 {
        self.after_head_response = false;
        if visible.is_empty() {
            // The rest of the head lies beyond the captured bytes.
            let status = status_of(self.out_head.contents());
            self.out_head.clear();
            self.lose_response_head(status, sink);
            self.add_response_bytes(remaining, ts_ns);
            return remaining;
        }

        let result = match self.out_head.feed(visible) {
            Feed::Complete { head, consumed } => {
                HeadResult::Complete(parse_response_head(head), consumed)
            }
            Feed::Partial => HeadResult::Partial,
            Feed::Overflow(kept) => HeadResult::Overflow(status_of(kept)),
        };
        match result {
            HeadResult::Complete(parsed, consumed) => {
                self.out_head.clear();
                let consumed = consumed as u64;
                self.add_response_head_bytes(consumed, ts_ns);
                match parsed {
                    // 100 Continue and friends: the final head is still to come.
                    Some(head) if head.is_interim() => {}
                    Some(head) => self.final_head(head, ts_ns, sink),
                    None => {
                        sink(Output::Problem(Problem::BadStatusLine));
                        self.set_final(None);
                        self.outbound = Outbound::Delimited;
                    }
                }
                consumed
            }
            HeadResult::Partial => {
                let taken = visible.len() as u64;
                self.add_response_head_bytes(taken, ts_ns);
                taken
            }
            HeadResult::Overflow(status) => {
                self.out_head.clear();
                self.lose_response_head(status, sink);
                self.add_response_bytes(remaining, ts_ns);
                remaining
            }
        }
    }

    /// The final head of the oldest request's response went out with the write at `ts_ns`.
    fn final_head(&mut self, head: ResponseHead, ts_ns: u64, sink: &mut impl FnMut(Output)) {
        let method = self.queue.front().map_or(Method::Other, |ex| ex.method);
        self.set_final(Some(head.status));
        match head.body_for(method) {
            ResponseBody::Empty | ResponseBody::Length(0) => {
                self.complete_front(ts_ns, sink);
                self.after_head_response = method == Method::Head;
            }
            ResponseBody::Length(n) => self.outbound = Outbound::Body(Body::length(n)),
            ResponseBody::Chunked => self.outbound = Outbound::Body(Body::chunked()),
            ResponseBody::Delimited => self.outbound = Outbound::Delimited,
        }

        // After 101 Switching Protocols the connection no longer speaks HTTP: what the client
        // sends next is not a request, and the tunnel ends with the connection.
        if head.status == 101 {
            self.inbound = Inbound::Closed;
        }
    }

    /// The response head will never be seen whole: the status may be known, the framing is
    /// not, so the body is taken to run until the next request or the connection's end.
    fn lose_response_head(&mut self, status: Option<u16>, sink: &mut impl FnMut(Output)) {
        let problem = if status.is_some() {
            Problem::TruncatedHead
        } else {
            Problem::BadStatusLine
        };
        sink(Output::Problem(problem));
        self.set_final(status);
        self.outbound = Outbound::Delimited;
    }

    fn set_final(&mut self, status: Option<u16>) {
        if let Some(ex) = self.queue.front_mut() {
            ex.status = status;
            ex.final_head = true;
        }
    }

    fn add_response_head_bytes(&mut self, n: u64, ts_ns: u64) {
        self.add_response_bytes(n, ts_ns);
        if let Some(ex) = self.queue.front_mut() {
            ex.response_head_bytes = ex.response_head_bytes.saturating_add(n);
        }
    }

    fn add_response_bytes(&mut self, n: u64, ts_ns: u64) {
        if let Some(ex) = self.queue.front_mut() {
            ex.response_bytes = ex.response_bytes.saturating_add(n);
            ex.last_write_ns = Some(ts_ns);
            ex.last_io_ns = ex.last_io_ns.max(ts_ns);
        }
    }
}
