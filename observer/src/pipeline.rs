//! The daemon's main loop: drain the ring buffer, decode, rebuild requests, aggregate.
//!
//! Everything on the event path runs on one task and owns its state outright (no locks but
//! the statistics shared with the exporter, taken once per drained batch).

mod batch;
mod fresh;
mod kernel;
mod queue;
mod record;
mod replay;
mod upgrade;
mod workers;

pub use fresh::{DrainBeforeScrape, ScrapeRequests, channel as scrape_channel};

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use prometheus::IntCounter;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::watch,
};
use tracing::{debug, info, warn};

use observer_ebpf::tracked::{ConnKey, ROLE_MASTER};

use crate::{
    aggregate::{ErrorType, Resources, Stats},
    decode::{Event, decode},
    discover::{self, AppName, ProcInfo, Registry, Role, ScanError},
    export::{
        LoggedRequest, ObserverMetrics, RequestLog,
        observer::{DISCOVERY_ERROR_REASONS, HEARTBEAT_UNREADABLE, QUEUE_ERROR_REASONS},
    },
    http::{ConnId, ConnTable, Outcome, Output, RouteMode},
    lifecycle::{ExitStatus, Lifecycle, RestartReason, SignalSeen},
    load::Probes,
    sample::Sampler,
};

use batch::Batch;
pub use kernel::{Detached, KernelMaps};
pub use record::{RecordError, Recorder, read_recording};
pub use replay::{REPLAY_APP, REPLAY_MASTER};
use workers::Departure;

/// Cap on connections followed in userspace; matches the kernel's connection map.
const MAX_CONNECTIONS: usize = observer_ebpf::limits::MAX_CONNECTIONS as usize;

/// State of the event path. `K` is the kernel's maps; only the replay benchmark runs
/// the pipeline without them.
pub struct Pipeline<K: KernelMaps = Probes> {
    probes: K,
    registry: Registry,
    conns: ConnTable,
    lifecycle: Lifecycle,
    stats: Arc<Mutex<Stats>>,
    metrics: ObserverMetrics,
    sampler: Sampler,
    proc_root: PathBuf,
    /// Quick rescans still owed after a master exited (see `workers.rs`).
    quick_rescans: u32,
    /// When each master adopted outside a scan was first seen (CLOCK_MONOTONIC ns), to
    /// recognise a `--daemon` launcher that exits right after forking.
    master_since: HashMap<u32, u64>,
    /// Each instance's TCP listeners, to attribute queue waits (see `pipeline/queue.rs`).
    listeners: crate::queue::ListenerIndex,
    /// The ports in the kernel's `LISTEN_PORTS` map.
    watched_ports: std::collections::BTreeSet<u16>,
    /// Known processes the last rescan found missing from /proc (see `forget_dead`).
    vanished: HashSet<u32>,
    /// Where drained records are also written, with `--record`.
    recorder: Option<Recorder>,
    /// Where finished requests are also written, with `--request-log`.
    request_log: Option<RequestLog>,
    /// `events_total{kind}` handles, by `Event::kind_index`, taken at first use.
    event_counters: [Option<IntCounter>; Event::KIND_NAMES.len()],
    /// `queue_errors_total{reason}` handles, by position in `QUEUE_ERROR_REASONS`: one can
    /// be counted for every accepted connection.
    queue_error_counters: [Option<IntCounter>; QUEUE_ERROR_REASONS.len()],
}

/// After a master exits, rescan this many times at [`QUICK_RESCAN`] intervals: long enough
/// for a daemonizing Gunicorn's grandchild to appear, short enough to catch it before its
/// workers serve anything.
const QUICK_RESCANS: u32 = 40;
const QUICK_RESCAN: Duration = Duration::from_millis(50);

impl<K: KernelMaps> Pipeline<K> {
    pub fn new(
        probes: K,
        stats: Arc<Mutex<Stats>>,
        metrics: ObserverMetrics,
        sampler: Sampler,
        proc_root: PathBuf,
    ) -> Self {
        Self {
            probes,
            registry: Registry::new(),
            conns: ConnTable::new(MAX_CONNECTIONS),
            lifecycle: Lifecycle::new(),
            stats,
            metrics,
            sampler,
            proc_root,
            quick_rescans: 0,
            master_since: HashMap::new(),
            listeners: Default::default(),
            watched_ports: Default::default(),
            vanished: HashSet::new(),
            recorder: None,
            request_log: None,
            event_counters: Default::default(),
            queue_error_counters: Default::default(),
        }
    }

