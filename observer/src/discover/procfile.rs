//! Reading and parsing the per-process files under `/proc`. Processes exit between any two
//! reads, so a missing process is its own error kind that scans count and move past.

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

/// Why one process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The process exited while it was being read.
    #[error("process {pid} exited while being read")]
    Gone { pid: u32 },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed {path}: {reason}")]
    Malformed { path: PathBuf, reason: &'static str },
    /// The proc filesystem itself cannot be listed.
    #[error("cannot list {path}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The fields discovery needs from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// Field 22, `starttime`: clock ticks after boot. With the pid it names one process for
    /// good, since a reused pid gets a later start time.
    pub start_time: u64,
}

/// The environment variables discovery reads. setproctitle overwrites the environment area
/// with its title, so under it these are all empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcEnv {
    /// `GUNICORN_PID`: set by a master for the new master it execs on `USR2`.
    pub gunicorn_pid: Option<u32>,
    /// `GUNICORN_CMD_ARGS`: extra arguments Gunicorn parses after its config file.
    pub cmd_args: Option<String>,
    /// `PWD`: the launch directory, which `--chdir` hides from `/proc/<pid>/cwd`.
    pub pwd: Option<String>,
}

/// The largest environment or config file read; both are normally a few KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

pub fn read_stat(proc_root: &Path, pid: u32) -> Result<Stat, ScanError> {
    let path = proc_root.join(pid.to_string()).join("stat");
    let bytes = read_capped(&path, pid)?;
    parse_stat(&bytes).map_err(|reason| ScanError::Malformed { path, reason })
}

/// The argument list. Trailing NULs (setproctitle's padding) are dropped; empty arguments
/// in the middle are kept, since they shift positions.
pub fn read_cmdline(proc_root: &Path, pid: u32) -> Result<Vec<String>, ScanError> {
    let path = proc_root.join(pid.to_string()).join("cmdline");
    let bytes = read_capped(&path, pid)?;
    Ok(split_nul(&bytes))
}

pub fn read_env(proc_root: &Path, pid: u32) -> Result<ProcEnv, ScanError> {
    let path = proc_root.join(pid.to_string()).join("environ");
    let bytes = read_capped(&path, pid)?;

    let mut env = ProcEnv::default();
    for var in split_nul(&bytes) {
        let Some((key, value)) = var.split_once('=') else {
            continue;
        };
        match key {
            "GUNICORN_PID" => env.gunicorn_pid = value.parse().ok(),
            "GUNICORN_CMD_ARGS" => env.cmd_args = Some(value.to_owned()),
            "PWD" => env.pwd = Some(value.to_owned()),
            _ => {}
        }
    }
    Ok(env)
}

/// Parses `pid (comm) state ppid ... starttime ...`. `comm` is chosen by the process and
/// may hold spaces and parentheses, so the fields start after the last `)`.
pub fn parse_stat(bytes: &[u8]) -> Result<Stat, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 after comm")?;
    let close = text.rfind(')').ok_or("no closing parenthesis after comm")?;
    let fields: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();

    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let ppid = fields.get(1).ok_or("too few fields")?;
    let start_time = fields.get(19).ok_or("too few fields")?;
    Ok(Stat {
        ppid: ppid.parse().map_err(|_| "ppid is not a number")?,
        start_time: start_time
            .parse()
            .map_err(|_| "starttime is not a number")?,
    })
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    if end == 0 {
        return Vec::new();
    }
    bytes[..end]
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

fn read_capped(path: &Path, pid: u32) -> Result<Vec<u8>, ScanError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(|source| classify_io(path, pid, source))?;
    Ok(bytes)
}

/// `ENOENT` on open and `ESRCH` on read both mean the process is gone.
fn classify_io(path: &Path, pid: u32, source: io::Error) -> ScanError {
    if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(libc::ESRCH) {
        return ScanError::Gone { pid };
    }
    ScanError::Read {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A master's line under setproctitle: the kernel cuts comm to 15 bytes.
    const SPT_MASTER: &[u8] =
        b"10898 (gunicorn: maste) S 1 10893 10893 0 -1 4194560 9161 0 0 0 40 9 0 0 20 0 2 0 \
          5183042 40767488 6207 18446744073709551615 1 1 0 0 0 0 0 16781312 16390 0 0 0 17 1 \
          0 0 0 0 0";

    #[test]
    fn stat_fields() {
        let stat = parse_stat(SPT_MASTER).unwrap();
        assert_eq!(
            stat,
            Stat {
                ppid: 1,
                start_time: 5183042
            }
        );
    }

    #[test]
    fn stat_comm_with_spaces_and_parens() {
        let line = b"77 (a) b (c)) R 12 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0";
        assert_eq!(
            parse_stat(line).unwrap(),
            Stat {
                ppid: 12,
                start_time: 999
            }
        );
    }

    #[test]
    fn stat_errors() {
        assert_eq!(
            parse_stat(b"77 (x R 1"),
            Err("no closing parenthesis after comm")
        );
        assert_eq!(parse_stat(b"77 (x) R 1 2"), Err("too few fields"));
        let line = b"77 (x) R p 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999";
        assert_eq!(parse_stat(line), Err("ppid is not a number"));
    }

    #[test]
    fn nul_splitting() {
        assert_eq!(
            split_nul(b"gunicorn\0-w\0\0app:app\0"),
            ["gunicorn", "-w", "", "app:app"]
        );
        assert_eq!(
            split_nul(b"gunicorn: master [a]\0\0\0\0"),
            ["gunicorn: master [a]"]
        );
        assert_eq!(split_nul(b""), Vec::<String>::new());
        assert_eq!(split_nul(b"\0\0"), Vec::<String>::new());
    }
}
