//! gunicorn-observer: Gunicorn request and worker metrics from kernel tracepoints.
//!
//! The modules follow the data's path: `load` attaches the kernel programs, `decode` turns
//! ring-buffer records into typed events, `http` rebuilds requests per connection,
//! `aggregate` folds them into metrics, and `export` serves them. `discover` finds the
//! Gunicorn processes to watch.

pub mod aggregate;
pub mod cli;
pub mod clock;
pub mod decode;
pub mod discover;
pub mod export;
pub mod hashing;
pub mod heap;
pub mod http;
pub mod lifecycle;
pub mod load;
pub mod pipeline;
pub mod preflight;
pub mod queue;
pub mod sample;
