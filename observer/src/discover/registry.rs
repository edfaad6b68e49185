//! The Gunicorn instances being watched: each master's app name and its workers' slots.
//!
//! A worker's slot (`worker_id` in the metrics) is the lowest one free in its instance when
//! it appears, so a replacement worker takes over the series of the one it replaced and the
//! label set stays bounded by the worker count.
//!
//! Two live masters never share an app name, or their series would merge. The first to be
//! added keeps the plain name; a later one with the same name is called `name#<master pid>`
//! for as long as it lives. A scan adds masters oldest first, so the oldest keeps the name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use observer_ebpf::tracked::{ROLE_MASTER, ROLE_WORKER};

use super::procscan::ScanResult;

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
    },
    /// A master goes with its workers; they are listed (by slot) so the caller can untrack
    /// them.
    Master {
        app: Arc<str>,
        workers: Vec<u32>,
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

#[derive(Debug)]
struct Instance {
    app: Arc<str>,
    start_time: u64,
    /// Slot index to worker pid; `None` is a free slot.
    slots: Vec<Option<u32>>,
}

#[derive(Debug)]
struct Worker {
    master: u32,
    slot: u32,
    start_time: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Registry {
    masters: BTreeMap<u32, Instance>,
    workers: BTreeMap<u32, Worker>,
    names: BTreeSet<Arc<str>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a master. Returns `false`, changing nothing, when the pid is already known as
    /// a master or a worker; a reused pid must be removed first (see [`Registry::is_same`]).
    pub fn add_master(&mut self, pid: u32, start_time: u64, app: String) -> bool {
        if self.masters.contains_key(&pid) || self.workers.contains_key(&pid) {
            return false;
        }
        // Pids are unique among live masters, so one suffix settles it unless some other
        // master is literally called `name#pid`.
        let mut app = app;
        while self.names.contains(app.as_str()) {
            app = format!("{app}#{pid}");
        }
        let app: Arc<str> = app.into();
        self.names.insert(app.clone());

        let slots = Vec::new();
        self.masters.insert(
            pid,
            Instance {
                app,
                start_time,
                slots,
            },
        );
        true
    }

    /// Adds a worker of `master` in the lowest free slot. Adding a known worker of the same
    /// master again returns its place unchanged. `None` when the master is unknown or the pid
    /// is a master or another master's worker.
    pub fn add_worker(&mut self, master: u32, pid: u32) -> Option<WorkerRef> {
        if let Some(known) = self.worker(pid) {
            return (known.master == master).then_some(known);
        }
        if self.masters.contains_key(&pid) {
            return None;
        }
        let instance = self.masters.get_mut(&master)?;

        let slot = match instance.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                instance.slots.push(None);
                instance.slots.len() - 1
            }
        };
        instance.slots[slot] = Some(pid);

        let slot = u32::try_from(slot).expect("more workers than u32 slots");
        let start_time = None;
        self.workers.insert(
            pid,
            Worker {
                master,
                slot,
                start_time,
            },
        );
        Some(WorkerRef {
            master,
            slot,
            app: instance.app.clone(),
        })
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
                .masters
                .get_mut(&worker.master)
                .expect("a worker's master stays registered while it lives");
            instance.slots[worker.slot as usize] = None;
            return Removed::Worker {
                master: worker.master,
                slot: worker.slot,
                app: instance.app.clone(),
            };
        }

        let Some(instance) = self.masters.remove(&pid) else {
            return Removed::NotKnown;
        };
        self.names.remove(&instance.app);
        let workers: Vec<u32> = instance.slots.into_iter().flatten().collect();
        for worker in &workers {
            self.workers.remove(worker);
        }
        Removed::Master {
            app: instance.app,
            workers,
        }
    }

    pub fn worker(&self, pid: u32) -> Option<WorkerRef> {
        let worker = self.workers.get(&pid)?;
        let instance = &self.masters[&worker.master];
        Some(WorkerRef {
            master: worker.master,
            slot: worker.slot,
            app: instance.app.clone(),
        })
    }

    pub fn is_master(&self, pid: u32) -> bool {
        self.masters.contains_key(&pid)
    }

    /// The app name a master was registered under (after disambiguation).
    pub fn app(&self, master: u32) -> Option<Arc<str>> {
        self.masters
            .get(&master)
            .map(|instance| instance.app.clone())
    }

    /// Master pids, ascending.
    pub fn masters(&self) -> Vec<u32> {
        self.masters.keys().copied().collect()
    }

    /// `(pid, slot)` of a master's workers, by slot.
    pub fn workers_of(&self, master: u32) -> Vec<(u32, u32)> {
        let Some(instance) = self.masters.get(&master) else {
            return Vec::new();
        };
        let slots = instance.slots.iter().zip(0u32..);
        slots
            .filter_map(|(pid, slot)| pid.map(|pid| (pid, slot)))
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
        if let Some(instance) = self.masters.get(&pid) {
            return Some(instance.start_time == start_time);
        }
        let recorded = self.workers.get(&pid)?.start_time?;
        Some(recorded == start_time)
    }

    /// Adds what a scan found, oldest master first, workers oldest first, with their start
    /// times. Returns the pids newly added and their roles, for the kernel's tracked map;
    /// pids already known are left as they are.
    pub fn add_scan(&mut self, scan: &ScanResult) -> Vec<(u32, Role)> {
        let mut added = Vec::new();
        for found in &scan.instances {
            let master = &found.master;
            let app = found.app.name.clone();
            if self.add_master(master.pid, master.start_time, app) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(master: u32, slot: u32, app: &str) -> Option<WorkerRef> {
        let app = app.into();
        Some(WorkerRef { master, slot, app })
    }

    #[test]
    fn slots_are_lowest_free_and_reused() {
        let mut reg = Registry::new();
        assert!(reg.add_master(100, 5000, "shop".to_owned()));
        assert_eq!(reg.add_worker(100, 101), worker(100, 0, "shop"));
        assert_eq!(reg.add_worker(100, 102), worker(100, 1, "shop"));
        assert_eq!(reg.add_worker(100, 103), worker(100, 2, "shop"));

        // Worker 102 dies; its replacement takes slot 1, the next one slot 3.
        let removed = Removed::Worker {
            master: 100,
            slot: 1,
            app: "shop".into(),
        };
        assert_eq!(reg.remove(102), removed);
        assert_eq!(reg.add_worker(100, 104), worker(100, 1, "shop"));
        assert_eq!(reg.add_worker(100, 105), worker(100, 3, "shop"));

        // Two free slots: the lowest goes first.
        reg.remove(103);
        reg.remove(101);
        assert_eq!(reg.add_worker(100, 106), worker(100, 0, "shop"));
        assert_eq!(reg.add_worker(100, 107), worker(100, 2, "shop"));

        assert_eq!(
            reg.workers_of(100),
            vec![(106, 0), (104, 1), (107, 2), (105, 3)]
        );
        assert_eq!(
            reg.counts(),
            Counts {
                masters: 1,
                workers: 4
            }
        );
    }

    #[test]
    fn slots_are_per_instance() {
        let mut reg = Registry::new();
        reg.add_master(100, 1, "a".to_owned());
        reg.add_master(200, 2, "b".to_owned());
        assert_eq!(reg.add_worker(100, 101), worker(100, 0, "a"));
        assert_eq!(reg.add_worker(200, 201), worker(200, 0, "b"));
        assert_eq!(reg.add_worker(200, 202), worker(200, 1, "b"));
        assert_eq!(reg.worker(202), worker(200, 1, "b"));
        assert_eq!(reg.workers_of(100), vec![(101, 0)]);
    }

    #[test]
    fn removing_a_master_takes_its_workers() {
        let mut reg = Registry::new();
        reg.add_master(100, 1, "a".to_owned());
        reg.add_master(200, 2, "b".to_owned());
        reg.add_worker(100, 101);
        reg.add_worker(100, 102);
        reg.add_worker(200, 201);
        reg.remove(101);
        reg.add_worker(100, 103);

        let removed = Removed::Master {
            app: "a".into(),
            workers: vec![103, 102],
        };
        assert_eq!(reg.remove(100), removed);
        assert_eq!(reg.worker(102), None);
        assert_eq!(reg.worker(103), None);
        assert!(!reg.is_master(100));
        assert_eq!(reg.masters(), vec![200]);
        assert_eq!(
            reg.counts(),
            Counts {
                masters: 1,
                workers: 1
            }
        );
        assert_eq!(reg.remove(100), Removed::NotKnown);
        assert_eq!(reg.remove(102), Removed::NotKnown);
    }

    #[test]
    fn duplicates_and_unknown_pids() {
        let mut reg = Registry::new();
        assert!(reg.add_master(100, 1, "a".to_owned()));
        assert!(!reg.add_master(100, 1, "a".to_owned()));
        assert_eq!(reg.app(100).as_deref(), Some("a"));

        // A worker of an unknown master, a master as a worker, a worker re-added.
        assert_eq!(reg.add_worker(999, 101), None);
        assert_eq!(reg.add_worker(100, 100), None);
        assert_eq!(reg.add_worker(100, 101), worker(100, 0, "a"));
        assert_eq!(reg.add_worker(100, 101), worker(100, 0, "a"));
        assert!(!reg.add_master(101, 9, "x".to_owned()));

        // Another master cannot claim the worker.
        reg.add_master(200, 2, "b".to_owned());
        assert_eq!(reg.add_worker(200, 101), None);
        assert_eq!(reg.workers_of(200), vec![]);

        assert_eq!(reg.worker(555), None);
        assert!(!reg.is_master(555));
        assert_eq!(reg.workers_of(555), vec![]);
        assert_eq!(reg.remove(555), Removed::NotKnown);
        assert_eq!(
            reg.counts(),
            Counts {
                masters: 2,
                workers: 1
            }
        );
    }

    #[test]
    fn same_names_get_the_master_pid() {
        let mut reg = Registry::new();
        reg.add_master(100, 1, "shop".to_owned());
        reg.add_master(200, 2, "shop".to_owned());
        reg.add_master(300, 3, "shop#200".to_owned());
        assert_eq!(reg.app(100).as_deref(), Some("shop"));
        assert_eq!(reg.app(200).as_deref(), Some("shop#200"));
        assert_eq!(reg.app(300).as_deref(), Some("shop#200#300"));
        assert_eq!(reg.add_worker(200, 201), worker(200, 0, "shop#200"));

        // Once the first is gone its name is free again; the second keeps its own.
        reg.remove(100);
        reg.add_master(400, 4, "shop".to_owned());
        assert_eq!(reg.app(400).as_deref(), Some("shop"));
        assert_eq!(reg.app(200).as_deref(), Some("shop#200"));
    }

    #[test]
    fn start_times_detect_reuse() {
        let mut reg = Registry::new();
        reg.add_master(100, 5000, "a".to_owned());
        reg.add_worker(100, 101);
        assert_eq!(reg.is_same(100, 5000), Some(true));
        assert_eq!(reg.is_same(100, 7000), Some(false));
        assert_eq!(reg.is_same(101, 5100), None);
        assert!(reg.set_start_time(101, 5100));
        assert_eq!(reg.is_same(101, 5100), Some(true));
        assert_eq!(reg.is_same(101, 5101), Some(false));
        assert!(!reg.set_start_time(555, 1));
        assert_eq!(reg.is_same(555, 1), None);
    }

    #[test]
    fn roles_map_to_the_kernel_values() {
        assert_eq!(Role::Master.kernel_value(), 1);
        assert_eq!(Role::Worker.kernel_value(), 2);
    }
}
