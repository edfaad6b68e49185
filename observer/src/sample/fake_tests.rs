//! `Sampler` on a procfs tree written into a temporary directory, with known contents.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use super::{SampleError, Sampler};

const CLK_TCK: u64 = 100;
const PAGE: u64 = 4096;
const SECOND: Duration = Duration::from_secs(1);

/// A directory laid out like `/proc`, removed when dropped.
struct FakeProc {
    root: PathBuf,
}

impl FakeProc {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "observer-sample-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&root).unwrap();
        let fake = Self { root };
        fake.write_uptime("1000.50 1700.00\n");
        fake
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn write_uptime(&self, text: &str) {
        fs::write(self.root.join("uptime"), text).unwrap();
    }

    fn write(&self, pid: u32, file: &str, text: &str) {
        let path = self.root.join(pid.to_string()).join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A process named `comm` with the given CPU ticks, start time and resident pages.
    fn process(&self, pid: u32, comm: &str, utime: u64, stime: u64, start: u64, pages: u64) {
        self.write(pid, "stat", &stat_line(pid, comm, utime, stime, start));
        self.write(pid, "statm", &format!("9000 {pages} 700 19 0 4000 0\n"));
    }

    fn set_cpu(&self, pid: u32, utime: u64, stime: u64, start: u64) {
        self.write(
            pid,
            "stat",
            &stat_line(pid, "gunicorn", utime, stime, start),
        );
    }

    fn rollup(&self, pid: u32, pss_kib: u64, private_clean_kib: u64, private_dirty_kib: u64) {
        let text = format!(
            "55d0c0a3e000-7ffd10d56000 ---p 00000000 00:00 0   [rollup]\n\
             Rss:               99999 kB\n\
             Pss:          {pss_kib:>10} kB\n\
             Shared_Clean:       1448 kB\n\
             Shared_Dirty:          0 kB\n\
             Private_Clean:{private_clean_kib:>10} kB\n\
             Private_Dirty:{private_dirty_kib:>10} kB\n\
             Swap:                  0 kB\n"
        );
        self.write(pid, "smaps_rollup", &text);
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A `stat` line with every field present up to 52, as kernels since 3.5 write it.
fn stat_line(pid: u32, comm: &str, utime: u64, stime: u64, start: u64) -> String {
    stat_line_threads(pid, comm, utime, stime, start, 1)
}

/// The same with `threads` in field 20.
fn stat_line_threads(
    pid: u32,
    comm: &str,
    utime: u64,
    stime: u64,
    start: u64,
    threads: u64,
) -> String {
    format!(
        "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 2811 0 0 0 {utime} {stime} 0 0 20 0 {threads} 0 \
         {start} 31076352 2500 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 \
         17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
}

#[test]
fn first_sample_exact_values() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn: worker [app:app]", 120, 30, 50_000, 2_500);
    fake.rollup(42, 3_000, 100, 900);
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let s = sampler.sample(fake.root(), 42, Instant::now()).unwrap();

    assert_eq!(s.pid, 42);
    assert_eq!(s.start_time_ticks, 50_000);
    assert_eq!(s.rss_bytes, 2_500 * 4096);
    assert_eq!(s.pss_bytes, Some(3_000 * 1024));
    assert_eq!(s.uss_bytes, Some(1_000 * 1024));
    assert!(s.rollup_error.is_none());
    assert_eq!(s.cpu_seconds_total, 1.5);
    assert_eq!(s.cpu_percent, None);
    // Booted 1000.5 s ago, started 50_000 ticks = 500 s after boot.
    assert_eq!(s.uptime_seconds, 500.5);
    assert_eq!(s.threads, 1);
    // No `fd` directory: the process is taken as gone from there on, not as an error.
    assert_eq!(s.open_fds, None);
    assert!(s.fd_error.is_none());
}

#[test]
fn threads_and_open_fds() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn: worker [app:app]", 120, 30, 50_000, 2_500);
    let line = stat_line_threads(42, "gunicorn: worker [app:app]", 120, 30, 50_000, 5);
    fake.write(42, "stat", &line);
    // /proc lists one entry per descriptor, named by its number.
    for fd in [0, 1, 2, 5, 9, 10, 117] {
        fake.write(42, &format!("fd/{fd}"), "");
    }
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let s = sampler.sample(fake.root(), 42, Instant::now()).unwrap();
    assert_eq!(s.threads, 5);
    assert_eq!(s.open_fds, Some(7));
    assert!(s.fd_error.is_none());
}

#[test]
fn an_unlistable_fd_directory_keeps_the_rest_of_the_sample() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 120, 30, 50_000, 2_500);
    // A file where the directory should be: listing it fails with ENOTDIR.
    fake.write(42, "fd", "");
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let s = sampler.sample(fake.root(), 42, Instant::now()).unwrap();
    assert_eq!(s.open_fds, None);
    assert_eq!(s.rss_bytes, 2_500 * 4096);
    let err = s.fd_error.unwrap();
    assert_eq!(err.reason(), "unreadable");
    assert_eq!(
        err.to_string(),
        format!("cannot read {}/42/fd", fake.root().display())
    );
}

