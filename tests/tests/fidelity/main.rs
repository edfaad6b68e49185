//! HTTP fidelity (issue 3): each scenario is one small function in the file of its group,
//! checked against the client's own view of the wire and Gunicorn's access log.
//!
//! | scenario | where |
//! |---|---|
//! | 1 keep-alive | `keep_alive.rs` |
//! | 2 pipelining, 3 HEAD then GET | `connections.rs` |
//! | 4 chunked upload, 5 Expect: 100-continue | `uploads.rs` |
//! | 6 slow download, 9 sendfile on and off | `downloads.rs` |
//! | 7 client disconnects | `disconnects.rs` |
//! | 8 unix-socket bind | `connections.rs`, and `hostile_traffic.rs` (`unix_socket_bind_counts_exactly_*`) |
//! | 10 HTTP/1.0 and bare LF, 11 errors Gunicorn answers itself | `refused.rs` |
//! | 12 gevent, Gunicorn's asgi worker, uvicorn's worker | `async_workers.rs` |
//! | 13 Gunicorn 21.2 and 23.0 (27.0 above) | `versions.rs` |
//! | 14 seeded random mix against the access log | `differential.rs` |
//!
//! A new scenario is a `#[test]` that starts a [`scenario::Scenario`], talks to it, and
//! compares [`scenario::Scenario::settle`]'s scrape with what the client saw.

#[path = "../common/mod.rs"]
mod common;

mod async_workers;
mod connections;
mod differential;
mod disconnects;
mod downloads;
mod keep_alive;
mod refused;
mod scenario;
mod uploads;
mod versions;
