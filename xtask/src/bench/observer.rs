//! The observer under measurement: started from the release build on a loopback port,
//! read through its own /metrics and /proc.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::procs::{self, Proc};

pub struct Observer {
    pub proc: Proc,
    pub port: u16,
    /// From spawn to /readyz answering 200.
    pub ready_after: Duration,
}

impl Observer {
    /// Starts the observer, recording its event stream to `record` if given, and waits
    /// until it is ready.
    pub fn start(root: &Path, scratch: &Path, record: Option<&Path>) -> Result<Self> {
        let port = procs::free_port()?;
        let mut command = Command::new(crate::observer_bin(root));
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--log", "warn"]);
        if let Some(file) = record {
            command.arg("--record").arg(file);
        }
        let begun = Instant::now();
        let log = scratch.join("observer.log");
        let mut proc = Proc::spawn("gunicorn-observer", command, &log)?;
        procs::wait_until("the observer's /readyz", Duration::from_secs(30), || {
            matches!(procs::http_get(port, "/readyz"), Ok((200, _)))
        })
        .with_context(|| format!("see {}", log.display()))?;
        proc.check_alive()?;
        Ok(Self {
            proc,
            port,
            ready_after: begun.elapsed(),
        })
    }

    pub fn metrics(&self) -> Result<String> {
        let (status, body) = procs::http_get(self.port, "/metrics")?;
        anyhow::ensure!(status == 200, "/metrics answered {status}");
        Ok(body)
    }

    pub fn cpu_secs(&self) -> Result<f64> {
        procs::cpu_secs(self.proc.pid())
    }

    pub fn rss_mib(&self) -> Result<f64> {
        procs::rss_mib(self.proc.pid())
    }

    /// Anonymous (heap, stacks) and file-backed (code, and the ring buffer) RSS.
    pub fn rss_split_mib(&self) -> Result<(f64, f64)> {
        procs::rss_split_mib(self.proc.pid())
    }

    pub fn ring_mib(&self) -> Result<f64> {
        procs::bpf_map_rss_mib(self.proc.pid())
    }

    pub fn stop(&mut self) {
        self.proc.stop(Duration::from_secs(10));
    }
}

/// Sum of the samples of `metric` whose labels contain every `labels` pair (`k="v"`).
pub fn sum(metrics: &str, metric: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            (name == metric && labels.iter().all(|pair| series.contains(pair)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Number of series of `metric` whose labels contain every `labels` pair.
pub fn count(metrics: &str, metric: &str, labels: &[&str]) -> usize {
    metrics
        .lines()
        .filter(|line| {
            let series = line.split(' ').next().unwrap_or("");
            series.split('{').next() == Some(metric)
                && labels.iter().all(|pair| series.contains(pair))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP x y\n\
        gunicorn_worker_requests_total{app=\"a\",worker_id=\"0\",method=\"GET\",status=\"200\"} 7\n\
        gunicorn_worker_requests_total{app=\"a\",worker_id=\"1\",method=\"GET\",status=\"200\"} 5\n\
        gunicorn_worker_requests_total{app=\"b\",worker_id=\"0\",method=\"GET\",status=\"200\"} 100\n\
        gunicorn_workers{app=\"a\"} 2\n";

    #[test]
    fn sums_and_counts_matching_series_only() {
        let requests = "gunicorn_worker_requests_total";
        assert_eq!(sum(SCRAPE, requests, &["app=\"a\""]), 12.0);
        assert_eq!(sum(SCRAPE, requests, &[]), 112.0);
        assert_eq!(count(SCRAPE, requests, &["app=\"b\""]), 1);
        assert_eq!(count(SCRAPE, "gunicorn_workers", &[]), 1);
        assert_eq!(count(SCRAPE, "gunicorn_worker", &[]), 0);
    }
}
