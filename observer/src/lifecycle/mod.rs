//! Worker lifecycle: why workers restart, told apart from the signals and OOM kills the
//! kernel reports around each exit.
//!
//! [`signals`] says what each signal means to Gunicorn, [`restart`] decides a reason from the
//! facts of one exit (pure), and [`Lifecycle`] keeps the per-process history those facts
//! come from.

pub mod restart;
pub mod signals;
mod tracker;

#[cfg(test)]
mod tests;

pub use restart::{ExitStatus, RestartReason};
pub use tracker::{Lifecycle, SignalSeen};
