//! Scenario 14: a seeded random mix of methods, paths, statuses, body sizes, keep-alive and
//! concurrency. The observer's counts and body sizes equal the client's and the access
//! log's, in total and request by request: every request has a unique path, and the
//! observer's `--request-log` (with `--route-label raw`) is matched line by line with
//! Gunicorn's access log. Each ordinary request's duration is within max(1 ms, 2 %) of
//! Gunicorn's `%(D)s`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use observer_tests::tempdir::TempDir;
use observer_tests::{AccessEntry, Conn, GunicornOpts, Response};
use serde_json::Value;

use crate::common::{access_by_method_status, by_method_status};
use crate::scenario::{DURATION, REQUEST_SIZE, RESPONSE_SIZE, Scenario};

const SEED: u64 = 0x5eed_f1de_1175;
const CLIENTS: u64 = 4;
const PER_CLIENT: usize = 40;

/// splitmix64: a few lines, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One request of the mix: method, path, body.
fn draw(rng: &mut Rng) -> (&'static str, String, Option<Vec<u8>>) {
    match rng.below(7) {
        0 => ("GET", "/".to_owned(), None),
        1 => {
            let code = rng.pick(&[200, 201, 204, 301, 400, 404, 409, 500, 503]);
            let method = *rng.pick(&["GET", "PUT", "DELETE", "PATCH"]);
            (method, format!("/status/{code}"), None)
        }
        // Sleeps in the middle of their buckets.
        2 => {
            let ms = rng.pick(&[30, 60, 150, 350]);
            ("GET", format!("/sleep/{ms}"), None)
        }
        3 => ("GET", format!("/bytes/{}", rng.below(300_000)), None),
        4 => {
            let body = vec![b'p'; rng.below(100_000) as usize];
            ("POST", "/upload".to_owned(), Some(body))
        }
        5 => ("HEAD", "/".to_owned(), None),
        _ => ("DELETE", format!("/items/{}", rng.below(1_000_000)), None),
    }
}

/// One request as the client sent and saw it.
struct Sent {
    method: &'static str,
    path: String,
    /// Request body bytes.
    body: u64,
    status: u16,
    /// Response body bytes received.
    received: u64,
    /// Nanoseconds each worker was disturbed while this request was in flight, by pid
    /// (see [`disturbance`]).
    disturbed: BTreeMap<u32, u64>,
    /// Microseconds from the client's first byte sent to its last byte received.
    round_trip_us: u64,
}

/// Per thread of each of `pids`: (CPU time, time runnable but waiting for a CPU) in
/// nanoseconds, the first two fields of the kernel's per-thread `schedstat`.
type Schedstats = BTreeMap<u32, BTreeMap<String, (u64, u64)>>;

fn schedstats(pids: &[u32]) -> Schedstats {
    pids.iter()
        .map(|&pid| {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten();
            let threads = tasks
                .filter_map(|task| {
                    let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                    let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok());
                    let tid = task.file_name().to_string_lossy().into_owned();
                    Some((tid, (fields.next()??, fields.next()??)))
                })
                .collect();
            (pid, threads)
        })
        .collect()
}

/// How long a worker was kept from its request between two readings: the time its threads
/// waited for a CPU, plus the CPU time of all its threads but the busiest. The first
/// delays a clock reading by preemption; the second is a thread that may have held the GIL
/// while the one serving the request waited for it.
fn disturbance(before: &Schedstats, after: &Schedstats) -> BTreeMap<u32, u64> {
    after
        .iter()
        .map(|(pid, threads)| {
            let deltas: Vec<(u64, u64)> = threads
                .iter()
                .map(|(tid, (cpu, wait))| {
                    let (cpu0, wait0) = before[pid].get(tid).copied().unwrap_or_default();
                    (cpu.saturating_sub(cpu0), wait.saturating_sub(wait0))
                })
                .collect();
            let waited: u64 = deltas.iter().map(|d| d.1).sum();
            let ran: u64 = deltas.iter().map(|d| d.0).sum();
            let busiest = deltas.iter().map(|d| d.0).max().unwrap_or(0);
            (*pid, waited + ran - busiest)
        })
        .collect()
}

fn client(s: &Scenario, id: u64) -> Vec<Sent> {
    let workers = s.gunicorn.worker_pids();
    let mut rng = Rng(SEED + id);
    let mut sent = Vec::new();
    let mut conn: Option<Conn> = None;
    for seq in 0..PER_CLIENT {
        let (method, route, body) = draw(&mut rng);
        let path = format!("/d/{id}-{seq}{route}");
        let keep_alive = rng.below(2) == 0;
        let mut open = conn
            .take()
            .unwrap_or_else(|| Conn::open(s.gunicorn.addr()).expect("connect"));
        let before = schedstats(&workers);
        let sending = Instant::now();
        let response: Response = open
            .send(method, &path, body.as_deref(), keep_alive)
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let round_trip_us = sending.elapsed().as_micros() as u64;
        let after = schedstats(&workers);
        if keep_alive {
            conn = Some(open);
        } else {
            open.close();
        }
        sent.push(Sent {
            method,
            path,
            body: body.map_or(0, |b| b.len() as u64),
            status: response.status,
            received: response.body.len() as u64,
            disturbed: disturbance(&before, &after),
            round_trip_us,
        });
    }
    if let Some(conn) = conn {
        conn.close();
    }
    sent
}

