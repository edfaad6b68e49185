//! Per-process resource samples from procfs: memory, CPU, threads, open fds and age of
//! Gunicorn processes.
//!
//! Sampling is meant for a bounded interval or a scrape, never per request. Each sample reads
//! four files and lists one directory: `stat` (CPU times, threads, start time), `statm`
//! (RSS), `smaps_rollup` (PSS and USS, the only one that costs a page-table walk), the `fd`
//! directory (open descriptors) and `/proc/uptime`, the last once per distinct `now` so a
//! round over every worker reads it once.

mod cpu;
mod error;
mod fds;
mod memory;
mod read;
mod stat;
mod uptime;

#[cfg(test)]
mod fake_tests;
#[cfg(test)]
mod live_tests;

use std::{
    io,
    path::{Path, PathBuf},
    time::Instant,
};

pub use error::{SampleError, SysconfError};

use cpu::CpuTracker;
use read::{FileReader, Outcome};

/// One reading of one process.
#[derive(Debug)]
pub struct ProcSample {
    pub pid: u32,
    /// Start time in clock ticks since boot; with the pid it names one process, since pids
    /// are reused.
    pub start_time_ticks: u64,
    /// Resident set size, shared pages counted in full.
    pub rss_bytes: u64,
    /// Proportional set size; `None` when `smaps_rollup` is absent (kernels before 4.14),
    /// the process has no address space left, or the file failed (see `rollup_error`).
    pub pss_bytes: Option<u64>,
    /// Unique set size: private clean + private dirty; `None` exactly when `pss_bytes` is.
    pub uss_bytes: Option<u64>,
    /// Why `smaps_rollup` could not be used although it exists, for a failure counter. RSS
    /// and CPU are still good, so this does not fail the whole sample.
    pub rollup_error: Option<SampleError>,
    /// User + system time of all the process's threads, a counter for the process's life.
    /// Children's time is not included.
    pub cpu_seconds_total: f64,
    /// CPU used since the previous sample of the same process, 100 being one full core;
    /// `None` on the first sample and after the pid was reused.
    pub cpu_percent: Option<f64>,
    /// Seconds since the process started.
    pub uptime_seconds: f64,
    /// Threads of the process, the main one included.
    pub threads: u64,
    /// Open file descriptors; `None` when the `fd` directory could not be listed (see
    /// `fd_error`) or the process exited meanwhile.
    pub open_fds: Option<u64>,
    /// Why the `fd` directory could not be listed, for a failure counter; the rest of the
    /// sample is still good.
    pub fd_error: Option<SampleError>,
}

/// Samples processes and remembers what a CPU rate needs between samples.
#[derive(Debug)]
pub struct Sampler {
    clk_tck: u64,
    page_size: u64,
    reader: FileReader,
    cpu: CpuTracker,
    boot_uptime: Option<BootUptime>,
}

/// `/proc/uptime` as read for one `now`, reused by the other samples of the same round.
#[derive(Debug)]
struct BootUptime {
    proc_root: PathBuf,
    now: Instant,
    seconds: f64,
}

impl Sampler {
    /// A sampler using this machine's clock tick rate and page size.
    pub fn new() -> Result<Self, SysconfError> {
        Ok(Self::with_units(
            sysconf(libc::_SC_CLK_TCK, "_SC_CLK_TCK")?,
            sysconf(libc::_SC_PAGESIZE, "_SC_PAGESIZE")?,
        ))
    }

    /// A sampler with given units, for reading a procfs tree written by someone else.
    pub fn with_units(clk_tck: u64, page_size: u64) -> Self {
        Self {
            clk_tck,
            page_size,
            reader: FileReader::default(),
            cpu: CpuTracker::new(clk_tck),
            boot_uptime: None,
        }
    }

    /// Clock ticks per second that `stat` times are expressed in.
    pub fn clk_tck(&self) -> u64 {
        self.clk_tck
    }

    /// Bytes per page that `statm` sizes are expressed in.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Samples `<proc_root>/<pid>` as of `now`.
    ///
    /// Pass the same `now` for every pid of one round: `/proc/uptime` is then read once, and
    /// all the samples share one clock. A pid found gone is forgotten.
    pub fn sample(
        &mut self,
        proc_root: &Path,
        pid: u32,
        now: Instant,
    ) -> Result<ProcSample, SampleError> {
        let result = self.read_process(proc_root, pid, now);
        if let Err(SampleError::Gone { .. }) = result {
            self.cpu.forget(pid);
        }
        result
    }

