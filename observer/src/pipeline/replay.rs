//! The event path without a kernel, fed a recording (`--record`): what the replay benchmark
//! measures.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use crate::{
    aggregate::Stats,
    decode::{Event, decode},
    export::ObserverMetrics,
    sample::Sampler,
};

use super::{Detached, Pipeline};

/// The master every replayed worker is filed under. No real pid is this large.
pub const REPLAY_MASTER: u32 = u32::MAX - 1;
/// The instance name replayed requests are counted under.
pub const REPLAY_APP: &str = "replay";

impl Pipeline<Detached> {
    /// A pipeline with no kernel whose registry already knows, as workers of one instance
    /// called [`REPLAY_APP`], every process that accepted a connection in `records`. The
    /// recorded processes are gone, so /proc cannot say who they were; without this every
    /// request would be unattributed and aggregation never run.
    pub fn for_replay(
        records: &[Vec<u8>],
        stats: Arc<Mutex<Stats>>,
        metrics: ObserverMetrics,
        sampler: Sampler,
    ) -> Self {
        // A /proc that does not exist: exec events and rescans then find nothing.
        let proc_root = PathBuf::from("/nonexistent/replay-proc");
        let mut pipeline = Self::new(Detached, stats, metrics, sampler, proc_root);

        let workers: BTreeSet<u32> = records
            .iter()
            .filter_map(|record| match decode(record) {
                Ok(Event::Accept { tgid, .. } | Event::Data { tgid, .. }) => Some(tgid),
                _ => None,
            })
            .collect();
        let app: Arc<str> = REPLAY_APP.into();
        pipeline
            .registry
            .add_master(REPLAY_MASTER, 0, REPLAY_APP.to_owned());
        pipeline.lock_stats().master_started(&app);
        for pid in workers {
            if let Some(worker) = pipeline.registry.add_worker(REPLAY_MASTER, pid) {
                pipeline
                    .lock_stats()
                    .worker_started(&worker.app, worker.slot, pid);
            }
        }
        pipeline
    }
}
