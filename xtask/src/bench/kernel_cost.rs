//! The kernel programs' own run time, counted by the kernel: `kernel.bpf_stats_enabled=1`
//! makes it add up `run_cnt` and `run_time_ns` per program, which the observer's program fds
//! show in `/proc/<pid>/fdinfo`. Unlike throughput ratios on a shared machine, these numbers
//! do not move with the neighbours' load.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns the kernel's per-program statistics on, and back to what they were when dropped.
pub struct StatsEnabled {
    before: String,
}

impl StatsEnabled {
    pub fn enable() -> Result<Self> {
        let before =
            std::fs::read_to_string(SYSCTL).with_context(|| format!("reading {SYSCTL}"))?;
        std::fs::write(SYSCTL, "1").with_context(|| format!("writing 1 to {SYSCTL}"))?;
        Ok(Self {
            before: before.trim().to_string(),
        })
    }
}

impl Drop for StatsEnabled {
    fn drop(&mut self) {
        if let Err(err) = std::fs::write(SYSCTL, &self.before) {
            eprintln!(
                "bench: could not restore {SYSCTL} to {}: {err}",
                self.before
            );
        }
    }
}

/// One program's counters at a moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub runs: u64,
    pub ns: u64,
}

/// Every program the process holds open, by program id.
pub fn programs_of(pid: u32) -> Result<BTreeMap<u32, Counters>> {
    let dir = Path::new("/proc").join(pid.to_string()).join("fdinfo");
    let mut programs = BTreeMap::new();
    let entries = std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries.flatten() {
        // An fd closed since the listing is simply not a program any more.
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some((id, counters)) = parse_fdinfo(&text) {
            programs.insert(id, counters);
        }
    }
    Ok(programs)
}

/// `prog_id`, `run_cnt` and `run_time_ns` of a BPF program's fdinfo; `None` for other fds.
/// A link's or perf event's fdinfo names its program too, but without the counters, so
/// only an fdinfo with the counters is the program's.
fn parse_fdinfo(text: &str) -> Option<(u32, Counters)> {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let id = u32::try_from(value("prog_id")?).ok()?;
    Some((
        id,
        Counters {
            runs: value("run_cnt")?,
            ns: value("run_time_ns")?,
        },
    ))
}

/// Program names by id, from `bpftool prog show`; empty if bpftool is missing.
pub fn names() -> BTreeMap<u32, String> {
    let Ok(output) = std::process::Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
    else {
        return BTreeMap::new();
    };
    let Ok(list) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
        return BTreeMap::new();
    };
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|prog| {
            let id = u32::try_from(prog.get("id")?.as_u64()?).ok()?;
            Some((id, prog.get("name")?.as_str()?.to_string()))
        })
        .collect()
}

/// What the programs did between two snapshots of the same observer, by program name.
pub fn added(
    before: &BTreeMap<u32, Counters>,
    after: &BTreeMap<u32, Counters>,
    names: &BTreeMap<u32, String>,
) -> BTreeMap<String, Counters> {
    let mut by_name: BTreeMap<String, Counters> = BTreeMap::new();
    for (id, end) in after {
        let start = before.get(id).copied().unwrap_or_default();
        let name = names
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("prog {id}"));
        let sum = by_name.entry(name).or_default();
        sum.runs += end.runs.saturating_sub(start.runs);
        sum.ns += end.ns.saturating_sub(start.ns);
    }
    by_name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_program_fdinfo_and_skips_others() {
        let prog = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1060\nlink:\t\n\
                    prog_type:\t5\nprog_jited:\t1\nprog_tag:\tabc\nmemlock:\t4096\n\
                    prog_id:\t42\nrun_time_ns:\t1500\nrun_cnt:\t3\nrecursion_misses:\t0\n";
        assert_eq!(
            parse_fdinfo(prog),
            Some((42, Counters { runs: 3, ns: 1500 }))
        );
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmap_id:\t7\n"), None);
        let link = "pos:\t0\nflags:\t02000000\nlink_type:\tperf\nlink_id:\t9\nprog_tag:\tabc\nprog_id:\t42\n";
        assert_eq!(parse_fdinfo(link), None);
    }

    #[test]
    fn adds_up_by_name_since_the_first_snapshot() {
        let before = BTreeMap::from([(1, Counters { runs: 10, ns: 100 })]);
        let after = BTreeMap::from([
            (1, Counters { runs: 15, ns: 160 }),
            (2, Counters { runs: 4, ns: 40 }),
        ]);
        let names = BTreeMap::from([(1, "sys_enter_read".to_string())]);
        let added = added(&before, &after, &names);
        assert_eq!(added["sys_enter_read"], Counters { runs: 5, ns: 60 });
        assert_eq!(added["prog 2"], Counters { runs: 4, ns: 40 });
    }
}
