//! The statistics lock, held across the records of one drain rather than taken per event.
//!
//! The exporter takes the same lock to render a scrape, so it is let go every
//! [`MAX_HELD_RECORDS`] records and before any event that does more than socket work
//! (those take the lock themselves, and some read /proc).

use std::sync::{Mutex, MutexGuard};

use crate::aggregate::Stats;

/// Records handled under one taking of the lock: a few tens of microseconds of work, so a
/// scrape never waits longer than that.
const MAX_HELD_RECORDS: u32 = 256;

pub struct Batch<'a> {
    shared: &'a Mutex<Stats>,
    guard: Option<MutexGuard<'a, Stats>>,
    held_for: u32,
}

impl<'a> Batch<'a> {
    pub fn new(shared: &'a Mutex<Stats>) -> Self {
        Self {
            shared,
            guard: None,
            held_for: 0,
        }
    }

    /// The statistics, locked once and kept until [`Self::release`] or the record limit.
    pub fn stats(&mut self) -> &mut Stats {
        if self.held_for >= MAX_HELD_RECORDS {
            self.release();
        }
        self.held_for += 1;
        self.guard.get_or_insert_with(|| {
            self.shared
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
        })
    }

    /// Lets the exporter, and the pipeline's own non-socket paths, take the lock.
    pub fn release(&mut self) {
        self.guard = None;
        self.held_for = 0;
    }
}
