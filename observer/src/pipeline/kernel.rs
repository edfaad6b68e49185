//! The kernel maps the pipeline edits, behind a trait so the event path can also run
//! without a kernel: the replay benchmark feeds it a recorded event stream.

use observer_ebpf::{drops::DROP_REASONS, tracked::ConnKey};

use crate::load::{LoadError, Probes};

/// What the pipeline asks of the loaded programs' maps (see `load::Probes`).
pub trait KernelMaps {
    fn track(&mut self, tgid: u32, role: u32) -> Result<(), LoadError>;
    fn untrack(&mut self, tgid: u32) -> Result<(), LoadError>;
    fn follow_conn(&mut self, key: ConnKey) -> Result<(), LoadError>;
    fn forget_conn(&mut self, key: ConnKey) -> Result<(), LoadError>;
    fn heartbeat(&mut self, tgid: u32) -> Result<Option<u64>, LoadError>;
    fn forget_heartbeat(&mut self, tgid: u32) -> Result<(), LoadError>;
    fn drop_counts(&self) -> Result<[u64; DROP_REASONS as usize], LoadError>;
    fn watch_listen_port(&mut self, port: u16) -> Result<(), LoadError>;
    fn unwatch_listen_port(&mut self, port: u16) -> Result<(), LoadError>;
}

impl KernelMaps for Probes {
    fn track(&mut self, tgid: u32, role: u32) -> Result<(), LoadError> {
        Probes::track(self, tgid, role)
    }

    fn untrack(&mut self, tgid: u32) -> Result<(), LoadError> {
        Probes::untrack(self, tgid)
    }

    fn follow_conn(&mut self, key: ConnKey) -> Result<(), LoadError> {
        Probes::follow_conn(self, key)
    }

    fn forget_conn(&mut self, key: ConnKey) -> Result<(), LoadError> {
        Probes::forget_conn(self, key)
    }

    fn heartbeat(&mut self, tgid: u32) -> Result<Option<u64>, LoadError> {
        Probes::heartbeat(self, tgid)
    }

    fn forget_heartbeat(&mut self, tgid: u32) -> Result<(), LoadError> {
        Probes::forget_heartbeat(self, tgid)
    }

    fn drop_counts(&self) -> Result<[u64; DROP_REASONS as usize], LoadError> {
        Probes::drop_counts(self)
    }

    fn watch_listen_port(&mut self, port: u16) -> Result<(), LoadError> {
        Probes::watch_listen_port(self, port)
    }

    fn unwatch_listen_port(&mut self, port: u16) -> Result<(), LoadError> {
        Probes::unwatch_listen_port(self, port)
    }
}

/// No kernel at all: every edit succeeds and changes nothing, no heartbeat was ever seen,
/// nothing was dropped. Replaying a recording needs exactly this, since the processes it
/// names are long gone.
#[derive(Debug, Default)]
pub struct Detached;

impl KernelMaps for Detached {
    fn track(&mut self, _tgid: u32, _role: u32) -> Result<(), LoadError> {
        Ok(())
    }

    fn untrack(&mut self, _tgid: u32) -> Result<(), LoadError> {
        Ok(())
    }

    fn follow_conn(&mut self, _key: ConnKey) -> Result<(), LoadError> {
        Ok(())
    }

    fn forget_conn(&mut self, _key: ConnKey) -> Result<(), LoadError> {
        Ok(())
    }

    fn heartbeat(&mut self, _tgid: u32) -> Result<Option<u64>, LoadError> {
        Ok(None)
    }

    fn forget_heartbeat(&mut self, _tgid: u32) -> Result<(), LoadError> {
        Ok(())
    }

    fn drop_counts(&self) -> Result<[u64; DROP_REASONS as usize], LoadError> {
        Ok([0; DROP_REASONS as usize])
    }

    fn watch_listen_port(&mut self, _port: u16) -> Result<(), LoadError> {
        Ok(())
    }

    fn unwatch_listen_port(&mut self, _port: u16) -> Result<(), LoadError> {
        Ok(())
    }
}
