//! What the HTTP stage hands to the aggregator: finished requests and counted problems.
//!
//! Every enum here is bounded and has a fixed `as_str()` so it can be used as a Prometheus
//! label value without ever carrying request data (paths, raw methods) into a label.

use super::ConnId;
use super::route::Route;

/// One item pushed into the caller's sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A request whose outcome is known.
    Request(Completed),
    /// Something the reconstruction could not follow; counted, never fatal.
    Problem(Problem),
}

/// A request from the read that delivered its first byte to the end of its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completed {
    pub conn: ConnId,
    pub method: Method,
    /// The `route` label value of the request target ([`Route::NONE`] when the label is off).
    pub route: Route,
    pub outcome: Outcome,
    /// Return of the read that delivered the request's first byte.
    pub start_ns: u64,
    /// Return of the write that carried the response's last byte; for aborts, the moment
    /// the abort became visible (see [`AbortReason`]). Never before `start_ns`.
    pub end_ns: u64,
    /// Inbound bytes of this request, head and body, counted from syscall returns.
    pub request_bytes: u64,
    /// Outbound bytes the worker wrote for this request, interim 1xx responses included.
    pub response_bytes: u64,
    /// Inbound bytes after the request head: the body as sent, chunk framing included.
    pub request_body_bytes: u64,
    /// Outbound bytes after the final response head: the body as sent, chunk framing
    /// included.
    pub response_body_bytes: u64,
}

impl Completed {
    /// Time from the first request byte read to the end of the response.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The final (non-1xx) status, once the whole response went on the wire.
    Status(u16),
    /// The response never finished.
    Aborted(AbortReason),
}

/// Why a request ended without a complete response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AbortReason {
    /// The client went away: EOF or reset on read, `EPIPE`/`ECONNRESET` on write, or the
    /// connection closed before the response was complete.
    ClientDisconnect,
    /// The worker process exited with the request in flight.
    WorkerDied,
    /// A write failed with an error other than `EPIPE`/`ECONNRESET`.
    WriteError,
    /// Kernel events of the connection were lost (the ring buffer was full), so how the
    /// request ended is not known. Reported as such rather than guessed.
    Unknown,
}

impl AbortReason {
    pub const ALL: [Self; 4] = [
        Self::ClientDisconnect,
        Self::WorkerDied,
        Self::WriteError,
        Self::Unknown,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientDisconnect => "client_disconnect",
            Self::WorkerDied => "worker_died",
            Self::WriteError => "write_error",
            Self::Unknown => "unknown",
        }
    }
}

/// Request method, bounded: anything outside the standard set is [`Method::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Connect,
    Trace,
    Other,
}

impl Method {
    pub const ALL: [Self; 10] = [
        Self::Get,
        Self::Head,
        Self::Post,
        Self::Put,
        Self::Delete,
        Self::Patch,
        Self::Options,
        Self::Connect,
        Self::Trace,
        Self::Other,
    ];

    /// Methods are case-sensitive (RFC 9110 §9.1), so `get` is not `GET`.
    pub fn from_token(token: &[u8]) -> Self {
        match token {
            b"GET" => Self::Get,
            b"HEAD" => Self::Head,
            b"POST" => Self::Post,
            b"PUT" => Self::Put,
            b"DELETE" => Self::Delete,
            b"PATCH" => Self::Patch,
            b"OPTIONS" => Self::Options,
            b"CONNECT" => Self::Connect,
            b"TRACE" => Self::Trace,
            _ => Self::Other,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Patch => "PATCH",
            Self::Options => "OPTIONS",
            Self::Connect => "CONNECT",
            Self::Trace => "TRACE",
            Self::Other => "other",
        }
    }
}

/// A reconstruction problem, counted per occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Problem {
    /// A request line or header block that does not parse; the request is still followed,
    /// with its end taken from the worker's response.
    BadRequestHead,
    /// A response whose status line does not parse; that request is not reported.
    BadStatusLine,
    /// A request or response head that ran past the capture window or the head buffer;
    /// its body length is unknown, so direction changes frame it instead.
    TruncatedHead,
    /// A chunk header of a chunked body fell outside the captured bytes (or did not parse);
    /// the body's end is taken from direction changes instead.
    LostFraming,
    /// The worker wrote with no request in flight (once per run of such writes).
    UnexpectedWrite,
    /// Data on a connection whose accept was not seen and that did not start at a
    /// recognisable request boundary (once per connection).
    DataOnUnknownConn,
    /// A connection could not be added because the table was full (once per attempt).
    TableFull,
    /// An accept reused a (process, fd) still in the table: its close was lost.
    StaleConn,
    /// More pipelined requests waited for responses than one connection may hold.
    PipelineOverflow,
}

impl Problem {
    /// True for problems that change only how a request's end is found, not whether or how
    /// it is counted: heads past the capture window and chunk headers out of sight. These are
    /// normal on healthy traffic (large cookies, chunked uploads), so they are counted apart
    /// from real parse errors, which an alert can then watch.
    pub const fn is_fallback(self) -> bool {
        matches!(self, Self::TruncatedHead | Self::LostFraming)
    }

    pub const ALL: [Self; 9] = [
        Self::BadRequestHead,
        Self::BadStatusLine,
        Self::TruncatedHead,
        Self::LostFraming,
        Self::UnexpectedWrite,
        Self::DataOnUnknownConn,
        Self::TableFull,
        Self::StaleConn,
        Self::PipelineOverflow,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequestHead => "bad_request_head",
            Self::BadStatusLine => "bad_status_line",
            Self::TruncatedHead => "truncated_head",
            Self::LostFraming => "lost_framing",
            Self::UnexpectedWrite => "unexpected_write",
            Self::DataOnUnknownConn => "data_on_unknown_conn",
            Self::TableFull => "table_full",
            Self::StaleConn => "stale_conn",
            Self::PipelineOverflow => "pipeline_overflow",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_tokens_are_case_sensitive_and_bounded() {
        assert_eq!(Method::from_token(b"GET"), Method::Get);
        assert_eq!(Method::from_token(b"PATCH"), Method::Patch);
        assert_eq!(Method::from_token(b"get"), Method::Other);
        assert_eq!(Method::from_token(b"PROPFIND"), Method::Other);
        assert_eq!(Method::from_token(b""), Method::Other);
    }

    #[test]
    fn labels_are_distinct() {
        let methods: Vec<_> = Method::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(
            methods,
            [
                "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
                "other"
            ]
        );
        let reasons: Vec<_> = AbortReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            reasons,
            ["client_disconnect", "worker_died", "write_error", "unknown"]
        );

        let mut problems: Vec<_> = Problem::ALL.iter().map(|p| p.as_str()).collect();
        problems.sort_unstable();
        problems.dedup();
        assert_eq!(problems.len(), Problem::ALL.len());
    }

    #[test]
    fn every_method_label_round_trips() {
        for method in Method::ALL.into_iter().filter(|m| *m != Method::Other) {
            assert_eq!(Method::from_token(method.as_str().as_bytes()), method);
        }
    }
}
