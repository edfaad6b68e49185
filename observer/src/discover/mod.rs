//! Finding Gunicorn masters and workers, and keeping each worker's stable slot.
//!
//! At start, [`scan`] reads `/proc` once and [`Registry::add_scan`] registers what it found;
//! afterwards fork, exec and exit events keep the [`Registry`] current, with
//! [`read_process`] reading the one process an exec event names.
//!
//! The [`Registry`] knows instances (`app`: one master, or two during a USR2 upgrade) and
//! workers (slots). It is fed by the scans (`add_scan`, `add_worker`) and by fork
//! (`add_forked`), exec (`add_master`, `add_successor`), exit (`remove`, which says whether a
//! worker's slot is left empty and whether a master was its instance's last) and HUP
//! (`reloading`). `AppName::timeout_secs` resolves an instance's `--timeout` from its master's
//! arguments. A rescan also repairs lost exits (`Pipeline::forget_dead`).

mod appname;
mod children;
mod cmdline;
mod config;
pub mod kube;
mod options;
mod procfile;
mod procscan;
mod registry;
mod sockets;

#[cfg(test)]
mod fake_proc;
#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod scan_tests;

pub use appname::{AppName, ConfigReadError};
pub use children::children;
pub use cmdline::{MasterCmd, NameSource, RoleHint, classify, config_path};
pub use config::proc_name_from_config;
pub use procfile::{ProcEnv, ScanError};
pub use procscan::{
    FoundInstance, ProcInfo, ScanResult, ScanStats, master_app, read_process, scan,
};
pub use registry::{Counts, HANDOVER_WINDOW_NS, Registry, Removed, Role, WorkerRef};
pub use sockets::{SocketTables, accepted_connections, accepted_connections_in};