    /// Also writes every drained record to `recorder`, for the replay benchmark.
    pub fn record_to(&mut self, recorder: Recorder) {
        self.recorder = Some(recorder);
    }

    /// Writes a drained record to the recording, if one is being made. A failed write ends
    /// the recording (said once in the log); observing goes on.
    fn record(&mut self, record: &[u8]) {
        let Some(recorder) = &mut self.recorder else {
            return;
        };
        if let Err(err) = recorder.record(record) {
            warn!(error = %err, "recording stopped");
            self.recorder = None;
        }
    }

    fn finish_recording(&mut self) {
        if let Some(mut recorder) = self.recorder.take() {
            match recorder.flush() {
                Ok(()) => info!(records = recorder.records(), "recording written"),
                Err(err) => warn!(error = %err, "recording incomplete"),
            }
        }
    }

    /// Also writes every finished request to `log`.
    pub fn log_requests_to(&mut self, log: RequestLog) {
        self.request_log = Some(log);
    }

    /// How request targets become the `route` label (template by default).
    pub fn with_route_mode(mut self, mode: RouteMode) -> Self {
        self.conns = ConnTable::new(MAX_CONNECTIONS).with_route_mode(mode);
        self
    }

    /// Follows at most `max` connections in userspace instead of the kernel map's size. The
    /// event-decode fuzz target sets a tiny cap so its inputs reach the table-full path.
    /// Call it before [`Self::with_route_mode`], which keeps the default cap.
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.conns = ConnTable::new(max);
        self
    }

    /// Connections with HTTP state right now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Runs one of the owed quick rescans, if any.
    fn quick_rescan(&mut self) {
        if self.quick_rescans > 0 {
            self.quick_rescans -= 1;
            if self.scan_once() {
                // Found it: one more pass lists workers forked while we looked.
                self.scan_once();
                self.quick_rescans = 0;
            }
        }
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Finds every Gunicorn already running, and repairs what lost events may have hidden.
    ///
    /// A worker forked between reading /proc and putting its master in the kernel's map
    /// would be seen by neither, so whenever a scan adds a master a second scan follows:
    /// from then on the kernel's fork hook sees every new worker.
    pub fn scan(&mut self) {
        if self.scan_once() {
            self.scan_once();
        }
        self.forget_dead();
        self.update_gauges();
    }

    /// Returns whether a new master was added.
    fn scan_once(&mut self) -> bool {
        let found = match discover::scan(&self.proc_root) {
            Ok(found) => found,
            Err(err) => {
                warn!(error = %err, "cannot scan /proc");
                self.count_discovery_error("scan_failed", 1);
                return false;
            }
        };
        let stats = &found.stats;
        self.count_discovery_error("process_gone", stats.gone);
        self.count_discovery_error("unreadable", stats.unreadable);
        self.count_discovery_error("malformed", stats.malformed);
        self.count_discovery_error("config_unreadable", stats.config_unreadable);

        let mut new_master = false;
        let mut tables = discover::SocketTables::default();
        for (pid, role) in self.registry.add_scan(&found) {
            self.track(pid, role.kernel_value());
            match role {
                Role::Master => {
                    new_master = true;
                    let app = self.registry.app(pid).unwrap_or_default();
                    info!(pid, app = %app, "found gunicorn master");
                    self.lifecycle.master_started(pid);
                    let timeout = found.instance(pid).and_then(|i| i.app.timeout_secs);
                    let container = self.container_of(pid);
                    let mut stats = self.lock_stats();
                    stats.master_started(&app);
                    stats.set_timeout(&app, timeout);
                    stats.set_container(&app, container);
                }
                Role::Worker => {
                    self.follow_open_connections(pid, &mut tables);
                    if let Some(worker) = self.registry.worker(pid) {
                        self.lock_stats()
                            .worker_started(&worker.app, worker.slot, pid);
                    }
                }
            }
        }
        new_master
    }

    /// Puts connections a worker accepted before it was tracked into the kernel's map;
    /// the HTTP stage then picks each up at its next request boundary.
    fn follow_open_connections(&mut self, pid: u32, tables: &mut discover::SocketTables) {
        for fd in discover::accepted_connections_in(&self.proc_root, pid, tables) {
            if let Err(err) = self.probes.follow_conn(ConnKey { tgid: pid, fd }) {
                warn!(pid, fd, error = %err, "cannot follow an already open connection");
                self.count_discovery_error("track_failed", 1);
            }
        }
    }

    fn count_discovery_error(&self, reason: &'static str, count: u64) {
        debug_assert!(DISCOVERY_ERROR_REASONS.contains(&reason), "{reason}");
        if count > 0 {
            self.metrics
                .discovery_errors
                .with_label_values(&[reason])
                .inc_by(count);
        }
    }

    fn track(&mut self, pid: u32, role: u32) {
        if let Err(err) = self.probes.track(pid, role) {
            warn!(pid, role, error = %err, "cannot add process to the kernel's tracked map");
            self.count_discovery_error("track_failed", 1);
        }
    }

    fn untrack(&mut self, pid: u32) {
        if let Err(err) = self.probes.untrack(pid) {
            debug!(pid, error = %err, "cannot remove process from the tracked map");
        }
    }

    /// Registers a worker the kernel saw forked. Its start time is read now so a later
    /// rescan can tell it from an unrelated process that reuses the pid.
    fn add_worker(&mut self, master: u32, pid: u32, ts_ns: u64) {
        // Already adopted from the master's children list (see `adopt_early_children`).
        if self.registry.worker(pid).is_some() {
            return;
        }
        let Some(worker) = self.registry.add_forked(master, pid, ts_ns) else {
            return;
        };
        if let Ok(info) = discover::read_process(&self.proc_root, pid) {
            self.registry.set_start_time(pid, info.start_time);
        }
        debug!(pid, master, slot = worker.slot, app = %worker.app, "worker tracked");
        let scale_up = self.lifecycle.worker_forked(master, ts_ns);
        let mut stats = self.lock_stats();
        stats.worker_started(&worker.app, worker.slot, pid);
        if let Some(reason) = scale_up {
            stats.worker_restarted(&worker.app, worker.slot, reason);
        }
        drop(stats);
        self.update_gauges();
        self.first_worker_forked(master);
    }

    /// Drops processes whose exit event was lost (ring buffer overflow, or an exit while
    /// the observer was not running), detected by a missing or reused /proc entry.
    ///
    /// A process found missing is dropped only if the previous rescan found it missing too.
    /// Its exit event is queued before its /proc entry goes (the exit tracepoint fires before
    /// the master reaps it), but it may be queued after the drain that preceded this scan;
    /// the drain before the next scan delivers it, with the exit's real status. Dropping it
    /// at once would count an `unknown` restart for a worker that left for a known reason.
    fn forget_dead(&mut self) {
        let mut known = Vec::new();
        for master in self.registry.masters() {
            known.push(master);
            known.extend(
                self.registry
                    .workers_of(master)
                    .into_iter()
                    .map(|(pid, _)| pid),
            );
        }
        let mut vanished = HashSet::new();
        for pid in known {
            let dead = match discover::read_process(&self.proc_root, pid) {
                Ok(info) => self.registry.is_same(pid, info.start_time) == Some(false),
                Err(ScanError::Gone { .. }) => true,
                Err(_) => false,
            };
            if dead && self.vanished.contains(&pid) {
                debug!(pid, "process vanished without an exit event");
                let now = crate::clock::monotonic_ns();
                self.process_exited(pid, now, Departure::Exit(ExitStatus::Unknown));
            } else if dead {
                vanished.insert(pid);
            }
        }
        self.vanished = vanished;
    }

    /// Handles the records of one drain, in order.
    pub fn handle_batch<'r>(&mut self, records: impl IntoIterator<Item = &'r [u8]>) {
        let shared = Arc::clone(&self.stats);
        let mut batch = Batch::new(&shared);
        for record in records {
            self.handle_in_batch(record, &mut batch);
        }
    }

    /// Handles one raw record.
    pub fn handle_record(&mut self, record: &[u8]) {
        self.handle_batch([record]);
    }

    /// Handles one raw record of a drain; socket events use the batch's held lock.
    fn handle_in_batch(&mut self, record: &[u8], batch: &mut Batch<'_>) {
        match decode(record) {
            Ok(event) => {
                self.count_event(&event);
                if event.is_socket() {
                    self.handle_socket(event, batch.stats());
                } else {
                    batch.release();
                    self.handle(event);
                }
            }
            Err(err) => {
                debug!(error = %err, "undecodable ring-buffer record");
                self.metrics
                    .decode_errors
                    .with_label_values(&[err.reason()])
                    .inc();
            }
        }
    }

    /// Counts a handled event. The counter handle is looked up by label once per kind and
    /// kept: a label look-up hashes strings under a lock, too much for every event. A kind's
    /// series still appears only once an event of that kind was seen.
    fn count_event(&mut self, event: &Event<'_>) {
        let kind = event.kind_index();
        self.event_counters[kind]
            .get_or_insert_with(|| {
                self.metrics
                    .events
                    .with_label_values(&[Event::KIND_NAMES[kind]])
            })
            .inc();
    }

    /// Accepts, reads, writes, shutdowns and closes: connection state and request statistics.
    fn handle_socket(&mut self, event: Event<'_>, stats: &mut Stats) {
        match event {
            Event::Accept {
                tgid, fd, ts_ns, ..
            } => {
                let id = ConnId { tgid, fd };
                self.with_sink(stats, tgid, ts_ns, None, |conns, mut sink| {
                    conns.on_accept(id, ts_ns, &mut sink)
                });
            }
            Event::Data {
                tgid,
                fd,
                syscall,
                ret,
                payload,
                ts_ns,
                ..
            } => {
                let id = ConnId { tgid, fd };
                if syscall.is_inbound() {
                    self.with_sink(stats, tgid, ts_ns, None, |conns, mut sink| {
                        conns.on_read(id, ts_ns, ret, payload, &mut sink)
                    });
                } else {
                    self.with_sink(stats, tgid, ts_ns, None, |conns, mut sink| {
                        conns.on_write(id, ts_ns, ret, payload, &mut sink)
                    });
                }
            }
            Event::Close {
                tgid,
                fd,
                shutdown,
                ts_ns,
            } => {
                let id = ConnId { tgid, fd };
                if shutdown {
                    self.with_sink(stats, tgid, ts_ns, None, |conns, mut sink| {
                        conns.on_shutdown(id, ts_ns, &mut sink)
                    });
                } else {
                    self.with_sink(stats, tgid, ts_ns, None, |conns, mut sink| {
                        conns.on_close(id, ts_ns, &mut sink)
                    });
                }
            }
            other => self.handle(other),
        }
    }

    /// Process, signal and OOM events; they take the statistics lock themselves.
    fn handle(&mut self, event: Event<'_>) {
        match event {
            Event::Fork {
                parent,
                child,
                ts_ns,
                ..
            } => {
                if self.registry.is_master(parent) {
                    self.add_worker(parent, child, ts_ns);
                } else {
                    // The kernel tracked the child because the parent was a master there,
                    // but userspace already forgot that master: undo it.
                    self.untrack(child);
                }
            }
            Event::Exec { tgid, .. } => self.exec(tgid),
            Event::Exit {
                tgid,
                exit_code,
                ts_ns,
            } => {
                let status = ExitStatus::from_wait_status(exit_code);
                self.process_exited(tgid, ts_ns, Departure::Exit(status));
            }
            Event::Signal {
                sender,
                target,
                sig,
                code,
                result,
                ts_ns,
            } => {
                let seen = SignalSeen {
                    sender,
                    sig,
                    code,
                    result,
                    ts_ns,
                };
                self.signal(target, seen);
            }
            Event::OomVictim { pid, .. } => self.oom_victim(pid),
            Event::QueueWait {
                tgid,
                local_port,
                family,
                handshake_ns,
                ts_ns,
                ..
            } => self.queue_wait(tgid, local_port, family, handshake_ns, ts_ns),
            socket @ (Event::Accept { .. } | Event::Data { .. } | Event::Close { .. }) => {
                let shared = Arc::clone(&self.stats);
                let mut stats = shared.lock().unwrap_or_else(|poison| poison.into_inner());
                self.handle_socket(socket, &mut stats);
            }
            Event::Lost { tgid, fd, ts_ns } => {
                self.metrics.connections_lost.inc();
                let id = ConnId { tgid, fd };
                let shared = Arc::clone(&self.stats);
                let mut stats = shared.lock().unwrap_or_else(|poison| poison.into_inner());
                self.with_sink(&mut stats, tgid, ts_ns, None, |conns, mut sink| {
                    conns.on_lost(id, ts_ns, &mut sink);
                });
            }
        }
    }

    /// Runs a connection-table update for process `tgid` at `ts_ns` with a sink that
    /// attributes each completed request to its worker slot and counts each parse problem,
    /// then notes whether the worker went busy or idle.
    ///
    /// A request that failed while its worker was being killed fails with the reason: the
    /// `exiting` one when the update is the worker's exit, else the one its signals so far
    /// give (see `Lifecycle::interrupted`).
    fn with_sink(
        &mut self,
        stats: &mut Stats,
        tgid: u32,
        ts_ns: u64,
        exiting: Option<RestartReason>,
        update: impl FnOnce(&mut ConnTable, &mut dyn FnMut(Output)),
    ) {
        let Self {
            conns,
            registry,
            lifecycle,
            metrics,
            request_log,
            ..
        } = self;
        let in_flight_before = conns.in_flight(tgid);
        let mut sink = |output: Output| match output {
            Output::Request(request) => match registry.worker(request.conn.tgid) {
                Some(worker) => {
                    // Only failures take a cause; successes skip the look-up.
                    let failed = matches!(
                        request.outcome,
                        Outcome::Aborted(_) | Outcome::Status(500..=599)
                    );
                    let tgid = request.conn.tgid;
                    let cause = failed
                        .then(|| exiting.or_else(|| lifecycle.interrupted(tgid, worker.master)))
                        .flatten();
                    stats.record_with_cause(&worker.app, worker.slot, &request, cause);
                    if let Some(log) = request_log {
                        let error_type = match request.outcome {
                            Outcome::Status(500..=599) => Some(ErrorType::ServerError),
                            Outcome::Status(_) => None,
                            Outcome::Aborted(reason) => Some(ErrorType::Aborted(reason)),
                        };
                        log.push(LoggedRequest {
                            app: Arc::clone(&worker.app),
                            worker_id: worker.slot,
                            request,
                            error_type: error_type
                                .map(|own| cause.map_or(own, ErrorType::Restart).as_str()),
                        });
                    }
                }
                None => metrics.unattributed.inc(),
            },
            Output::Problem(problem) if problem.is_fallback() => metrics
                .http_fallbacks
                .with_label_values(&[problem.as_str()])
                .inc(),
            Output::Problem(problem) => metrics
                .http_problems
                .with_label_values(&[problem.as_str()])
                .inc(),
        };
        update(conns, &mut sink);

        let in_flight_after = conns.in_flight(tgid);
        if in_flight_before != in_flight_after
            && let Some(worker) = registry.worker(tgid)
        {
            stats.set_in_flight(&worker.app, worker.slot, tgid, in_flight_after);
            if in_flight_after > 0 {
                stats.worker_busy(&worker.app, worker.slot, tgid, ts_ns);
            } else {
                stats.worker_idle(&worker.app, worker.slot, tgid, ts_ns);
            }
        }
    }

    /// A process replaced its image: it may be a new master (a fresh start, or a USR2
    /// re-exec forked from an old master), or a tracked worker that became something else.
    fn exec(&mut self, pid: u32) {
        let info = match discover::read_process(&self.proc_root, pid) {
            Ok(info) => info,
            // Short-lived processes are often gone before we look; that is not an error.
            Err(_) => return,
        };
        // A worker's exec into a Gunicorn master of its master's name is a USR2 upgrade.
        let forked_by = self.registry.worker(pid).map(|worker| worker.master);
        let known = self.registry.is_master(pid) || forked_by.is_some();
        let now = crate::clock::monotonic_ns();
        let Some(app) = discover::master_app(&self.proc_root, &info) else {
            if known {
                self.process_exited(pid, now, Departure::Exec);
            }
            return;
        };
        if app.config_error.is_some() {
            self.count_discovery_error("config_unreadable", 1);
        }
        if known {
            self.process_exited(pid, now, Departure::Exec);
        }
        if let Some(old) = forked_by
            && self.adopt_successor(&info, &app, old, now)
        {
            self.adopt_early_children(pid, now);
            return;
        }
        if self.adopt_master(&info, app, now) {
            info!(pid, app = %self.registry.app(pid).unwrap_or_default(), "gunicorn master started");
            self.adopt_early_children(pid, now);
        }
    }

    /// The pod container a master runs in, for its `namespace`/`pod`/`container` labels.
    fn container_of(&self, pid: u32) -> Option<discover::kube::ContainerRef> {
        match discover::kube::container_of(&self.proc_root, pid) {
            Ok(container) => container,
            Err(err) => {
                debug!(pid, error = %err, "cannot read the master's cgroup");
                self.count_discovery_error("cgroup_unreadable", 1);
                None
            }
        }
    }

    /// Registers and tracks a master found outside a scan. Returns false if it was known.
    fn adopt_master(&mut self, info: &ProcInfo, app: AppName, now_ns: u64) -> bool {
        if !self
            .registry
            .add_master(info.pid, info.start_time, app.name)
        {
            return false;
        }
        self.master_since.insert(info.pid, now_ns);
        self.lifecycle.master_started(info.pid);
        if let Some(name) = self.registry.app(info.pid) {
            let container = self.container_of(info.pid);
            let mut stats = self.lock_stats();
            stats.set_timeout(&name, app.timeout_secs);
            stats.set_container(&name, container);
        }
        self.track(info.pid, ROLE_MASTER);
        self.update_gauges();
        true
    }

    fn update_gauges(&mut self) {
        let counts = self.registry.counts();
        let (masters, workers) = (counts.masters, counts.workers);
        self.metrics
            .tracked
            .with_label_values(&["master"])
            .set(masters as i64);
        self.metrics
            .tracked
            .with_label_values(&["worker"])
            .set(workers as i64);
        self.metrics.connections.set(self.conns.len() as i64);
    }

    /// Samples memory, CPU and uptime of every known process. Runs on its own interval,
    /// never per request: a sample costs a few /proc reads per process.
    fn sample_resources(&mut self) {
        let now = Instant::now();
        let mut samples = Vec::new();
        let mut beats = Vec::new();
        for master in self.registry.masters() {
            let Some(app) = self.registry.app(master) else {
                continue;
            };
            let newest = self.registry.is_newest_master(master);
            if let Some(r) = self.sample_one(master, now) {
                samples.push((app.clone(), None, master, r, newest));
            }
            for (pid, slot) in self.registry.workers_of(master) {
                if let Some(r) = self.sample_one(pid, now) {
                    samples.push((app.clone(), Some(slot), pid, r, false));
                }
                if let Some(ts_ns) = self.heartbeat_of(pid) {
                    beats.push((app.clone(), slot, pid, ts_ns));
                }
            }
        }
        self.sampler.sweep();

        let mut stats = self.lock_stats();
        for (app, slot, pid, r, newest) in samples {
            match slot {
                Some(slot) => stats.set_worker_resources(&app, slot, pid, r),
                None => stats.set_master_resources(&app, pid, r, newest),
            }
        }
        for (app, slot, pid, ts_ns) in beats {
            stats.set_worker_heartbeat(&app, slot, pid, ts_ns);
        }
    }

    /// The kernel's record of worker `pid`'s last heartbeat; a failed map read is counted.
    fn heartbeat_of(&mut self, pid: u32) -> Option<u64> {
        match self.probes.heartbeat(pid) {
            Ok(beat) => beat,
            Err(err) => {
                debug!(pid, error = %err, "cannot read a worker's heartbeat");
                self.count_sample_error(HEARTBEAT_UNREADABLE);
                None
            }
        }
    }

    fn sample_one(&mut self, pid: u32, now: Instant) -> Option<Resources> {
        match self.sampler.sample(&self.proc_root, pid, now) {
            Ok(sample) => {
                for err in [&sample.rollup_error, &sample.fd_error]
                    .into_iter()
                    .flatten()
                {
                    self.count_sample_error(err.reason());
                }
                // Tick arithmetic leaves float noise; a millisecond is plenty.
                let millis = |seconds: f64| (seconds * 1000.0).round() / 1000.0;
                Some(Resources {
                    rss_bytes: sample.rss_bytes,
                    pss_bytes: sample.pss_bytes,
                    uss_bytes: sample.uss_bytes,
                    cpu_percent: sample.cpu_percent,
                    cpu_seconds: millis(sample.cpu_seconds_total),
                    uptime_seconds: millis(sample.uptime_seconds),
                    threads: sample.threads,
                    open_fds: sample.open_fds,
                })
            }
            Err(err) => {
                debug!(pid, error = %err, "cannot sample process resources");
                self.count_sample_error(err.reason());
                None
            }
        }
    }

    fn count_sample_error(&self, reason: &str) {
        self.metrics
            .sample_errors
            .with_label_values(&[reason])
            .inc();
    }

    fn refresh_drops(&mut self) {
        match self.probes.drop_counts() {
            Ok(totals) => self.metrics.set_kernel_drops(&totals),
            Err(err) => warn!(error = %err, "cannot read the kernel's drop counters"),
        }
    }
}