#[test]
fn cpu_percent_between_samples() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 120, 30, 50_000, 2_500);
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);
    let t0 = Instant::now();
    sampler.sample(fake.root(), 42, t0).unwrap();

    // 40 user + 10 system ticks in one second: half a core.
    fake.set_cpu(42, 160, 40, 50_000);
    let s = sampler.sample(fake.root(), 42, t0 + SECOND).unwrap();
    assert_eq!(s.cpu_percent, Some(50.0));
    assert_eq!(s.cpu_seconds_total, 2.0);

    // 100 ticks in 500 ms: two full cores, as a gthread worker can use.
    fake.set_cpu(42, 260, 40, 50_000);
    let s = sampler
        .sample(fake.root(), 42, t0 + SECOND + Duration::from_millis(500))
        .unwrap();
    assert_eq!(s.cpu_percent, Some(200.0));
    assert_eq!(s.cpu_seconds_total, 3.0);
}

#[test]
fn pid_reuse_resets_the_cpu_baseline() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 5_000, 1_000, 50_000, 2_500);
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);
    let t0 = Instant::now();
    sampler.sample(fake.root(), 42, t0).unwrap();

    // A new worker got pid 42: fewer ticks than the old one, a later start.
    fake.set_cpu(42, 7, 3, 90_000);
    let s = sampler.sample(fake.root(), 42, t0 + SECOND).unwrap();
    assert_eq!(s.start_time_ticks, 90_000);
    assert_eq!(s.cpu_percent, None);
    assert_eq!(s.cpu_seconds_total, 0.1);
    assert_eq!(s.uptime_seconds, 100.5);

    fake.set_cpu(42, 27, 3, 90_000);
    let s = sampler.sample(fake.root(), 42, t0 + 2 * SECOND).unwrap();
    assert_eq!(s.cpu_percent, Some(20.0));
}

#[test]
fn uptime_is_read_once_per_now() {
    let fake = FakeProc::new();
    fake.process(1, "gunicorn", 0, 0, 10_000, 10);
    fake.process(2, "gunicorn", 0, 0, 20_000, 10);
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);
    let t0 = Instant::now();

    assert_eq!(
        sampler.sample(fake.root(), 1, t0).unwrap().uptime_seconds,
        900.5
    );

    // Same round: the file is not read again, so the new contents do not show yet.
    fake.write_uptime("2000.25 0.00\n");
    assert_eq!(
        sampler.sample(fake.root(), 2, t0).unwrap().uptime_seconds,
        800.5
    );

    // Next round.
    let s = sampler.sample(fake.root(), 2, t0 + SECOND).unwrap();
    assert_eq!(s.uptime_seconds, 1800.25);
}

#[test]
fn without_smaps_rollup_pss_and_uss_are_none() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 1, 1, 50_000, 2_500);
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let s = sampler.sample(fake.root(), 42, Instant::now()).unwrap();
    assert_eq!((s.pss_bytes, s.uss_bytes), (None, None));
    assert!(s.rollup_error.is_none());
    assert_eq!(s.rss_bytes, 2_500 * 4096);
}

#[test]
fn malformed_smaps_rollup_keeps_the_rest_of_the_sample() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 1, 1, 50_000, 2_500);
    fake.write(42, "smaps_rollup", "Pss: 10 kB\nPrivate_Clean: 1 kB\n");
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let s = sampler.sample(fake.root(), 42, Instant::now()).unwrap();
    assert_eq!((s.pss_bytes, s.uss_bytes), (None, None));
    assert_eq!(s.rss_bytes, 2_500 * 4096);
    let err = s.rollup_error.unwrap();
    assert_eq!(err.reason(), "malformed");
    assert_eq!(
        err.to_string(),
        "malformed smaps_rollup while sampling process 42: no Private_Dirty line"
    );
}

#[test]
fn unreadable_smaps_rollup_is_reported() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 1, 1, 50_000, 2_500);
    // A directory where the file should be: open succeeds, read fails with EISDIR (root
    // ignores file modes, so a mode of 000 would not make it unreadable).
    fs::create_dir(fake.root().join("42/smaps_rollup")).unwrap();
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let s = sampler.sample(fake.root(), 42, Instant::now()).unwrap();
    assert_eq!(s.pss_bytes, None);
    let err = s.rollup_error.unwrap();
    assert_eq!(err.reason(), "unreadable");
    assert_eq!(
        err.to_string(),
        format!("cannot read {}/42/smaps_rollup", fake.root().display())
    );
}

