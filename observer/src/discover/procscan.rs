//! Finding every Gunicorn master and worker under a proc filesystem.
//!
//! A Gunicorn process whose parent is not Gunicorn is a master; a child of a master is its
//! worker, since workers are plain forks carrying the master's command line. Deeper
//! descendants (dirty workers, processes forked by the app) are neither.

use std::collections::BTreeMap;
use std::path::Path;

use super::appname::{self, AppName};
use super::cmdline::{self, MasterCmd, RoleHint};
use super::procfile::{self, ProcEnv, ScanError};

/// One process as read from `/proc/<pid>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// `starttime` from `/proc/<pid>/stat`, in clock ticks after boot.
    pub start_time: u64,
    pub argv: Vec<String>,
    /// `Some` when the command line is a Gunicorn server's.
    pub cmd: Option<MasterCmd>,
    /// Read only for Gunicorn processes; `None` otherwise or when unreadable.
    pub env: Option<ProcEnv>,
}

/// One Gunicorn instance: its master and the workers found under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundInstance {
    pub master: ProcInfo,
    pub app: AppName,
    /// Oldest first, so a fresh registry gives the oldest worker slot 0.
    pub workers: Vec<ProcInfo>,
}

/// What one pass over the proc filesystem saw, besides the instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Numeric entries examined.
    pub processes: u64,
    /// Processes that exited while being read.
    pub gone: u64,
    /// Per-process files that could not be read for another reason (e.g. permissions).
    pub unreadable: u64,
    /// `stat` files that did not parse.
    pub malformed: u64,
    /// Gunicorn processes whose environment could not be read.
    pub env_unreadable: u64,
    /// Config files named on a command line that could not be read.
    pub config_unreadable: u64,
    /// Gunicorn processes below a worker, left alone.
    pub nested: u64,
    /// `gunicorn: worker` titles whose master is gone.
    pub orphan_workers: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Oldest master first, so a fresh registry gives duplicate names to the newer ones.
    pub instances: Vec<FoundInstance>,
    pub stats: ScanStats,
}

impl ScanResult {
    pub fn instance(&self, master: u32) -> Option<&FoundInstance> {
        self.instances
            .iter()
            .find(|found| found.master.pid == master)
    }
}

/// Scans `proc_root` (normally `/proc`). Only failing to list the directory is an error;
/// every per-process failure is counted in the stats and skipped.
pub fn scan(proc_root: &Path) -> Result<ScanResult, ScanError> {
    let list_error = |source| ScanError::List {
        path: proc_root.to_owned(),
        source,
    };
    let entries = std::fs::read_dir(proc_root).map_err(list_error)?;

    let mut stats = ScanStats::default();
    let mut procs = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(list_error)?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        stats.processes += 1;

        match read_if_gunicorn(proc_root, pid) {
            Ok(Some(info)) => {
                stats.env_unreadable += u64::from(info.env.is_none());
                procs.insert(pid, info);
            }
            Ok(None) => {}
            Err(err) => count_error(&mut stats, &err),
        }
    }

    let instances = group(proc_root, procs, &mut stats);
    Ok(ScanResult { instances, stats })
}

/// Reads one process: its command line and `stat`, and for a Gunicorn server its
/// environment (left `None` when unreadable).
pub fn read_process(proc_root: &Path, pid: u32) -> Result<ProcInfo, ScanError> {
    let argv = procfile::read_cmdline(proc_root, pid)?;
    let cmd = classify(&argv);
    complete(proc_root, pid, argv, cmd)
}

/// Like [`read_process`], but stops after the command line of anything not Gunicorn, which
/// is nearly every process a scan meets.
fn read_if_gunicorn(proc_root: &Path, pid: u32) -> Result<Option<ProcInfo>, ScanError> {
    let argv = procfile::read_cmdline(proc_root, pid)?;
    match classify(&argv) {
        Some(cmd) => complete(proc_root, pid, argv, Some(cmd)).map(Some),
        None => Ok(None),
    }
}

fn classify(argv: &[String]) -> Option<MasterCmd> {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    cmdline::classify(&args)
}

fn complete(
    proc_root: &Path,
    pid: u32,
    argv: Vec<String>,
    cmd: Option<MasterCmd>,
) -> Result<ProcInfo, ScanError> {
    let stat = procfile::read_stat(proc_root, pid)?;
    let env = match cmd {
        Some(_) => procfile::read_env(proc_root, pid).ok(),
        None => None,
    };
    Ok(ProcInfo {
        pid,
        ppid: stat.ppid,
        start_time: stat.start_time,
        argv,
        cmd,
        env,
    })
}

