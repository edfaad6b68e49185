//! Workers leaving, and the signals and OOM kills that say why.

use std::sync::Arc;

use tracing::{debug, info};

use observer_ebpf::tracked::ConnKey;

use super::{KernelMaps, Pipeline, QUICK_RESCANS};
use crate::{
    discover::{self, Removed},
    lifecycle::{ExitStatus, RestartReason, SignalSeen, signals::MasterCommand},
};

/// How a process left the observer's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Departure {
    /// It exited (or vanished, with an unknown status).
    Exit(ExitStatus),
    /// It called exec: the pid lives on as another program (a USR2 re-exec's new master is
    /// first forked like a worker). Not a restart.
    Exec,
}

impl<K: KernelMaps> Pipeline<K> {
    /// A signal was generated for tracked process `target`.
    pub(super) fn signal(&mut self, target: u32, seen: SignalSeen) {
        if let Some(worker) = self.registry.worker(target) {
            self.lifecycle.signal_to_worker(target, worker.master, seen);
        } else if self.registry.is_master(target) {
            let command = self.lifecycle.signal_to_master(target, seen);
            if command == Some(MasterCommand::Reload) {
                // The arbiter forks the new workers before it stops the old ones: they take
                // over the old slots (see `discover::Registry::reloading`).
                self.registry.reloading(target, seen.ts_ns);
            }
        }
    }

    /// The OOM killer chose tracked process `pid`; its SIGKILL and exit follow.
    pub(super) fn oom_victim(&mut self, pid: u32) {
        match self.registry.worker(pid) {
            Some(worker) => {
                info!(pid, app = %worker.app, slot = worker.slot, "worker chosen by the OOM killer");
                self.lifecycle.oom_victim(pid);
            }
            // A master's death ends the instance; its series go with it.
            None => info!(pid, "gunicorn master chosen by the OOM killer"),
        }
    }

    /// Deletes a departed worker's heartbeat entry, so the kernel map holds live workers only.
    fn forget_heartbeat(&mut self, pid: u32) {
        if let Err(err) = self.probes.forget_heartbeat(pid) {
            debug!(pid, error = %err, "cannot clear a departed worker's heartbeat");
        }
    }

    /// Process `pid` is gone at `ts_ns`. A worker's exit is classified first, so requests it
    /// left in flight fail with the reason; then its slot's restart counters move, and a
    /// scaled-down slot disappears.
    pub(super) fn process_exited(&mut self, pid: u32, ts_ns: u64, departure: Departure) {
        let reason = match (departure, self.registry.worker(pid)) {
            (Departure::Exit(status), Some(worker)) => {
                Some(self.lifecycle.worker_exited(pid, worker.master, status))
            }
            _ => None,
        };
        // With the cause unknown, requests cut off keep the plain `worker_died`.
        let cause = reason.filter(|reason| *reason != RestartReason::Unknown);

        let mut fds = Vec::new();
        let shared = Arc::clone(&self.stats);
        let mut stats = shared.lock().unwrap_or_else(|poison| poison.into_inner());
        self.with_sink(&mut stats, pid, ts_ns, cause, |conns, mut sink| {
            fds = conns.on_process_exit(pid, ts_ns, &mut sink)
        });
        drop(stats);
        for fd in fds {
            // A dead process never closes its sockets; without this they stay in the map.
            if let Err(err) = self.probes.forget_conn(ConnKey { tgid: pid, fd }) {
                debug!(pid, fd, error = %err, "cannot clear a dead connection");
            }
        }

        match self.registry.remove(pid) {
            Removed::NotKnown => return,
            Removed::Worker {
                slot,
                app,
                slot_empty,
                ..
            } => {
                self.untrack(pid);
                self.forget_heartbeat(pid);
                self.lifecycle.forget(pid);
                self.sampler.forget(pid);
                let mut stats = self.lock_stats();
                stats.worker_stopped(&app, slot, pid);
                if departure == Departure::Exec {
                    // The USR2 child before its exec: it never was a worker.
                    stats.remove_slot_if_unused(&app, slot);
                }
                if let Some(reason) = reason.filter(|reason| reason.is_restart()) {
                    debug!(pid, slot, app = %app, reason = reason.as_str(), "worker restarted");
                    stats.worker_restarted(&app, slot, reason);
                    // A slot left by a scale-down, or by a reload that lowered the worker
                    // count (no successor took it), no longer exists.
                    let gone = matches!(reason, RestartReason::ScaleDown | RestartReason::Reload);
                    if gone && slot_empty {
                        stats.remove_slot(&app, slot);
                    }
                } else {
                    debug!(pid, slot, app = %app, "worker exited");
                }
            }
            Removed::Master { app, workers, last } => {
                info!(pid, app = %app, last, "gunicorn master exited");
                self.untrack(pid);
                self.lifecycle.forget(pid);
                self.sampler.forget(pid);
                let since = self.master_since.remove(&pid);
                let launcher = since.is_some_and(|since| ts_ns.saturating_sub(since) < LAUNCHER_NS);
                for &(worker, _) in &workers {
                    self.forget_heartbeat(worker);
                    self.lifecycle.forget(worker);
                    self.sampler.forget(worker);
                    if !(launcher && self.adopt_daemon_child(worker, ts_ns)) {
                        self.untrack(worker);
                    }
                }
                let mut stats = self.lock_stats();
                if last {
                    stats.remove_app(&app);
                } else {
                    // A USR2 successor carries the instance on.
                    stats.master_stopped(&app, pid);
                    for (worker, slot) in workers {
                        stats.worker_stopped(&app, slot, worker);
                    }
                }
                drop(stats);
                // `gunicorn --daemon` forks twice and the launcher exits: the real master is
                // its grandchild, which no exec or tracked fork reveals. Look for it over the
                // next two seconds rather than at the next periodic rescan. Only after a
                // launcher: forty full scans after every ordinary shutdown were most of the
                // observer's idle CPU on a host whose Gunicorns come and go.
                if launcher {
                    self.quick_rescans = QUICK_RESCANS;
                }
            }
        }
        self.update_gauges();
    }

    /// `gunicorn --daemon` forks, and the parent exits at once; the child forks again and
    /// exits too, and the grandchild is the real master. The kernel tracked each child as a
    /// worker of its parent at the fork, so when such a short-lived master exits, a child of
    /// it that is still alive and still a Gunicorn command line becomes the master here,
    /// before it forks anything. Only a master that lived under [`LAUNCHER_NS`] is treated so:
    /// the live workers of a long-running master that crashed are orphans, not masters.
    fn adopt_daemon_child(&mut self, pid: u32, now_ns: u64) -> bool {
        let Ok(info) = discover::read_process(&self.proc_root, pid) else {
            return false;
        };
        let Some(app) = discover::master_app(&self.proc_root, &info) else {
            return false;
        };
        let adopted = self.adopt_master(&info, app, now_ns);
        if adopted {
            info!(
                pid,
                "following a daemonizing gunicorn's child as its master"
            );
        }
        adopted
    }
}

/// How long after it was first seen a master that exits still counts as a `--daemon`
/// launcher: daemonizing happens before the arbiter starts, well within this.
const LAUNCHER_NS: u64 = 5_000_000_000;
