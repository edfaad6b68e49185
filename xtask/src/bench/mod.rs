//! `cargo xtask bench`: measures the observer against bare Gunicorn and the in-process
//! exporter it replaces, and writes docs/BENCHMARKS.md with an SVG of the scaling runs.
//!
//! Everything runs on loopback, against processes this command starts and stops by pid.
//! `--quick` keeps every part but shortens runs (under 10 minutes); `--smoke` runs each
//! part once for a few seconds, writes under target/bench/, and is what `cargo xtask test`
//! runs so the harness does not rot. Smoke numbers mean nothing.

mod cpu;
mod gunicorn;
mod kernel_cost;
mod load;
mod memory;
mod observer;
mod overhead;
mod pickup;
mod procs;
mod replay;
mod report;
mod svg;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use gunicorn::Worker;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Quick,
    Smoke,
}

/// How long and how often each part runs.
pub struct Plan {
    pub mode: Mode,
    pub rounds: u32,
    pub wrk_secs: u32,
    pub paced_secs: f64,
    pub rates: Vec<f64>,
    pub worker_steps: Vec<u32>,
    pub connection_steps: Vec<usize>,
    pub background_rate: f64,
    pub size_secs: f64,
    pub replay_secs: f64,
    pub all_cases: bool,
}

impl Plan {
    fn new(mode: Mode) -> Self {
        match mode {
            Mode::Full => Self {
                mode,
                rounds: 7,
                wrk_secs: 10,
                paced_secs: 20.0,
                rates: vec![250.0, 1000.0, 4000.0],
                worker_steps: vec![4, 28, 100],
                connection_steps: vec![100, 1_000, 10_000],
                background_rate: 100.0,
                size_secs: 5.0,
                replay_secs: 2.0,
                all_cases: true,
            },
            Mode::Quick => Self {
                mode,
                rounds: 5,
                wrk_secs: 3,
                paced_secs: 8.0,
                rates: vec![250.0, 1000.0, 4000.0],
                worker_steps: vec![4, 28, 100],
                connection_steps: vec![100, 1_000, 10_000],
                background_rate: 100.0,
                size_secs: 3.0,
                replay_secs: 1.0,
                all_cases: true,
            },
            Mode::Smoke => Self {
                mode,
                rounds: 1,
                wrk_secs: 1,
                paced_secs: 1.0,
                rates: vec![100.0],
                worker_steps: vec![2],
                connection_steps: vec![10],
                background_rate: 50.0,
                size_secs: 0.5,
                replay_secs: 0.1,
                all_cases: false,
            },
        }
    }

    fn workers(&self) -> Vec<Worker> {
        match self.all_cases {
            true => vec![Worker::Sync, Worker::Gthread(4)],
            false => vec![Worker::Sync],
        }
    }

    fn paths(&self) -> Vec<&'static str> {
        match self.all_cases {
            true => vec!["/", "/sleep/5"],
            false => vec!["/"],
        }
    }
}

/// Everything one run measured.
pub struct Results {
    pub overhead: Vec<overhead::Case>,
    pub cpu: cpu::Cpu,
    pub replay: replay::Replay,
    pub memory: memory::Memory,
    pub pickup: pickup::Pickup,
    pub took_secs: f64,
}

pub fn bench(root: &Path, mode: Mode) -> Result<()> {
    if !crate::bootstrap::is_root() {
        bail!("`cargo xtask bench` loads eBPF programs: run it as root");
    }
    crate::bootstrap::bootstrap(root)?;
    crate::build_observer(root)?;
    run(root, mode)
}

/// Runs every part with an already bootstrapped machine and a built observer.
pub fn run(root: &Path, mode: Mode) -> Result<()> {
    gunicorn::ensure_exporter_venv(root).context("bench: exporter venv")?;
    let scratch = procs::scratch(root)?;
    let plan = Plan::new(mode);

    let begun = Instant::now();
    let overhead = overhead::run(root, &scratch, &plan).context("bench part 1: overhead")?;
    let cpu = cpu::run(root, &scratch, &plan).context("bench part 2: observer CPU")?;
    let replay = replay::run(root, &scratch, &plan).context("bench part 3: replay")?;
    let memory = memory::run(root, &scratch, &plan).context("bench part 4: memory")?;
    let pickup = pickup::run(root, &scratch, &plan).context("bench part 5: pick-up")?;
    let results = Results {
        overhead,
        cpu,
        replay,
        memory,
        pickup,
        took_secs: begun.elapsed().as_secs_f64(),
    };

    let (doc, svg) = match mode {
        Mode::Smoke => (
            scratch.join("BENCHMARKS.smoke.md"),
            scratch.join("scaling.smoke.svg"),
        ),
        _ => (
            root.join("docs/BENCHMARKS.md"),
            root.join("docs/bench-scaling.svg"),
        ),
    };
    std::fs::write(&svg, svg::scaling(&results))
        .with_context(|| format!("writing {}", svg.display()))?;
    let text = report::markdown(&results, &plan, &machine()?);
    std::fs::write(&doc, text).with_context(|| format!("writing {}", doc.display()))?;
    println!(
        "bench: wrote {} and {} in {:.0} s",
        doc.display(),
        svg.display(),
        results.took_secs
    );
    Ok(())
}

/// What the numbers were taken on.
pub struct Machine {
    pub nproc: String,
    pub kernel: String,
    pub date: String,
    pub cpu: String,
    /// The 1-minute load average when the run started: how busy the machine was besides us.
    pub load: String,
}

fn machine() -> Result<Machine> {
    let probe = |program: &str, args: &[&str]| {
        crate::cmd::Cmd::new(program)
            .args(args)
            .probe_ok()
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(Machine {
        nproc: probe("nproc", &[]),
        kernel: probe("uname", &["-r"]),
        date: probe("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        cpu,
        load: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|avg| avg.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned()),
    })
}

/// The median of some numbers (the upper one of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(Vec::new()).is_nan());
    }
}
