//! The real gunicorn-observer binary, listening on a loopback port of its own.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::gunicorn::free_port;
use crate::http::{self, Addr};
use crate::metrics::Metrics;
use crate::process;
use crate::tempdir::TempDir;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running observer; dropping it sends SIGTERM (then SIGKILL) and reaps it.
pub struct Observer {
    child: Child,
    addr: SocketAddr,
    stdout: PathBuf,
    stderr: PathBuf,
    /// Holds the logs; removed after Drop has stopped the process.
    _dir: TempDir,
}

impl Observer {
    /// Starts the observer with `--listen 127.0.0.1:<free port>` plus `extra_args`, and
    /// returns once `GET /healthz` answers 200.
    pub fn start(extra_args: &[&str]) -> Observer {
        Self::start_wrapped(&[], extra_args)
    }

    /// [`Self::start`] under a wrapper command such as `setpriv ... --`: the observer
    /// binary and its arguments are appended to `wrapper`.
    pub fn start_wrapped(wrapper: &[&str], extra_args: &[&str]) -> Observer {
        Self::start_probed(wrapper, extra_args, |addr| {
            http::get(&Addr::Tcp(addr), "/healthz")
                .ok()
                .is_some_and(|response| response.status == 200)
        })
    }

    /// [`Self::start_wrapped`], but up means `probe(addr)` is true: for an endpoint plain
    /// HTTP cannot reach, such as one serving TLS.
    pub fn start_probed(
        wrapper: &[&str],
        extra_args: &[&str],
        probe: impl FnMut(SocketAddr) -> bool,
    ) -> Observer {
        let dir = TempDir::new("observer");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let stdout = dir.path().join("stdout.log");
        let stderr = dir.path().join("stderr.log");

        let bin = crate::observer_bin();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&bin);
                command
            }
            None => Command::new(&bin),
        };
        let child = command
            .arg("--listen")
            .arg(addr.to_string())
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("creating the observer's stdout log"))
            .stderr(File::create(&stderr).expect("creating the observer's stderr log"))
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", bin.display()));

        let mut observer = Observer {
            child,
            addr,
            stdout,
            stderr,
            _dir: dir,
        };
        observer.wait_until_healthy(probe);
        observer
    }

    fn wait_until_healthy(&mut self, mut probe: impl FnMut(SocketAddr) -> bool) {
        let addr = self.addr;
        let healthy = process::wait_for(READY_TIMEOUT, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the observer exited while starting ({status})\n{}",
                    self.logs()
                );
            }
            probe(addr).then_some(())
        });
        if healthy.is_none() {
            let _ = process::terminate(&mut self.child, STOP_GRACE);
            panic!(
                "the observer's /healthz did not answer 200 within {READY_TIMEOUT:?}\n{}",
                self.logs()
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The /metrics text.
    pub fn scrape(&self) -> String {
        let response = http::get(&Addr::Tcp(self.addr), "/metrics")
            .unwrap_or_else(|err| panic!("scraping /metrics: {err}\n{}", self.logs()));
        assert_eq!(
            response.status,
            200,
            "GET /metrics answered {}: {}\n{}",
            response.status,
            response.text(),
            self.logs()
        );
        response.text()
    }

    /// The /metrics text, parsed.
    pub fn metrics(&self) -> Metrics {
        let text = self.scrape();
        Metrics::parse(&text).unwrap_or_else(|err| panic!("/metrics does not parse: {err}\n{text}"))
    }

    /// Scrapes until `check` accepts the metrics, and returns that scrape; panics with the
    /// last scrape and the observer's logs after `timeout`. The observer drains the kernel's
    /// ring buffer on a short timer, so what a test just did shows up shortly after.
    pub fn wait_for_metrics(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Metrics) -> bool,
    ) -> Metrics {
        let mut last = None;
        let found = process::wait_for(timeout, || {
            let metrics = self.metrics();
            if check(&metrics) {
                return Some(metrics);
            }
            last = Some(metrics);
            None
        });
        found.unwrap_or_else(|| {
            panic!(
                "{what}: not seen within {timeout:?}\n--- last scrape ---\n{}\n{}",
                last.map(|m| format!("{m:?}")).unwrap_or_default(),
                self.logs()
            )
        })
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, and how it exited (killed if it took longer than 10 s).
    pub fn stop(mut self) -> ExitStatus {
        process::terminate(&mut self.child, STOP_GRACE)
            .unwrap_or_else(|err| panic!("stopping the observer: {err}"))
    }

    /// SIGTERM, how it exited, and its stderr up to the exit.
    pub fn stop_with_logs(mut self) -> (ExitStatus, String) {
        let status = process::terminate(&mut self.child, STOP_GRACE)
            .unwrap_or_else(|err| panic!("stopping the observer: {err}"));
        (status, self.stderr())
    }

    fn logs(&self) -> String {
        let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        format!(
            "--- observer stderr ---\n{}--- observer stdout ---\n{stdout}",
            self.stderr()
        )
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Err(err) = process::terminate(&mut self.child, STOP_GRACE) {
            eprintln!(
                "warning: stopping the observer (pid {}): {err}",
                self.child.id()
            );
        }
    }
}
