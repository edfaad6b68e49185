//! The observer's own health: what it handled, dropped and failed to parse.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use observer_ebpf::drops::DROP_REASON_NAMES;

use crate::{decode::DecodeError, http::Problem, sample::SampleError};

/// Label values of `gunicorn_observer_discovery_errors_total`.
pub const DISCOVERY_ERROR_REASONS: [&str; 7] = [
    "scan_failed",
    "process_gone",
    "unreadable",
    "malformed",
    "config_unreadable",
    "track_failed",
    "cgroup_unreadable",
];

/// Label values of `gunicorn_observer_queue_errors_total`: listen queues that could not be
/// read, and accepted connections whose queue wait could not be measured or attributed.
pub const QUEUE_ERROR_REASONS: [&str; 6] = [
    "fd_table_unreadable",
    "netns_unreachable",
    "diag_failed",
    "port_map_failed",
    "no_handshake",
    "no_listener",
];

/// Self-metrics, registered once. Cloning shares the underlying series.
/// `sample_errors` reason for a failed read of the kernel's heartbeat map.
pub const HEARTBEAT_UNREADABLE: &str = "heartbeat_unreadable";

#[derive(Clone)]
pub struct ObserverMetrics {
    pub events: IntCounterVec,
    pub dropped: IntCounterVec,
    pub decode_errors: IntCounterVec,
    pub http_problems: IntCounterVec,
    pub http_fallbacks: IntCounterVec,
    pub discovery_errors: IntCounterVec,
    pub sample_errors: IntCounterVec,
    pub queue_errors: IntCounterVec,
    pub unattributed: IntCounter,
    pub connections_lost: IntCounter,
    pub tracked: IntGaugeVec,
    pub connections: IntGauge,
    pub build_info: IntGaugeVec,
    /// Last kernel drop totals seen, so the counters advance by the difference.
    kernel_drops_seen: [u64; DROP_REASON_NAMES.len()],
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

impl ObserverMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            events: counter_vec(
                "gunicorn_observer_events_total",
                "Kernel events handled, by kind.",
                &["kind"],
            ),
            dropped: counter_vec(
                "gunicorn_observer_events_dropped_total",
                "Events lost in the kernel before reaching userspace, by reason.",
                &["reason"],
            ),
            decode_errors: counter_vec(
                "gunicorn_observer_decode_errors_total",
                "Ring-buffer records that could not be decoded, by reason.",
                &["reason"],
            ),
            http_problems: counter_vec(
                "gunicorn_observer_http_parse_errors_total",
                "Connection data that could not be parsed as HTTP/1.x, by problem.",
                &["problem"],
            ),
            http_fallbacks: counter_vec(
                "gunicorn_observer_http_fallbacks_total",
                "Requests framed by the direction of traffic because their head or chunk \
                 framing was outside the captured bytes; still counted exactly.",
                &["reason"],
            ),
            discovery_errors: counter_vec(
                "gunicorn_observer_discovery_errors_total",
                "Failures reading /proc or updating the kernel's process map, by reason.",
                &["reason"],
            ),
            sample_errors: counter_vec(
                "gunicorn_observer_sample_errors_total",
                "Failures sampling a process's memory, CPU or uptime from /proc, by reason.",
                &["reason"],
            ),
            queue_errors: counter_vec(
                "gunicorn_observer_queue_errors_total",
                "Listen queues that could not be read, and accepted TCP connections whose queue \
                 wait was not measured (no_handshake) or not attributed (no_listener), by reason.",
                &["reason"],
            ),
            unattributed: IntCounter::new(
                "gunicorn_observer_unattributed_requests_total",
                "Requests from a process the observer could not map to a Gunicorn worker.",
            )?,
            connections_lost: IntCounter::new(
                "gunicorn_observer_connections_lost_total",
                "Times a connection lost kernel events because the ring buffer was full; its \
                 requests in flight count as failed with error_type=\"unknown\".",
            )?,
            tracked: IntGaugeVec::new(
                Opts::new(
                    "gunicorn_observer_tracked_processes",
                    "Gunicorn processes being watched, by role.",
                ),
                &["role"],
            )?,
            connections: IntGauge::new(
                "gunicorn_observer_open_connections",
                "Accepted connections whose HTTP state is being tracked.",
            )?,
            build_info: IntGaugeVec::new(
                Opts::new(
                    "gunicorn_observer_build_info",
                    "Always 1; labels carry the observer's version.",
                ),
                &["version"],
            )?,
            kernel_drops_seen: [0; DROP_REASON_NAMES.len()],
        };

        registry.register(Box::new(metrics.events.clone()))?;
        registry.register(Box::new(metrics.dropped.clone()))?;
        registry.register(Box::new(metrics.decode_errors.clone()))?;
        registry.register(Box::new(metrics.http_problems.clone()))?;
        registry.register(Box::new(metrics.http_fallbacks.clone()))?;
        registry.register(Box::new(metrics.discovery_errors.clone()))?;
        registry.register(Box::new(metrics.sample_errors.clone()))?;
        registry.register(Box::new(metrics.queue_errors.clone()))?;
        registry.register(Box::new(metrics.unattributed.clone()))?;
        registry.register(Box::new(metrics.connections_lost.clone()))?;
        registry.register(Box::new(metrics.tracked.clone()))?;
        registry.register(Box::new(metrics.connections.clone()))?;
        registry.register(Box::new(metrics.build_info.clone()))?;

        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Every failure series exists from the start, so an alert on `rate(...) > 0` sees a
        // zero rather than no data.
        let zeroes = [
            (&metrics.dropped, &DROP_REASON_NAMES[..]),
            (&metrics.decode_errors, &DecodeError::REASONS[..]),
            (&metrics.discovery_errors, &DISCOVERY_ERROR_REASONS[..]),
            (&metrics.sample_errors, &SampleError::REASONS[..]),
            (&metrics.sample_errors, &[HEARTBEAT_UNREADABLE][..]),
            (&metrics.queue_errors, &QUEUE_ERROR_REASONS[..]),
        ];
        for (counter, reasons) in zeroes {
            for reason in reasons {
                counter.with_label_values(&[*reason]);
            }
        }
        for problem in Problem::ALL {
            let counter = match problem.is_fallback() {
                true => &metrics.http_fallbacks,
                false => &metrics.http_problems,
            };
            counter.with_label_values(&[problem.as_str()]);
        }
        Ok(metrics)
    }

    /// Advances the drop counters to the kernel's running totals.
    pub fn set_kernel_drops(&mut self, totals: &[u64; DROP_REASON_NAMES.len()]) {
        for (i, total) in totals.iter().enumerate() {
            let delta = total.saturating_sub(self.kernel_drops_seen[i]);
            if delta > 0 {
                self.dropped
                    .with_label_values(&[DROP_REASON_NAMES[i]])
                    .inc_by(delta);
            }
            self.kernel_drops_seen[i] = self.kernel_drops_seen[i].max(*total);
        }
    }
}
