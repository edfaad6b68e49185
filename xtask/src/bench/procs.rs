//! The processes a benchmark starts (Gunicorn instances, the observer), each stopped by its
//! own pid, and what /proc says about them.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// A free loopback port, found by binding port 0. Another process could take it before we
/// use it; on a loopback-only bench that race has not mattered.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// A started child, stopped (TERM, then KILL after a grace period) when dropped.
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }

    /// Stops the process and waits for it, killing it after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.signal(libc::SIGTERM);
        let begun = Instant::now();
        while begun.elapsed() < grace {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench: {} ignored SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails if the process has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// User plus system CPU of a process so far, in seconds.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are plain numbers.
    let after = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `after` starts at field 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((utime + stime) as f64 / tick)
}

/// Resident set size of a process, in MiB.
pub fn rss_mib(pid: u32) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("empty VmRSS")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// Resident anonymous and file-backed memory of a process, in MiB (`RssAnon`, `RssFile` of
/// `/proc/<pid>/status`). The ring buffer's mapping counts as file-backed.
pub fn rss_split_mib(pid: u32) -> Result<(f64, f64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |field: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(field))
            .with_context(|| format!("no {field} line"))?;
        let value = line.split_whitespace().nth(1).context("empty field")?;
        Ok(value.parse::<f64>()?)
    };
    Ok((kib("RssAnon:")? / 1024.0, kib("RssFile:")? / 1024.0))
}

/// Resident size of a process's BPF map mappings, in MiB: the ring buffer, whose data
/// pages the kernel maps twice (so a record that wraps reads contiguously).
pub fn bpf_map_rss_mib(pid: u32) -> Result<f64> {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut in_map = false;
    let mut kib = 0.0;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_map = line.ends_with("anon_inode:bpf-map");
        } else if in_map && first == "Rss:" {
            kib += words.next().unwrap_or("0").parse::<f64>()?;
        }
    }
    Ok(kib / 1024.0)
}

/// The direct children of a process (a Gunicorn master's workers).
pub fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// One HTTP/1.0 GET to a loopback port; returns the status code and the body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no HTTP status line")?;
    Ok((status, body.to_owned()))
}

/// Polls `ready` every 20 ms until it holds, failing after `limit`.
pub fn wait_until(what: &str, limit: Duration, ready: impl FnMut() -> bool) -> Result<()> {
    wait_until_every(what, limit, Duration::from_millis(20), ready)
}

/// Polls `ready` every `every` until it holds, failing after `limit`.
pub fn wait_until_every(
    what: &str,
    limit: Duration,
    every: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let begun = Instant::now();
    while !ready() {
        if begun.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
    Ok(())
}

/// Where a benchmark's logs and scratch files go.
pub fn scratch(root: &Path) -> Result<PathBuf> {
    let dir = crate::target_dir(root).join("bench");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
