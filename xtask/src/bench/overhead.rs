//! Part 1: what observing costs the watched app. Bare Gunicorn, the same Gunicorn while the
//! observer runs, and gunicorn-prometheus-exporter next to its own bare baseline (it needs
//! Gunicorn 23), measured with wrk in alternating rounds.

use std::path::Path;

use anyhow::Result;

use super::gunicorn::{Instance, Spec, Worker};
use super::load::{self, WrkResult};
use super::observer::Observer;
use super::{Plan, median};

/// The four things measured in each round, in the order they run.
pub const VARIANTS: [&str; 4] = [
    "bare (Gunicorn 27)",
    "observed (Gunicorn 27)",
    "bare (Gunicorn 23)",
    "exporter 0.2.4 (Gunicorn 23)",
];

/// One worker class and endpoint, all rounds of every variant.
pub struct Case {
    pub worker: Worker,
    pub path: &'static str,
    /// `runs[variant][round]`.
    pub runs: [Vec<WrkResult>; 4],
}

impl Case {
    pub fn median(&self, variant: usize, field: impl Fn(&WrkResult) -> f64) -> f64 {
        median(self.runs[variant].iter().map(field).collect())
    }

    pub fn label(&self) -> String {
        let endpoint = match self.path {
            "/" => "hello",
            _ => "5 ms sleep",
        };
        format!("{}, {}", self.worker.label(), endpoint)
    }
}

pub fn run(root: &Path, scratch: &Path, plan: &Plan) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for worker in plan.workers() {
        let spec = |name: &str, gunicorn_23, exporter| Spec {
            gunicorn_23,
            exporter,
            ..Spec::bare(name, worker, 2)
        };
        let bare = Instance::start(root, scratch, spec("bench-bare", false, false))?;
        let bare_23 = Instance::start(root, scratch, spec("bench-bare23", true, false))?;
        let exporter = Instance::start(root, scratch, spec("bench-exporter", true, true))?;

        for path in plan.paths() {
            let mut case = Case {
                worker,
                path,
                runs: Default::default(),
            };
            for round in 1..=plan.rounds {
                println!(
                    "bench: overhead {} round {round}/{}",
                    case.label(),
                    plan.rounds
                );
                case.runs[0].push(load::wrk(&bare.url(path), plan.wrk_secs)?);
                let mut observer = Observer::start(root, scratch, None)?;
                case.runs[1].push(load::wrk(&bare.url(path), plan.wrk_secs)?);
                observer.stop();
                case.runs[2].push(load::wrk(&bare_23.url(path), plan.wrk_secs)?);
                case.runs[3].push(load::wrk(&exporter.url(path), plan.wrk_secs)?);
            }
            cases.push(case);
        }
    }
    Ok(cases)
}