/// The app name of a master read with [`read_process`], e.g. after an exec event. `None`
/// when the process is not a Gunicorn server.
pub fn master_app(proc_root: &Path, info: &ProcInfo) -> Option<AppName> {
    let cmd = info.cmd.as_ref()?;
    Some(appname::resolve(
        proc_root,
        info.pid,
        cmd,
        info.env.as_ref(),
    ))
}

fn count_error(stats: &mut ScanStats, err: &ScanError) {
    match err {
        ScanError::Gone { .. } => stats.gone += 1,
        ScanError::Malformed { .. } => stats.malformed += 1,
        ScanError::Read { .. } | ScanError::List { .. } => stats.unreadable += 1,
    }
    tracing::debug!(error = %err, "process skipped during scan");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Master,
    Worker { master: u32 },
    Nested,
    OrphanWorker,
}

/// A process chain longer than this is treated as nested rather than followed further.
const MAX_DEPTH: usize = 64;

fn group(
    proc_root: &Path,
    mut procs: BTreeMap<u32, ProcInfo>,
    stats: &mut ScanStats,
) -> Vec<FoundInstance> {
    let mut roles = BTreeMap::new();
    for &pid in procs.keys() {
        role_of(&procs, pid, &mut roles, 0);
    }

    let mut instances = BTreeMap::new();
    let mut workers = Vec::new();
    for (pid, role) in roles {
        match role {
            Role::Master => {
                let master = procs.remove(&pid).expect("roles come from procs");
                let Some(cmd) = master.cmd.as_ref() else {
                    unreachable!("only gunicorn processes are kept");
                };
                let app = appname::resolve(proc_root, pid, cmd, master.env.as_ref());
                if let Some(problem) = &app.config_error {
                    stats.config_unreadable += 1;
                    tracing::debug!(pid, error = %problem, "gunicorn config file not read");
                }
                let workers = Vec::new();
                instances.insert(
                    pid,
                    FoundInstance {
                        master,
                        app,
                        workers,
                    },
                );
            }
            Role::Worker { master } => workers.push((master, pid)),
            Role::Nested => stats.nested += 1,
            Role::OrphanWorker => stats.orphan_workers += 1,
        }
    }

    for (master, pid) in workers {
        let worker = procs.remove(&pid).expect("roles come from procs");
        if let Some(instance) = instances.get_mut(&master) {
            instance.workers.push(worker);
        }
    }

    let mut instances: Vec<FoundInstance> = instances.into_values().collect();
    for instance in &mut instances {
        instance.workers.sort_by_key(|w| (w.start_time, w.pid));
    }
    instances.sort_by_key(|i| (i.master.start_time, i.master.pid));
    instances
}

fn role_of(
    procs: &BTreeMap<u32, ProcInfo>,
    pid: u32,
    roles: &mut BTreeMap<u32, Role>,
    depth: usize,
) -> Role {
    if let Some(&role) = roles.get(&pid) {
        return role;
    }
    let info = &procs[&pid];
    let hint = info.cmd.as_ref().map(|cmd| cmd.role);
    let parent = procs.get(&info.ppid).filter(|parent| parent.pid != pid);

    let role = match parent {
        None if hint == Some(RoleHint::Worker) => Role::OrphanWorker,
        None => Role::Master,
        Some(_) if depth >= MAX_DEPTH => Role::Nested,
        Some(parent) => match role_of(procs, parent.pid, roles, depth + 1) {
            Role::Master if is_reexec(info, parent) => Role::Master,
            Role::Master => Role::Worker { master: parent.pid },
            Role::Worker { .. } | Role::Nested | Role::OrphanWorker => Role::Nested,
        },
    };
    roles.insert(pid, role);
    role
}

/// A master's child that is a new master: on `USR2` Gunicorn forks and execs itself with
/// `GUNICORN_PID` set to the old master. Under setproctitle the environment is overwritten,
/// but the new master's title differs (`name.2`), while a worker that has not renamed itself
/// yet still carries its parent's title.
fn is_reexec(child: &ProcInfo, parent: &ProcInfo) -> bool {
    let env_says = child.env.as_ref().and_then(|env| env.gunicorn_pid) == Some(parent.pid);
    let hint = child.cmd.as_ref().map(|cmd| cmd.role);
    let title_says = hint == Some(RoleHint::Master) && child.argv != parent.argv;
    env_says || title_says
}