#[test]
fn missing_process_is_gone_and_forgotten() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 1, 1, 50_000, 2_500);
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);
    let t0 = Instant::now();
    sampler.sample(fake.root(), 42, t0).unwrap();
    assert_eq!(sampler.tracked(), 1);

    fs::remove_dir_all(fake.root().join("42")).unwrap();
    let err = sampler.sample(fake.root(), 42, t0 + SECOND).unwrap_err();
    assert!(matches!(err, SampleError::Gone { pid: 42 }));
    assert_eq!(err.reason(), "gone");
    assert_eq!(sampler.tracked(), 0);
}

#[test]
fn statm_vanishing_after_stat_is_gone() {
    let fake = FakeProc::new();
    fake.write(42, "stat", &stat_line(42, "gunicorn", 1, 1, 50_000));
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let err = sampler.sample(fake.root(), 42, Instant::now()).unwrap_err();
    assert!(matches!(err, SampleError::Gone { pid: 42 }));
}

#[test]
fn malformed_stat() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 1, 1, 50_000, 2_500);
    fake.write(
        42,
        "stat",
        "42 (gunicorn) S 1 42 42 0 -1 4194560 2811 0 0 0 1 1\n",
    );
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let err = sampler.sample(fake.root(), 42, Instant::now()).unwrap_err();
    assert_eq!(err.reason(), "malformed");
    assert_eq!(
        err.to_string(),
        "malformed stat while sampling process 42: too few fields"
    );
    assert_eq!(sampler.tracked(), 0);
}

#[test]
fn malformed_statm() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 1, 1, 50_000, 2_500);
    fake.write(42, "statm", "9000 many\n");
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let err = sampler.sample(fake.root(), 42, Instant::now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed statm while sampling process 42: resident pages is not a number"
    );
}

#[test]
fn malformed_uptime() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 1, 1, 50_000, 2_500);
    fake.write_uptime("soon\n");
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let err = sampler.sample(fake.root(), 42, Instant::now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed uptime while sampling process 42: uptime is not a number"
    );
}

#[test]
fn missing_uptime_is_unreadable_not_gone() {
    let fake = FakeProc::new();
    fake.process(42, "gunicorn", 1, 1, 50_000, 2_500);
    fs::remove_file(fake.root().join("uptime")).unwrap();
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let err = sampler.sample(fake.root(), 42, Instant::now()).unwrap_err();
    assert_eq!(err.reason(), "unreadable");
    assert_eq!(
        err.to_string(),
        format!("cannot read {}/uptime", fake.root().display())
    );
}

#[test]
fn unreadable_stat() {
    let fake = FakeProc::new();
    fs::create_dir_all(fake.root().join("42/stat")).unwrap();
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);

    let err = sampler.sample(fake.root(), 42, Instant::now()).unwrap_err();
    assert_eq!(err.reason(), "unreadable");
    let SampleError::Unreadable { path, source } = err else {
        panic!("expected Unreadable, got {err:?}");
    };
    assert_eq!(path, fake.root().join("42/stat"));
    assert_eq!(source.raw_os_error(), Some(libc::EISDIR));
}

#[test]
fn sweep_drops_pids_not_sampled_since_the_last_sweep() {
    let fake = FakeProc::new();
    fake.process(1, "gunicorn", 0, 0, 10_000, 10);
    fake.process(2, "gunicorn", 0, 0, 20_000, 10);
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);
    let t0 = Instant::now();

    sampler.sample(fake.root(), 1, t0).unwrap();
    sampler.sample(fake.root(), 2, t0).unwrap();
    assert_eq!(sampler.sweep(), 0);

    fake.set_cpu(2, 10, 0, 20_000);
    sampler.sample(fake.root(), 2, t0 + SECOND).unwrap();
    assert_eq!(sampler.sweep(), 1);
    assert_eq!(sampler.tracked(), 1);

    // Pid 2 kept its baseline, pid 1 starts over.
    fake.set_cpu(2, 30, 0, 20_000);
    let two = sampler.sample(fake.root(), 2, t0 + 2 * SECOND).unwrap();
    assert_eq!(two.cpu_percent, Some(20.0));
    let one = sampler.sample(fake.root(), 1, t0 + 2 * SECOND).unwrap();
    assert_eq!(one.cpu_percent, None);
}

#[test]
fn forget_drops_one_pid() {
    let fake = FakeProc::new();
    fake.process(1, "gunicorn", 0, 0, 10_000, 10);
    let mut sampler = Sampler::with_units(CLK_TCK, PAGE);
    let t0 = Instant::now();
    sampler.sample(fake.root(), 1, t0).unwrap();

    sampler.forget(1);
    assert_eq!(sampler.tracked(), 0);
    fake.set_cpu(1, 100, 0, 10_000);
    let s = sampler.sample(fake.root(), 1, t0 + SECOND).unwrap();
    assert_eq!(s.cpu_percent, None);
}
