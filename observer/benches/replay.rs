//! Replays a recorded event stream (`gunicorn-observer --record FILE`) through decode →
//! HTTP reconstruction → aggregation, without the kernel, on one core.
//!
//! `cargo bench -p gunicorn-observer --bench replay -- FILE [--rounds N] [--min-secs S]`
//! prints one `replay:` line per round and a `replay summary:` line that `cargo xtask bench`
//! reads. Each pass builds a fresh pipeline (not timed) and hands it every record in
//! drain-sized batches, as the ring buffer would.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use prometheus::{Encoder as _, Registry, TextEncoder};

use gunicorn_observer::{
    aggregate::Stats,
    cli::DEFAULT_DURATION_BUCKETS,
    export::{GunicornCollector, ObserverMetrics},
    pipeline::{Pipeline, read_recording},
    sample::Sampler,
};

struct Options {
    file: PathBuf,
    rounds: usize,
    min_secs: f64,
}

fn options() -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut rounds = 5;
    let mut min_secs = 1.0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = args.next().context("--rounds N")?.parse()?,
            "--min-secs" => min_secs = args.next().context("--min-secs S")?.parse()?,
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            other if other.starts_with("--") => bail!("unknown option {other}"),
            other => file = Some(PathBuf::from(other)),
        }
    }
    let file = file
        .or_else(|| std::env::var_os("GUNICORN_OBSERVER_REPLAY").map(PathBuf::from))
        .context("usage: replay FILE (or GUNICORN_OBSERVER_REPLAY=FILE)")?;
    Ok(Options {
        file,
        rounds,
        min_secs,
    })
}

/// One pass's result: how long handling took and what came out.
struct Pass {
    took: Duration,
    requests: f64,
    unattributed: u64,
}

fn pass(records: &[Vec<u8>]) -> anyhow::Result<Pass> {
    let registry = Registry::new();
    let stats = Arc::new(Mutex::new(Stats::new(DEFAULT_DURATION_BUCKETS)));
    registry.register(Box::new(GunicornCollector::new(Arc::clone(&stats))))?;
    let metrics = ObserverMetrics::register(&registry)?;
    let sampler = Sampler::new()?;
    let mut pipeline = Pipeline::for_replay(records, stats, metrics.clone(), sampler);

    let started = Instant::now();
    for batch in records.chunks(BATCH) {
        pipeline.handle_batch(batch.iter().map(Vec::as_slice));
    }
    let took = started.elapsed();

    Ok(Pass {
        took,
        requests: requests_counted(&registry)?,
        unattributed: metrics.unattributed.get(),
    })
}

/// How many records one drain hands over at a time. The kernel wakes the daemon only for
/// large batches (see `WAKEUP_THRESHOLD_BYTES`), so drains of hundreds are the normal case.
const BATCH: usize = 256;

/// Sum of `gunicorn_worker_requests_total` over its series, from the text exposition.
fn requests_counted(registry: &Registry) -> anyhow::Result<f64> {
    let mut text = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut text)?;
    let text = String::from_utf8(text)?;
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with("gunicorn_worker_requests_total{")
            && let Some(value) = line.rsplit(' ').next()
        {
            total += value.parse::<f64>()?;
        }
    }
    Ok(total)
}

/// Keeps the bench on one CPU, so "events per second" means per core.
fn pin_to_one_cpu() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    let records = read_recording(&options.file)
        .with_context(|| format!("reading {}", options.file.display()))?;
    if records.is_empty() {
        bail!("{} holds no records", options.file.display());
    }
    pin_to_one_cpu();

    let mut rates = Vec::new();
    for round in 1..=options.rounds {
        let mut events = 0usize;
        let mut took = Duration::ZERO;
        let mut last = None;
        while took.as_secs_f64() < options.min_secs {
            let result = pass(&records)?;
            events += records.len();
            took += result.took;
            last = Some(result);
        }
        let last = last.expect("at least one pass");
        let rate = events as f64 / took.as_secs_f64();
        println!(
            "replay: round {round} events {events} secs {:.3} events_per_sec {rate:.0} \
             requests_per_pass {} unattributed {}",
            took.as_secs_f64(),
            last.requests,
            last.unattributed
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "replay summary: records {} rounds {} median_events_per_sec {:.0} min {:.0} max {:.0}",
        records.len(),
        rates.len(),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
    Ok(())
}
