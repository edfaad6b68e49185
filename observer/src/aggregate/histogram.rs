//! A fixed-bucket histogram: one array of counts, no allocation per observation.

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    /// Per-bucket counts, not cumulative; the last slot is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: Arc<[f64]>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        Self {
            bounds,
            counts,
            sum: 0.0,
            count: 0,
        }
    }

    /// Bucket upper bounds are inclusive, as Prometheus defines `le`.
    pub fn observe(&mut self, value: f64) {
        let slot = self.bounds.partition_point(|bound| *bound < value);
        self.counts[slot] += 1;
        self.sum += value;
        self.count += 1;
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// `(upper bound, cumulative count)` for each finite bucket; +Inf is [`Self::count`].
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds
            .iter()
            .zip(&self.counts)
            .scan(0, |running, (bound, count)| {
                *running += count;
                Some((*bound, *running))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_counts_cumulative() {
        let mut h = Histogram::new(Arc::from([0.1, 0.25, 1.0]));
        for value in [0.05, 0.1, 0.2, 0.25, 0.3, 5.0] {
            h.observe(value);
        }
        let buckets: Vec<_> = h.cumulative().collect();
        assert_eq!(buckets, vec![(0.1, 2), (0.25, 4), (1.0, 5)]);
        assert_eq!(h.count(), 6);
        assert!((h.sum() - 5.9).abs() < 1e-9);
    }
}
