//! A real Gunicorn master and its workers, run from the venv on an app under tests/apps.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::access_log::{self, AccessEntry};
use crate::http::{self, Addr, Response};
use crate::process;
use crate::tempdir::TempDir;

/// How long a graceful stop may take before the master is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerClass {
    Sync,
    Gthread,
    Gevent,
    /// Gunicorn's own ASGI worker (27.0 and newer).
    Asgi,
    /// `uvicorn_worker.UvicornWorker` from the uvicorn-worker package.
    Uvicorn,
}

impl WorkerClass {
    fn as_arg(self) -> &'static str {
        match self {
            WorkerClass::Sync => "sync",
            WorkerClass::Gthread => "gthread",
            WorkerClass::Gevent => "gevent",
            WorkerClass::Asgi => "asgi",
            WorkerClass::Uvicorn => "uvicorn_worker.UvicornWorker",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// 127.0.0.1 on a port that was free a moment before.
    Tcp,
    /// A unix socket in the instance's temp dir.
    Unix,
}

#[derive(Clone, Debug)]
pub struct GunicornOpts {
    /// `module:callable`, the module under tests/apps.
    pub app: String,
    pub worker_class: WorkerClass,
    pub workers: u32,
    /// Threads per worker; Gunicorn uses them with gthread only.
    pub threads: u32,
    pub bind: Bind,
    /// Appended after the harness's own arguments, so they can override them.
    pub extra_args: Vec<String>,
    /// How long the master may take to listen and boot every worker.
    pub boot_timeout: Duration,
    /// A venv other than the main one, e.g. an older Gunicorn's from
    /// [`crate::env::older_venv`].
    pub venv: Option<PathBuf>,
}

impl Default for GunicornOpts {
    fn default() -> Self {
        GunicornOpts {
            app: "app:application".to_owned(),
            worker_class: WorkerClass::Sync,
            workers: 2,
            threads: 1,
            bind: Bind::Tcp,
            extra_args: Vec::new(),
            boot_timeout: Duration::from_secs(30),
            venv: None,
        }
    }
}

impl GunicornOpts {
    pub fn sync(workers: u32) -> Self {
        GunicornOpts {
            workers,
            ..Default::default()
        }
    }

    pub fn gthread(workers: u32, threads: u32) -> Self {
        GunicornOpts {
            worker_class: WorkerClass::Gthread,
            workers,
            threads,
            ..Default::default()
        }
    }

    pub fn venv(mut self, venv: PathBuf) -> Self {
        self.venv = Some(venv);
        self
    }

    pub fn worker_class(mut self, class: WorkerClass) -> Self {
        self.worker_class = class;
        self
    }

    pub fn app(mut self, app: &str) -> Self {
        self.app = app.to_owned();
        self
    }

    pub fn bind(mut self, bind: Bind) -> Self {
        self.bind = bind;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_owned());
        self
    }
}

/// A running Gunicorn; dropping it stops the master (SIGTERM, then SIGKILL) and reaps it.
pub struct Gunicorn {
    child: Child,
    addr: Addr,
    access_log: PathBuf,
    error_log: PathBuf,
    console_log: PathBuf,
    dir: TempDir,
}