/// Disturbed less than 0.5 ms, a worker's clock readings cannot leave the 1 ms tolerance.
const UNDISTURBED_NS: u64 = 500_000;

/// An ordinary request is one the per-request tolerance applies to: it got a complete
/// response (every request of the mix does), its worker was disturbed less than
/// [`UNDISTURBED_NS`] while it was in flight (see [`disturbance`]), and Gunicorn's `%(D)s`
/// is no longer than the client's whole round trip.
///
/// Both exclusions are where Gunicorn's clock, not the wire, moved. Gunicorn reads its
/// clock in Python after the head is parsed and after the last write returns; a worker
/// preempted between a syscall and that reading moves `%(D)s` by the time it waited (seen
/// up to 54 ms here with two fuzzers on two cores), while the kernel's timestamps do not
/// move. And a `%(D)s` longer than the round trip the client measured around it (seen:
/// 2034 µs logged for a 577 µs round trip, with no preemption `schedstat` could see) is
/// wrong on its face: it counts time after the client already had the whole response. On a
/// quiet machine nearly every request is ordinary.
fn ordinary(sent: &Sent, pid: u32, logged_us: u64) -> bool {
    let undisturbed = sent
        .disturbed
        .get(&pid)
        .is_some_and(|&ns| ns < UNDISTURBED_NS);
    undisturbed && logged_us <= sent.round_trip_us
}

/// The observer's request log, once it has `count` lines of `app`: each line by its `route`.
/// Other Gunicorns on the host are observed too, so lines of other apps are left out.
fn request_log(path: &std::path::Path, app: &str, count: usize) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .filter(|line: &Value| line["app"] == app)
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines
                .into_iter()
                .map(|line| (line["route"].as_str().expect("route").to_owned(), line))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn seeded_mix_matches_the_client_and_the_access_log_request_by_request() {
    // Concurrency comes from four workers of one thread each. With several threads a
    // worker's other threads can hold the GIL after the last write, and Gunicorn reads its
    // clock up to the interpreter's 5 ms switch interval after the response ended.
    let dir = TempDir::new("fid-differential");
    let log_path = dir.path().join("requests.jsonl");
    let log_arg = log_path.to_str().expect("utf-8 temp path");
    let s = Scenario::observed_with(
        &["--route-label", "raw", "--request-log", log_arg],
        "fid-differential",
        "fidelity:application",
        GunicornOpts::gthread(4, 1).arg("--keep-alive=5"),
    );
    let sent: Vec<Sent> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let s = &s;
                scope.spawn(move || client(s, id))
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("client"))
            .collect()
    });
    let total = sent.len();

    // In total: the same (method, status) counts and body bytes everywhere.
    let mut want = BTreeMap::new();
    for request in &sent {
        let key = (request.method.to_owned(), request.status.to_string());
        *want.entry(key).or_default() += 1.0;
    }
    let log = s.access_log(total);
    let metrics = s.settle(total as f64);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");
    let body: u64 = sent.iter().map(|r| r.body).sum();
    let received: u64 = sent.iter().map(|r| r.received).sum();
    assert_eq!(s.histogram(&metrics, REQUEST_SIZE, &[]).sum(), body as f64);
    assert_eq!(
        s.histogram(&metrics, RESPONSE_SIZE, &[]).sum(),
        received as f64
    );

    let durations = s.histogram(&metrics, DURATION, &[]);
    assert_eq!(durations.count(), total as f64);

    // Request by request.
    let ours = request_log(&log_path, &s.app, total);
    assert_eq!(ours.len(), total, "request-log lines");
    let access: BTreeMap<&str, &AccessEntry> = log.iter().map(|e| (e.path.as_str(), e)).collect();
    assert_eq!(access.len(), total, "distinct access-log paths");
    let workers = s.gunicorn.worker_pids();
    let mut outside = Vec::new();
    let mut compared = 0;
    for request in &sent {
        let path = request.path.as_str();
        let line = &ours[path];
        let entry = access[path];
        assert_eq!(
            (line["method"].as_str(), line["status"].as_u64()),
            (Some(request.method), Some(u64::from(request.status))),
            "{path}"
        );
        assert_eq!(
            (entry.method.as_str(), entry.status),
            (request.method, request.status)
        );
        assert_eq!(
            line["request_body_bytes"].as_u64(),
            Some(request.body),
            "{path}"
        );
        assert_eq!(
            line["response_body_bytes"].as_u64(),
            Some(request.received),
            "{path}"
        );
        let pid = line["pid"].as_u64().expect("pid") as u32;
        assert!(
            workers.contains(&pid),
            "{path}: pid {pid} is not a worker of {workers:?}"
        );

        let duration_us = line["duration_us"].as_u64().expect("duration_us");
        let logged_us = entry.duration_us;
        let allowed_us = (logged_us / 50).max(1_000);
        if !ordinary(request, pid, logged_us) {
            continue;
        }
        compared += 1;
        if duration_us.abs_diff(logged_us) > allowed_us {
            outside.push(format!(
                "{} {path}: ours {duration_us} µs, %(D)s {logged_us} µs, disturbed {} µs, \
                 client {} µs",
                request.method,
                request.disturbed[&pid] / 1_000,
                request.round_trip_us
            ));
        }
    }
    assert!(
        compared > 0,
        "no request of {total} ran undisturbed by the scheduler"
    );
    assert_eq!(
        outside,
        Vec::<String>::new(),
        "ordinary requests outside max(1 ms, 2 %)"
    );
}
