//! Worker lifecycle: why workers restart, told apart from the signals and OOM kills the
//! kernel reports around each exit.
//!
//! [`signals`] says what each signal means to Gunicorn, [`restart`] decides a reason from the
//! facts of one exit (pure), and [`Lifecycle`] keeps the per-process history those facts
//! come from.
//!
//! [`Lifecycle`] keeps, per worker, the signals that end a Gunicorn worker and who sent them
//! (its master, itself, the kernel, anyone else), and per master the commands it received
//! (HUP, TTIN, TTOU, TERM/INT/QUIT). The caller resolves roles and calls `signal_to_worker`,
//! `signal_to_master`, `oom_victim`, `worker_forked` (which tells a TTIN's new worker from a
//! replacement) and `worker_exited` (which answers with a [`RestartReason`]);
//! `interrupted(worker, master)` gives the reason a still-living worker's failing requests
//! fail with. Histories are dropped with their process.

pub mod restart;
pub mod signals;
mod tracker;

#[cfg(test)]
mod tests;

pub use restart::{ExitStatus, RestartReason};
pub use tracker::{Lifecycle, SignalSeen};
