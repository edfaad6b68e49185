//! The tracker fed the way the pipeline feeds it: event by event, in ring-buffer order.

use super::{ExitStatus, Lifecycle, RestartReason, SignalSeen};

const MASTER: u32 = 100;
const TEST: u32 = 7;
const S: u64 = 1_000_000_000;

fn signal(sender: u32, sig: i32, at_s: u64) -> SignalSeen {
    SignalSeen {
        sender,
        sig,
        code: 0,
        result: 0,
        ts_ns: at_s * S,
    }
}

fn started() -> Lifecycle {
    let mut life = Lifecycle::new();
    life.master_started(MASTER);
    // The first set of workers is nobody's scale-up.
    assert_eq!(life.worker_forked(MASTER, S), None);
    assert_eq!(life.worker_forked(MASTER, S), None);
    life
}

#[test]
fn a_reload_replaces_every_worker_and_its_new_workers_are_not_scale_ups() {
    let mut life = started();
    life.signal_to_master(MASTER, signal(TEST, libc::SIGHUP, 10));
    assert_eq!(life.worker_forked(MASTER, 10 * S), None);
    assert_eq!(life.worker_forked(MASTER, 10 * S), None);
    for worker in [101, 102] {
        life.signal_to_worker(worker, MASTER, signal(MASTER, libc::SIGTERM, 10));
        assert_eq!(life.interrupted(worker, MASTER), None, "graceful");
        let reason = life.worker_exited(worker, MASTER, ExitStatus::Code(0));
        assert_eq!(reason, RestartReason::Reload);
    }
    // Nothing awaits a replacement: a later TTIN's worker is a scale-up.
    life.signal_to_master(MASTER, signal(TEST, libc::SIGTTIN, 20));
    assert_eq!(
        life.worker_forked(MASTER, 20 * S),
        Some(RestartReason::ScaleUp)
    );
}

#[test]
fn a_replacement_is_not_a_scale_up_even_after_a_ttin() {
    let mut life = started();
    life.signal_to_worker(101, MASTER, signal(MASTER, libc::SIGABRT, 5));
    assert_eq!(life.interrupted(101, MASTER), Some(RestartReason::Timeout));
    assert_eq!(
        life.worker_exited(101, MASTER, ExitStatus::Code(0)),
        RestartReason::Timeout
    );
    life.signal_to_master(MASTER, signal(TEST, libc::SIGTTIN, 6));
    // Two forks: the timed-out worker's replacement, then the TTIN's new worker.
    assert_eq!(life.worker_forked(MASTER, 6 * S), None);
    assert_eq!(
        life.worker_forked(MASTER, 6 * S),
        Some(RestartReason::ScaleUp)
    );
    assert_eq!(life.worker_forked(MASTER, 7 * S), None);
}

#[test]
fn ttin_and_ttou_merged_or_stale_count_once_or_not_at_all() {
    let mut life = started();
    life.signal_to_master(MASTER, signal(TEST, libc::SIGTTIN, 10));
    // A second TTIN merged into the pending one: the arbiter sees one.
    let merged = SignalSeen {
        result: observer_ebpf::event::SIGNAL_ALREADY_PENDING,
        ..signal(TEST, libc::SIGTTIN, 10)
    };
    life.signal_to_master(MASTER, merged);
    assert_eq!(
        life.worker_forked(MASTER, 11 * S),
        Some(RestartReason::ScaleUp)
    );
    assert_eq!(life.worker_forked(MASTER, 11 * S), None);

    // A TTIN the master never acted on does not make a much later fork a scale-up.
    life.signal_to_master(MASTER, signal(TEST, libc::SIGTTIN, 20));
    assert_eq!(life.worker_forked(MASTER, 200 * S), None);

    life.signal_to_master(MASTER, signal(TEST, libc::SIGTTOU, 300));
    life.signal_to_worker(101, MASTER, signal(MASTER, libc::SIGTERM, 300));
    assert_eq!(
        life.worker_exited(101, MASTER, ExitStatus::Code(0)),
        RestartReason::ScaleDown
    );
    // Nothing replaces a scaled-down worker, so no fork is owed.
    life.signal_to_master(MASTER, signal(TEST, libc::SIGTTIN, 301));
    assert_eq!(
        life.worker_forked(MASTER, 301 * S),
        Some(RestartReason::ScaleUp)
    );
}

#[test]
fn an_oom_mark_and_an_outsiders_kill() {
    let mut life = started();
    life.oom_victim(101);
    // The OOM killer's SIGKILL: raised by the kernel while the worker was allocating.
    let kill = SignalSeen {
        code: 0x80,
        ..signal(101, libc::SIGKILL, 3)
    };
    life.signal_to_worker(101, MASTER, kill);
    assert_eq!(life.interrupted(101, MASTER), Some(RestartReason::OomKill));
    assert_eq!(
        life.worker_exited(101, MASTER, ExitStatus::Signal(libc::SIGKILL)),
        RestartReason::OomKill
    );

    life.signal_to_worker(102, MASTER, signal(TEST, libc::SIGTERM, 4));
    assert_eq!(
        life.worker_exited(102, MASTER, ExitStatus::Code(0)),
        RestartReason::ExternalSignal
    );
    // Both are replaced: the next two forks are theirs.
    life.signal_to_master(MASTER, signal(TEST, libc::SIGTTIN, 5));
    assert_eq!(life.worker_forked(MASTER, 5 * S), None);
    assert_eq!(life.worker_forked(MASTER, 5 * S), None);
    assert_eq!(
        life.worker_forked(MASTER, 5 * S),
        Some(RestartReason::ScaleUp)
    );
}

#[test]
fn ignored_and_harmless_signals_leave_no_history() {
    let mut life = started();
    let ignored = SignalSeen {
        result: observer_ebpf::event::SIGNAL_IGNORED,
        ..signal(TEST, libc::SIGTERM, 1)
    };
    life.signal_to_worker(101, MASTER, ignored);
    life.signal_to_worker(101, MASTER, signal(MASTER, libc::SIGUSR1, 1));
    life.signal_to_worker(101, MASTER, signal(MASTER, libc::SIGCHLD, 1));
    life.signal_to_master(MASTER, signal(101, libc::SIGCHLD, 1));
    assert_eq!(life.len(), 1, "only the master's (empty) history");
    assert_eq!(
        life.worker_exited(101, MASTER, ExitStatus::Code(0)),
        RestartReason::MaxRequests
    );

    // Histories are bounded and dropped when their process goes.
    for i in 0..100 {
        life.signal_to_worker(102, MASTER, signal(TEST, libc::SIGHUP, i));
    }
    assert_eq!(life.len(), 2);
    life.forget(102);
    life.forget(MASTER);
    assert!(life.is_empty());
}
