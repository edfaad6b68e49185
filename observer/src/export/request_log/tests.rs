use std::sync::{Arc, Mutex, mpsc};

use prometheus::Registry;

use super::*;
use crate::http::{AbortReason, ConnId, Method, Route, RouteMode};

fn completed(target: &[u8], mode: RouteMode, outcome: Outcome) -> Completed {
    Completed {
        conn: ConnId { tgid: 4242, fd: 9 },
        method: Method::Post,
        route: Route::of_target(target, mode),
        outcome,
        start_ns: 5_000_000_000,
        end_ns: 5_012_345_678,
        request_bytes: 1_200,
        response_bytes: 300,
        request_body_bytes: 1_000,
        response_body_bytes: 250,
    }
}

fn logged(request: Completed, error_type: Option<&'static str>) -> LoggedRequest {
    LoggedRequest {
        app: Arc::from("shop"),
        worker_id: 3,
        request,
        error_type,
    }
}

fn text(record: &LoggedRequest, offset_ns: i128) -> String {
    let mut out = Vec::new();
    line(record, offset_ns, &mut out);
    String::from_utf8(out).unwrap()
}

/// The value of one series in `registry`, 0 when absent.
fn counter(registry: &Registry, name: &str, reason: Option<&str>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric())
        .filter(|metric| {
            reason.is_none_or(|reason| metric.get_label().iter().any(|l| l.value() == reason))
        })
        .map(|metric| metric.get_counter().get_value())
        .sum()
}

#[test]
fn a_line_holds_the_route_label_never_the_query() {
    let request = completed(
        b"/orders/8812?token=secret",
        RouteMode::Template,
        Outcome::Status(201),
    );
    assert_eq!(
        text(&logged(request, None), 1_700_000_000_000_000_000),
        concat!(
            r#"{"time":1700000005.0,"app":"shop","pid":4242,"worker_id":3,"method":"POST","#,
            r#""route":"/orders/:id","status":201,"error_type":null,"duration_us":12345,"#,
            r#""request_body_bytes":1000,"response_body_bytes":250}"#,
            "\n"
        )
    );

    let raw = completed(
        b"/orders/8812?token=secret",
        RouteMode::Raw,
        Outcome::Status(201),
    );
    assert!(text(&logged(raw, None), 0).contains(r#""route":"/orders/8812","#));
}

#[test]
fn an_aborted_request_has_an_error_type_and_no_status() {
    let request = completed(
        b"/x",
        RouteMode::Off,
        Outcome::Aborted(AbortReason::ClientDisconnect),
    );
    assert_eq!(
        text(&logged(request, Some("client_disconnect")), 1_000),
        concat!(
            r#"{"time":5.000001,"app":"shop","pid":4242,"worker_id":3,"method":"POST","#,
            r#""status":null,"error_type":"client_disconnect","duration_us":12345,"#,
            r#""request_body_bytes":1000,"response_body_bytes":250}"#,
            "\n"
        )
    );
}

/// A writer that shares what it was given.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_pushed_record_becomes_one_line() {
    let registry = Registry::new();
    let out = Shared::default();
    let mut log = RequestLog::start(out.clone(), &registry, 16).unwrap();
    for status in [200, 404, 503] {
        let request = completed(b"/", RouteMode::Raw, Outcome::Status(status));
        log.push(logged(request, (status == 503).then_some("5xx")));
    }
    log.finish();

    let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let statuses: Vec<u64> = written
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, [200, 404, 503]);
    assert_eq!(
        counter(&registry, "gunicorn_observer_request_log_lines_total", None),
        3.0
    );
}

/// A disk that is full: every write fails.
struct Full;

impl Write for Full {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::ENOSPC))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn failed_writes_are_counted_per_line() {
    let registry = Registry::new();
    let mut log = RequestLog::start(Full, &registry, 16).unwrap();
    for _ in 0..5 {
        log.push(logged(
            completed(b"/", RouteMode::Raw, Outcome::Status(200)),
            None,
        ));
    }
    log.finish();

    let dropped = "gunicorn_observer_request_log_dropped_total";
    assert_eq!(counter(&registry, dropped, Some("write_failed")), 5.0);
    assert_eq!(counter(&registry, dropped, Some("queue_full")), 0.0);
    assert_eq!(
        counter(&registry, "gunicorn_observer_request_log_lines_total", None),
        0.0
    );
}

/// A disk that stalls: the first write waits until the test lets it go.
struct Stalled {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
    inner: Shared,
}

impl Write for Stalled {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let _ = self.entered.send(());
        let _ = self.release.recv();
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_disk_drops_and_counts_instead_of_blocking() {
    let registry = Registry::new();
    let (entered, writing) = mpsc::channel();
    let (release, released) = mpsc::channel();
    let inner = Shared::default();
    let stalled = Stalled {
        entered,
        release: released,
        inner: inner.clone(),
    };
    let mut log = RequestLog::start(stalled, &registry, 2).unwrap();
    let record = || logged(completed(b"/", RouteMode::Raw, Outcome::Status(200)), None);

    // The writer takes the first record and stalls in its write; two more fill the queue
    // and the last three are dropped at once.
    log.push(record());
    writing.recv().unwrap();
    for _ in 0..5 {
        log.push(record());
    }
    let dropped = "gunicorn_observer_request_log_dropped_total";
    assert_eq!(counter(&registry, dropped, Some("queue_full")), 3.0);

    // Unstalled, the queued ones are written.
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    drop(release);
    log.finish();
    assert_eq!(
        inner.0.lock().unwrap().split(|&b| b == b'\n').count() - 1,
        3
    );
    assert_eq!(
        counter(&registry, "gunicorn_observer_request_log_lines_total", None),
        3.0
    );
}
