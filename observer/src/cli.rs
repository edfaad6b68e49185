//! Command-line flags. Every flag also reads a `GUNICORN_OBSERVER_*` environment variable, so
//! a DaemonSet can configure the observer without templating its arguments.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use observer_ebpf::limits::RING_BUF_BYTES;

use crate::{aggregate::DEFAULT_ROUTE_LIMIT, http::RouteMode};

/// Default histogram buckets for request durations, in seconds. They follow the
/// OpenTelemetry defaults for HTTP server durations, which suit web requests from a few
/// milliseconds to ten seconds.
pub const DEFAULT_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, Parser)]
#[command(name = "gunicorn-observer", version, about)]
pub struct Args {
    /// Address to serve /metrics, /healthz and /readyz on.
    #[arg(long, env = "GUNICORN_OBSERVER_LISTEN", default_value = "0.0.0.0:9464")]
    pub listen: SocketAddr,

    /// Where the host's /proc is mounted (with hostPID it is /proc).
    #[arg(long, env = "GUNICORN_OBSERVER_PROC_ROOT", default_value = "/proc")]
    pub proc_root: PathBuf,

    /// Seconds between full /proc rescans. Exec events find new masters at once; the rescan
    /// only repairs what lost events may have hidden.
    #[arg(long, env = "GUNICORN_OBSERVER_RESCAN_SECS", default_value_t = 5)]
    pub rescan_secs: u64,

    /// Milliseconds between ring-buffer drains when the kernel has not woken us. The kernel
    /// wakes the daemon for large batches and process events, and every scrape drains first,
    /// so this only bounds how long small batches wait between scrapes; a short one costs
    /// CPU even when idle (10 ms was 6.5 of the observer's 7.5 idle millicores).
    #[arg(long, env = "GUNICORN_OBSERVER_DRAIN_MS", default_value_t = 250)]
    pub drain_ms: u64,

    /// Seconds between samples of each process's memory, CPU and uptime from /proc, and of
    /// each worker's last heartbeat from the kernel.
    #[arg(long, env = "GUNICORN_OBSERVER_SAMPLE_SECS", default_value_t = 5)]
    pub sample_secs: u64,

    /// Request-duration histogram buckets in seconds, comma separated and increasing.
    #[arg(
        long,
        env = "GUNICORN_OBSERVER_DURATION_BUCKETS",
        value_delimiter = ',',
        value_parser = parse_bucket,
    )]
    pub duration_buckets: Vec<f64>,

    /// URL of this node's pod list, to label each instance with its Kubernetes `namespace`,
    /// `pod` and `container`: the kubelet's read-only `http://<node>:10255/pods`, or an API
    /// server proxy, `http://127.0.0.1:8001/api/v1/pods?fieldSelector=spec.nodeName%3D<node>`.
    /// Unset: no pod labels.
    #[arg(long, env = "GUNICORN_OBSERVER_KUBE_PODS_URL")]
    pub kube_pods_url: Option<String>,

    /// File holding a bearer token sent with each pod-list request (re-read every time).
    #[arg(long, env = "GUNICORN_OBSERVER_KUBE_TOKEN_FILE")]
    pub kube_token_file: Option<PathBuf>,

    /// Seconds between pod-list fetches; an instance not in the list yet triggers one sooner.
    #[arg(
        long,
        env = "GUNICORN_OBSERVER_KUBE_REFRESH_SECS",
        default_value_t = 30
    )]
    pub kube_refresh_secs: u64,
    /// The `route` label: `template` turns id-like path segments into `:id`, `:uuid` and
    /// `:hex`; `raw` keeps paths as sent; `off` leaves the label out. Query strings never
    /// take part.
    #[arg(
        long,
        env = "GUNICORN_OBSERVER_ROUTE_LABEL",
        value_enum,
        default_value_t = RouteMode::Template
    )]
    pub route_label: RouteMode,

    /// Distinct routes each app keeps as their own `route` label value; later ones are
    /// counted as `route="other"`.
    #[arg(long, env = "GUNICORN_OBSERVER_MAX_ROUTES", default_value_t = DEFAULT_ROUTE_LIMIT)]
    pub max_routes: usize,

    /// Also write one JSON line per finished request to this file (appended to): time, pid,
    /// worker_id, method, the `route` label as --route-label makes it, status or error_type,
    /// duration_us and body sizes. No header values or query strings. Unset: no log.
    #[arg(long, env = "GUNICORN_OBSERVER_REQUEST_LOG")]
    pub request_log: Option<PathBuf>,

    /// Size of the kernel's event ring buffer in bytes: a power of two, at least 4096. The
    /// observer's RSS counts it twice (the kernel maps its pages twice). Raise it if
    /// `gunicorn_observer_events_dropped_total{reason="ringbuf_full"}` grows: at about 1 KiB
    /// of events per request, it holds what the node serves while the observer waits for a
    /// CPU (docs/BENCHMARKS.md, part 4).
    #[arg(
        long,
        env = "GUNICORN_OBSERVER_RING_BUFFER_BYTES",
        default_value_t = RING_BUF_BYTES,
        value_parser = parse_ring_bytes,
    )]
    pub ring_buffer_bytes: u32,

    /// The web-config file Prometheus exporters share: TLS, basic auth, response headers and
    /// a rate limit for /metrics. Unset: plain HTTP, no auth.
    #[arg(long = "web.config.file", env = "GUNICORN_OBSERVER_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Log filter in tracing's env-filter syntax, e.g. `info` or `gunicorn_observer=debug`.
    #[arg(long, env = "GUNICORN_OBSERVER_LOG", default_value = "info")]
    pub log: String,

    /// Also write every raw ring-buffer record to this file, for the replay benchmark
    /// (`cargo xtask bench`). A development aid, so not in `--help`.
    #[arg(long, env = "GUNICORN_OBSERVER_RECORD", hide = true)]
    pub record: Option<PathBuf>,
}