    /// Drops the CPU baseline of `pid`, e.g. when it exits.
    pub fn forget(&mut self, pid: u32) {
        self.cpu.forget(pid);
    }

    /// Drops the state of every pid not sampled since the previous sweep, and returns how
    /// many were dropped. Called after each round, it bounds memory to one round's pids.
    pub fn sweep(&mut self) -> usize {
        self.cpu.sweep()
    }

    /// How many pids have a CPU baseline kept.
    pub fn tracked(&self) -> usize {
        self.cpu.len()
    }

    fn read_process(
        &mut self,
        proc_root: &Path,
        pid: u32,
        now: Instant,
    ) -> Result<ProcSample, SampleError> {
        let stat = match self.reader.read(proc_root, Some(pid), "stat")? {
            Outcome::Read(bytes) => stat::parse(bytes).map_err(malformed(pid, "stat"))?,
            Outcome::Missing => return Err(SampleError::Gone { pid }),
        };

        let rss_bytes = match self.reader.read(proc_root, Some(pid), "statm")? {
            Outcome::Read(bytes) => {
                memory::parse_statm_rss(bytes, self.page_size).map_err(malformed(pid, "statm"))?
            }
            Outcome::Missing => return Err(SampleError::Gone { pid }),
        };

        let (rollup, rollup_error) = match self.read_rollup(proc_root, pid) {
            Ok(rollup) => (rollup, None),
            Err(e) => (None, Some(e)),
        };

        let (open_fds, fd_error) = match fds::count(proc_root, pid) {
            Ok(open) => (open, None),
            Err(e) => (None, Some(e)),
        };

        let boot_uptime = self.boot_uptime(proc_root, pid, now)?;
        let cpu_ticks = stat.utime + stat.stime;
        Ok(ProcSample {
            pid,
            start_time_ticks: stat.starttime,
            rss_bytes,
            pss_bytes: rollup.map(|r| r.pss_bytes),
            uss_bytes: rollup.map(|r| r.uss_bytes),
            rollup_error,
            cpu_seconds_total: cpu_ticks as f64 / self.clk_tck as f64,
            cpu_percent: self.cpu.observe(pid, stat.starttime, cpu_ticks, now),
            uptime_seconds: uptime::age_seconds(boot_uptime, stat.starttime, self.clk_tck),
            threads: stat.num_threads,
            open_fds,
            fd_error,
        })
    }

    /// `Ok(None)` when the kernel has no such file or the process no address space.
    fn read_rollup(
        &mut self,
        proc_root: &Path,
        pid: u32,
    ) -> Result<Option<memory::Rollup>, SampleError> {
        match self.reader.read(proc_root, Some(pid), "smaps_rollup")? {
            Outcome::Read(bytes) => memory::parse_smaps_rollup(bytes)
                .map(Some)
                .map_err(malformed(pid, "smaps_rollup")),
            Outcome::Missing => Ok(None),
        }
    }

    fn boot_uptime(
        &mut self,
        proc_root: &Path,
        pid: u32,
        now: Instant,
    ) -> Result<f64, SampleError> {
        if let Some(cached) = &self.boot_uptime
            && cached.now == now
            && cached.proc_root == proc_root
        {
            return Ok(cached.seconds);
        }

        let seconds = match self.reader.read(proc_root, None, "uptime")? {
            Outcome::Read(bytes) => uptime::parse(bytes).map_err(malformed(pid, "uptime"))?,
            // Unlike a pid's files, the system-wide file missing means a wrong proc root.
            Outcome::Missing => {
                return Err(SampleError::Unreadable {
                    path: proc_root.join("uptime"),
                    source: io::ErrorKind::NotFound.into(),
                });
            }
        };
        match &mut self.boot_uptime {
            Some(cached) if cached.proc_root == proc_root => {
                cached.now = now;
                cached.seconds = seconds;
            }
            _ => {
                self.boot_uptime = Some(BootUptime {
                    proc_root: proc_root.to_path_buf(),
                    now,
                    seconds,
                })
            }
        }
        Ok(seconds)
    }
}

fn malformed(pid: u32, file: &'static str) -> impl FnOnce(&'static str) -> SampleError {
    move |problem| SampleError::Malformed { pid, file, problem }
}

fn sysconf(name: libc::c_int, label: &'static str) -> Result<u64, SysconfError> {
    // SAFETY: sysconf only reads a configuration value; any name is allowed, and an unknown
    // one returns -1.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or(SysconfError { name: label, value })
}
