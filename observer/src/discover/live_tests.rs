//! Scans of the real `/proc`: process trees shaped like Gunicorn's, and (when a venv is
//! given) real Gunicorn. Other Gunicorns may run on the machine, so each test looks only at
//! the instance whose master it started, and stops only the pids it started.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fake_proc::TempDir;
use super::{FoundInstance, NameSource, Registry, Role, scan};

/// Kills what the test started when dropped, even after a failed assert. `extra` holds the
/// child's descendants, deepest first: each is killed while its parent still holds its pid
/// (alive or as an unreaped zombie), so no pid reused by someone else is ever signalled.
struct Reaper {
    child: Child,
    extra: Vec<u32>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        for pid in self.extra.iter().copied().chain([self.child.id()]) {
            kill(pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn kill(pid: u32, signal: i32) {
    let pid = i32::try_from(pid).expect("pid fits i32");
    // SAFETY: kill(2) touches no memory of ours; callers pass only the test's own processes.
    unsafe { libc::kill(pid, signal) };
}

fn instance_of(master: u32) -> Option<FoundInstance> {
    let result = scan(Path::new("/proc")).expect("scan /proc");
    result.instance(master).cloned()
}

fn real_python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed to start Gunicorn-shaped processes");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Forks two workers, the first of which forks a helper of its own, and reports the pids,
/// one `os.write` a line so that lines from different processes never interleave.
const FORK_TREE: &str = r#"
import os, time
def report(kind, pid):
    os.write(1, f"{kind} {pid}\n".encode())
def serve(helper):
    if helper:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        report("nested", pid)
    time.sleep(60)
    os._exit(0)
for i in range(2):
    pid = os.fork()
    if pid == 0:
        serve(i == 0)
    report("worker", pid)
time.sleep(60)
"#;

/// Runs `command` (which runs [`FORK_TREE`]) and checks the scan sees its master, its two
/// workers and nothing else of it.
fn check_fork_tree(mut command: Command, expected_app: &str, source: NameSource) {
    let child = command.stdout(Stdio::piped()).spawn().expect("spawn");
    let mut reaper = Reaper {
        child,
        extra: Vec::new(),
    };
    let stdout = reaper.child.stdout.take().unwrap();

    let mut workers = Vec::new();
    let mut nested = Vec::new();
    for line in BufReader::new(stdout).lines().take(3) {
        let line = line.unwrap();
        let (kind, pid) = line.split_once(' ').unwrap();
        let pid: u32 = pid.parse().unwrap();
        match kind {
            "worker" => workers.push(pid),
            "nested" => nested.push(pid),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    reaper.extra = nested.iter().chain(&workers).copied().collect();
    assert_eq!((workers.len(), nested.len()), (2, 1));

    let master = reaper.child.id();
    let found = instance_of(master).expect("master found");
    assert_eq!(
        (found.app.name.as_str(), found.app.source),
        (expected_app, source)
    );
    let mut seen: Vec<u32> = found.workers.iter().map(|w| w.pid).collect();
    seen.sort_unstable();
    workers.sort_unstable();
    assert_eq!(seen, workers);

    // The helper forked by a worker is nobody's master.
    assert!(instance_of(nested[0]).is_none());
    assert!(instance_of(workers[0]).is_none());
}

#[test]
fn entry_script_through_its_interpreter() {
    let dir = TempDir::new("live-script");
    let script = dir.write("bin/gunicorn", &format!("#!{}\n{FORK_TREE}", real_python()));
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let mut command = Command::new(&script);
    command.args(["-w", "2", "-b", "127.0.0.1:1", "-n", "livetest", "app:app"]);
    check_fork_tree(command, "livetest", NameSource::NameFlag);
}

#[test]
fn python_dash_m_gunicorn() {
    let dir = TempDir::new("live-module");
    dir.write("gunicorn/__init__.py", "");
    dir.write("gunicorn/__main__.py", FORK_TREE);

    let mut command = Command::new(real_python());
    command.env("PYTHONPATH", dir.path()).args([
        "-u",
        "-m",
        "gunicorn",
        "--workers=2",
        "proj.wsgi:application",
    ]);
    check_fork_tree(command, "proj.wsgi:application", NameSource::AppUri);
}

#[test]
fn renamed_argv0() {
    let dir = TempDir::new("live-arg0");
    let script = dir.write("tree.py", FORK_TREE);

    // Like `exec -a gunicorn`: only argv[0] says gunicorn, the rest is the interpreter's.
    let mut command = Command::new(real_python());
    command.arg0("/opt/venv/bin/gunicorn").arg(&script);
    let expected = script.to_str().unwrap().to_owned();
    check_fork_tree(command, &expected, NameSource::AppUri);
}

/// The venv the integration harness provides, with `bin/gunicorn` in it.
const VENV_VAR: &str = "GUNICORN_OBSERVER_TEST_VENV";

const WSGI_APP: &str = "def app(environ, start_response):\n    \
    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'ok']\n";

struct Case {
    args: Vec<String>,
    env: Option<(&'static str, &'static str)>,
    python_m: bool,
    workers: usize,
    app: &'static str,
    source: NameSource,
}

#[test]
fn real_gunicorn_instances() {
    let Some(venv) = std::env::var_os(VENV_VAR).map(PathBuf::from) else {
        eprintln!("skipped: set {VENV_VAR} to a venv with gunicorn to run this test");
        return;
    };
    let dir = TempDir::new("live-gunicorn");
    dir.write("app.py", WSGI_APP);
    let sock = |name: &str| format!("unix:{}", dir.path().join(name).display());
    dir.write(
        "conf.py",
        &format!(
            "proc_name = 'fromconf'\nworkers = 2\nbind = '{}'\n",
            sock("c.sock")
        ),
    );

    let titles = Command::new(venv.join("bin/python"))
        .args(["-c", "import setproctitle"])
        .stderr(Stdio::null())
        .status()
        .expect("run venv python")
        .success();
    // A title already holds Gunicorn's final name.
    let source = |plain| if titles { NameSource::Title } else { plain };
    let strings = |args: &[&str]| args.iter().map(|a| a.to_string()).collect();

    let cases = [
        Case {
            args: strings(&["-w", "2", "-b", &sock("a.sock"), "app:app"]),
            env: None,
            python_m: false,
            workers: 2,
            app: "app:app",
            source: source(NameSource::AppUri),
        },
        Case {
            args: strings(&["app:app", "-n", "myname", "-w", "3", "-b", &sock("b.sock")]),
            env: None,
            python_m: true,
            workers: 3,
            app: "myname",
            source: source(NameSource::NameFlag),
        },
        Case {
            args: strings(&["-c", "conf.py", "app:app"]),
            env: None,
            python_m: false,
            workers: 2,
            app: "fromconf",
            source: source(NameSource::ConfigFile),
        },
        Case {
            args: strings(&["-w", "1", "-b", &sock("d.sock"), "app:app"]),
            env: Some(("GUNICORN_CMD_ARGS", "--name envname")),
            python_m: false,
            workers: 1,
            app: "envname",
            source: source(NameSource::EnvNameFlag),
        },
    ];
    for case in cases {
        check_real_gunicorn(&venv, dir.path(), &case, titles);
    }
    check_usr2(&venv, dir.path(), sock("e.sock"), titles);
}

fn check_real_gunicorn(venv: &Path, dir: &Path, case: &Case, titles: bool) {
    let reaper = start(venv, dir, case);
    let master = reaper.child.id();
    let found = wait_until(dir, || booted(master, case.workers, titles));

    assert_eq!(
        (found.app.name.as_str(), found.app.source),
        (case.app, case.source)
    );
    assert_eq!(
        found.master.argv[0].starts_with("gunicorn: master ["),
        titles
    );

    // Exactly the master's children are its workers.
    let mut children = children_of(master);
    let mut workers: Vec<u32> = found.workers.iter().map(|w| w.pid).collect();
    children.sort_unstable();
    workers.sort_unstable();
    assert_eq!(workers, children);
    for worker in &workers {
        assert!(
            instance_of(*worker).is_none(),
            "worker {worker} taken for a master"
        );
    }

    // A registry built from the scan gives the workers slots 0..N.
    let mut registry = Registry::new();
    let mut only_ours = super::ScanResult::default();
    only_ours.instances.push(found);
    let added = registry.add_scan(&only_ours);
    assert_eq!(added[0], (master, Role::Master));
    let mut slots: Vec<u32> = registry.workers_of(master).iter().map(|w| w.1).collect();
    slots.sort_unstable();
    assert_eq!(slots, (0..case.workers as u32).collect::<Vec<_>>());

    stop(reaper);
}

/// `USR2` makes the master fork and exec a new master under itself; the scan must call the
/// new one a master with its own workers, not a worker of the old one.
fn check_usr2(venv: &Path, dir: &Path, sock: String, titles: bool) {
    let case = Case {
        args: vec!["-w".into(), "2".into(), "-b".into(), sock, "app:app".into()],
        env: None,
        python_m: false,
        workers: 2,
        app: "app:app",
        source: NameSource::AppUri,
    };
    let reaper = start(venv, dir, &case);
    let old = reaper.child.id();
    wait_until(dir, || booted(old, 2, titles));

    kill(old, libc::SIGUSR2);
    let new = wait_until(dir, || {
        let result = scan(Path::new("/proc")).expect("scan /proc");
        let new = result
            .instances
            .iter()
            .find(|found| found.master.ppid == old)?;
        booted(new.master.pid, 2, titles)
    });

    // Gunicorn itself calls the new instance `name.2` until the old master exits.
    let expected = if titles { "app:app.2" } else { "app:app" };
    assert_eq!(new.app.name, expected);
    let old_found = instance_of(old).expect("old master still found");
    assert_eq!(old_found.workers.len(), 2);
    assert!(old_found.workers.iter().all(|w| w.pid != new.master.pid));

    // The new master is a child of ours; stop it while the old master still holds its pid.
    kill(new.master.pid, libc::SIGTERM);
    wait_until(dir, || instance_of(new.master.pid).is_none().then_some(()));
    stop(reaper);
}

fn start(venv: &Path, dir: &Path, case: &Case) -> Reaper {
    let mut command = if case.python_m {
        let mut command = Command::new(venv.join("bin/python"));
        command.args(["-m", "gunicorn"]);
        command
    } else {
        Command::new(venv.join("bin/gunicorn"))
    };
    command.args(&case.args).current_dir(dir);
    command.env_remove("GUNICORN_CMD_ARGS");
    if let Some((key, value)) = case.env {
        command.env(key, value);
    }
    let log = std::fs::File::create(dir.join("gunicorn.log")).unwrap();
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let child = command.spawn().expect("start gunicorn");
    Reaper {
        child,
        extra: Vec::new(),
    }
}

/// The instance of `master` once it has `workers` workers, each renamed when titles are in
/// use (a worker keeps its master's title for a moment after the fork).
fn booted(master: u32, workers: usize, titles: bool) -> Option<FoundInstance> {
    let found = instance_of(master)?;
    let renamed = |w: &super::ProcInfo| !titles || w.argv[0].starts_with("gunicorn: worker");
    let ready = found.workers.len() == workers && found.workers.iter().all(renamed);
    ready.then_some(found)
}

fn wait_until<T>(dir: &Path, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        let log = std::fs::read_to_string(dir.join("gunicorn.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "gunicorn did not get there:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read tasks");
    let mut children = Vec::new();
    for task in tasks {
        let path = task.unwrap().path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        children.extend(
            text.split_whitespace()
                .map(|pid| pid.parse::<u32>().unwrap()),
        );
    }
    children
}

/// SIGTERM, Gunicorn's graceful stop; the reaper's SIGKILL covers a stuck one.
fn stop(mut reaper: Reaper) {
    kill(reaper.child.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if reaper.child.try_wait().expect("wait").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
