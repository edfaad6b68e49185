//! Prometheus export: the Gunicorn metrics rendered from the aggregated statistics, the
//! observer's own metrics, and the HTTP endpoint serving both.

pub mod gunicorn;
pub mod observer;
pub mod queue;
pub mod request_log;
pub mod server;
pub mod web;

pub use gunicorn::GunicornCollector;
pub use observer::ObserverMetrics;
pub use queue::QueueCollector;
pub use request_log::{LoggedRequest, RequestLog};
