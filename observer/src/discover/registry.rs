//! The Gunicorn instances being watched: each instance's app name, its masters, and its
//! workers' slots.
//!
//! A slot (`worker_id` in the metrics) is a place for one worker. A worker forked into an
//! instance takes, in this order:
//!
//! 1. the lowest slot without a worker: the replacement of one that exited;
//! 2. the slot of the oldest worker that is due to be replaced (see [`handover`]): after a
//!    HUP the master forks all its new workers *before* it stops the old ones, and after a
//!    USR2 the new master forks its workers while the old master's still run;
//! 3. a new slot at the end (a TTIN, or a reload that raised the worker count).
//!
//! In case 2 the old worker stays attributed to the slot, as *leaving*, until it exits, so
//! its last requests still count there; the slot's counters never go backwards and the slot
//! numbers stay within the worker count.
//!
//! Two live instances never share an app name, or their series would merge. The first to be
//! added keeps the plain name; a later one with the same name is called `name#<master pid>`
//! for as long as it lives. A scan adds masters oldest first, so the oldest keeps the name.
//! A master exec'd by a master of the same name (a USR2 binary upgrade) is not a new
//! instance: it joins its parent's, and the instance lives until its last master exits.

mod handover;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use observer_ebpf::tracked::{ROLE_MASTER, ROLE_WORKER};

use super::procscan::ScanResult;

use handover::Due;
pub use handover::HANDOVER_WINDOW_NS;

/// A worker's place: its master, its slot in that instance, and the instance's app name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRef {
    pub master: u32,
    pub slot: u32,
    pub app: Arc<str>,
}

/// What [`Registry::remove`] took out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    NotKnown,
    Worker {
        master: u32,
        slot: u32,
        app: Arc<str>,
        /// No worker is left in the slot: neither a successor nor another leaving one.
        slot_empty: bool,
    },
    /// A master goes with its workers, listed as `(pid, slot)` by slot so the caller can
    /// untrack them. `last` says the instance ended with it; otherwise a USR2 successor
    /// carries the instance on.
    Master {
        app: Arc<str>,
        workers: Vec<(u32, u32)>,
        last: bool,
    },
}

/// A process's role, as the kernel's tracked-process map spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Worker,
}

impl Role {
    /// The value stored in the kernel's `TRACKED` map.
    pub fn kernel_value(self) -> u32 {
        match self {
            Self::Master => ROLE_MASTER,
            Self::Worker => ROLE_WORKER,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub masters: usize,
    pub workers: usize,
}

/// One place for a worker.
#[derive(Debug, Default)]
struct Slot {
    /// The worker that owns the slot now; `None` makes the slot free for the next fork.
    holder: Option<u32>,
    /// Workers replaced in this slot that have not exited yet, oldest first.
    leaving: Vec<u32>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.holder.is_none() && self.leaving.is_empty()
    }

    fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.leaving.iter().copied().chain(self.holder)
    }
}

#[derive(Debug)]
struct Instance {
    app: Arc<str>,
    /// The name asked for, before disambiguation: what a USR2 successor must match.
    requested: String,
    /// Its masters, oldest first: one, or two while a USR2 upgrade overlaps.
    masters: Vec<u32>,
    slots: Vec<Slot>,
    /// Workers due to be replaced, oldest first.
    due: Vec<Due>,
}

#[derive(Debug)]
struct Master {
    instance: u64,
    start_time: u64,
}

#[derive(Debug)]
struct Worker {
    master: u32,
    instance: u64,
    slot: u32,
    start_time: Option<u64>,
    /// Order of registration: Gunicorn stops its oldest workers first.
    seq: u64,
}

#[derive(Debug, Default)]
pub struct Registry {
    instances: BTreeMap<u64, Instance>,
    masters: BTreeMap<u32, Master>,
    workers: BTreeMap<u32, Worker>,
    names: BTreeSet<Arc<str>>,
    next_instance: u64,
    next_seq: u64,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a master as a new instance. Returns `false`, changing nothing, when the pid is
    /// already known as a master or a worker; a reused pid must be removed first (see
    /// [`Registry::is_same`]).
    pub fn add_master(&mut self, pid: u32, start_time: u64, app: String) -> bool {
        if self.is_known(pid) {
            return false;
        }
        // Pids are unique among live masters, so one suffix settles it unless some other
        // master is literally called `name#pid`.
        let requested = app.clone();
        let mut app = app;
        while self.names.contains(app.as_str()) {
            app = format!("{app}#{pid}");
        }
        let app: Arc<str> = app.into();
        self.names.insert(app.clone());

        let id = self.next_instance;
        self.next_instance += 1;
        let instance = Instance {
            app,
            requested,
            masters: vec![pid],
            slots: Vec::new(),
            due: Vec::new(),
        };
        self.instances.insert(id, instance);
        let instance = id;
        self.masters.insert(
            pid,
            Master {
                instance,
                start_time,
            },
        );
        true
    }

