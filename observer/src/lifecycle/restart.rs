//! Why a worker went away, decided from what the kernel showed around its exit.
//!
//! Gunicorn's own log cannot tell these apart: a timed-out worker that the master had to
//! SIGKILL is logged as "Perhaps out of memory?", and a worker stopped by a reload looks like
//! any other graceful exit. The kernel shows more: who sent which signal to whom, and whom
//! the OOM killer chose. [`classify`] is pure; [`super::Lifecycle`] gathers its inputs.

use super::signals::{MasterCommand, Sender, ends_worker, interrupts_requests, is_fault};

/// Why a worker slot changed hands. Also the `error_type` of requests the change cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RestartReason {
    /// The master found the worker silent for longer than `--timeout`: SIGABRT, then SIGKILL.
    Timeout,
    /// The kernel's OOM killer chose the worker.
    OomKill,
    /// The worker served `--max-requests` and left on its own.
    MaxRequests,
    /// The master got HUP and replaced every worker.
    Reload,
    /// The master got TTOU (or was told otherwise to run fewer workers).
    ScaleDown,
    /// The master got TTIN and started one more worker; counted for the new worker's slot.
    ScaleUp,
    /// The worker failed before it finished booting (Gunicorn's exit code 3).
    BootError,
    /// The app could not be loaded (exit code 4).
    AppLoadError,
    /// A fatal fault, an abort the worker raised itself, or an error exit.
    Crash,
    /// A signal from a process other than the worker's master.
    ExternalSignal,
    /// The master is stopping. Not a restart: nothing replaces the worker.
    Shutdown,
    /// The exit was seen but not its cause (events lost, or the process vanished).
    Unknown,
}

impl RestartReason {
    pub const ALL: [Self; 12] = [
        Self::Timeout,
        Self::OomKill,
        Self::MaxRequests,
        Self::Reload,
        Self::ScaleDown,
        Self::ScaleUp,
        Self::BootError,
        Self::AppLoadError,
        Self::Crash,
        Self::ExternalSignal,
        Self::Shutdown,
        Self::Unknown,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::OomKill => "oom_kill",
            Self::MaxRequests => "max_requests",
            Self::Reload => "reload",
            Self::ScaleDown => "scale_down",
            Self::ScaleUp => "scale_up",
            Self::BootError => "boot_error",
            Self::AppLoadError => "app_load_error",
            Self::Crash => "crash",
            Self::ExternalSignal => "external_signal",
            Self::Shutdown => "shutdown",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the restart counters count it. A shutdown ends the instance; its series go
    /// with the master anyway.
    pub const fn is_restart(self) -> bool {
        !matches!(self, Self::Shutdown)
    }

    /// Whether the master forks a replacement for a worker that left for this reason, so
    /// that the next fork is that replacement and not a scale-up. A reload's new workers
    /// come before the old ones leave; after a scale-down, a shutdown or a failed boot (the
    /// arbiter halts) nothing comes.
    pub const fn is_replaced(self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::OomKill
                | Self::MaxRequests
                | Self::Crash
                | Self::ExternalSignal
                | Self::Unknown
        )
    }
}

/// How the worker ended, from `task_struct.exit_code` (a wait status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// exit(2) with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// The kernel could not read it, or the process vanished without an exit event.
    Unknown,
}

impl ExitStatus {
    /// Splits a wait status: the low 7 bits are the killing signal (0 for a normal exit),
    /// bit 7 says a core was dumped, bits 8-15 are the exit code. Negative means unread.
    pub fn from_wait_status(raw: i32) -> Self {
        if raw < 0 {
            return Self::Unknown;
        }
        match raw & 0x7f {
            0 => Self::Code((raw >> 8) & 0xff),
            signal => Self::Signal(signal),
        }
    }
}

/// One signal a worker received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub sig: i32,
    pub sender: Sender,
    pub ts_ns: u64,
}

/// Everything [`classify`] weighs.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub status: ExitStatus,
    /// The OOM killer marked this worker as its victim.
    pub oom_killed: bool,
    /// Signals the worker received, oldest first.
    pub received: &'a [Received],
    /// Commands its master received (new signals only), oldest first, with their times.
    pub master_commands: &'a [(MasterCommand, u64)],
}

