//! The children a process has now, for a master adopted after it may already have forked.
//!
//! A master found through its exec is put in the kernel's tracked map only when userspace
//! handles that exec; a worker it forked before then was not tracked by the kernel's fork
//! hook and produced no fork event. Listing the master's children right after tracking it
//! closes that gap: anything forked later is seen by the kernel.

use std::{fs, path::Path};

/// Pids of `pid`'s children, from each of its threads' `task/<tid>/children`, or, on kernels
/// built without those files, from every process's parent.
pub fn children(proc_root: &Path, pid: u32) -> Vec<u32> {
    let by_task = || -> std::io::Result<Vec<u32>> {
        let mut found = Vec::new();
        for task in fs::read_dir(proc_root.join(format!("{pid}/task")))? {
            let text = fs::read_to_string(task?.path().join("children"))?;
            found.extend(parse_children(&text));
        }
        Ok(found)
    };
    by_task().unwrap_or_else(|_| by_parent(proc_root, pid))
}

fn parse_children(text: &str) -> Vec<u32> {
    text.split_ascii_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

fn by_parent(proc_root: &Path, parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let pids = entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok());
    pids.filter(|&pid| parent_of(proc_root, pid) == Some(parent))
        .collect()
}

/// Field 4 of `stat`, counted after the `)` that ends the command name.
fn parent_of(proc_root: &Path, pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(proc_root.join(format!("{pid}/stat"))).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::fake_proc::FakeProc;

    #[test]
    fn the_children_file_is_read() {
        assert_eq!(parse_children("101 102 250 \n"), vec![101, 102, 250]);
        assert_eq!(parse_children(""), Vec::<u32>::new());
    }

    #[test]
    fn without_the_children_file_parents_are_matched() {
        let proc = FakeProc::new();
        proc.process(100, 1, 1000, &["gunicorn", "app:app"]);
        proc.process(101, 100, 1010, &["gunicorn", "app:app"]);
        proc.process(102, 100, 1011, &["gunicorn", "app:app"]);
        proc.process(200, 1, 1012, &["bash"]);
        let mut found = children(proc.root(), 100);
        found.sort_unstable();
        assert_eq!(found, vec![101, 102]);
        assert_eq!(children(proc.root(), 101), Vec::<u32>::new());
    }

    #[test]
    fn this_process_children_are_listed() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let found = children(Path::new("/proc"), me);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found.contains(&child.id()), "{found:?}");
    }
}
