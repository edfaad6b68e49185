//! Part 4, the worker and connection axes of part 6, and the first pick-up figure of part 5:
//! the observer's memory and CPU as Gunicorn workers and open keep-alive connections grow,
//! and how long a freshly started observer takes to track workers that already run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::Plan;
use super::gunicorn::{Instance, Spec, Worker};
use super::load;
use super::observer::{self, Observer};
use super::procs;

/// The observer at one size of the watched world.
pub struct SizePoint {
    pub workers: u32,
    pub connections: usize,
    pub rss_mib: f64,
    /// Of `rss_mib`, the ring buffer's mapping.
    pub ring_mib: f64,
    /// Of `rss_mib`, anonymous memory: heap and thread stacks.
    pub anon_mib: f64,
    /// Of `rss_mib`, file-backed pages other than the ring buffer: the binary's code and
    /// libraries.
    pub code_mib: f64,
    /// While a paced load of `plan.background_rate` ran against the first instance.
    pub millicores: f64,
    /// `gunicorn_observer_open_connections` as the observer reported it.
    pub seen_connections: f64,
}

pub struct Memory {
    pub by_workers: Vec<SizePoint>,
    pub by_connections: Vec<SizePoint>,
    /// From the observer's start to `/readyz`, and to every running worker being attributed.
    pub ready_after: Duration,
    pub tracked_after: Duration,
    pub tracked_workers: u32,
}

pub fn run(root: &Path, scratch: &Path, plan: &Plan) -> Result<Memory> {
    let mut observer = Observer::start(root, scratch, None)?;
    let mut instances: Vec<Instance> = Vec::new();
    let mut by_workers = Vec::new();
    for (step, &total) in plan.worker_steps.iter().enumerate() {
        let have: u32 = instances.iter().map(|i| i.spec.workers).sum();
        if total > have {
            // Each step adds instances of at most 25 workers, as a node would run them.
            let mut missing = total - have;
            while missing > 0 {
                let workers = missing.min(25);
                let name = format!("bench-mem-{step}-{}", instances.len());
                let spec = Spec {
                    keep_alive: Some(600),
                    ..Spec::bare(&name, Worker::Gthread(2), workers)
                };
                instances.push(Instance::start(root, scratch, spec)?);
                missing -= workers;
            }
        }
        println!("bench: observer size with {total} workers");
        by_workers.push(measure(&observer, &instances, plan, 0)?);
    }

    let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
    let mut open = Vec::new();
    let mut by_connections = Vec::new();
    for &count in &plan.connection_steps {
        println!("bench: observer size with {count} open keep-alive connections");
        open.extend(load::keep_alive_connections(&ports, count - open.len())?);
        by_connections.push(measure(&observer, &instances, plan, open.len())?);
    }
    drop(open);
    observer.stop();

    // A new observer must find every worker that is already running.
    let workers: u32 = instances.iter().map(|i| i.spec.workers).sum();
    let begun = Instant::now();
    let observer = Observer::start(root, scratch, None)?;
    let ready_after = observer.ready_after;
    let mut tracked = 0;
    procs::wait_until(
        "every worker to be tracked",
        Duration::from_secs(30),
        || {
            tracked = observer.metrics().map_or(0, |text| {
                observer::count(&text, "gunicorn_worker_info", &["app=\"bench-mem-"])
            });
            tracked >= workers as usize
        },
    )?;
    let tracked_after = begun.elapsed();
    Ok(Memory {
        by_workers,
        by_connections,
        ready_after,
        tracked_after,
        tracked_workers: tracked as u32,
    })
}

/// RSS after things settle, and CPU over a paced background load.
fn measure(
    observer: &Observer,
    instances: &[Instance],
    plan: &Plan,
    connections: usize,
) -> Result<SizePoint> {
    // Let the observer take in what just changed (scans, accepts) before measuring.
    std::thread::sleep(Duration::from_secs(1));
    let Some(first) = instances.first() else {
        bail!("no instance to load");
    };
    let cpu_before = observer.cpu_secs()?;
    let begun = Instant::now();
    load::paced(first.port, "/", plan.background_rate, plan.size_secs)?;
    let millicores = (observer.cpu_secs()? - cpu_before) / begun.elapsed().as_secs_f64() * 1000.0;
    let metrics = observer.metrics()?;
    let ring_mib = observer.ring_mib()?;
    let (anon_mib, file_mib) = observer.rss_split_mib()?;
    Ok(SizePoint {
        workers: instances.iter().map(|i| i.spec.workers).sum(),
        connections,
        rss_mib: observer.rss_mib()?,
        ring_mib,
        anon_mib,
        code_mib: file_mib - ring_mib,
        millicores,
        seen_connections: observer::sum(&metrics, "gunicorn_observer_open_connections", &[]),
    })
}
