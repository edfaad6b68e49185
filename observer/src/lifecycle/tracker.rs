//! The signal and OOM history of every known master and worker, kept just long enough to
//! classify each worker's exit and each new worker's fork.

use std::collections::HashMap;

use super::restart::{
    COMMAND_WINDOW_NS, ExitStatus, Facts, Received, RestartReason, classify, interrupted,
};
use super::signals::{
    MasterCommand, ends_worker, is_new, master_command, reaches_target, sender_of,
};

/// Signals kept per worker. Only the last ending one matters; a few more cover signals that
/// arrive between it and the exit.
const WORKER_SIGNALS: usize = 8;

/// Commands kept per master; older ones fall out of [`COMMAND_WINDOW_NS`] long before.
const MASTER_COMMANDS: usize = 16;

/// TTIN signals awaiting the worker each one adds.
const PENDING_SCALE_UPS: usize = 64;

// Plain vectors with the oldest entry removed when full: they hold a handful of entries, and
// the classifier wants them as slices.

#[derive(Debug, Default)]
struct WorkerHistory {
    received: Vec<Received>,
    oom_killed: bool,
}

#[derive(Debug, Default)]
struct MasterHistory {
    commands: Vec<(MasterCommand, u64)>,
    /// Times of TTIN signals whose new worker has not appeared yet, oldest first.
    scale_ups: Vec<u64>,
    /// Workers that left and that the master will replace; the next forks are those
    /// replacements, not scale-ups.
    awaiting_replacement: u32,
}

/// Lifecycle state of every Gunicorn instance: fed with signal, OOM, fork and exit events
/// already resolved to masters and workers by the caller.
#[derive(Debug, Default)]
pub struct Lifecycle {
    workers: HashMap<u32, WorkerHistory>,
    masters: HashMap<u32, MasterHistory>,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    /// `worker` (of `master`) was sent a signal.
    pub fn signal_to_worker(&mut self, worker: u32, master: u32, signal: SignalSeen) {
        // Signals that do not end a worker are never consulted, nor are those it never sees.
        if !reaches_target(signal.result) || !ends_worker(signal.sig) {
            return;
        }
        let history = self.workers.entry(worker).or_default();
        push_bounded(
            &mut history.received,
            WORKER_SIGNALS,
            Received {
                sig: signal.sig,
                sender: sender_of(signal.code, signal.sender, worker, master),
                ts_ns: signal.ts_ns,
            },
        );
    }

    /// `master` was sent a signal. Returns the command it carries, if it is one and new
    /// to the master (not merged into the same signal already pending).
    pub fn signal_to_master(&mut self, master: u32, signal: SignalSeen) -> Option<MasterCommand> {
        let command = master_command(signal.sig)?;
        if !is_new(signal.result) {
            return None;
        }
        let history = self.masters.entry(master).or_default();
        push_bounded(
            &mut history.commands,
            MASTER_COMMANDS,
            (command, signal.ts_ns),
        );
        if command == MasterCommand::ScaleUp {
            push_bounded(&mut history.scale_ups, PENDING_SCALE_UPS, signal.ts_ns);
        }
        Some(command)
    }

    /// The OOM killer chose `worker`.
    pub fn oom_victim(&mut self, worker: u32) {
        self.workers.entry(worker).or_default().oom_killed = true;
    }

    /// Why requests of a living `worker` fail from now on, if it is already being killed.
    pub fn interrupted(&self, worker: u32, master: u32) -> Option<RestartReason> {
        let history = self.workers.get(&worker)?;
        interrupted(&self.facts(history, master, ExitStatus::Unknown))
    }

    /// `master` forked a worker: `Some(ScaleUp)` when it is the one a TTIN asked for rather
    /// than a replacement, a reload's new worker, or one of the first set.
    pub fn worker_forked(&mut self, master: u32, ts_ns: u64) -> Option<RestartReason> {
        let history = self.masters.get_mut(&master)?;
        if history.awaiting_replacement > 0 {
            history.awaiting_replacement -= 1;
            return None;
        }
        // A TTIN the master did not act on within the window never will.
        history
            .scale_ups
            .retain(|&at| ts_ns.saturating_sub(at) <= COMMAND_WINDOW_NS);
        if history.scale_ups.is_empty() {
            return None;
        }
        history.scale_ups.remove(0);
        Some(RestartReason::ScaleUp)
    }

    /// `worker` (of `master`) exited: classifies it and forgets its history.
    pub fn worker_exited(&mut self, worker: u32, master: u32, status: ExitStatus) -> RestartReason {
        let history = self.workers.remove(&worker).unwrap_or_default();
        let reason = classify(&self.facts(&history, master, status));
        if reason.is_replaced()
            && let Some(master) = self.masters.get_mut(&master)
        {
            master.awaiting_replacement += 1;
        }
        reason
    }

    /// A master became known; forks are judged against its commands from now on.
    pub fn master_started(&mut self, master: u32) {
        self.masters.entry(master).or_default();
    }

    /// Forgets a process that is gone without a restart to count (an exec, or its master
    /// went first).
    pub fn forget(&mut self, pid: u32) {
        self.workers.remove(&pid);
        self.masters.remove(&pid);
    }

    /// Processes with history held, for tests and the memory bound.
    pub fn len(&self) -> usize {
        self.workers.len() + self.masters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn facts<'a>(
        &'a self,
        history: &'a WorkerHistory,
        master: u32,
        status: ExitStatus,
    ) -> Facts<'a> {
        let commands = self
            .masters
            .get(&master)
            .map(|m| m.commands.as_slice())
            .unwrap_or_default();
        Facts {
            status,
            oom_killed: history.oom_killed,
            received: &history.received,
            master_commands: commands,
        }
    }
}

fn push_bounded<T>(items: &mut Vec<T>, cap: usize, item: T) {
    if items.len() == cap {
        items.remove(0);
    }
    items.push(item);
}

/// One `signal:signal_generate` record, as decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalSeen {
    /// The tgid running when the signal was generated.
    pub sender: u32,
    pub sig: i32,
    pub code: i32,
    pub result: i32,
    pub ts_ns: u64,
}
