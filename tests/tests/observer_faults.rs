//! Faults around a running observer: SIGKILL under wrk load, SIGTERM's drain-and-exit, a
//! Gunicorn master killed with its pids later handed to unrelated processes, and workers
//! killed with connections open.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use observer_tests::{Addr, Conn, Gunicorn, GunicornOpts, Observer, ProcView, http, process};

use common::{
    FAILED, UNATTRIBUTED, by_method_status, expect, held_bpf_ids, settled, total, worker_info,
};

/// The README's promise for SIGTERM.
const SIGTERM_EXIT_LIMIT: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(30);

/// Program or map ids in `bpftool prog list` / `bpftool map list` (`kind` is `prog` or
/// `map`), the operator's view of what is loaded.
fn bpftool_ids(kind: &str) -> BTreeSet<u32> {
    let output = Command::new("bpftool")
        .args(["--json", kind, "list"])
        .output()
        .expect("running bpftool (cargo xtask bootstrap installs it)");
    assert!(output.status.success(), "bpftool {kind} list failed");
    let text = String::from_utf8_lossy(&output.stdout);
    // Each object starts with its id; nothing else in the listing is `{"id":`.
    text.match_indices("{\"id\":")
        .filter_map(|(at, key)| {
            let rest = &text[at + key.len()..];
            let end = rest.find(|c: char| !c.is_ascii_digit())?;
            rest[..end].parse().ok()
        })
        .collect()
}

