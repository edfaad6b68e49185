//! HTTP/1.x request reconstruction from socket syscalls.
//!
//! The kernel reports, per accepted socket of a Gunicorn worker, every read and write with
//! its return value and the first `CAPTURE_LEN` bytes moved. [`ConnTable`] follows each
//! connection from accept to close and emits one [`Completed`] per request: from the return
//! of the read that delivered the request's first byte to the return of the write that
//! carried the response's last byte. Body bytes past the captured window are counted from
//! return values, never seen.
//!
//! Pure logic, no I/O: the pipeline feeds decoded events in and takes [`Output`]s out.

mod conn;
mod framing;
mod head;
mod inbound;
mod outbound;
mod output;
mod request;
mod response;
mod resync;
mod route;
mod table;

#[cfg(test)]
mod tests;

pub use output::{AbortReason, Completed, Method, Outcome, Output, Problem};
pub use route::{MAX_ROUTE_BYTES, Route, RouteMode};
pub use table::{ConnTable, DEFAULT_MAX_CONNS};

/// A connection: the worker process and the socket's fd in it. Threads do not matter
/// (gthread accepts on one thread and reads on another), and the fd is reused as soon as it
/// is closed, so a connection's state lives exactly from accept to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub tgid: u32,
    pub fd: i32,
}