impl Args {
    pub fn rescan_interval(&self) -> Duration {
        Duration::from_secs(self.rescan_secs.max(1))
    }

    pub fn sample_interval(&self) -> Duration {
        Duration::from_secs(self.sample_secs.max(1))
    }

    pub fn kube_refresh_interval(&self) -> Duration {
        Duration::from_secs(self.kube_refresh_secs.max(1))
    }

    pub fn drain_interval(&self) -> Duration {
        Duration::from_millis(self.drain_ms.clamp(1, 1_000))
    }

    /// The buckets to use, checked to be finite, positive and strictly increasing.
    pub fn buckets(&self) -> Result<Vec<f64>, String> {
        if self.duration_buckets.is_empty() {
            return Ok(DEFAULT_DURATION_BUCKETS.to_vec());
        }
        let increasing = self.duration_buckets.windows(2).all(|w| w[0] < w[1]);
        if !increasing {
            return Err(format!(
                "--duration-buckets must be strictly increasing, got {:?}",
                self.duration_buckets
            ));
        }
        Ok(self.duration_buckets.clone())
    }
}

fn parse_bucket(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!(
            "bucket {text:?} must be a positive number of seconds"
        ));
    }
    Ok(value)
}

/// The kernel wants a ring buffer whose size is a power of two and a multiple of the page
/// size; with 4 KiB pages the first is enough once it is at least 4096.
fn parse_ring_bytes(text: &str) -> Result<u32, String> {
    let bytes: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if bytes < 4096 || !bytes.is_power_of_two() {
        return Err(format!(
            "ring buffer size {bytes} must be a power of two of at least 4096"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("gunicorn-observer").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen, "0.0.0.0:9464".parse().unwrap());
        assert_eq!(args.buckets().unwrap(), DEFAULT_DURATION_BUCKETS);
        assert_eq!(args.drain_interval(), Duration::from_millis(250));
        assert_eq!(args.route_label, RouteMode::Template);
        assert_eq!(args.max_routes, 100);
    }

    #[test]
    fn route_label_modes() {
        let raw = parse(&["--route-label", "raw", "--max-routes", "7"]).unwrap();
        assert_eq!((raw.route_label, raw.max_routes), (RouteMode::Raw, 7));
        assert_eq!(
            parse(&["--route-label=off"]).unwrap().route_label,
            RouteMode::Off
        );
        assert!(parse(&["--route-label", "paths"]).is_err());
    }

    #[test]
    fn custom_buckets_parse_and_must_increase() {
        let args = parse(&["--duration-buckets", "0.1,0.5,2"]).unwrap();
        assert_eq!(args.buckets().unwrap(), vec![0.1, 0.5, 2.0]);

        let args = parse(&["--duration-buckets", "0.5,0.1"]).unwrap();
        assert!(args.buckets().unwrap_err().contains("strictly increasing"));

        assert!(parse(&["--duration-buckets", "0.1,-1"]).is_err());
        assert!(parse(&["--duration-buckets", "fast"]).is_err());
    }

    #[test]
    fn ring_buffer_size_must_be_a_power_of_two_page_multiple() {
        assert_eq!(parse(&[]).unwrap().ring_buffer_bytes, 2 * 1024 * 1024);
        let args = parse(&["--ring-buffer-bytes", "16384"]).unwrap();
        assert_eq!(args.ring_buffer_bytes, 16384);
        for bad in ["2048", "12288", "lots"] {
            assert!(parse(&["--ring-buffer-bytes", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn web_config_file_flag_keeps_the_exporters_spelling() {
        assert_eq!(parse(&[]).unwrap().web_config_file, None);
        let args = parse(&["--web.config.file", "/etc/web.yml"]).unwrap();
        assert_eq!(args.web_config_file, Some(PathBuf::from("/etc/web.yml")));
    }

    #[test]
    fn bad_listen_address_is_an_error() {
        let err = parse(&["--listen", "localhost"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
