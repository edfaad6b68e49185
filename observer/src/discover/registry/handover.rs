//! Handing a slot from a worker about to be stopped to the worker that replaces it.
//!
//! Gunicorn overlaps old and new workers in two ways (gunicorn/arbiter.py, 27.x):
//!
//! - **HUP**: `reload()` forks `workers` new workers first, and only then `manage_workers()`
//!   sends TERM to the oldest workers beyond the count. When the new workers are forked no
//!   old one has been signalled yet, so waiting for a free slot would give them new numbers.
//! - **USR2**: the master forks a child that execs a new master on the same listeners. The
//!   new master's workers run beside the old master's until the operator stops the old one.
//!
//! So when the command is seen, the workers holding a slot at that moment are noted as *due*
//! (oldest first, the order Gunicorn stops them in). A worker forked within
//! [`HANDOVER_WINDOW_NS`] by the master that will replace them, with no free slot, takes the
//! slot of the oldest due worker that is still in it. A reload that lowers the worker count
//! leaves some due workers without a successor; they exit and their slots go.

use super::{Master, Registry};

/// How long after a HUP or a USR2 successor's start its forks still take over due slots.
/// The arbiter forks within one pass of its loop after a HUP, but a USR2 successor first
/// starts Python and loads its configuration (and, with `--preload`, the app).
pub const HANDOVER_WINDOW_NS: u64 = 60_000_000_000;

/// A worker due to be replaced, and by whose forks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Due {
    pub slot: u32,
    pub pid: u32,
    /// The master whose next forks replace it: its own (HUP) or the successor (USR2).
    pub by_master: u32,
    pub since_ns: u64,
}

impl Registry {
    /// `master` received a HUP at `ts_ns`: the workers of it holding a slot now are due.
    pub fn reloading(&mut self, master: u32, ts_ns: u64) {
        if let Some(id) = self.masters.get(&master).map(|m| m.instance) {
            self.mark_due(id, Some(master), master, ts_ns);
        }
    }

    /// Adds `pid` as the USR2 successor of master `parent`, if `parent` is a known master
    /// whose instance asked for the same name: it then shares the instance and its label.
    /// With `started_ns`, every worker holding a slot becomes due for the successor's forks;
    /// without (a scan found both masters already running), slots are not handed over.
    /// Returns `false`, changing nothing, when `pid` is not such a successor or is known.
    pub fn add_successor(
        &mut self,
        pid: u32,
        start_time: u64,
        app: &str,
        parent: u32,
        started_ns: Option<u64>,
    ) -> bool {
        if self.is_known(pid) {
            return false;
        }
        let Some(id) = self.masters.get(&parent).map(|m| m.instance) else {
            return false;
        };
        let instance = self.instances.get_mut(&id).expect("a master's instance");
        if instance.requested != app {
            return false;
        }
        instance.masters.push(pid);
        let master = Master {
            instance: id,
            start_time,
        };
        self.masters.insert(pid, master);
        if let Some(ts_ns) = started_ns {
            self.mark_due(id, None, pid, ts_ns);
        }
        true
    }

    /// Notes the slot holders of instance `id` (those of `of_master` only, if given) as due
    /// for `by_master`'s forks. Expired entries and those of departed workers go first.
    fn mark_due(&mut self, id: u64, of_master: Option<u32>, by_master: u32, ts_ns: u64) {
        let workers = &self.workers;
        let instance = self.instances.get_mut(&id).expect("a master's instance");
        instance
            .due
            .retain(|due| live(ts_ns, due) && workers.contains_key(&due.pid));

        let mut fresh: Vec<(u64, Due)> = instance
            .slots
            .iter()
            .zip(0u32..)
            .filter_map(|(place, slot)| {
                let pid = place.holder?;
                let worker = &workers[&pid];
                let wanted = of_master.is_none_or(|m| m == worker.master);
                let due = Due {
                    slot,
                    pid,
                    by_master,
                    since_ns: ts_ns,
                };
                wanted.then_some((worker.seq, due))
            })
            .collect();
        fresh.sort_by_key(|(seq, _)| *seq);
        instance.due.extend(fresh.into_iter().map(|(_, due)| due));
    }

    /// The slot a worker `master` forked at `ts_ns` takes over, if any is due for it: the
    /// oldest entry whose worker is still in its slot.
    pub(super) fn take_due(&mut self, id: u64, master: u32, ts_ns: u64) -> Option<usize> {
        let workers = &self.workers;
        let instance = self.instances.get_mut(&id)?;
        instance.due.retain(|due| live(ts_ns, due));
        let found = instance.due.iter().position(|due| {
            let still_there = workers
                .get(&due.pid)
                .is_some_and(|w| w.instance == id && w.slot == due.slot);
            due.by_master == master && still_there
        })?;
        let due = instance.due.remove(found);
        Some(due.slot as usize)
    }
}

fn live(now_ns: u64, due: &Due) -> bool {
    now_ns.saturating_sub(due.since_ns) <= HANDOVER_WINDOW_NS
}
