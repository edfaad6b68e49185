//! The observer as an unprivileged user with only the capabilities docs/SECURITY.md lists:
//! with all of them it counts exactly; without one it refuses to start and names it; and a
//! Gunicorn in a network namespace of its own (a pod's) still shows its listen-queue depth.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use observer_tests::{Gunicorn, GunicornOpts, Observer, apps_dir, observer_bin, process, venv};

use common::{by_method_status, expect, settled, unique_app};

/// Every capability of the table in docs/SECURITY.md.
const MINIMAL: [&str; 4] = ["bpf", "perfmon", "dac_read_search", "sys_ptrace"];
/// `nobody`: no file of the host belongs to it.
const UNPRIVILEGED: &str = "65534";

/// `setpriv` arguments that drop to `nobody` keeping exactly `caps` (as ambient capabilities,
/// so they survive the exec of the observer).
fn setpriv(caps: &[&str]) -> Vec<String> {
    let list: Vec<String> = caps.iter().map(|cap| format!("+{cap}")).collect();
    let list = list.join(",");
    vec![
        "setpriv".into(),
        format!("--reuid={UNPRIVILEGED}"),
        format!("--regid={UNPRIVILEGED}"),
        "--clear-groups".into(),
        format!("--inh-caps=-all,{list}"),
        format!("--ambient-caps=-all,{list}"),
        format!("--bounding-set=-all,{list}"),
        "--".into(),
    ]
}

#[test]
fn the_documented_capabilities_are_enough_to_count_exactly() {
    let app = common::unique_app("least-privilege");
    let app = app.as_str();
    let wrapper = setpriv(&MINIMAL);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let observer = Observer::start_wrapped(&wrapper, &[]);

    let status = std::fs::read_to_string(format!("/proc/{}/status", observer.pid()))
        .expect("the observer's status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| {
                value
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), UNPRIVILEGED, "runs as nobody");
    // CAP_DAC_READ_SEARCH 2, CAP_SYS_PTRACE 19, CAP_PERFMON 38, CAP_BPF 39.
    assert_eq!(
        field("CapEff:"),
        "000000c000080004",
        "exactly the minimal set"
    );

    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={app}")));
    for _ in 0..20 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/status/404").status, 404);
    }
    let after = settled(&observer, app, 25.0);
    assert_eq!(
        by_method_status(&after, app),
        expect(&[("GET", "200", 20.0), ("GET", "404", 5.0)])
    );
}

/// Runs the observer with `caps` only and returns its exit code and stderr.
fn refused_with(caps: &[&str]) -> (Option<i32>, String) {
    let wrapper = setpriv(caps);
    let output = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(observer_bin())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("running the observer under setpriv");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_capability_is_named_in_the_error() {
    for (missing, message) in [
        ("bpf", "missing CAP_BPF:"),
        ("perfmon", "missing CAP_PERFMON:"),
        ("dac_read_search", "missing CAP_DAC_READ_SEARCH:"),
    ] {
        let caps: Vec<&str> = MINIMAL.into_iter().filter(|cap| *cap != missing).collect();
        let (code, stderr) = refused_with(&caps);
        assert_eq!(code, Some(1), "without {missing}: {stderr}");
        assert!(
            stderr.starts_with(&format!("gunicorn-observer: {message}")),
            "without {missing} the error should start with {message:?}, got: {stderr}"
        );
    }
}

/// Without `CAP_SYS_ADMIN` the observer cannot enter a pod's network namespace for its
/// `sock_diag` dump; the listener's depth then comes from `/proc/<master>/net/tcp`, while
/// its backlog and overflows (which only `sock_diag` carries) stay absent.
#[test]
fn a_pods_listen_queue_depth_is_read_without_entering_its_network_namespace() {
    let app = unique_app("least-privilege-netns");
    let wrapper = setpriv(&MINIMAL);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let observer = Observer::start_wrapped(&wrapper, &["--sample-secs", "1"]);

    // One sync worker in a network namespace of its own; `unshare` and `sh` exec, so the
    // child is the master.
    let gunicorn = format!(
        "ip link set lo up && exec {} --chdir {} -w 1 --backlog 8 --graceful-timeout 1 -b 127.0.0.1:8000 --name={app} app:application",
        venv().join("bin/gunicorn").display(),
        apps_dir().display()
    );
    let mut master = Command::new("unshare")
        .args(["--net", "sh", "-c", &gunicorn])
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare (util-linux)");
    // `unshare` may not have made its namespace yet: until it has, the path names ours, and
    // the clients below would connect to the host's port 8000.
    let ns_path = format!("/proc/{}/ns/net", master.id());
    let ours = std::fs::read_link("/proc/self/ns/net").expect("our network namespace");
    let unshared = process::wait_for(Duration::from_secs(10), || {
        std::fs::read_link(&ns_path)
            .is_ok_and(|ns| ns != ours)
            .then_some(())
    });
    assert!(unshared.is_some(), "unshare made no network namespace");
    let netns = format!("--net={ns_path}");

    // Inside that namespace: one request holds the only worker, three more connections
    // wait in the accept queue until our stdin closes.
    let mut clients = Command::new("nsenter")
        .args([netns.as_str(), "python3", "-c"])
        .arg(
            "import socket, sys, time\n\
             for _ in range(200):\n\
             \x20   try:\n\
             \x20       busy = socket.create_connection(('127.0.0.1', 8000)); break\n\
             \x20   except OSError: time.sleep(0.05)\n\
             busy.sendall(b'GET /sleep/60000 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n\
             time.sleep(0.5)\n\
             queued = [socket.create_connection(('127.0.0.1', 8000)) for _ in range(3)]\n\
             print('queued', flush=True); sys.stdin.read()",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("nsenter (util-linux) and python3");
    let mut line = String::new();
    BufReader::new(clients.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "queued");

    let listener = [("app", app.as_str()), ("listener", "127.0.0.1:8000")];
    let metrics = observer.wait_for_metrics(Duration::from_secs(20), "the pod's queue", |m| {
        m.get("gunicorn_listen_queue_depth", &listener) == Some(3.0)
    });
    assert_eq!(metrics.get("gunicorn_listen_backlog", &listener), None);
    assert_eq!(
        metrics.get("gunicorn_listen_overflows_total", &listener),
        None
    );
    assert!(
        metrics
            .get(
                "gunicorn_observer_queue_errors_total",
                &[("reason", "netns_unreachable")]
            )
            .unwrap_or(0.0)
            >= 1.0
    );

    drop(clients.stdin.take());
    clients.wait().unwrap();
    process::terminate(&mut master, Duration::from_secs(10)).expect("stopping our Gunicorn");
}
