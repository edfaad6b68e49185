//! Masters that appear through an exec: a USR2 successor joining its parent's instance, and
//! workers a new master forked before the observer handled its exec.

use tracing::info;

use observer_ebpf::tracked::ROLE_MASTER;

use super::{KernelMaps, Pipeline};
use crate::discover::{self, AppName, ProcInfo, Role};

impl<K: KernelMaps> Pipeline<K> {
    /// Registers `info`, exec'd by a child of master `old`, as `old`'s USR2 successor when
    /// it asks for the same name: it takes over the instance's label, and its workers the
    /// slots of `old`'s. Returns false, changing nothing, when it is not one.
    pub(super) fn adopt_successor(
        &mut self,
        info: &ProcInfo,
        app: &AppName,
        old: u32,
        now_ns: u64,
    ) -> bool {
        let (pid, start) = (info.pid, info.start_time);
        if !self
            .registry
            .add_successor(pid, start, &app.name, old, Some(now_ns))
        {
            return false;
        }
        let name = self.registry.app(pid).unwrap_or_default();
        info!(pid, old_master = old, app = %name, "gunicorn master upgraded (USR2)");
        self.master_since.insert(pid, now_ns);
        self.lifecycle.master_started(pid);
        self.lock_stats().set_timeout(&name, app.timeout_secs);
        self.track(pid, ROLE_MASTER);
        self.update_gauges();
        true
    }

    /// Workers `master` forked before the kernel knew it as a master (a busy observer may
    /// handle the exec after the new master's first forks) were not tracked at their fork
    /// and sent no fork event; they are taken from its children now, as if forked at
    /// `now_ns`, so a USR2 successor's workers still take over their slots.
    pub(super) fn adopt_early_children(&mut self, master: u32, now_ns: u64) {
        let mut tables = discover::SocketTables::default();
        for child in discover::children(&self.proc_root, master) {
            if self.registry.worker(child).is_some() || self.registry.is_master(child) {
                continue;
            }
            self.track(child, Role::Worker.kernel_value());
            self.add_worker(master, child, now_ns);
            self.follow_open_connections(child, &mut tables);
        }
    }
}