    /// Adds a worker of `master` that was already running (found by a scan): the lowest
    /// free slot, else a new one. Adding a known worker of the same master again returns its
    /// place unchanged. `None` when the master is unknown or the pid is a master or another
    /// master's worker.
    pub fn add_worker(&mut self, master: u32, pid: u32) -> Option<WorkerRef> {
        self.place_worker(master, pid, None)
    }

    /// Adds a worker `master` forked at `ts_ns`: like [`Registry::add_worker`], except that
    /// with no free slot it takes over the slot of a worker due to be replaced (see the
    /// module docs). The replaced worker stays in the slot as leaving until it exits.
    pub fn add_forked(&mut self, master: u32, pid: u32, ts_ns: u64) -> Option<WorkerRef> {
        self.place_worker(master, pid, Some(ts_ns))
    }

    fn place_worker(&mut self, master: u32, pid: u32, forked_ns: Option<u64>) -> Option<WorkerRef> {
        if let Some(known) = self.worker(pid) {
            return (known.master == master).then_some(known);
        }
        if self.masters.contains_key(&pid) {
            return None;
        }
        let id = self.masters.get(&master)?.instance;

        let slot = match self.free_slot(id) {
            Some(free) => free,
            None => match forked_ns.and_then(|ts| self.take_due(id, master, ts)) {
                Some(due) => due,
                None => {
                    let instance = self.instances.get_mut(&id).expect("a master's instance");
                    instance.slots.push(Slot::default());
                    instance.slots.len() - 1
                }
            },
        };
        let instance = self.instances.get_mut(&id).expect("a master's instance");
        let place = &mut instance.slots[slot];
        if let Some(replaced) = place.holder.replace(pid) {
            place.leaving.push(replaced);
        }

        let slot = u32::try_from(slot).expect("more workers than u32 slots");
        let seq = self.next_seq;
        self.next_seq += 1;
        self.workers.insert(
            pid,
            Worker {
                master,
                instance: id,
                slot,
                start_time: None,
                seq,
            },
        );
        Some(WorkerRef {
            master,
            slot,
            app: instance.app.clone(),
        })
    }

    fn free_slot(&self, id: u64) -> Option<usize> {
        let instance = &self.instances[&id];
        instance.slots.iter().position(|slot| slot.holder.is_none())
    }

    /// Records a worker's start time, for [`Registry::is_same`]. Masters get theirs when
    /// added. `false` when the pid is not a known worker.
    pub fn set_start_time(&mut self, pid: u32, start_time: u64) -> bool {
        match self.workers.get_mut(&pid) {
            Some(worker) => {
                worker.start_time = Some(start_time);
                true
            }
            None => false,
        }
    }

    /// Removes a worker, or a master together with its workers.
    pub fn remove(&mut self, pid: u32) -> Removed {
        if let Some(worker) = self.workers.remove(&pid) {
            let instance = self
                .instances
                .get_mut(&worker.instance)
                .expect("a worker's instance stays registered while it lives");
            let slot_empty = vacate(&mut instance.slots, worker.slot, pid);
            return Removed::Worker {
                master: worker.master,
                slot: worker.slot,
                app: instance.app.clone(),
                slot_empty,
            };
        }

        let Some(master) = self.masters.remove(&pid) else {
            return Removed::NotKnown;
        };
        let instance = self
            .instances
            .get_mut(&master.instance)
            .expect("a master's instance stays registered while it lives");
        instance.masters.retain(|&m| m != pid);
        let mut workers = Vec::new();
        for (slot, place) in instance.slots.iter().enumerate() {
            for worker in place.pids() {
                if self.workers[&worker].master == pid {
                    workers.push((worker, slot as u32));
                }
            }
        }
        for &(worker, slot) in &workers {
            self.workers.remove(&worker);
            vacate(&mut instance.slots, slot, worker);
        }
        instance.due.retain(|due| due.by_master != pid);

        let app = instance.app.clone();
        let last = instance.masters.is_empty();
        if last {
            self.instances.remove(&master.instance);
            self.names.remove(&app);
        }
        Removed::Master { app, workers, last }
    }

