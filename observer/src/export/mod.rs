//! Prometheus export: the Gunicorn metrics rendered from the aggregated statistics, the
//! observer's own metrics, and the HTTP endpoint serving both.

pub mod gunicorn;
pub mod observer;
pub mod queue;
pub mod server;
pub mod web;

pub use gunicorn::GunicornCollector;
pub use observer::ObserverMetrics;
pub use queue::QueueCollector;
