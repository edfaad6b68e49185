//! Part 2 and the request-rate axis of part 6: the observer's CPU at fixed request rates,
//! read from /proc/<pid>/stat over each paced run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Plan;
use super::gunicorn::{Instance, Spec, Worker};
use super::load;
use super::observer::{self, Observer};

/// One paced run.
pub struct RatePoint {
    pub asked: f64,
    pub achieved: f64,
    pub millicores: f64,
    pub rss_mib: f64,
    /// Requests the client completed, and requests the observer counted for the instance.
    pub completed: f64,
    pub counted: f64,
}

impl RatePoint {
    /// Everything the observer spent, per 1k req/s of this run.
    pub fn millicores_per_1k(&self) -> f64 {
        self.millicores / (self.achieved / 1000.0)
    }

    /// What the requests added over the idle observer (`idle`), per 1k req/s: the cost
    /// that grows with traffic, without the fixed cost of timers, rescans and sampling.
    pub fn marginal_per_1k(&self, idle: f64) -> f64 {
        (self.millicores - idle) / (self.achieved / 1000.0)
    }
}

pub struct Cpu {
    /// The observer with no request traffic to its instance.
    pub idle_millicores: f64,
    pub idle_rss_mib: f64,
    pub points: Vec<RatePoint>,
}

pub fn run(root: &Path, scratch: &Path, plan: &Plan) -> Result<Cpu> {
    let app = Instance::start(root, scratch, Spec::bare("bench-cpu", Worker::Sync, 2))?;
    let mut observer = Observer::start(root, scratch, None)?;
    let selector = ["app=\"bench-cpu\""];
    // Let the start-up scan settle, then take the idle cost: timers, rescans, sampling.
    std::thread::sleep(Duration::from_secs(1));
    let cpu_before = observer.cpu_secs()?;
    let begun = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(plan.paced_secs));
    let idle_millicores = (observer.cpu_secs()? - cpu_before) / begun.elapsed().as_secs_f64() * 1e3;

    let mut points = Vec::new();
    for &rate in &plan.rates {
        println!(
            "bench: observer CPU at {rate} req/s for {} s",
            plan.paced_secs
        );
        let counted_before = requests(&observer, &selector)?;
        let cpu_before = observer.cpu_secs()?;
        let begun = Instant::now();
        let run = load::paced(app.port, "/", rate, plan.paced_secs)?;
        let wall = begun.elapsed().as_secs_f64();
        let cpu = observer.cpu_secs()? - cpu_before;
        // Let the last drain (every 10 ms) land before reading the count.
        std::thread::sleep(Duration::from_millis(200));
        points.push(RatePoint {
            asked: rate,
            achieved: run.rate(),
            millicores: cpu / wall * 1000.0,
            rss_mib: observer.rss_mib()?,
            completed: run.completed as f64,
            counted: requests(&observer, &selector)? - counted_before,
        });
    }
    let idle_rss_mib = observer.rss_mib()?;
    observer.stop();
    Ok(Cpu {
        idle_millicores,
        idle_rss_mib,
        points,
    })
}

fn requests(observer: &Observer, labels: &[&str]) -> Result<f64> {
    Ok(observer::sum(
        &observer.metrics()?,
        "gunicorn_worker_requests_total",
        labels,
    ))
}
