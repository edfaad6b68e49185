//! Part 1: what observing costs the watched app. Bare Gunicorn, the same Gunicorn while the
//! observer runs, and gunicorn-prometheus-exporter next to its own bare baseline (it needs
//! Gunicorn 23), measured with wrk in alternating rounds.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::gunicorn::{Instance, Spec, Worker};
use super::kernel_cost::{self, Counters, StatsEnabled};
use super::load::{self, WrkResult};
use super::observer::{self, Observer};
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
    /// What the kernel programs cost during each observed run.
    pub kernel: Vec<KernelRound>,
}

/// The observer's kernel programs during one observed wrk run, as the kernel counted them.
pub struct KernelRound {
    /// Requests the observer counted in the run, for every instance it watched.
    pub requests: f64,
    pub programs: BTreeMap<String, Counters>,
}

impl KernelRound {
    pub fn ns_per_request(&self) -> f64 {
        let ns: u64 = self.programs.values().map(|c| c.ns).sum();
        ns as f64 / self.requests.max(1.0)
    }
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
                kernel: Vec::new(),
            };
            for round in 1..=plan.rounds {
                println!(
                    "bench: overhead {} round {round}/{}",
                    case.label(),
                    plan.rounds
                );
                case.runs[0].push(load::wrk(&bare.url(path), plan.wrk_secs)?);
                let mut observer = Observer::start(root, scratch, None)?;
                let (run, kernel) = observed_run(&observer, &bare.url(path), plan.wrk_secs)?;
                case.runs[1].push(run);
                case.kernel.push(kernel);
                observer.stop();
                case.runs[2].push(load::wrk(&bare_23.url(path), plan.wrk_secs)?);
                case.runs[3].push(load::wrk(&exporter.url(path), plan.wrk_secs)?);
            }
            cases.push(case);
        }
    }
    Ok(cases)
}

/// One wrk run against an observed instance, with the kernel's statistics on for its length.
fn observed_run(observer: &Observer, url: &str, secs: u32) -> Result<(WrkResult, KernelRound)> {
    let requests = |text: &str| observer::sum(text, "gunicorn_worker_requests_total", &[]);
    let counted_before = requests(&observer.metrics()?);
    let pid = observer.proc.pid();

    let stats = StatsEnabled::enable()?;
    let before = kernel_cost::programs_of(pid)?;
    let run = load::wrk(url, secs)?;
    let after = kernel_cost::programs_of(pid)?;
    drop(stats);

    let kernel = KernelRound {
        requests: requests(&observer.metrics()?) - counted_before,
        programs: kernel_cost::added(&before, &after, &kernel_cost::names()),
    };
    Ok((run, kernel))
}
