//! One observed Gunicorn running the fidelity app, and the histogram and wire helpers the
//! scenarios share.

use std::io::Read as _;
use std::net::TcpStream;
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use observer_tests::{AccessEntry, Addr, Gunicorn, GunicornOpts, Metrics, Observer};

use crate::common;

pub const DURATION: &str = "gunicorn_worker_request_duration_seconds";
pub const REQUEST_SIZE: &str = "gunicorn_worker_request_size_bytes";
pub const RESPONSE_SIZE: &str = "gunicorn_worker_response_size_bytes";
pub const IN_FLIGHT: &str = "gunicorn_worker_requests_in_flight";

/// The observer, started first, and a Gunicorn named `app` serving `fidelity.py`.
pub struct Scenario {
    pub app: String,
    // Field order is drop order: Gunicorn stops while the observer still watches.
    pub gunicorn: Gunicorn,
    pub observer: Observer,
}

impl Scenario {
    pub fn start(app: &str, opts: GunicornOpts) -> Scenario {
        Scenario::serving(app, "fidelity:application", opts)
    }

    /// The same with another app module (`module:callable` under tests/apps).
    pub fn serving(app: &str, module: &str, opts: GunicornOpts) -> Scenario {
        Scenario::observed_with(&[], app, module, opts)
    }

    /// [`Self::serving`] with extra observer flags.
    pub fn observed_with(
        observer_args: &[&str],
        app: &str,
        module: &str,
        opts: GunicornOpts,
    ) -> Scenario {
        let observer = Observer::start(observer_args);
        let gunicorn = Gunicorn::start(opts.app(module).arg(&format!("--name={app}")));
        Scenario {
            app: app.to_owned(),
            gunicorn,
            observer,
        }
    }

    /// The scrape once the app's answered requests reach `want` (plus a pause, so extra
    /// ones would show too).
    pub fn settle(&self, want: f64) -> Metrics {
        common::settled(&self.observer, &self.app, want)
    }

    /// The scrape once the app's failed requests reach `want`.
    pub fn settle_failed(&self, want: f64) -> Metrics {
        let app = self.app.as_str();
        self.observer
            .wait_for_metrics(Duration::from_secs(15), "failed requests", |m| {
                m.sum(common::FAILED, &[("app", app)]) >= want
            });
        // Extra ones would show up within this pause.
        std::thread::sleep(Duration::from_millis(500));
        self.observer.metrics()
    }

    pub fn access_log(&self, count: usize) -> Vec<AccessEntry> {
        self.gunicorn
            .wait_for_access_entries(count, Duration::from_secs(15))
    }

    pub fn tcp(&self) -> std::net::SocketAddr {
        match self.gunicorn.addr() {
            Addr::Tcp(addr) => *addr,
            Addr::Unix(path) => panic!("expected a TCP bind, got {}", path.display()),
        }
    }

    /// The app's histogram `family`, summed over every series with the `filter` labels.
    pub fn histogram(&self, metrics: &Metrics, family: &str, filter: &[(&str, &str)]) -> Hist {
        let mut labels = vec![("app", self.app.as_str())];
        labels.extend_from_slice(filter);
        Hist {
            metrics: metrics.clone(),
            family: family.to_owned(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

/// A histogram summed over the series that match some labels.
pub struct Hist {
    metrics: Metrics,
    family: String,
    labels: Vec<(String, String)>,
}

impl Hist {
    fn sum_of(&self, suffix: &str, extra: Option<(&str, &str)>) -> f64 {
        let mut labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        labels.extend(extra);
        self.metrics
            .sum(&format!("{}_{suffix}", self.family), &labels)
    }

    pub fn count(&self) -> f64 {
        self.sum_of("count", None)
    }

    pub fn sum(&self) -> f64 {
        self.sum_of("sum", None)
    }

    /// Observations at or below `le` (the cumulative bucket).
    pub fn le(&self, le: &str) -> f64 {
        self.sum_of("bucket", Some(("le", le)))
    }
}

/// Gunicorn's `%(D)s` of these entries, summed, in seconds.
pub fn logged_seconds(entries: &[AccessEntry]) -> f64 {
    entries.iter().map(|e| e.duration_us as f64 / 1e6).sum()
}

/// The tolerance between our duration and Gunicorn's `%(D)s`: max(1 ms, 2 %) per
/// request. Ours starts earlier (the first byte read, not the parsed head) and ends at the
/// return of the last write, a little before Gunicorn takes its clock reading.
pub fn tolerance(entries: &[AccessEntry]) -> f64 {
    entries
        .iter()
        .map(|e| (e.duration_us as f64 / 1e6 * 0.02).max(0.001))
        .sum()
}

/// Sets the socket's receive buffer, so a slow reader really holds the sender back instead
/// of the kernel buffering megabytes for it.
pub fn small_receive_buffer(stream: &TcpStream, bytes: libc::c_int) {
    // SAFETY: the fd is open for the lifetime of `stream`; the option value points at a
    // live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const bytes).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
}

/// Reads everything up to EOF (or a reset) at no more than `rate` bytes a second.
/// Returns the bytes read.
pub fn read_throttled(stream: &mut TcpStream, rate: f64) -> Vec<u8> {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
        let due = Duration::from_secs_f64(out.len() as f64 / rate);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// Where the body starts in a raw response.
pub fn body_offset(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)))
}