impl Gunicorn {
    /// Starts Gunicorn and returns once it listens and every worker has booted.
    ///
    /// Readiness is read from Gunicorn's own log rather than probed with a connection, so
    /// an observer already running sees only the test's traffic.
    pub fn start(opts: GunicornOpts) -> Gunicorn {
        let dir = TempDir::new("gunicorn");
        let addr = match opts.bind {
            Bind::Tcp => Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port()))),
            Bind::Unix => Addr::Unix(dir.path().join("gunicorn.sock")),
        };
        let access_log = dir.path().join("access.log");
        let error_log = dir.path().join("error.log");
        let console_log = dir.path().join("console.log");

        let console = File::create(&console_log).expect("creating the console log");
        let venv = opts.venv.clone().unwrap_or_else(crate::venv);
        let mut command = Command::new(venv.join("bin/gunicorn"));
        command
            .arg("--chdir")
            .arg(crate::apps_dir())
            .arg("--bind")
            .arg(bind_arg(&addr))
            .args(["--worker-class", opts.worker_class.as_arg()])
            .args(["--workers", &opts.workers.to_string()])
            .args(["--threads", &opts.threads.to_string()])
            .arg("--access-logfile")
            .arg(&access_log)
            .args(["--access-logformat", access_log::FORMAT])
            .arg("--error-logfile")
            .arg(&error_log)
            .args(["--log-level", "info"]);
        // Gunicorn 27 puts one control socket per user in $HOME by default, which
        // instances running side by side would fight over. Older ones have none.
        let has_control_socket = opts.venv.as_deref().is_none_or(|v| major_version(v) >= 27);
        if has_control_socket {
            command
                .arg("--control-socket")
                .arg(dir.path().join("gunicorn.ctl"));
        }
        command
            .args(&opts.extra_args)
            .arg(&opts.app)
            .env_remove("GUNICORN_CMD_ARGS")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("cloning the console log"))
            .stderr(console);
        let child = command.spawn().unwrap_or_else(|err| {
            panic!("starting {:?}: {err}", command.get_program());
        });

        let mut gunicorn = Gunicorn {
            child,
            addr,
            access_log,
            error_log,
            console_log,
            dir,
        };
        gunicorn.wait_until_booted(opts.workers as usize, opts.boot_timeout);
        gunicorn
    }

    fn wait_until_booted(&mut self, workers: usize, timeout: Duration) {
        let master = self.master_pid();
        let booted = process::wait_for(timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gunicorn exited while booting ({status})\n{}", self.logs());
            }
            let log = self.error_log();
            let listening = log.contains("Listening at: ");
            let children = process::children_of(master);
            let booted = booted_pids(&log)
                .into_iter()
                .filter(|pid| children.contains(pid))
                .count();
            (listening && booted >= workers).then_some(())
        });
        if booted.is_none() {
            panic!(
                "gunicorn did not boot {workers} workers within {timeout:?}\n{}",
                self.logs()
            );
        }
    }

    pub fn master_pid(&self) -> u32 {
        self.child.id()
    }

    /// The master's live child processes now, sorted.
    pub fn worker_pids(&self) -> Vec<u32> {
        process::children_of(self.master_pid())
    }

    /// Every worker that logged its boot, in boot order, including ones since replaced.
    pub fn booted_worker_pids(&self) -> Vec<u32> {
        booted_pids(&self.error_log())
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn access_log_path(&self) -> &Path {
        &self.access_log
    }

    /// The access log's complete lines so far.
    pub fn access_log(&self) -> Vec<AccessEntry> {
        let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        access_log::parse(&text).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Waits until the access log holds at least `count` entries (workers log after the
    /// response is sent, so a client can be faster than the log), then returns them all.
    pub fn wait_for_access_entries(&self, count: usize, timeout: Duration) -> Vec<AccessEntry> {
        let found = process::wait_for(timeout, || {
            let entries = self.access_log();
            (entries.len() >= count).then_some(entries)
        });
        found.unwrap_or_else(|| {
            panic!(
                "access log has {} entries, not {count}, after {timeout:?}\n{}",
                self.access_log().len(),
                self.logs()
            )
        })
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// One request on a fresh connection with `Connection: close`.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Response {
        http::request(&self.addr, method, path, body, false)
            .unwrap_or_else(|err| panic!("{method} {path} to {}: {err}", self.addr))
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, None)
    }

    /// Stops the master gracefully and returns how it exited.
    pub fn stop(mut self) -> ExitStatus {
        self.shut_down()
    }

    fn shut_down(&mut self) -> ExitStatus {
        let workers = self.worker_pids();
        let status = process::terminate(&mut self.child, STOP_GRACE)
            .unwrap_or_else(|err| panic!("stopping gunicorn: {err}"));
        // A master that had to be killed leaves its workers behind.
        for pid in workers.into_iter().filter(|pid| process::is_alive(*pid)) {
            let _ = process::signal(pid, libc::SIGKILL);
        }
        status
    }

    /// Both logs, for panic messages.
    fn logs(&self) -> String {
        let console = std::fs::read_to_string(&self.console_log).unwrap_or_default();
        format!(
            "--- gunicorn error log ---\n{}--- gunicorn stdout/stderr ---\n{console}",
            self.error_log()
        )
    }
}

impl Drop for Gunicorn {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A loopback port that was free when asked; the listener is closed before returning.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("asking the kernel for a free port")
}

fn bind_arg(addr: &Addr) -> String {
    match addr {
        Addr::Tcp(addr) => addr.to_string(),
        Addr::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// The major version of the venv's Gunicorn, from `gunicorn --version`.
pub fn major_version(venv: &Path) -> u32 {
    let out = Command::new(venv.join("bin/gunicorn"))
        .arg("--version")
        .output()
        .unwrap_or_else(|err| panic!("running {}/bin/gunicorn: {err}", venv.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("gunicorn (version ")
        .and_then(|rest| rest.split('.').next())
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("unexpected `gunicorn --version`: {text:?}"))
}

/// Pids from "Booting worker with pid: N" lines, in order.
fn booted_pids(error_log: &str) -> Vec<u32> {
    error_log
        .lines()
        .filter_map(|line| line.split("Booting worker with pid: ").nth(1))
        .filter_map(|pid| pid.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_booted_worker_pids_from_the_error_log() {
        let log = "\
[2026-12-04 16:35:23 +0000] [11143] [INFO] Listening at: http://127.0.0.1:18231 (11143)
[2026-12-04 16:35:23 +0000] [11154] [INFO] Booting worker with pid: 11154
[2026-12-04 16:35:23 +0000] [11162] [INFO] Booting worker with pid: 11162
";
        assert_eq!(booted_pids(log), vec![11154, 11162]);
    }
}
