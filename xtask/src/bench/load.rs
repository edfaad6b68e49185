//! Load generators: wrk for closed-loop throughput and latency, a paced client of our own
//! for a fixed request rate (wrk2 is not packaged), and idle keep-alive connections.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// What one wrk run measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WrkResult {
    pub req_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Socket errors and non-2xx/3xx answers wrk counted.
    pub errors: u64,
}

/// `wrk -t2 -c8 -d<secs>s --latency URL`.
pub fn wrk(url: &str, secs: u32) -> Result<WrkResult> {
    let output = Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{secs}s"), "--latency", url])
        .output()
        .context("running wrk (installed by `cargo xtask bootstrap`)")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

fn parse_wrk(text: &str) -> Result<WrkResult> {
    let mut result = WrkResult::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => result.req_per_sec = rate.parse()?,
            ["50%", latency] => result.p50_us = micros(latency)?,
            ["99%", latency] => result.p99_us = micros(latency)?,
            ["Socket", "errors:", rest @ ..] => {
                for number in rest.iter().skip(1).step_by(2) {
                    result.errors += number.trim_end_matches(',').parse::<u64>()?;
                }
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                result.errors += count.parse::<u64>()?
            }
            _ => {}
        }
    }
    if result.req_per_sec == 0.0 {
        bail!("no Requests/sec in wrk's output:\n{text}");
    }
    Ok(result)
}

/// wrk's `1.23ms`, `456.00us` or `1.01s`, in microseconds.
fn micros(text: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        bail!("unknown latency unit in {text:?}");
    };
    Ok(number.parse::<f64>()? * scale)
}

/// Sends `rate` requests per second for `secs` seconds, each on its own connection (a sync
/// worker closes after every response), from a few threads each keeping its own schedule.
/// The completed rate is lower than asked when the server could not keep up.
pub fn paced(port: u16, path: &str, rate: f64, secs: f64) -> Result<Paced> {
    const THREADS: u32 = 8;
    let done = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(f64::from(THREADS) / rate);
    let total = Duration::from_secs_f64(secs);
    let begun = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let done = Arc::clone(&done);
            let path = path.to_owned();
            // Threads start spread over one interval, so the sends interleave evenly.
            let offset = interval * i / THREADS;
            std::thread::spawn(move || {
                let mut next = begun + offset;
                while next < begun + total {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    if one_request(port, &path).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    next += interval;
                }
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a paced client thread panicked"))?;
    }
    Ok(Paced {
        completed: done.load(Ordering::Relaxed),
        secs: begun.elapsed().as_secs_f64(),
    })
}

/// What a paced run completed, over how long.
pub struct Paced {
    pub completed: u64,
    pub secs: f64,
}

impl Paced {
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.secs
    }
}

fn one_request(port: u16, path: &str) -> Result<()> {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut sink = Vec::with_capacity(256);
    stream.read_to_end(&mut sink)?;
    anyhow::ensure!(sink.starts_with(b"HTTP/1.1 200"), "not a 200");
    Ok(())
}

/// Opens `count` connections to `ports` (round robin), sends one keep-alive request on each
/// and reads its answer, and keeps them open. Raises this process's open-file limit first.
pub fn keep_alive_connections(ports: &[u16], count: usize) -> Result<Vec<TcpStream>> {
    raise_nofile(count as u64 + 1024)?;
    let mut open = Vec::with_capacity(count);
    for i in 0..count {
        let port = ports[i % ports.len()];
        let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .with_context(|| format!("opening keep-alive connection {i}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
        // The app answers "hello" with a Content-Length, so the response is complete once
        // its body has arrived.
        let mut response = Vec::new();
        let mut buf = [0; 512];
        while !response.ends_with(b"hello") {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                bail!("connection {i} closed before its response");
            }
            response.extend_from_slice(&buf[..n]);
        }
        open.push(stream);
    }
    Ok(open)
}

fn raise_nofile(want: u64) -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if limit.rlim_cur >= want {
            return Ok(());
        }
        limit.rlim_cur = want.max(limit.rlim_cur);
        limit.rlim_max = limit.rlim_max.max(limit.rlim_cur);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!(
                "raising the open-file limit to {want}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_rate_percentiles_and_errors() {
        let text = "Running 2s test @ http://127.0.0.1:1/\n\
            \x20 Latency Distribution\n\
            \x20    50%    2.50ms\n\
            \x20    75%    3.00ms\n\
            \x20    99%  812.00us\n\
            \x20 Socket errors: connect 0, read 3, write 1, timeout 0\n\
            \x20 Non-2xx or 3xx responses: 2\n\
            Requests/sec:   1614.67\n";
        let result = parse_wrk(text).unwrap();
        assert_eq!(result.req_per_sec, 1614.67);
        assert_eq!(result.p50_us, 2500.0);
        assert_eq!(result.p99_us, 812.0);
        assert_eq!(result.errors, 6);
        assert_eq!(micros("1.5s").unwrap(), 1_500_000.0);
        assert!(parse_wrk("nothing").is_err());
    }
}