/// wrk's totals: (requests completed, socket errors of any kind, non-2xx responses).
fn run_wrk(addr: &Addr, seconds: u32) -> (u64, u64, u64) {
    let Addr::Tcp(addr) = addr else {
        panic!("wrk needs TCP")
    };
    let output = Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{seconds}s")])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("running wrk (cargo xtask bootstrap installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed:\n{text}");
    let number_after = |prefix: &str| -> Option<u64> {
        let rest = &text[text.find(prefix)? + prefix.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let requests = text
        .lines()
        .find(|line| line.contains("requests in"))
        .and_then(|line| line.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    // wrk prints these lines only when they are not zero.
    let socket_errors = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Socket errors:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let non_2xx = number_after("Non-2xx or 3xx responses:").unwrap_or(0);
    (requests, socket_errors, non_2xx)
}

#[test]
fn sigkill_under_wrk_load_harms_no_request_and_leaves_no_program() {
    let app = common::unique_app("faults-sigkill-load");
    let app = app.as_str();
    let gunicorn = Gunicorn::start(GunicornOpts::gthread(2, 4).arg(&format!("--name={app}")));
    // Throughput with no observer, to compare the run after the kill with.
    let (bare, _, _) = run_wrk(gunicorn.addr(), 2);
    let first = Observer::start(&[]);
    let ours = held_bpf_ids(first.pid(), "prog_id:");
    let our_maps = held_bpf_ids(first.pid(), "map_id:");
    assert!(!ours.is_empty(), "the observer holds no BPF programs");
    assert!(!our_maps.is_empty(), "the observer holds no BPF maps");
    assert!(
        ours.is_subset(&bpftool_ids("prog")),
        "bpftool does not list the observer's programs {ours:?}"
    );
    assert!(
        our_maps.is_subset(&bpftool_ids("map")),
        "bpftool does not list the observer's maps {our_maps:?}"
    );

    // Kill the observer in the middle of a 6-second wrk run.
    let wrk = {
        let addr = gunicorn.addr().clone();
        std::thread::spawn(move || run_wrk(&addr, 6))
    };
    std::thread::sleep(Duration::from_secs(2));
    process::signal(first.pid(), libc::SIGKILL).expect("SIGKILL");
    assert_eq!(first.stop().signal(), Some(libc::SIGKILL));
    let (requests, socket_errors, non_2xx) = wrk.join().expect("wrk thread");
    assert!(requests > 0, "wrk completed no request");
    assert_eq!(
        (socket_errors, non_2xx),
        (0, 0),
        "wrk saw errors around the observer's SIGKILL"
    );
    // Gunicorn logged every request wrk completed, all of them 200, and no error.
    let entries = gunicorn.wait_for_access_entries(requests as usize, WAIT);
    assert!(entries.iter().all(|entry| entry.status == 200));
    let errors = gunicorn.error_log();
    assert!(
        !errors.contains("[ERROR]") && !errors.contains("Traceback"),
        "Gunicorn logged errors:\n{errors}"
    );

    // The kernel frees programs and maps a moment after their last fd closes.
    for (kind, held) in [("prog", &ours), ("map", &our_maps)] {
        let left = process::wait_for(WAIT, || {
            let left: BTreeSet<u32> = held.intersection(&bpftool_ids(kind)).copied().collect();
            left.is_empty().then_some(())
        });
        assert!(
            left.is_some(),
            "bpftool {kind} list still shows ids of the killed observer"
        );
    }

    // Throughput recovers: with nothing attached, Gunicorn answers as it did before the
    // observer started. The bound is loose because the machine is shared; what it catches
    // is a Gunicorn left stalled or crippled, not a few percent.
    let (after, socket_errors, non_2xx) = run_wrk(gunicorn.addr(), 2);
    assert_eq!((socket_errors, non_2xx), (0, 0), "wrk after the SIGKILL");
    assert!(
        after * 2 >= bare,
        "throughput did not recover after the SIGKILL: {after} requests in 2 s, {bare} before \
         the observer started"
    );

    // A new observer finds every running worker and counts from its first request.
    let second = Observer::start(&[]);
    let workers = gunicorn.worker_pids();
    let seen = second.wait_for_metrics(WAIT, "every worker picked up again", |m| {
        let pids: Vec<u32> = worker_info(m, app)
            .into_iter()
            .map(|(_, pid)| pid)
            .collect();
        pids.iter().copied().collect::<BTreeSet<_>>() == workers.iter().copied().collect()
    });
    assert_eq!(worker_info(&seen, app).len(), 2);
    // Every request of a wrk run that starts after it is counted: exactly the access log's.
    let logged_before = gunicorn.access_log().len();
    let (requests, socket_errors, non_2xx) = run_wrk(gunicorn.addr(), 2);
    assert_eq!((socket_errors, non_2xx), (0, 0), "wrk after the restart");
    gunicorn.wait_for_access_entries(logged_before + requests as usize, WAIT);
    // wrk stops counting at its deadline; Gunicorn still answers what was in flight.
    std::thread::sleep(Duration::from_secs(1));
    let logged = (gunicorn.access_log().len() - logged_before) as f64;
    // A request in flight when wrk hits its deadline and closes its sockets is logged 200 by
    // Gunicorn (the log is written whatever the write did) but never went out whole: the
    // observer counts it as a `client_disconnect` failure instead (README, "Where
    // Gunicorn's access log is wrong"). At most one per wrk connection.
    let seen = |m: &observer_tests::Metrics| {
        let disconnects = m.sum(
            common::FAILED,
            &[("app", app), ("error_type", "client_disconnect")],
        );
        (total(m, app), disconnects)
    };
    let deadline = Instant::now() + WAIT;
    while {
        let (answered, cut_off) = seen(&second.metrics());
        answered + cut_off < logged && Instant::now() < deadline
    } {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (answered, cut_off) = seen(&second.metrics());
    assert!(
        cut_off <= 8.0,
        "more cut-off requests than wrk connections: {cut_off}"
    );
    assert_eq!(
        answered + cut_off,
        logged,
        "the restarted observer counts every request in the access log \
         ({answered} answered, {cut_off} cut off at wrk's deadline)"
    );
}

#[test]
fn sigterm_drains_and_exits_within_two_seconds() {
    let app = common::unique_app("faults-sigterm");
    let app = app.as_str();
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={app}")));
    let observer = Observer::start(&[]);
    for _ in 0..20 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    settled(&observer, app, 20.0);

    let logs_before_stop = observer.stderr();
    assert!(!logs_before_stop.contains("event loop drained"));
    let started = Instant::now();
    let (status, stderr) = observer.stop_with_logs();
    let took = started.elapsed();
    assert!(
        status.success(),
        "SIGTERM must end the observer cleanly, it exited {status}\n{stderr}"
    );
    assert!(
        took <= SIGTERM_EXIT_LIMIT,
        "the observer took {took:?} to exit after SIGTERM; the README promises at most \
         {SIGTERM_EXIT_LIMIT:?}\n{stderr}"
    );
    assert!(
        stderr.contains("event loop drained"),
        "no final drain logged:\n{stderr}"
    );
    eprintln!("SIGTERM to exit: {took:?}");
}

/// Spawns a tiny HTTP server (not Gunicorn) that gets exactly `pid`, by setting the kernel's
/// last allocated pid just below it; other processes on the host may take the pid first,
/// so this retries. Returns the server and its port.
fn impostor_with_pid(pid: u32) -> (Child, u16) {
    const SERVER: &str = "import socket,sys\n\
        s=socket.socket();s.bind(('127.0.0.1',0));s.listen(16)\n\
        print(s.getsockname()[1],flush=True)\n\
        while True:\n\
        \x20c,_=s.accept();c.recv(65536)\n\
        \x20c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok')\n\
        \x20c.close()\n";
    for _ in 0..500 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("writing /proc/sys/kernel/ns_last_pid");
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning python3");
        if child.id() != pid {
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("reading the impostor's port");
        let port = line.trim().parse().expect("the impostor's port");
        return (child, port);
    }
    panic!("could not get pid {pid} back in 500 tries");
}

/// Whether the observer's kernel map `TRACKED` holds `pid`.
fn kernel_tracks(observer: &Observer, pid: u32) -> bool {
    let maps = held_bpf_ids(observer.pid(), "map_id:");
    let key: Vec<String> = pid.to_ne_bytes().iter().map(u8::to_string).collect();
    maps.into_iter().any(|id| {
        let info = Command::new("bpftool")
            .args(["map", "show", "id", &id.to_string()])
            .output()
            .expect("bpftool map show");
        if !String::from_utf8_lossy(&info.stdout).contains("name TRACKED ") {
            return false;
        }
        Command::new("bpftool")
            .args(["map", "lookup", "id", &id.to_string(), "key"])
            .args(&key)
            .output()
            .expect("bpftool map lookup")
            .status
            .success()
    })
}

#[test]
fn reused_pids_of_a_killed_master_and_its_workers_are_never_workers() {
    let app = common::unique_app("faults-pid-reuse");
    let app = app.as_str();
    let observer = Observer::start(&[]);
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={app}")));
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    settled(&observer, app, 5.0);
    let master = gunicorn.master_pid();
    let workers = gunicorn.worker_pids();
    assert_eq!(workers.len(), 2);
    assert!(
        kernel_tracks(&observer, workers[0]),
        "a live worker is tracked"
    );

    // The master dies at once; its workers notice the new parent and leave.
    process::signal(master, libc::SIGKILL).expect("SIGKILL the master");
    assert_eq!(gunicorn.stop().signal(), Some(libc::SIGKILL));
    let gone = process::wait_for(WAIT, || {
        let all_gone = workers
            .iter()
            .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        all_gone.then_some(())
    });
    assert!(
        gone.is_some(),
        "the orphaned workers did not exit and get reaped"
    );
    observer.wait_for_metrics(WAIT, "the dead instance's series gone", |m| {
        worker_info(m, app).is_empty() && total(m, app) == 0.0
    });

    let before = observer.metrics();
    let mut impostors = Vec::new();
    for pid in [master, workers[0], workers[1]] {
        let (child, port) = impostor_with_pid(pid);
        let addr = Addr::Tcp(([127, 0, 0, 1], port).into());
        for _ in 0..10 {
            let response = http::get(&addr, "/").expect("request to the impostor");
            assert_eq!(response.status, 200);
        }
        assert!(
            !kernel_tracks(&observer, pid),
            "the kernel follows pid {pid}, now an unrelated process"
        );
        impostors.push(child);
    }
    // The requests above had every chance to be drained; give the next scan a turn too.
    std::thread::sleep(Duration::from_secs(6));
    let after = observer.metrics();
    for mut child in impostors {
        let _ = child.kill();
        let _ = child.wait();
    }

    let pids: Vec<String> = [master, workers[0], workers[1]]
        .iter()
        .map(u32::to_string)
        .collect();
    let as_worker: Vec<_> = after
        .series(common::WORKER_INFO)
        .filter(|s| {
            s.label("pid")
                .is_some_and(|pid| pids.iter().any(|p| p == pid))
        })
        .collect();
    assert!(
        as_worker.is_empty(),
        "impostors taken for workers: {as_worker:?}"
    );
    assert_eq!(
        by_method_status(&after, app),
        expect(&[]),
        "nothing counted for the dead instance"
    );
    assert_eq!(
        after.sum(UNATTRIBUTED, &[]) - before.sum(UNATTRIBUTED, &[]),
        0.0,
        "the impostors' requests reached the observer"
    );
}

const OPEN_CONNECTIONS: &str = "gunicorn_observer_open_connections";
/// Keep-alive connections left idle in the workers that are then killed.
const IDLE_AT_KILL: usize = 40;

/// A worker killed with connections open never closes them itself: the kernel does at its
/// exit, with no close(2) to see. Their state must go with the process.
#[test]
fn workers_killed_with_connections_open_take_their_connection_state_with_them() {
    let app = common::unique_app("faults-exit-state");
    let app = app.as_str();
    let gunicorn = Gunicorn::start(
        GunicornOpts::gthread(2, 4)
            .arg(&format!("--name={app}"))
            .arg("--keep-alive=600"),
    );
    // The open-connection gauge is host-wide: show the observer this Gunicorn only.
    let mut pids = gunicorn.worker_pids();
    pids.push(gunicorn.master_pid());
    let view = ProcView::of(&pids);
    let observer = Observer::start(&["--proc-root", view.path().to_str().expect("utf-8")]);
    observer.wait_for_metrics(WAIT, "the instance found", |m| {
        worker_info(m, app).len() == 2
    });
    let open_before = observer.metrics().sum(OPEN_CONNECTIONS, &[]);

    let conns: Vec<Conn> = (0..IDLE_AT_KILL)
        .map(|_| {
            let mut conn = Conn::open(gunicorn.addr()).expect("connect");
            let response = conn.send("GET", "/", None, true).expect("keep-alive GET");
            assert_eq!(response.status, 200);
            conn
        })
        .collect();
    observer.wait_for_metrics(WAIT, "the idle connections followed", |m| {
        m.sum(OPEN_CONNECTIONS, &[]) == open_before + IDLE_AT_KILL as f64
    });

    for pid in gunicorn.worker_pids() {
        process::signal(pid, libc::SIGKILL).expect("SIGKILL a worker");
    }
    observer.wait_for_metrics(WAIT, "connection state gone with the workers", |m| {
        m.sum(OPEN_CONNECTIONS, &[]) == open_before
    });

    // The idle connections had no request in flight: nothing failed, nothing is lost.
    let after = settled(&observer, app, IDLE_AT_KILL as f64);
    assert_eq!(
        by_method_status(&after, app),
        expect(&[("GET", "200", IDLE_AT_KILL as f64)])
    );
    assert_eq!(after.sum(FAILED, &[("app", app)]), 0.0);
    drop(conns);
}
