//! What a signal means to a Gunicorn master or worker, and who sent it.
//!
//! The meanings are Gunicorn's own (gunicorn/arbiter.py and workers/base.py in 27.x): the
//! arbiter queues HUP, TTIN, TTOU, TERM, INT and QUIT as commands; a worker exits gracefully
//! on TERM, at once on INT, QUIT and ABRT, and leaves HUP and USR2 at their default action,
//! which also ends it.

use observer_ebpf::event::{SIGNAL_ALREADY_PENDING, SIGNAL_DELIVERED, SIGNAL_LOSE_INFO};

/// Who sent a signal, seen from the worker that received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The worker's own master (kill(2) from the arbiter).
    Master,
    /// The worker itself: `os.kill(os.getpid(), ...)` or `abort()`.
    Itself,
    /// The kernel: a fault, a resource limit, the OOM killer. The task that happened to run
    /// when the kernel raised it says nothing about why.
    Kernel,
    /// Any other process: an operator's `kill`, an orchestrator, another program.
    Other,
}

/// `si_code` values of signals a process sent with kill(2), sigqueue(3) or tgkill(2). Every
/// other code (positive ones for faults, `SI_KERNEL`, child notifications; negative ones for
/// timers and async I/O) means the kernel raised the signal, possibly from interrupt context.
const SI_USER: i32 = 0;
const SI_QUEUE: i32 = -1;
const SI_TKILL: i32 = -6;

/// Classifies the sender of a signal `worker` (a worker of `master`) received.
pub fn sender_of(code: i32, sender_tgid: u32, worker: u32, master: u32) -> Sender {
    if !matches!(code, SI_USER | SI_QUEUE | SI_TKILL) {
        return Sender::Kernel;
    }
    if sender_tgid == master {
        Sender::Master
    } else if sender_tgid == worker {
        Sender::Itself
    } else {
        Sender::Other
    }
}

/// What the arbiter does with a signal it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterCommand {
    /// HUP: start a new set of workers, then stop the old ones with TERM.
    Reload,
    /// TTIN: one more worker.
    ScaleUp,
    /// TTOU: one worker fewer; the oldest gets TERM.
    ScaleDown,
    /// TERM, INT, QUIT: stop every worker and exit.
    Stop,
}

pub fn master_command(sig: i32) -> Option<MasterCommand> {
    match sig {
        libc::SIGHUP => Some(MasterCommand::Reload),
        libc::SIGTTIN => Some(MasterCommand::ScaleUp),
        libc::SIGTTOU => Some(MasterCommand::ScaleDown),
        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => Some(MasterCommand::Stop),
        _ => None,
    }
}

/// Signals after which a Gunicorn worker stops serving: those its handlers answer by
/// exiting, those left at a default action of terminating, and the fatal faults. Signals an
/// application commonly handles itself (ALRM, PIPE, USR1 for log reopening, CHLD) are not
/// here, so a worker that merely saw one is not thought killed by it.
pub fn ends_worker(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGHUP
            | libc::SIGINT
            | libc::SIGQUIT
            | libc::SIGTERM
            | libc::SIGKILL
            | libc::SIGABRT
            | libc::SIGUSR2
    ) || is_fault(sig)
}

/// Of the ending signals, those that cut the request in progress short. TERM is Gunicorn's
/// graceful stop: the worker finishes what it is serving first.
pub fn interrupts_requests(sig: i32) -> bool {
    ends_worker(sig) && sig != libc::SIGTERM
}

/// Signals the kernel raises for a program error, and `abort()`'s SIGABRT.
pub fn is_fault(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGSYS
            | libc::SIGTRAP
            | libc::SIGABRT
    )
}

/// Whether the target will see the signal: not ignored, and not lost for lack of queue
/// space. A standard signal merged into one already pending still reaches the target once.
pub fn reaches_target(result: i32) -> bool {
    matches!(
        result,
        SIGNAL_DELIVERED | SIGNAL_ALREADY_PENDING | SIGNAL_LOSE_INFO
    )
}

/// Whether the signal is a new one for the target rather than merged into a pending one:
/// two TTINs that merge make the arbiter add one worker, not two.
pub fn is_new(result: i32) -> bool {
    matches!(result, SIGNAL_DELIVERED | SIGNAL_LOSE_INFO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_user_codes_name_their_sender() {
        let (worker, master) = (20, 10);
        assert_eq!(sender_of(0, master, worker, master), Sender::Master);
        assert_eq!(sender_of(-6, worker, worker, master), Sender::Itself);
        assert_eq!(sender_of(-1, 99, worker, master), Sender::Other);
        // SI_KERNEL (the OOM killer's SIGKILL), SEGV_MAPERR, SI_TIMER: never the running task.
        for code in [0x80, 1, -2] {
            assert_eq!(sender_of(code, master, worker, master), Sender::Kernel);
        }
    }

    #[test]
    fn gunicorn_meanings() {
        assert_eq!(master_command(libc::SIGHUP), Some(MasterCommand::Reload));
        assert_eq!(master_command(libc::SIGTTIN), Some(MasterCommand::ScaleUp));
        assert_eq!(
            master_command(libc::SIGTTOU),
            Some(MasterCommand::ScaleDown)
        );
        assert_eq!(master_command(libc::SIGQUIT), Some(MasterCommand::Stop));
        assert_eq!(master_command(libc::SIGCHLD), None);
        assert_eq!(master_command(libc::SIGUSR1), None);

        assert!(ends_worker(libc::SIGTERM) && !interrupts_requests(libc::SIGTERM));
        assert!(ends_worker(libc::SIGABRT) && interrupts_requests(libc::SIGABRT));
        assert!(interrupts_requests(libc::SIGSEGV) && interrupts_requests(libc::SIGKILL));
        for harmless in [libc::SIGCHLD, libc::SIGUSR1, libc::SIGWINCH, libc::SIGALRM] {
            assert!(!ends_worker(harmless), "{harmless}");
        }
    }

    #[test]
    fn results() {
        assert!(reaches_target(0) && reaches_target(2) && reaches_target(4));
        assert!(!reaches_target(1) && !reaches_target(3));
        assert!(is_new(0) && !is_new(2));
    }
}
