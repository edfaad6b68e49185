//! Arbitrary ring-buffer records fed to the pipeline's own dispatch (`Pipeline::handle_batch`,
//! as the daemon's drain does), with every process that accepted a connection filed as a
//! worker the way the replay benchmark files them: decoding must reject, never panic, what
//! it accepts must respect the capture bound, and the connection table must keep its cap and
//! hold nothing once every process has exited.

#![no_main]

use std::sync::{Arc, Mutex};

use gunicorn_observer::aggregate::Stats;
use gunicorn_observer::cli::DEFAULT_DURATION_BUCKETS;
use gunicorn_observer::decode::{Event, decode};
use gunicorn_observer::export::ObserverMetrics;
use gunicorn_observer::pipeline::Pipeline;
use gunicorn_observer::sample::Sampler;
use gunicorn_observer_fuzz::{MAX_CONNS, records};
use libfuzzer_sys::fuzz_target;
use observer_ebpf::event::{EventHeader, EventKind, ProcEvent};
use observer_ebpf::limits::CAPTURE_LEN;

/// Record timestamps are CLOCK_MONOTONIC nanoseconds, which stay below this for two years of
/// uptime. Larger ones cannot come from a kernel, and the statistics' nanosecond sums are not
/// built for them (a busy interval from 0 to near `u64::MAX` overflows the slot's total).
const CLOCK_LIMIT: u64 = 1 << 56;
const TS_OFFSET: usize = std::mem::offset_of!(EventHeader, ts_ns);

/// A copy of `record` at 8-byte alignment, as the ring buffer hands records out, with its
/// timestamp brought below [`CLOCK_LIMIT`].
fn aligned(record: &[u8]) -> Vec<u64> {
    let mut words: Vec<u64> = vec![0; record.len().div_ceil(8)];
    // SAFETY: the Vec holds at least record.len() bytes, and u8 has no alignment.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), record.len()) };
    bytes.copy_from_slice(record);
    if let Some(ts) = bytes.get_mut(TS_OFFSET..TS_OFFSET + 8) {
        let clamped = u64::from_le_bytes(ts.try_into().expect("8 bytes")) % CLOCK_LIMIT;
        ts.copy_from_slice(&clamped.to_le_bytes());
    }
    words
}

fn bytes(words: &[u64], len: usize) -> &[u8] {
    // SAFETY: `words` came from `aligned` for a record of `len` bytes.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len) }
}

/// The exit record the kernel sends when process `tgid` ends.
fn exit_record(tgid: u32, ts_ns: u64) -> Vec<u8> {
    let event = ProcEvent {
        header: EventHeader {
            kind: EventKind::Exit as u32,
            tgid,
            tid: tgid,
            fd: -1,
            ts_ns,
        },
        parent_tgid: tgid,
        child_tgid: tgid,
        exit_code: 0,
        role: 0,
    };
    // SAFETY: ProcEvent is #[repr(C)] with no padding (asserted in observer-ebpf).
    unsafe { std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of::<ProcEvent>()) }
        .to_vec()
}

/// A pipeline without a kernel whose registry knows the processes in `records` as workers.
fn pipeline(records: &[Vec<u8>]) -> Pipeline<gunicorn_observer::pipeline::Detached> {
    let stats = Arc::new(Mutex::new(Stats::new(DEFAULT_DURATION_BUCKETS)));
    let metrics = ObserverMetrics::register(&prometheus::Registry::new())
        .expect("registering the self-metrics in a fresh registry");
    let sampler = Sampler::with_units(100, 4096);
    Pipeline::for_replay(records, stats, metrics, sampler).with_max_connections(MAX_CONNS)
}

fuzz_target!(|data: &[u8]| {
    let copies: Vec<(Vec<u64>, usize)> = records(data)
        .map(|record| (aligned(record), record.len()))
        .collect();
    let owned: Vec<Vec<u8>> = copies
        .iter()
        .map(|(words, len)| bytes(words, *len).to_vec())
        .collect();
    let mut pipeline = pipeline(&owned);

    let mut tgids = Vec::new();
    for (words, len) in &copies {
        let record = bytes(words, *len);
        match decode(record) {
            Ok(Event::Data { payload, tgid, .. }) => {
                assert!(
                    payload.len() <= CAPTURE_LEN,
                    "payload past the capture bound"
                );
                tgids.push(tgid);
            }
            Ok(
                Event::Accept { tgid, .. } | Event::Close { tgid, .. } | Event::Lost { tgid, .. },
            ) => tgids.push(tgid),
            _ => {}
        }
        pipeline.handle_record(record);
        assert!(
            pipeline.open_connections() <= MAX_CONNS,
            "table grew past its cap"
        );
    }

    for tgid in tgids {
        pipeline.handle_record(bytes(
            &aligned(&exit_record(tgid, CLOCK_LIMIT)),
            size_of::<ProcEvent>(),
        ));
    }
    assert_eq!(
        pipeline.open_connections(),
        0,
        "state left after every process exited"
    );
});
