//! Loads the kernel programs, attaches them, and edits their maps.
//!
//! [`Probes`] owns the loaded object: dropping it detaches every program. Userspace fills
//! `TRACKED` with the masters and workers it finds; the kernel adds forked workers itself.
//!
//! [`Probes::load`] attaches everything and fails with a typed error naming the program;
//! [`Probes::take_events`] hands out the ring buffer. `track`, `untrack`, `follow_conn` and
//! `forget_conn` edit `TRACKED` and `CONNS`; `drop_counts` sums the per-CPU drop counters;
//! `heartbeat` reads and `forget_heartbeat` deletes a worker's entry in `HEARTBEATS`;
//! `watch_listen_port` and `unwatch_listen_port` edit `LISTEN_PORTS`.

mod attach;
pub mod btf;
mod error;
pub mod tracefs;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::Program,
};
use observer_ebpf::{drops::DROP_REASONS, tracked::ConnKey};

pub use btf::BtfError;
pub use error::LoadError;
pub use tracefs::TracefsError;

/// The eBPF object, compiled for the bpf target by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer-ebpf"));

/// The loaded and attached kernel programs and their maps.
pub struct Probes {
    ebpf: Ebpf,
    attached: usize,
}

impl Probes {
    /// Loads the object, hands it the running kernel's `task_struct` offsets and tracepoint
    /// layouts, and attaches every program. An error names the program or tracepoint that
    /// failed.
    pub fn load() -> Result<Self, LoadError> {
        Self::load_with_ring(None)
    }