/// How long after a command the master's signals to workers are taken as carrying it out.
/// The arbiter acts on a command within one pass of its loop (at most a second), but a
/// graceful stop sends its final SIGKILL only after `--graceful-timeout` (30 s by default).
pub const COMMAND_WINDOW_NS: u64 = 60_000_000_000;

/// Decides why a worker exited. The rules, in order:
///
/// 1. An OOM mark wins: the OOM killer's SIGKILL comes from the kernel, in the context of
///    whichever task hit the limit, so nothing else about it says "memory".
/// 2. Exit codes 3 and 4 are Gunicorn's own words for a failed boot and a failed app load
///    (the arbiter halts on both); no signal is involved.
/// 3. Otherwise the last signal received that ends a Gunicorn worker explains the exit, by
///    who sent it (see [`by_signal`]). Signals the worker survives do not count.
/// 4. With no such signal: exit 0 is the worker leaving on its own, which Gunicorn does
///    only after `--max-requests`; any other code is an error exit (an uncaught exception
///    in the worker exits 255); a fault signal is a crash; anything else is unknown.
pub fn classify(facts: &Facts<'_>) -> RestartReason {
    if facts.oom_killed {
        return RestartReason::OomKill;
    }
    match facts.status {
        ExitStatus::Code(3) => return RestartReason::BootError,
        ExitStatus::Code(4) => return RestartReason::AppLoadError,
        _ => {}
    }
    if let Some(ending) = last_ending(facts.received) {
        return by_signal(ending, facts.master_commands);
    }
    match facts.status {
        ExitStatus::Code(0) => RestartReason::MaxRequests,
        ExitStatus::Code(_) => RestartReason::Crash,
        ExitStatus::Signal(sig) if is_fault(sig) => RestartReason::Crash,
        ExitStatus::Signal(_) | ExitStatus::Unknown => RestartReason::Unknown,
    }
}

/// The reason a still-living worker is about to go, if it already received a signal that
/// cuts its requests short (or was marked by the OOM killer). Requests that fail from then
/// on fail because of it: a timed-out sync worker's SIGABRT handler raises SystemExit inside
/// the app, Gunicorn answers that request 500 and exits 0.
pub fn interrupted(facts: &Facts<'_>) -> Option<RestartReason> {
    if facts.oom_killed {
        return Some(RestartReason::OomKill);
    }
    let ending = last_ending(facts.received)?;
    interrupts_requests(ending.sig).then(|| by_signal(ending, facts.master_commands))
}

fn last_ending(received: &[Received]) -> Option<&Received> {
    received.iter().rev().find(|r| ends_worker(r.sig))
}

