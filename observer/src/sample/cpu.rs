//! CPU usage between two samples of the same process.
//!
//! The kernel only gives a running total of CPU time, so a rate needs the previous reading.
//! One baseline is kept per pid, tagged with the process's start time: when a pid is reused
//! by a new process the start time differs, and the old total must not be subtracted from
//! the new one.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Copy)]
struct Baseline {
    starttime: u64,
    cpu_ticks: u64,
    at: Instant,
    /// Set by every sample, cleared by `sweep`, so a sweep keeps only pids sampled since
    /// the previous one.
    seen: bool,
}

/// Previous CPU totals by pid.
#[derive(Debug)]
pub(super) struct CpuTracker {
    clk_tck: u64,
    baselines: HashMap<u32, Baseline>,
}

impl CpuTracker {
    pub(super) fn new(clk_tck: u64) -> Self {
        Self {
            clk_tck,
            baselines: HashMap::new(),
        }
    }

    /// Records `cpu_ticks` (utime + stime) read at `now` and returns the CPU percent since
    /// the previous reading of the same process, or `None` when there is no usable one.
    pub(super) fn observe(
        &mut self,
        pid: u32,
        starttime: u64,
        cpu_ticks: u64,
        now: Instant,
    ) -> Option<f64> {
        let fresh = Baseline {
            starttime,
            cpu_ticks,
            at: now,
            seen: true,
        };
        let Some(prev) = self.baselines.get_mut(&pid) else {
            self.baselines.insert(pid, fresh);
            return None;
        };

        // A different start time is a new process behind a reused pid; a total that went
        // down cannot happen for one process, so it is treated the same way.
        if prev.starttime != starttime || cpu_ticks < prev.cpu_ticks {
            *prev = fresh;
            return None;
        }

        // Two samples at the same instant give no rate; keeping the older baseline keeps
        // the next window as long as it really is.
        prev.seen = true;
        let wall = now.saturating_duration_since(prev.at);
        if wall.is_zero() {
            return None;
        }

        let percent = percent(cpu_ticks - prev.cpu_ticks, self.clk_tck, wall);
        *prev = fresh;
        Some(percent)
    }

    pub(super) fn forget(&mut self, pid: u32) {
        self.baselines.remove(&pid);
    }

    /// Drops every pid not observed since the previous sweep; returns how many.
    pub(super) fn sweep(&mut self) -> usize {
        let before = self.baselines.len();
        self.baselines.retain(|_, b| std::mem::take(&mut b.seen));
        before - self.baselines.len()
    }

    pub(super) fn len(&self) -> usize {
        self.baselines.len()
    }
}

/// CPU time over wall time, where 100 means one core busy for the whole window.
fn percent(delta_ticks: u64, clk_tck: u64, wall: Duration) -> f64 {
    delta_ticks as f64 * 100.0 / (clk_tck as f64 * wall.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn first_reading_has_no_rate() {
        let mut cpu = CpuTracker::new(100);
        assert_eq!(cpu.observe(10, 500, 1_000, Instant::now()), None);
        assert_eq!(cpu.len(), 1);
    }

    #[test]
    fn rate_between_two_readings() {
        let mut cpu = CpuTracker::new(100);
        let t0 = Instant::now();
        cpu.observe(10, 500, 1_000, t0);

        // 25 ticks at 100 Hz in 500 ms: a quarter second of CPU in half a second.
        let half = Duration::from_millis(500);
        assert_eq!(cpu.observe(10, 500, 1_025, t0 + half), Some(50.0));

        // 300 ticks in 2 s: one and a half cores.
        assert_eq!(
            cpu.observe(10, 500, 1_325, t0 + half + 2 * SECOND),
            Some(150.0)
        );

        // Idle.
        assert_eq!(
            cpu.observe(10, 500, 1_325, t0 + half + 3 * SECOND),
            Some(0.0)
        );
    }

    #[test]
    fn other_tick_rates() {
        let mut cpu = CpuTracker::new(250);
        let t0 = Instant::now();
        cpu.observe(1, 9, 0, t0);
        assert_eq!(cpu.observe(1, 9, 250, t0 + 4 * SECOND), Some(25.0));
    }

    #[test]
    fn pid_reuse_resets_the_baseline() {
        let mut cpu = CpuTracker::new(100);
        let t0 = Instant::now();
        cpu.observe(10, 500, 9_000, t0);

        // Same pid, new process: its small total must not be compared with 9_000.
        assert_eq!(cpu.observe(10, 777, 40, t0 + SECOND), None);
        assert_eq!(cpu.observe(10, 777, 140, t0 + 2 * SECOND), Some(100.0));
    }

    #[test]
    fn total_going_down_resets_the_baseline() {
        let mut cpu = CpuTracker::new(100);
        let t0 = Instant::now();
        cpu.observe(10, 500, 9_000, t0);
        assert_eq!(cpu.observe(10, 500, 8_000, t0 + SECOND), None);
        assert_eq!(cpu.observe(10, 500, 8_010, t0 + 2 * SECOND), Some(10.0));
    }

    #[test]
    fn same_instant_keeps_the_older_baseline() {
        let mut cpu = CpuTracker::new(100);
        let t0 = Instant::now();
        cpu.observe(10, 500, 0, t0);
        cpu.observe(10, 500, 30, t0 + SECOND);
        assert_eq!(cpu.observe(10, 500, 35, t0 + SECOND), None);

        // The window runs from the 30-tick reading at 1 s, not from the ignored one.
        assert_eq!(cpu.observe(10, 500, 80, t0 + 2 * SECOND), Some(50.0));
    }

    #[test]
    fn sweep_keeps_only_pids_seen_since_the_last_sweep() {
        let mut cpu = CpuTracker::new(100);
        let t0 = Instant::now();
        cpu.observe(1, 5, 0, t0);
        cpu.observe(2, 5, 0, t0);
        assert_eq!(cpu.sweep(), 0);

        cpu.observe(2, 5, 10, t0 + SECOND);
        assert_eq!(cpu.sweep(), 1);
        assert_eq!(cpu.len(), 1);

        // The survivor still has its baseline.
        assert_eq!(cpu.observe(2, 5, 20, t0 + 2 * SECOND), Some(10.0));
    }

    #[test]
    fn forget_drops_the_baseline() {
        let mut cpu = CpuTracker::new(100);
        let t0 = Instant::now();
        cpu.observe(1, 5, 0, t0);
        cpu.forget(1);
        assert_eq!(cpu.len(), 0);
        assert_eq!(cpu.observe(1, 5, 100, t0 + SECOND), None);
    }
}
