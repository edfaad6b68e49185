//! How Gunicorn is started and driven on a real host, beyond the plain `gunicorn app`:
//! daemon mode, the `gunicornc` control socket, and Python servers that are not Gunicorn.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use observer_tests::{
    AccessEntry, Addr, Gunicorn, GunicornOpts, Observer, access_log, apps_dir, http, process, venv,
};

use common::{UNATTRIBUTED, WORKER_INFO, by_method_status, expect, settled, total};

const BOOT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A Gunicorn started with `--daemon`: the launched process forks, the fork calls setsid
/// and forks again, and that grandchild is the master. Dropping it stops the master by the
/// pid in its pid file.
struct Daemon {
    dir: observer_tests::tempdir::TempDir,
    addr: Addr,
    master: u32,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = observer_tests::tempdir::TempDir::new("daemon");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let status = Command::new(venv().join("bin/gunicorn"))
            .arg("--daemon")
            .arg("--pid")
            .arg(dir.path().join("master.pid"))
            .arg("--chdir")
            .arg(apps_dir())
            .args(["--bind", &addr.to_string(), "--workers", "2"])
            .arg(format!("--name={name}"))
            .arg("--access-logfile")
            .arg(dir.path().join("access.log"))
            .args(["--access-logformat", access_log::FORMAT])
            .arg("--error-logfile")
            .arg(dir.path().join("error.log"))
            .arg("--control-socket")
            .arg(dir.path().join("gunicorn.ctl"))
            .arg("app:application")
            .env_remove("GUNICORN_CMD_ARGS")
            .stdin(Stdio::null())
            .status()
            .expect("launching gunicorn --daemon");
        assert!(status.success(), "gunicorn --daemon exited with {status}");

        let pid_file = dir.path().join("master.pid");
        let master = process::wait_for(BOOT, || {
            let text = std::fs::read_to_string(&pid_file).ok()?;
            text.trim().parse().ok()
        })
        .expect("the daemon's pid file");
        let daemon = Daemon {
            dir,
            addr: Addr::Tcp(addr),
            master,
        };
        let booted = process::wait_for(BOOT, || {
            let log = std::fs::read_to_string(daemon.dir.path().join("error.log")).ok()?;
            (log.matches("Booting worker with pid").count() >= 2).then_some(())
        });
        assert!(booted.is_some(), "the daemon did not boot 2 workers");
        daemon
    }

    fn access_entries(&self, count: usize) -> Vec<AccessEntry> {
        let path = self.dir.path().join("access.log");
        process::wait_for(Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let entries = access_log::parse(&text).expect("access log");
            (entries.len() >= count).then_some(entries)
        })
        .unwrap_or_else(|| panic!("fewer than {count} access log entries"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let workers = process::children_of(self.master);
        let _ = process::signal(self.master, libc::SIGTERM);
        let gone = process::wait_for(Duration::from_secs(10), || {
            (!process::is_alive(self.master)).then_some(())
        });
        if gone.is_none() {
            let _ = process::signal(self.master, libc::SIGKILL);
        }
        for pid in workers.into_iter().filter(|pid| process::is_alive(*pid)) {
            let _ = process::signal(pid, libc::SIGKILL);
        }
    }
}

#[test]
fn daemonized_gunicorn_is_counted_from_its_first_request() {
    let app = common::unique_app("launch-daemon");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let daemon = Daemon::start(app);

    // Sent right after boot, as a deploy's smoke check would.
    for _ in 0..20 {
        let response = http::get(&daemon.addr, "/").expect("GET /");
        assert_eq!(response.status, 200);
    }
    assert_eq!(daemon.access_entries(20).len(), 20);

    let after = settled(&observer, app, 20.0);
    assert_eq!(
        total(&after, app),
        20.0,
        "requests to the daemonized instance"
    );
}

/// `gunicornc` from the venv, one command against a control socket.
fn gunicornc(socket: &Path, command: &str) -> String {
    let output = Command::new(venv().join("bin/gunicornc"))
        .arg("--socket")
        .arg(socket)
        .args(["--command", command])
        .stdin(Stdio::null())
        .output()
        .expect("running gunicornc");
    assert!(output.status.success(), "gunicornc {command:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn control_socket_commands_are_not_requests() {
    let app = common::unique_app("launch-control");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={app}")));
    let socket: PathBuf = gunicorn.dir().join("gunicorn.ctl");
    // The arbiter starts its control socket only after spawning the first workers (Gunicorn
    // 27's arbiter.py), so a fresh instance can answer HTTP before `gunicornc` can connect.
    let listening = process::wait_for(Duration::from_secs(10), || socket.exists().then_some(()));
    assert!(
        listening.is_some(),
        "no control socket at {}",
        socket.display()
    );
    let before = observer.metrics();

    for _ in 0..5 {
        let shown = gunicornc(&socket, "show workers");
        assert!(shown.contains("PID"), "{shown}");
    }
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/").status, 200);
    }

    gunicorn.wait_for_access_entries(5, Duration::from_secs(10));
    let after = settled(&observer, app, 5.0);
    assert_eq!(
        by_method_status(&after, app),
        expect(&[("GET", "200", 5.0)])
    );
    let unattributed = after.sum(UNATTRIBUTED, &[]) - before.sum(UNATTRIBUTED, &[]);
    assert_eq!(
        unattributed, 0.0,
        "control-socket traffic taken for HTTP requests"
    );
}

/// A child process killed and reaped when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = process::terminate(&mut self.0, Duration::from_secs(5));
    }
}

#[test]
fn python_servers_that_are_not_gunicorn_are_not_tracked() {
    let observer = Observer::start(&[]);
    let before = observer.metrics();
    let python = venv().join("bin/python");

    // The stdlib server, and one whose arguments even mention gunicorn.
    let plain = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let lookalike = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let servers = [
        Command::new(&python)
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(plain.port().to_string()),
        Command::new(&python)
            .args([
                "-c",
                "import http.server, sys; http.server.test(\
                 HandlerClass=http.server.SimpleHTTPRequestHandler, \
                 port=int(sys.argv[1]), bind='127.0.0.1')",
            ])
            .arg(lookalike.port().to_string())
            .args(["gunicorn", "app:application"]),
    ]
    .map(|command| {
        Reaped(
            command
                .current_dir(apps_dir())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting a python server"),
        )
    });

    for addr in [plain, lookalike] {
        let addr = Addr::Tcp(addr);
        let up = process::wait_for(BOOT, || http::get(&addr, "/app.py").ok());
        assert_eq!(up.map(|response| response.status), Some(200));
        for _ in 0..20 {
            assert_eq!(http::get(&addr, "/app.py").expect("GET").status, 200);
        }
    }
    std::thread::sleep(Duration::from_secs(1));

    let metrics = observer.metrics();
    let pids: Vec<String> = servers
        .iter()
        .map(|server| server.0.id().to_string())
        .collect();
    let tracked: Vec<_> = metrics
        .series(WORKER_INFO)
        .filter(|sample| pids.iter().any(|pid| sample.label("pid") == Some(pid)))
        .collect();
    assert!(tracked.is_empty(), "tracked as workers: {tracked:?}");
    let unattributed = metrics.sum(UNATTRIBUTED, &[]) - before.sum(UNATTRIBUTED, &[]);
    assert_eq!(unattributed, 0.0);
}
