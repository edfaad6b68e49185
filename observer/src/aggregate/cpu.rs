//! A CPU-seconds counter for a place that a succession of processes fill: a worker slot
//! (replacements, and old and new worker side by side during a handover) or an instance's
//! master (a USR2 upgrade).

/// Sum of the last sampled CPU time of every process that held the place. Each process's
/// own time only grows, and a departed one's last sample is kept, so the sum never goes
/// backwards when a process is replaced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSeconds {
    /// `(pid, seconds)` of the live processes sampled so far.
    live: Vec<(u32, f64)>,
    /// Last samples of processes that left.
    retired: f64,
    sampled: bool,
}

impl CpuSeconds {
    /// Process `pid` had used `seconds` of CPU (user + system) at its latest sample.
    pub fn observe(&mut self, pid: u32, seconds: f64) {
        self.sampled = true;
        match self.live.iter_mut().find(|(p, _)| *p == pid) {
            // A sample racing an older one cannot lower it.
            Some((_, last)) => *last = last.max(seconds),
            None => self.live.push((pid, seconds)),
        }
    }

    /// Process `pid` left; its time stays in the total. The CPU it used after its last
    /// sample is never seen (at most one sampling interval's worth).
    pub fn retire(&mut self, pid: u32) {
        if let Some(at) = self.live.iter().position(|(p, _)| *p == pid) {
            self.retired += self.live.remove(at).1;
        }
    }

    /// The total, once any process of the place has been sampled.
    pub fn total(&self) -> Option<f64> {
        let live: f64 = self.live.iter().map(|(_, s)| s).sum();
        self.sampled.then_some(self.retired + live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_and_overlaps_never_lower_the_total() {
        let mut cpu = CpuSeconds::default();
        assert_eq!(cpu.total(), None);
        cpu.observe(10, 1.5);
        cpu.observe(10, 1.25);
        assert_eq!(cpu.total(), Some(1.5), "an out-of-order sample is ignored");

        // A successor overlaps the old worker, which then exits.
        cpu.observe(11, 0.25);
        assert_eq!(cpu.total(), Some(1.75));
        cpu.retire(10);
        assert_eq!(cpu.total(), Some(1.75));
        cpu.observe(11, 0.5);
        assert_eq!(cpu.total(), Some(2.0));

        // Retiring an unknown or already retired pid changes nothing.
        cpu.retire(10);
        cpu.retire(99);
        cpu.retire(11);
        assert_eq!(cpu.total(), Some(2.0));
    }
}
