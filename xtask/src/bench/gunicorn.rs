//! Gunicorn instances to measure: bare, or with gunicorn-prometheus-exporter in its own venv.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::procs::{self, Proc};
use crate::cmd::Cmd;

/// The exporter we compare with, and the newest Gunicorn it supports.
const EXPORTER_PINS: [&str; 2] = ["gunicorn==23.0.0", "gunicorn-prometheus-exporter==0.2.4"];
/// The hooks its README's "environment variables" setup puts in the Gunicorn config.
const EXPORTER_CONFIG: &str = include_str!("exporter.conf.py");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Worker {
    /// `sync`, one request per process at a time.
    Sync,
    /// `gthread` with this many threads.
    Gthread(u32),
}

impl Worker {
    pub fn label(self) -> String {
        match self {
            Self::Sync => "sync".to_owned(),
            Self::Gthread(threads) => format!("gthread x{threads}"),
        }
    }
}

/// How an instance is started.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub worker: Worker,
    pub workers: u32,
    /// Run Gunicorn 23 from the exporter's venv rather than the tests' Gunicorn 27.
    pub gunicorn_23: bool,
    /// Run with gunicorn-prometheus-exporter's worker class and hooks (needs `gunicorn_23`).
    pub exporter: bool,
    /// Seconds an idle keep-alive connection is kept (Gunicorn's default is 2).
    pub keep_alive: Option<u32>,
}

pub struct Instance {
    pub proc: Proc,
    pub port: u16,
    pub spec: Spec,
}

impl Spec {
    /// Bare Gunicorn 27 with `workers` workers.
    pub fn bare(name: &str, worker: Worker, workers: u32) -> Self {
        Self {
            name: name.to_owned(),
            worker,
            workers,
            gunicorn_23: false,
            exporter: false,
            keep_alive: None,
        }
    }
}

impl Instance {
    pub fn start(root: &Path, scratch: &Path, spec: Spec) -> Result<Self> {
        let port = procs::free_port()?;
        let venv = if spec.gunicorn_23 || spec.exporter {
            exporter_venv(root)
        } else {
            crate::venv::dir(root)
        };
        let mut command = Command::new(venv.join("bin/gunicorn"));
        command
            .arg("--chdir")
            .arg(root.join("tests/apps"))
            .args(["-b", &format!("127.0.0.1:{port}")])
            .args(["-w", &spec.workers.to_string()])
            .args(["--name", &spec.name]);
        if let Some(secs) = spec.keep_alive {
            command.args(["--keep-alive", &secs.to_string()]);
        }
        let class = match (spec.worker, spec.exporter) {
            (Worker::Sync, false) => "sync",
            (Worker::Gthread(_), false) => "gthread",
            (Worker::Sync, true) => "gunicorn_prometheus_exporter.PrometheusWorker",
            (Worker::Gthread(_), true) => "gunicorn_prometheus_exporter.PrometheusThreadWorker",
        };
        command.args(["-k", class]);
        if let Worker::Gthread(threads) = spec.worker {
            command.args(["--threads", &threads.to_string()]);
        }
        if spec.exporter {
            let dir = scratch.join(format!("{}-multiproc", spec.name));
            // The multiprocess directory must start empty for every run.
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let config = scratch.join("exporter.conf.py");
            fs::write(&config, EXPORTER_CONFIG)?;
            command
                .arg("-c")
                .arg(&config)
                .env("PROMETHEUS_MULTIPROC_DIR", &dir)
                .env("PROMETHEUS_BIND_ADDRESS", "127.0.0.1")
                .env("PROMETHEUS_METRICS_PORT", procs::free_port()?.to_string())
                .env("GUNICORN_WORKERS", spec.workers.to_string());
        }
        command.arg("app:application");

        let log = scratch.join(format!("{}.log", spec.name));
        let mut proc = Proc::spawn(&spec.name, command, &log)?;
        let workers = spec.workers as usize;
        let pid = proc.pid();
        let boot = Duration::from_secs(60);
        procs::wait_until(&format!("{} to boot", spec.name), boot, || {
            procs::children(pid).len() >= workers
                && matches!(procs::http_get(port, "/"), Ok((200, _)))
        })
        .with_context(|| format!("see {}", log.display()))?;
        proc.check_alive()?;
        Ok(Self { proc, port, spec })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

pub fn exporter_venv(root: &Path) -> PathBuf {
    crate::target_dir(root).join("exporter-venv")
}

/// Builds the exporter's venv when missing; it is separate from the tests' venv because the
/// exporter supports Gunicorn only up to 23.
pub fn ensure_exporter_venv(root: &Path) -> Result<()> {
    let venv = exporter_venv(root);
    let stamp = venv.join("bench.stamp");
    let wanted = EXPORTER_PINS.join("\n");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        println!("ok: exporter venv {}", venv.display());
        return Ok(());
    }
    println!("installing: exporter venv {} ({wanted:?})", venv.display());
    Cmd::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .run()?;
    Cmd::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(["--no-input", "-q"])
        .args(EXPORTER_PINS)
        .run()?;
    if Cmd::new(venv.join("bin/gunicorn"))
        .arg("--version")
        .probe_ok()
        .is_none()
    {
        bail!("gunicorn does not run from {}", venv.display());
    }
    fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}
