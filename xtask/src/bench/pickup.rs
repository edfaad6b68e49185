//! Part 5, second figure: from a new worker's fork to its first request counted. A single
//! sync worker is killed; the master forks a replacement, whose first answer is the first
//! one the client gets back. The time from that answer reaching the client until the
//! observer's /metrics counts it is what the observer adds; the fork itself is tracked in
//! the kernel before the child first runs, so no request of the new worker is missed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::Plan;
use super::gunicorn::{Instance, Spec, Worker};
use super::observer::{self, Observer};
use super::procs;

const MS: Duration = Duration::from_millis(1);

pub struct Pickup {
    /// First answer of each new worker to its request being counted, one per round.
    pub attributed_after: Vec<Duration>,
    /// Kill of the old worker to the first answer of the new one (Gunicorn's own respawn).
    pub respawn: Vec<Duration>,
}

pub fn run(root: &Path, scratch: &Path, plan: &Plan) -> Result<Pickup> {
    let app = Instance::start(root, scratch, Spec::bare("bench-pickup", Worker::Sync, 1))?;
    let observer = Observer::start(root, scratch, None)?;
    let selector = ["app=\"bench-pickup\""];
    let counted = || -> Result<f64> {
        Ok(observer::sum(
            &observer.metrics()?,
            "gunicorn_worker_requests_total",
            &selector,
        ))
    };
    // The observer must know the worker that runs now before the first kill.
    procs::wait_until(
        "the pickup worker to be tracked",
        Duration::from_secs(10),
        || {
            observer
                .metrics()
                .is_ok_and(|text| observer::count(&text, "gunicorn_worker_info", &selector) == 1)
        },
    )?;

    let mut result = Pickup {
        attributed_after: Vec::new(),
        respawn: Vec::new(),
    };
    for round in 1..=plan.rounds {
        println!("bench: pick-up round {round}/{}", plan.rounds);
        std::thread::sleep(Duration::from_millis(200));
        let before = counted()?;
        let old = *procs::children(app.proc.pid())
            .first()
            .context("the pickup instance has no worker")?;
        // SAFETY: kill(2) on a worker of the Gunicorn we started.
        unsafe {
            libc::kill(old as i32, libc::SIGKILL);
        }
        let killed = Instant::now();
        // The listening socket stays open in the master, so this waits for the new worker.
        let answered = loop {
            if let Ok((200, _)) = procs::http_get(app.port, "/") {
                break Instant::now();
            }
            std::thread::sleep(MS);
        };
        // Polled every millisecond: the figure is compared with a 10 ms target.
        let limit = Duration::from_secs(10);
        procs::wait_until_every("the request to be counted", limit, MS, || {
            counted().is_ok_and(|now| now >= before + 1.0)
        })?;
        result.attributed_after.push(answered.elapsed());
        result.respawn.push(answered - killed);
    }
    Ok(result)
}