/// The reason an ending signal gives, by its sender:
///
/// - From the master: while it is stopping (TERM, INT or QUIT just before), a shutdown.
///   Otherwise SIGABRT and SIGKILL come only from the arbiter's timeout check, so: timeout.
///   A TERM after HUP is a reload; any other TERM from the master is a scale-down, since
///   the arbiter stops a worker only when it has more than it wants (after TTOU, a control
///   socket `worker remove`, or WINCH when daemonized).
/// - From the worker itself or the kernel: a crash (a fault, `abort()`, `os.kill(getpid())`).
/// - From anyone else: an external signal.
fn by_signal(ending: &Received, commands: &[(MasterCommand, u64)]) -> RestartReason {
    match ending.sender {
        Sender::Master => {
            let command = commands
                .iter()
                .rev()
                .find(|(_, ts)| *ts <= ending.ts_ns && ending.ts_ns - ts <= COMMAND_WINDOW_NS)
                .map(|(command, _)| *command);
            match command {
                Some(MasterCommand::Stop) => RestartReason::Shutdown,
                _ if matches!(ending.sig, libc::SIGABRT | libc::SIGKILL) => RestartReason::Timeout,
                Some(MasterCommand::Reload) => RestartReason::Reload,
                _ => RestartReason::ScaleDown,
            }
        }
        Sender::Itself | Sender::Kernel => RestartReason::Crash,
        Sender::Other => RestartReason::ExternalSignal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn got(sig: i32, sender: Sender, at_s: u64) -> Received {
        Received {
            sig,
            sender,
            ts_ns: at_s * S,
        }
    }

    fn reason(
        status: ExitStatus,
        received: &[Received],
        commands: &[(MasterCommand, u64)],
    ) -> RestartReason {
        classify(&Facts {
            status,
            oom_killed: false,
            received,
            master_commands: commands,
        })
    }

    const EXIT_0: ExitStatus = ExitStatus::Code(0);

    #[test]
    fn wait_statuses() {
        assert_eq!(ExitStatus::from_wait_status(0), ExitStatus::Code(0));
        assert_eq!(ExitStatus::from_wait_status(4 << 8), ExitStatus::Code(4));
        assert_eq!(
            ExitStatus::from_wait_status(255 << 8),
            ExitStatus::Code(255)
        );
        assert_eq!(ExitStatus::from_wait_status(9), ExitStatus::Signal(9));
        // SIGSEGV with a core dumped.
        assert_eq!(ExitStatus::from_wait_status(0x8b), ExitStatus::Signal(11));
        assert_eq!(ExitStatus::from_wait_status(-1), ExitStatus::Unknown);
    }

    #[test]
    fn timeout_reads_timeout_however_the_worker_ended() {
        let abort = [got(libc::SIGABRT, Sender::Master, 10)];
        // Gunicorn 27's sync worker turns the abort into a 500 and exits 0.
        assert_eq!(reason(EXIT_0, &abort, &[]), RestartReason::Timeout);
        assert_eq!(
            reason(ExitStatus::Code(1), &abort, &[]),
            RestartReason::Timeout
        );
        // The second pass's SIGKILL, which Gunicorn logs as "Perhaps out of memory?".
        let killed = [abort[0], got(libc::SIGKILL, Sender::Master, 12)];
        assert_eq!(
            reason(ExitStatus::Signal(libc::SIGKILL), &killed, &[]),
            RestartReason::Timeout
        );
    }

    #[test]
    fn oom_wins_over_the_kernels_sigkill() {
        let kill = [got(libc::SIGKILL, Sender::Kernel, 5)];
        let facts = Facts {
            status: ExitStatus::Signal(libc::SIGKILL),
            oom_killed: true,
            received: &kill,
            master_commands: &[],
        };
        assert_eq!(classify(&facts), RestartReason::OomKill);
        assert_eq!(interrupted(&facts), Some(RestartReason::OomKill));
    }

    #[test]
    fn clean_exits_and_gunicorns_exit_codes() {
        assert_eq!(reason(EXIT_0, &[], &[]), RestartReason::MaxRequests);
        assert_eq!(
            reason(ExitStatus::Code(3), &[], &[]),
            RestartReason::BootError
        );
        assert_eq!(
            reason(ExitStatus::Code(4), &[], &[]),
            RestartReason::AppLoadError
        );
        assert_eq!(
            reason(ExitStatus::Code(255), &[], &[]),
            RestartReason::Crash
        );
        assert_eq!(
            reason(ExitStatus::Unknown, &[], &[]),
            RestartReason::Unknown
        );
        // A signal the worker survived long ago does not explain a later clean exit.
        let usr1 = [got(libc::SIGUSR1, Sender::Master, 1)];
        assert_eq!(reason(EXIT_0, &usr1, &[]), RestartReason::MaxRequests);
    }

    #[test]
    fn the_masters_term_carries_its_last_command() {
        let term = [got(libc::SIGTERM, Sender::Master, 100)];
        let at = |command, s: u64| [(command, s * S)];
        assert_eq!(
            reason(EXIT_0, &term, &at(MasterCommand::Reload, 99)),
            RestartReason::Reload
        );
        assert_eq!(
            reason(EXIT_0, &term, &at(MasterCommand::ScaleDown, 99)),
            RestartReason::ScaleDown
        );
        assert_eq!(
            reason(EXIT_0, &term, &at(MasterCommand::Stop, 99)),
            RestartReason::Shutdown
        );
        // A HUP long before, or after the TERM, is not what the TERM carried out.
        assert_eq!(
            reason(EXIT_0, &term, &at(MasterCommand::Reload, 10)),
            RestartReason::ScaleDown
        );
        assert_eq!(
            reason(EXIT_0, &term, &at(MasterCommand::Reload, 101)),
            RestartReason::ScaleDown
        );
        // The latest command counts: TTOU after a HUP.
        let both = [
            (MasterCommand::Reload, 90 * S),
            (MasterCommand::ScaleDown, 95 * S),
        ];
        assert_eq!(reason(EXIT_0, &term, &both), RestartReason::ScaleDown);
        // Timeouts during a reload are still timeouts; a stop's final SIGKILL is not one.
        let abort = [got(libc::SIGABRT, Sender::Master, 100)];
        assert_eq!(
            reason(EXIT_0, &abort, &at(MasterCommand::Reload, 99)),
            RestartReason::Timeout
        );
        let kill = [got(libc::SIGKILL, Sender::Master, 100)];
        assert_eq!(
            reason(ExitStatus::Signal(9), &kill, &at(MasterCommand::Stop, 70)),
            RestartReason::Shutdown
        );
    }

    #[test]
    fn crashes_and_external_signals() {
        let segv = [got(libc::SIGSEGV, Sender::Itself, 3)];
        assert_eq!(
            reason(ExitStatus::Signal(libc::SIGSEGV), &segv, &[]),
            RestartReason::Crash
        );
        let fault = [got(libc::SIGSEGV, Sender::Kernel, 3)];
        assert_eq!(
            reason(ExitStatus::Signal(libc::SIGSEGV), &fault, &[]),
            RestartReason::Crash
        );
        // abort() the worker raised itself goes through Gunicorn's handler: exit 1.
        let abort = [got(libc::SIGABRT, Sender::Itself, 3)];
        assert_eq!(
            reason(ExitStatus::Code(1), &abort, &[]),
            RestartReason::Crash
        );
        // A fault whose signal was not seen is still a crash; a lone SIGKILL is unknown.
        assert_eq!(
            reason(ExitStatus::Signal(libc::SIGBUS), &[], &[]),
            RestartReason::Crash
        );
        assert_eq!(
            reason(ExitStatus::Signal(libc::SIGKILL), &[], &[]),
            RestartReason::Unknown
        );

        let term = [got(libc::SIGTERM, Sender::Other, 3)];
        assert_eq!(reason(EXIT_0, &term, &[]), RestartReason::ExternalSignal);
        let kill = [got(libc::SIGKILL, Sender::Other, 3)];
        assert_eq!(
            reason(ExitStatus::Signal(9), &kill, &[]),
            RestartReason::ExternalSignal
        );
        // The last ending signal decides: an operator's TERM, then the master's SIGABRT
        // because the worker took too long.
        let both = [term[0], got(libc::SIGABRT, Sender::Master, 40)];
        assert_eq!(reason(EXIT_0, &both, &[]), RestartReason::Timeout);
    }

    #[test]
    fn graceful_signals_do_not_interrupt_requests() {
        let facts = |received| Facts {
            status: ExitStatus::Unknown,
            oom_killed: false,
            received,
            master_commands: &[],
        };
        assert_eq!(interrupted(&facts(&[])), None);
        let term = [got(libc::SIGTERM, Sender::Other, 1)];
        assert_eq!(interrupted(&facts(&term)), None);
        let abort = [got(libc::SIGABRT, Sender::Master, 1)];
        assert_eq!(interrupted(&facts(&abort)), Some(RestartReason::Timeout));
        let segv = [got(libc::SIGSEGV, Sender::Itself, 1)];
        assert_eq!(interrupted(&facts(&segv)), Some(RestartReason::Crash));
    }

    #[test]
    fn labels_are_distinct_and_only_shutdown_is_not_a_restart() {
        let mut labels: Vec<_> = RestartReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RestartReason::ALL.len());
        let not_restarts: Vec<_> = RestartReason::ALL
            .into_iter()
            .filter(|r| !r.is_restart())
            .collect();
        assert_eq!(not_restarts, [RestartReason::Shutdown]);
    }
}
