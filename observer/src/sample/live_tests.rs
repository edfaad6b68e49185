//! `Sampler` on the real `/proc`, with processes this test starts itself.

use std::{
    fs,
    path::Path,
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use super::{SampleError, Sampler};

const MIB: u64 = 1024 * 1024;

fn proc_root() -> &'static Path {
    Path::new("/proc")
}

/// Kills and reaps a child this test started, whatever the test's outcome.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The state letter of `/proc/<pid>/stat`, read independently of the sampler.
fn state(pid: u32) -> u8 {
    let stat = fs::read(format!("/proc/{pid}/stat")).unwrap();
    let close = stat.iter().rposition(|&b| b == b')').unwrap();
    stat[close + 2]
}

#[test]
fn own_rss_matches_statm() {
    let mut sampler = Sampler::new().unwrap();
    let pid = std::process::id();

    // Other tests run on other threads of this process and map and unmap memory (thread
    // stacks, spawned children), so RSS can move between any two reads, even away and back.
    // A sample counts only when the statm reads just before and just after agree with it; a
    // wrong field or page size would never agree.
    let mut last = String::new();
    for _ in 0..100 {
        let before = fs::read_to_string("/proc/self/statm").unwrap();
        let sample = sampler.sample(proc_root(), pid, Instant::now()).unwrap();
        let after = fs::read_to_string("/proc/self/statm").unwrap();

        let pages: u64 = before.split_whitespace().nth(1).unwrap().parse().unwrap();
        if before != after || sample.rss_bytes != pages * sampler.page_size() {
            last = format!(
                "before {before:?} sample {} after {after:?}",
                sample.rss_bytes
            );
            continue;
        }
        assert!(sample.rss_bytes > MIB, "rss {}", sample.rss_bytes);

        // smaps_rollup exists on this kernel and is readable by the process itself.
        let (pss, uss) = (sample.pss_bytes.unwrap(), sample.uss_bytes.unwrap());
        assert!(0 < uss && uss <= pss, "uss {uss} pss {pss}");
        assert!(sample.rollup_error.is_none());
        return;
    }
    panic!("no sample agreed with statm read around it in 100 tries; last: {last}");
}

#[test]
fn busy_loop_cpu_rate_is_its_ticks_over_the_window() {
    let child = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let spawned = Instant::now();
    let child = Reaped(child);
    let pid = child.0.id();
    let mut sampler = Sampler::new().unwrap();

    let t0 = Instant::now();
    let first = sampler.sample(proc_root(), pid, t0).unwrap();
    assert_eq!(first.cpu_percent, None);
    thread::sleep(Duration::from_millis(500));
    let t1 = Instant::now();
    let second = sampler.sample(proc_root(), pid, t1).unwrap();

    // How much of a core the loop gets depends on the machine's load, so the check is the
    // rate's definition: the CPU time the kernel counted between the two reads, over the
    // wall time between the instants the samples were given.
    let used = second.cpu_seconds_total - first.cpu_seconds_total;
    assert!(used > 0.0, "the loop ran: {used} s");
    let cpu = second.cpu_percent.unwrap();
    let expected = used / (t1 - t0).as_secs_f64() * 100.0;
    assert!(
        (cpu - expected).abs() < 1e-6,
        "cpu {cpu}% expected {expected}%"
    );
    assert_eq!(second.start_time_ticks, first.start_time_ticks);
    assert!(second.rss_bytes > MIB, "rss {}", second.rss_bytes);

    // Its age agrees with our own clock, within the 10 ms resolution of /proc/uptime and
    // one tick of start time, plus the time between spawn() returning and the exec.
    let age = spawned.elapsed().as_secs_f64();
    let uptime = second.uptime_seconds;
    assert!(
        uptime > age - 0.1 && uptime < age + 0.03,
        "uptime {uptime} age {age}"
    );
}

#[test]
fn zombie_then_reaped() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let mut sampler = Sampler::new().unwrap();

    // Not yet waited for: a zombie, whose address space is gone but whose stat is not.
    let deadline = Instant::now() + Duration::from_secs(5);
    while state(pid) != b'Z' {
        assert!(Instant::now() < deadline, "pid {pid} never became a zombie");
        thread::sleep(Duration::from_millis(5));
    }
    let zombie = sampler.sample(proc_root(), pid, Instant::now()).unwrap();
    assert_eq!(zombie.rss_bytes, 0);
    assert_eq!(zombie.pss_bytes, None);
    assert!(zombie.rollup_error.is_none());
    assert_eq!(sampler.tracked(), 1);

    child.wait().unwrap();
    let err = sampler
        .sample(proc_root(), pid, Instant::now())
        .unwrap_err();
    assert!(
        matches!(err, SampleError::Gone { pid: p } if p == pid),
        "{err:?}"
    );
    assert_eq!(sampler.tracked(), 0);
}
