//! Harness for the integration tests: real Gunicorn from the venv `cargo xtask` builds, the
//! real observer binary, and real traffic over loopback TCP or unix sockets.
//!
//! Everything here panics with the evidence (logs, stderr) when a process does not come up,
//! because a test cannot do anything better with the error.

pub mod access_log;
pub mod certs;
pub mod env;
pub mod gunicorn;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod observer;
pub mod proc_view;
pub mod process;
pub mod prometheus;
pub mod tempdir;

pub use access_log::AccessEntry;
pub use env::{apps_dir, observer_bin, older_venv, venv};
pub use gunicorn::{Bind, Gunicorn, GunicornOpts, WorkerClass};
pub use http::{Addr, Conn, Response, request};
pub use metrics::Metrics;
pub use observer::Observer;
pub use proc_view::ProcView;