    /// [`Self::load`] with the event ring buffer resized to `ring_bytes` (a power-of-two
    /// multiple of the page size, checked by the CLI), e.g. to force overflow in a test.
    pub fn load_with_ring(ring_bytes: Option<u32>) -> Result<Self, LoadError> {
        let offsets = btf::task_offsets_from(btf::VMLINUX_BTF)?;
        let root = crate::preflight::tracefs_root().ok_or(TracefsError::NotMounted)?;
        let layouts = tracefs::tracepoint_offsets(std::path::Path::new(root))?;
        let sock_state = tracefs::sock_state_offsets(std::path::Path::new(root))?;
        // Logged before the verifier runs, so a rejection on an unfamiliar kernel comes with
        // the layouts the programs were given (docs/KERNELS.md).
        tracing::info!(
            kernel = crate::preflight::kernel_release()
                .as_deref()
                .unwrap_or("unknown"),
            fork_hook = "tp_btf/sched_process_fork",
            task_offsets = "BTF",
            task_pid = offsets.pid,
            task_tgid = offsets.tgid,
            task_exit_code = offsets.exit_code,
            tracepoint_layouts = root,
            signal_pid = layouts.signal_pid,
            signal_code = layouts.signal_code,
            victim_pid = layouts.victim_pid,
            "kernel layouts read"
        );
        let kernel_btf = aya::Btf::from_sys_fs().map_err(LoadError::KernelBtf)?;
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(&kernel_btf))
            .override_global("TASK_OFFSETS", &offsets, true)
            .override_global("TP_OFFSETS", &layouts, true)
            .override_global("SOCK_STATE_OFFSETS", &sock_state, true);
        if let Some(bytes) = ring_bytes {
            loader.map_max_entries("EVENTS", bytes);
        }
        let mut ebpf = loader.load(OBJECT).map_err(LoadError::Object)?;
        let attached = attach::attach_all(&mut ebpf, &kernel_btf)?;
        Ok(Self { ebpf, attached })
    }

    /// Hands out the ring buffer of events. It can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self.ebpf.take_map("EVENTS").ok_or(LoadError::EventsTaken)?;
        RingBuf::try_from(map).map_err(|source| LoadError::Map {
            op: "opening",
            map: "EVENTS",
            source,
        })
    }

    /// Follows a process: `role` is `tracked::ROLE_MASTER` or `tracked::ROLE_WORKER`.
    pub fn track(&mut self, tgid: u32, role: u32) -> Result<(), LoadError> {
        let mut tracked: HashMap<_, u32, u32> = self.hash_map("TRACKED")?;
        tracked
            .insert(tgid, role, 0)
            .map_err(|source| LoadError::Map {
                op: "inserting into",
                map: "TRACKED",
                source,
            })
    }

    /// Stops following a process. A process that is not tracked is not an error: the kernel
    /// untracks a leader at exit by itself.
    pub fn untrack(&mut self, tgid: u32) -> Result<(), LoadError> {
        let mut tracked: HashMap<_, u32, u32> = self.hash_map("TRACKED")?;
        ignore_missing(tracked.remove(&tgid), "TRACKED")
    }

    /// Follows a connection whose accept happened before the programs were attached.
    pub fn follow_conn(&mut self, key: ConnKey) -> Result<(), LoadError> {
        let mut conns: HashMap<_, ConnKey, u32> = self.hash_map("CONNS")?;
        // The listening fd is unknown for such a connection; the accept path stores the same.
        conns
            .insert(key, u32::MAX, 0)
            .map_err(|source| LoadError::Map {
                op: "inserting into",
                map: "CONNS",
                source,
            })
    }

    /// Forgets a connection the kernel will not see closed (its process exited).
    pub fn forget_conn(&mut self, key: ConnKey) -> Result<(), LoadError> {
        let mut conns: HashMap<_, ConnKey, u32> = self.hash_map("CONNS")?;
        ignore_missing(conns.remove(&key), "CONNS")
    }

    /// When worker `tgid` last showed it was alive (event clock, ns), if it has since the
    /// observer attached.
    pub fn heartbeat(&mut self, tgid: u32) -> Result<Option<u64>, LoadError> {
        let beats: HashMap<_, u32, u64> = self.hash_map("HEARTBEATS")?;
        match beats.get(&tgid, 0) {
            Ok(ts_ns) => Ok(Some(ts_ns)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(LoadError::Map {
                op: "reading",
                map: "HEARTBEATS",
                source,
            }),
        }
    }

    /// Forgets the heartbeat of a process that is gone, so the map stays bounded by the
    /// live workers.
    pub fn forget_heartbeat(&mut self, tgid: u32) -> Result<(), LoadError> {
        let mut beats: HashMap<_, u32, u64> = self.hash_map("HEARTBEATS")?;
        ignore_missing(beats.remove(&tgid), "HEARTBEATS")
    }

    /// Stamps handshakes completing on TCP port `port` (a tracked listener's) for queue wait.
    pub fn watch_listen_port(&mut self, port: u16) -> Result<(), LoadError> {
        let mut ports: HashMap<_, u16, u32> = self.hash_map("LISTEN_PORTS")?;
        ports.insert(port, 1, 0).map_err(|source| LoadError::Map {
            op: "inserting into",
            map: "LISTEN_PORTS",
            source,
        })
    }

    /// Stops stamping handshakes on `port`: no tracked listener uses it any more.
    pub fn unwatch_listen_port(&mut self, port: u16) -> Result<(), LoadError> {
        let mut ports: HashMap<_, u16, u32> = self.hash_map("LISTEN_PORTS")?;
        ignore_missing(ports.remove(&port), "LISTEN_PORTS")
    }

    /// Events the kernel side lost, by `drops::DROP_*` reason, summed over CPUs.
    pub fn drop_counts(&self) -> Result<[u64; DROP_REASONS as usize], LoadError> {
        let map = self
            .ebpf
            .map("DROPS")
            .ok_or(LoadError::MissingMap { map: "DROPS" })?;
        let drops: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| LoadError::Map {
                op: "opening",
                map: "DROPS",
                source,
            })?;
        let mut counts = [0; DROP_REASONS as usize];
        for (reason, count) in (0..DROP_REASONS).zip(&mut counts) {
            let per_cpu = drops.get(&reason, 0).map_err(|source| LoadError::Map {
                op: "reading",
                map: "DROPS",
                source,
            })?;
            *count = per_cpu.iter().sum();
        }
        Ok(counts)
    }

    /// Detaches and unloads every program, each on its own short-lived thread. Each detach
    /// waits for an RCU grace period in the kernel; one after another, our 31 programs took
    /// 1 to 2.4 s on a busy two-core node, against the 2 s a SIGTERM may take, and eight at
    /// a time still took up to 1.1 s. Waits made in parallel share grace periods. Whatever
    /// is left is unloaded again, harmlessly, when `Ebpf` drops.
    pub fn detach_all(&mut self) {
        std::thread::scope(|scope| {
            for (_, program) in self.ebpf.programs_mut() {
                scope.spawn(move || {
                    let result = match program {
                        Program::TracePoint(program) => program.unload(),
                        Program::BtfTracePoint(program) => program.unload(),
                        _ => Ok(()),
                    };
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "cannot detach a program");
                    }
                });
            }
        });
    }

    /// How many programs are attached.
    pub fn attached(&self) -> usize {
        self.attached
    }

    /// Kernel ids of the loaded programs, as `bpftool prog list` shows them.
    pub fn program_ids(&self) -> Result<Vec<u32>, LoadError> {
        self.ebpf
            .programs()
            .map(|(name, program)| {
                program
                    .info()
                    .map(|info| info.id())
                    .map_err(|source| LoadError::ProgramInfo {
                        program: name.to_owned(),
                        source,
                    })
            })
            .collect()
    }

    fn hash_map<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, K, V>, LoadError> {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(LoadError::MissingMap { map: name })?;
        HashMap::try_from(map).map_err(|source| LoadError::Map {
            op: "opening",
            map: name,
            source,
        })
    }
}

/// A delete of an absent key fails with ENOENT; for untrack and forget that is success.
fn ignore_missing(
    result: Result<(), aya::maps::MapError>,
    map: &'static str,
) -> Result<(), LoadError> {
    match result {
        Err(aya::maps::MapError::SyscallError(err))
            if err.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        other => other.map_err(|source| LoadError::Map {
            op: "deleting from",
            map,
            source,
        }),
    }
}
