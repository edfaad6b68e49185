//! Part 3: the userspace pipeline alone. A real event stream is recorded once with the
//! observer's `--record` while wrk drives Gunicorn, then replayed through decode → HTTP →
//! aggregation by the `replay` bench of the observer crate, on one core.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use super::Plan;
use super::gunicorn::{Instance, Spec, Worker};
use super::load;
use super::observer::Observer;
use crate::cmd::Cmd;

pub struct Replay {
    pub records: u64,
    pub requests_per_pass: f64,
    /// Events per second, one per round.
    pub rates: Vec<f64>,
}

pub fn run(root: &Path, scratch: &Path, plan: &Plan) -> Result<Replay> {
    let file = scratch.join("events.rec");
    {
        let app = Instance::start(root, scratch, Spec::bare("bench-record", Worker::Sync, 2))?;
        let mut observer = Observer::start(root, scratch, Some(&file))?;
        println!("bench: recording {} s of wrk traffic", plan.wrk_secs);
        load::wrk(&app.url("/"), plan.wrk_secs)?;
        // The recording is flushed when the observer stops.
        observer.stop();
    }

    let mut replay = Replay {
        records: 0,
        requests_per_pass: 0.0,
        rates: Vec::new(),
    };
    let status = Cmd::new("cargo")
        .current_dir(root)
        .args([
            "bench",
            "-q",
            "-p",
            "gunicorn-observer",
            "--bench",
            "replay",
            "--",
        ])
        .arg(&file)
        .args(["--rounds", &plan.rounds.to_string()])
        .args(["--min-secs", &plan.replay_secs.to_string()])
        .stream(|line| {
            println!("{line}");
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [
                "replay:",
                "round",
                _,
                "events",
                _,
                "secs",
                _,
                "events_per_sec",
                rate,
                "requests_per_pass",
                requests,
                ..,
            ] = words.as_slice()
            {
                replay.rates.extend(rate.parse::<f64>().ok());
                replay.requests_per_pass = requests.parse().unwrap_or(0.0);
            }
            if let ["replay", "summary:", "records", records, ..] = words.as_slice() {
                replay.records = records.parse().unwrap_or(0);
            }
        })?;
    if !status.success() {
        bail!("the replay bench failed ({status})");
    }
    if replay.rates.is_empty() {
        bail!("the replay bench printed no rounds");
    }
    let _ = std::fs::metadata(&file).context("the recording vanished")?;
    Ok(replay)
}
