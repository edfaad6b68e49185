//! Scenario 14: a seeded random mix of methods, paths, statuses, body sizes, keep-alive and
//! concurrency. The observer's counts and body sizes equal the client's and the access
//! log's; its durations agree with Gunicorn's `%(D)s` within max(1 ms, 2 %) per request,
//! summed over the mix.

use std::collections::BTreeMap;

use observer_tests::{Conn, GunicornOpts, Response};

use crate::common::{access_by_method_status, by_method_status};
use crate::scenario::{DURATION, REQUEST_SIZE, RESPONSE_SIZE, Scenario, logged_seconds, tolerance};

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

/// What one client saw: (method, status) counts, request body bytes sent, response body
/// bytes received.
#[derive(Default)]
struct Seen {
    counts: BTreeMap<(String, String), f64>,
    sent: u64,
    received: u64,
}

fn client(s: &Scenario, seed: u64) -> Seen {
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let mut conn: Option<Conn> = None;
    for _ in 0..PER_CLIENT {
        let (method, path, body) = draw(&mut rng);
        let keep_alive = rng.below(2) == 0;
        let mut open = conn
            .take()
            .unwrap_or_else(|| Conn::open(s.gunicorn.addr()).expect("connect"));
        let response: Response = open
            .send(method, &path, body.as_deref(), keep_alive)
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        if keep_alive {
            conn = Some(open);
        } else {
            open.close();
        }
        let key = (method.to_owned(), response.status.to_string());
        *seen.counts.entry(key).or_default() += 1.0;
        seen.sent += body.map_or(0, |b| b.len() as u64);
        seen.received += response.body.len() as u64;
    }
    if let Some(conn) = conn {
        conn.close();
    }
    seen
}

#[test]
fn seeded_mix_matches_the_client_and_the_access_log() {
    // Concurrency comes from four workers of one thread each. With several threads a
    // worker's other threads can hold the GIL after the last write, and Gunicorn reads its
    // clock up to the interpreter's 5 ms switch interval after the response ended.
    let s = Scenario::start(
        "fid-differential",
        GunicornOpts::gthread(4, 1).arg("--keep-alive=5"),
    );
    let seen: Vec<Seen> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let s = &s;
                scope.spawn(move || client(s, SEED + i))
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect()
    });
    let mut want = BTreeMap::new();
    for (key, n) in seen.iter().flat_map(|s| &s.counts) {
        *want.entry(key.clone()).or_default() += n;
    }
    let total = (CLIENTS as usize * PER_CLIENT) as f64;

    let log = s.access_log(total as usize);
    let metrics = s.settle(total);
    assert_eq!(access_by_method_status(&log), want, "access log");
    assert_eq!(by_method_status(&metrics, &s.app), want, "observer");

    // Body bytes: exactly what the clients sent and received.
    let sent: u64 = seen.iter().map(|s| s.sent).sum();
    let received: u64 = seen.iter().map(|s| s.received).sum();
    assert_eq!(s.histogram(&metrics, REQUEST_SIZE, &[]).sum(), sent as f64);
    assert_eq!(
        s.histogram(&metrics, RESPONSE_SIZE, &[]).sum(),
        received as f64
    );

    // Durations: the sums agree within the per-request tolerance summed. Bucket by bucket
    // they do not reliably on a shared two-core host: a worker preempted between its last
    // write and Gunicorn's clock reading (or during the head's parse) moves single
    // requests by several milliseconds either way (see the README's limitations).
    let h = s.histogram(&metrics, DURATION, &[]);
    assert_eq!(h.count(), total);
    let logged = logged_seconds(&log);
    assert!(
        (h.sum() - logged).abs() <= tolerance(&log),
        "observer {} s, access log {logged} s, tolerance {} s",
        h.sum(),
        tolerance(&log)
    );
}
