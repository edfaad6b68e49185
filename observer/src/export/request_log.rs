//! `--request-log PATH`: one JSON line per finished request, for checking the observer
//! request by request against Gunicorn's access log, or for feeding a log pipeline.
//!
//! The event loop never waits on the file. Records go through a bounded queue to a writer
//! thread; a full queue drops the record and a failed write drops the lines it carried, each
//! counted in `gunicorn_observer_request_log_dropped_total{reason}`.
//!
//! Data safety: a line holds what the metrics hold (method, the `route` label as
//! `--route-label` makes it, status, sizes, timing) and nothing else: no header values, no
//! query strings, and raw paths only under `--route-label raw`.

use std::{
    fs::OpenOptions,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    thread::JoinHandle,
};

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde::Serialize;
use tracing::warn;

use crate::http::{Completed, Outcome};

/// Records waiting for the writer before new ones are dropped: about 20 MB at most, a few
/// seconds of a busy host's requests while the disk stalls.
const QUEUE_RECORDS: usize = 64 * 1024;

/// Lines gathered into one write when the writer falls behind.
const BATCH_BYTES: usize = 64 * 1024;

/// Label values of `gunicorn_observer_request_log_dropped_total`.
pub const DROP_REASONS: [&str; 2] = ["queue_full", "write_failed"];

#[derive(Debug, thiserror::Error)]
pub enum RequestLogError {
    #[error("cannot open request log {path:?}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the request log's writer thread")]
    Spawn(#[source] io::Error),
    #[error("cannot register the request log's metrics")]
    Metrics(#[from] prometheus::Error),
}

/// One finished request, as the pipeline hands it over.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub app: Arc<str>,
    pub worker_id: u32,
    pub request: Completed,
    /// `gunicorn_worker_failed_requests`' `error_type`, when the request failed.
    pub error_type: Option<&'static str>,
}

/// The sending side, owned by the pipeline.
pub struct RequestLog {
    queue: Option<SyncSender<LoggedRequest>>,
    writer: Option<JoinHandle<()>>,
    queue_full: IntCounter,
}

/// The counters the writer and the sender share.
#[derive(Clone)]
struct Counters {
    written: IntCounter,
    write_failed: IntCounter,
}

impl RequestLog {
    /// Opens `path` for appending (created if missing) and starts the writer thread.
    pub fn open(path: &Path, registry: &Registry) -> Result<Self, RequestLogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| RequestLogError::Open {
                path: path.to_owned(),
                source,
            })?;
        Self::start(file, registry, QUEUE_RECORDS)
    }

    fn start<W: Write + Send + 'static>(
        out: W,
        registry: &Registry,
        capacity: usize,
    ) -> Result<Self, RequestLogError> {
        let dropped = IntCounterVec::new(
            Opts::new(
                "gunicorn_observer_request_log_dropped_total",
                "Request-log lines lost: the writer's queue was full, or the write failed.",
            ),
            &["reason"],
        )?;
        let written = IntCounter::new(
            "gunicorn_observer_request_log_lines_total",
            "Request-log lines written.",
        )?;
        registry.register(Box::new(dropped.clone()))?;
        registry.register(Box::new(written.clone()))?;
        let counters = Counters {
            written,
            write_failed: dropped.with_label_values(&["write_failed"]),
        };
        let queue_full = dropped.with_label_values(&["queue_full"]);

        let (queue, records) = mpsc::sync_channel(capacity);
        let writer = std::thread::Builder::new()
            .name("request-log".into())
            .spawn(move || write_lines(records, out, &counters))
            .map_err(RequestLogError::Spawn)?;
        Ok(Self {
            queue: Some(queue),
            writer: Some(writer),
            queue_full,
        })
    }

    /// Queues a record; never blocks. A full queue drops it (counted).
    pub fn push(&self, record: LoggedRequest) {
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.queue_full.inc(),
            // The writer thread is gone only if it panicked; the records are lost either way.
            Err(TrySendError::Disconnected(_)) => self.queue_full.inc(),
        }
    }

    /// Writes out what is queued and stops the writer.
    pub fn finish(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            warn!("the request log's writer thread panicked");
        }
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The writer thread: takes what is queued, writes it in one go, repeats until the sender
/// is dropped.
fn write_lines<W: Write>(records: Receiver<LoggedRequest>, mut out: W, counters: &Counters) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut warned = false;
    while let Ok(first) = records.recv() {
        let mut lines = 0;
        let mut next = Some(first);
        while let Some(record) = next.take() {
            line(&record, clock_offset_ns(), &mut batch);
            lines += 1;
            if batch.len() < BATCH_BYTES {
                next = records.try_recv().ok();
            }
        }

        match out.write_all(&batch).and_then(|()| out.flush()) {
            Ok(()) => counters.written.inc_by(lines),
            Err(err) => {
                // A full disk fails every write; say it once, count every line.
                if !warned {
                    warn!(error = %err, lines, "cannot write the request log");
                    warned = true;
                }
                counters.write_failed.inc_by(lines);
            }
        }
        batch.clear();
    }
}

/// One line of the request log. Field order is the order written.
#[derive(Serialize)]
struct Line<'a> {
    /// When the request's first byte was read, Unix time in seconds.
    time: f64,
    app: &'a str,
    pid: u32,
    worker_id: u32,
    method: &'static str,
    /// Left out with `--route-label off`.
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    /// The final status, once the whole response went out; `null` for aborted requests.
    status: Option<u16>,
    /// Set for failed requests: `5xx`, the abort reason, or the restart that caused it.
    error_type: Option<&'static str>,
    duration_us: u64,
    request_body_bytes: u64,
    response_body_bytes: u64,
}

/// Appends `record`'s JSON line to `out`. `offset_ns` turns the kernel's CLOCK_MONOTONIC
/// stamps into Unix time.
fn line(record: &LoggedRequest, offset_ns: i128, out: &mut Vec<u8>) {
    let request = &record.request;
    let status = match request.outcome {
        Outcome::Status(status) => Some(status),
        Outcome::Aborted(_) => None,
    };
    let unix_ns = i128::from(request.start_ns) + offset_ns;
    let line = Line {
        time: (unix_ns / 1_000) as f64 / 1e6,
        app: &record.app,
        pid: request.conn.tgid,
        worker_id: record.worker_id,
        method: request.method.as_str(),
        route: (!request.route.is_none()).then(|| request.route.as_str()),
        status,
        error_type: record.error_type,
        duration_us: request.duration_ns() / 1_000,
        request_body_bytes: request.request_body_bytes,
        response_body_bytes: request.response_body_bytes,
    };
    // Serializing plain numbers and strings into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, read now: a clock step moves later lines only.
fn clock_offset_ns() -> i128 {
    let realtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    realtime - i128::from(crate::clock::monotonic_ns())
}

#[cfg(test)]
mod tests;