    pub fn worker(&self, pid: u32) -> Option<WorkerRef> {
        let worker = self.workers.get(&pid)?;
        let instance = &self.instances[&worker.instance];
        Some(WorkerRef {
            master: worker.master,
            slot: worker.slot,
            app: instance.app.clone(),
        })
    }

    pub fn is_master(&self, pid: u32) -> bool {
        self.masters.contains_key(&pid)
    }

    fn is_known(&self, pid: u32) -> bool {
        self.masters.contains_key(&pid) || self.workers.contains_key(&pid)
    }

    /// The app name a master was registered under (after disambiguation).
    pub fn app(&self, master: u32) -> Option<Arc<str>> {
        let instance = self.masters.get(&master)?.instance;
        Some(self.instances[&instance].app.clone())
    }

    /// Whether `master` is its instance's newest master, the one whose resources stand for
    /// the instance's master while a USR2 upgrade overlaps.
    pub fn is_newest_master(&self, master: u32) -> bool {
        self.masters
            .get(&master)
            .is_some_and(|m| self.instances[&m.instance].masters.last() == Some(&master))
    }

    /// Master pids, ascending.
    pub fn masters(&self) -> Vec<u32> {
        self.masters.keys().copied().collect()
    }

    /// `(pid, slot)` of a master's workers by slot, leaving ones before the slot's holder.
    pub fn workers_of(&self, master: u32) -> Vec<(u32, u32)> {
        let Some(id) = self.masters.get(&master).map(|m| m.instance) else {
            return Vec::new();
        };
        let slots = self.instances[&id].slots.iter().zip(0u32..);
        slots
            .flat_map(|(place, slot)| place.pids().map(move |pid| (pid, slot)))
            .filter(|(pid, _)| self.workers[pid].master == master)
            .collect()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            masters: self.masters.len(),
            workers: self.workers.len(),
        }
    }

    /// Whether `pid` is still the process that was registered: `Some(false)` means the pid
    /// was reused by a process that started at another time. `None` when the pid is unknown
    /// or is a worker whose start time was never recorded.
    pub fn is_same(&self, pid: u32, start_time: u64) -> Option<bool> {
        if let Some(master) = self.masters.get(&pid) {
            return Some(master.start_time == start_time);
        }
        let recorded = self.workers.get(&pid)?.start_time?;
        Some(recorded == start_time)
    }

    /// Adds what a scan found, oldest master first, workers oldest first, with their start
    /// times. A master whose parent is a master of the same name is that one's USR2
    /// successor. Returns the pids newly added and their roles, for the kernel's tracked
    /// map; pids already known are left as they are.
    pub fn add_scan(&mut self, scan: &ScanResult) -> Vec<(u32, Role)> {
        let mut added = Vec::new();
        for found in &scan.instances {
            let master = &found.master;
            let app = found.app.name.clone();
            let joined = !self.is_known(master.pid)
                && self.add_successor(master.pid, master.start_time, &app, master.ppid, None);
            if joined || self.add_master(master.pid, master.start_time, app) {
                added.push((master.pid, Role::Master));
            }

            for worker in &found.workers {
                if self.workers.contains_key(&worker.pid) {
                    continue;
                }
                if self.add_worker(master.pid, worker.pid).is_some() {
                    self.set_start_time(worker.pid, worker.start_time);
                    added.push((worker.pid, Role::Worker));
                }
            }
        }
        added
    }
}

/// Takes `pid` out of slot `slot`; returns whether the slot is left without any worker.
/// Empty slots at the end are dropped, so a slot briefly held by a process that turned out
/// not to be a worker (the USR2 child before its exec) is not handed to the next fork.
fn vacate(slots: &mut Vec<Slot>, slot: u32, pid: u32) -> bool {
    let place = &mut slots[slot as usize];
    if place.holder == Some(pid) {
        place.holder = None;
    } else {
        place.leaving.retain(|&p| p != pid);
    }
    let empty = place.is_empty();
    while slots.last().is_some_and(Slot::is_empty) {
        slots.pop();
    }
    empty
}
