//! The event path without a kernel, fed a recording (`--record`): what the replay benchmark
//! measures.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use crate::{
    aggregate::Stats,
    decode::{Event, decode},
    export::ObserverMetrics,
    sample::Sampler,
};

use super::{Detached, Pipeline};

/// The master every replayed worker is filed under. No real pid is this large.
pub const REPLAY_MASTER: u32 = u32::MAX - 1;
/// The instance name replayed requests are counted under.
pub const REPLAY_APP: &str = "replay";

impl Pipeline<Detached> {
    /// A pipeline with no kernel whose registry already knows, as workers of one instance
    /// called [`REPLAY_APP`], every process that accepted a connection in `records`. The
    /// recorded processes are gone, so /proc cannot say who they were; without this every
    /// request would be unattributed and aggregation never run.
    pub fn for_replay(
        records: &[Vec<u8>],
        stats: Arc<Mutex<Stats>>,
        metrics: ObserverMetrics,
        sampler: Sampler,
    ) -> Self {
        // A /proc that does not exist: exec events and rescans then find nothing.
        let proc_root = PathBuf::from("/nonexistent/replay-proc");
        let mut pipeline = Self::new(Detached, stats, metrics, sampler, proc_root);

        let workers: BTreeSet<u32> = records
            .iter()
            .filter_map(|record| match decode(record) {
                Ok(Event::Accept { tgid, .. } | Event::Data { tgid, .. }) => Some(tgid),
                _ => None,
            })
            .collect();
        let app: Arc<str> = REPLAY_APP.into();
        pipeline
            .registry
            .add_master(REPLAY_MASTER, 0, REPLAY_APP.to_owned());
        pipeline.lock_stats().master_started(&app);
        for pid in workers {
            if let Some(worker) = pipeline.registry.add_worker(REPLAY_MASTER, pid) {
                pipeline
                    .lock_stats()
                    .worker_started(&worker.app, worker.slot, pid);
            }
        }
        pipeline
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder as _, TextEncoder};

    use observer_ebpf::{
        event::{
            AcceptEvent, CLOSE_CLOSE, CloseEvent, DATA_EVENT_HEADER_LEN, DataEvent, EventHeader,
            EventKind, Syscall,
        },
        limits::CAPTURE_LEN,
    };

    use super::*;
    use crate::{cli::DEFAULT_DURATION_BUCKETS, export::GunicornCollector};

    const WORKER: u32 = 4242;

    fn as_bytes<T>(value: &T) -> Vec<u8> {
        // SAFETY: test-only view of a #[repr(C)] event struct, which has no padding.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn header(kind: EventKind, fd: i32, ts_ns: u64) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            tgid: WORKER,
            tid: WORKER,
            fd,
            ts_ns,
        }
    }

    fn data(fd: i32, ts_ns: u64, syscall: Syscall, payload: &[u8]) -> Vec<u8> {
        let mut event = DataEvent {
            header: header(EventKind::Data, fd, ts_ns),
            ret: payload.len() as i64,
            syscall: syscall as u32,
            captured: payload.len() as u32,
            data: [0; CAPTURE_LEN],
        };
        event.data[..payload.len()].copy_from_slice(payload);
        let mut bytes = as_bytes(&event);
        bytes.truncate(DATA_EVENT_HEADER_LEN + payload.len());
        bytes
    }

    /// Accept, request, response and close on `fd`, starting at `ts_ns`.
    fn one_connection(fd: i32, ts_ns: u64) -> Vec<Vec<u8>> {
        let accept = AcceptEvent {
            header: header(EventKind::Accept, fd, ts_ns),
            listen_fd: 5,
            family: 2,
        };
        let close = CloseEvent {
            header: header(EventKind::Close, fd, ts_ns + 3_000),
            how: CLOSE_CLOSE,
            shutdown_how: 0,
        };
        vec![
            as_bytes(&accept),
            data(
                fd,
                ts_ns + 1_000,
                Syscall::Recvfrom,
                b"GET / HTTP/1.1\r\n\r\n",
            ),
            data(
                fd,
                ts_ns + 2_000,
                Syscall::Sendto,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
            as_bytes(&close),
        ]
    }

    #[test]
    fn replayed_records_are_counted_as_requests_of_the_replay_instance() {
        let mut records = one_connection(9, 1_000_000);
        records.extend(one_connection(9, 2_000_000));
        records.push(vec![1, 2, 3]);

        let registry = prometheus::Registry::new();
        let stats = Arc::new(Mutex::new(Stats::new(DEFAULT_DURATION_BUCKETS)));
        registry
            .register(Box::new(GunicornCollector::new(Arc::clone(&stats))))
            .unwrap();
        let metrics = ObserverMetrics::register(&registry).unwrap();
        let sampler = Sampler::with_units(100, 4096);
        let mut pipeline = Pipeline::for_replay(&records, stats, metrics.clone(), sampler);
        pipeline.handle_batch(records.iter().map(Vec::as_slice));

        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        let value = |prefix: &str| -> Vec<&str> {
            text.lines()
                .filter(|line| line.starts_with(prefix))
                .collect()
        };
        assert_eq!(
            value("gunicorn_worker_requests_total"),
            [
                "gunicorn_worker_requests_total{app=\"replay\",worker_id=\"0\",method=\"GET\",route=\"/\",status=\"200\"} 2"
            ]
        );
        assert_eq!(
            value("gunicorn_observer_events_total"),
            [
                "gunicorn_observer_events_total{kind=\"accept\"} 2",
                "gunicorn_observer_events_total{kind=\"close\"} 2",
                "gunicorn_observer_events_total{kind=\"data\"} 4",
            ]
        );
        assert_eq!(
            value("gunicorn_observer_decode_errors_total{reason=\"short_record\"}"),
            ["gunicorn_observer_decode_errors_total{reason=\"short_record\"} 1"]
        );
        assert_eq!(metrics.unattributed.get(), 0);
    }
}
