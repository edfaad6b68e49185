//! Whole conversations fed through [`ConnTable`] the way the kernel reports them: one call
//! per syscall, with the return value and at most `CAPTURE_LEN` captured bytes.

mod aborts;
mod bodies;
mod details;
mod in_flight;
mod lost;
mod memory;
mod property;
mod resync;
mod robustness;
mod sequences;
mod splits;
mod unknown;

use observer_ebpf::limits::CAPTURE_LEN;

use super::{
    AbortReason, Completed, ConnId, ConnTable, Method, Outcome, Output, Problem, Route, RouteMode,
};

pub(super) const TGID: u32 = 4242;

pub(super) fn conn(fd: i32) -> ConnId {
    ConnId { tgid: TGID, fd }
}

/// A table and everything it emitted so far.
pub(super) struct Sim {
    pub table: ConnTable,
    out: Vec<Output>,
}

impl Sim {
    pub fn new() -> Self {
        Self::with_cap(1024)
    }

    /// The route label is off here, so the framing tests need not spell routes out;
    /// `details.rs` checks routes with [`Sim::with_routes`].
    pub fn with_cap(max_conns: usize) -> Self {
        Self {
            table: ConnTable::new(max_conns).with_route_mode(RouteMode::Off),
            out: Vec::new(),
        }
    }

    pub fn with_routes(mode: RouteMode) -> Self {
        Self {
            table: ConnTable::new(1024).with_route_mode(mode),
            out: Vec::new(),
        }
    }

    pub fn accept(&mut self, fd: i32, ts: u64) {
        let out = &mut self.out;
        self.table.on_accept(conn(fd), ts, &mut |o| out.push(o));
    }

    /// A read that moved all of `bytes`, of which the kernel captured the first 1024.
    pub fn read(&mut self, fd: i32, ts: u64, bytes: &[u8]) {
        self.read_ret(fd, ts, bytes.len() as i64, captured(bytes));
    }

    pub fn read_ret(&mut self, fd: i32, ts: u64, ret: i64, captured: &[u8]) {
        let out = &mut self.out;
        self.table
            .on_read(conn(fd), ts, ret, captured, &mut |o| out.push(o));
    }

    pub fn eof(&mut self, fd: i32, ts: u64) {
        self.read_ret(fd, ts, 0, b"");
    }

    pub fn write(&mut self, fd: i32, ts: u64, bytes: &[u8]) {
        self.write_ret(fd, ts, bytes.len() as i64, captured(bytes));
    }

    pub fn write_ret(&mut self, fd: i32, ts: u64, ret: i64, captured: &[u8]) {
        let out = &mut self.out;
        self.table
            .on_write(conn(fd), ts, ret, captured, &mut |o| out.push(o));
    }

    pub fn sendfile(&mut self, fd: i32, ts: u64, sent: i64) {
        self.write_ret(fd, ts, sent, b"");
    }

    pub fn shutdown(&mut self, fd: i32, ts: u64) {
        let out = &mut self.out;
        self.table.on_shutdown(conn(fd), ts, &mut |o| out.push(o));
    }

    pub fn close(&mut self, fd: i32, ts: u64) {
        let out = &mut self.out;
        self.table.on_close(conn(fd), ts, &mut |o| out.push(o));
    }

    /// The kernel reported lost events on `fd`; returns the requests cut short.
    pub fn lost(&mut self, fd: i32, ts: u64) -> usize {
        let out = &mut self.out;
        self.table.on_lost(conn(fd), ts, &mut |o| out.push(o))
    }

    pub fn exit(&mut self, tgid: u32, ts: u64) {
        let out = &mut self.out;
        self.table.on_process_exit(tgid, ts, &mut |o| out.push(o));
    }

    /// Everything emitted since the last call, with the body sizes zeroed: the framing tests
    /// compare totals, and `details.rs` checks the split into head and body.
    pub fn take(&mut self) -> Vec<Output> {
        let mut out = self.take_full();
        for output in &mut out {
            if let Output::Request(request) = output {
                request.request_body_bytes = 0;
                request.response_body_bytes = 0;
            }
        }
        out
    }

    /// Everything emitted since the last call, as emitted.
    pub fn take_full(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }
}

fn captured(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(CAPTURE_LEN)]
}

/// A request that completed with `status`.
pub(super) fn done(
    fd: i32,
    method: Method,
    status: u16,
    (start_ns, end_ns): (u64, u64),
    (request_bytes, response_bytes): (u64, u64),
) -> Output {
    Output::Request(Completed {
        conn: conn(fd),
        method,
        route: Route::NONE,
        outcome: Outcome::Status(status),
        start_ns,
        end_ns,
        request_bytes,
        response_bytes,
        request_body_bytes: 0,
        response_body_bytes: 0,
    })
}

/// A request that ended without a complete response.
pub(super) fn aborted(
    fd: i32,
    method: Method,
    reason: AbortReason,
    (start_ns, end_ns): (u64, u64),
    (request_bytes, response_bytes): (u64, u64),
) -> Output {
    Output::Request(Completed {
        conn: conn(fd),
        method,
        route: Route::NONE,
        outcome: Outcome::Aborted(reason),
        start_ns,
        end_ns,
        request_bytes,
        response_bytes,
        request_body_bytes: 0,
        response_body_bytes: 0,
    })
}

pub(super) fn problem(p: Problem) -> Output {
    Output::Problem(p)
}

/// `n` bytes of filler for bodies.
pub(super) fn filler(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A response head with a Content-Length, as Gunicorn writes it in one send.
pub(super) fn head_with_length(status: &str, length: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nServer: gunicorn\r\nConnection: keep-alive\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}