/// Timers of the main loop.
pub struct Intervals {
    pub drain: Duration,
    pub rescan: Duration,
    pub sample: Duration,
}

/// Runs until `shutdown` flips to true.
pub async fn run(
    mut pipeline: Pipeline,
    ring: RingBuf<MapData>,
    intervals: Intervals,
    mut scrapes: ScrapeRequests,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, for as long as it
    // lives, and it lives inside this AsyncFd until the loop returns.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    let mut drain = tokio::time::interval(intervals.drain);
    let mut rescan = tokio::time::interval(intervals.rescan);
    let mut sample = tokio::time::interval(intervals.sample);
    let mut quick = tokio::time::interval(QUICK_RESCAN);
    let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
    for timer in [
        &mut drain,
        &mut rescan,
        &mut quick,
        &mut sample,
        &mut housekeeping,
    ] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain_ring(&mut pipeline, guard.get_inner_mut());
                guard.clear_ready();
            }
            _ = drain.tick() => {
                drain_ring(&mut pipeline, ring.get_mut());
            }
            done = scrapes.next() => {
                drain_ring(&mut pipeline, ring.get_mut());
                scrapes.answer(done);
            }
            // A scan forgets processes missing from /proc. Their exit and last requests
            // may still sit in the ring buffer, so drain it first or those requests would
            // find no worker to belong to.
            _ = rescan.tick() => {
                drain_ring(&mut pipeline, ring.get_mut());
                pipeline.scan();
            }
            _ = quick.tick(), if pipeline.quick_rescans > 0 => {
                drain_ring(&mut pipeline, ring.get_mut());
                pipeline.quick_rescan();
            }
            _ = sample.tick() => {
                pipeline.sample_resources();
                pipeline.sample_queues();
                // What a burst of connections or a scan freed goes back to the kernel.
                crate::heap::release_free_pages();
            }
            _ = housekeeping.tick() => {
                pipeline.refresh_drops();
                pipeline.update_gauges();
            }
            _ = shutdown.changed() => {
                // Whatever the kernel already queued is still counted.
                let records = drain_ring(&mut pipeline, ring.get_mut());
                pipeline.refresh_drops();
                pipeline.finish_recording();
                if let Some(log) = &mut pipeline.request_log {
                    log.finish();
                }
                info!(records, "event loop drained");
                pipeline.probes.detach_all();
                return Ok(());
            }
        }
    }
}

/// Handles every record waiting in the ring buffer; returns how many there were.
fn drain_ring(pipeline: &mut Pipeline, ring: &mut RingBuf<MapData>) -> usize {
    let shared = Arc::clone(&pipeline.stats);
    let mut batch = Batch::new(&shared);
    let mut records = 0;
    while let Some(record) = ring.next() {
        pipeline.record(&record);
        pipeline.handle_in_batch(&record, &mut batch);
        records += 1;
    }
    records
}
