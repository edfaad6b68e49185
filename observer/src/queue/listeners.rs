//! Which listening sockets belong to which Gunicorn instance, and one sample of their
//! queues.
//!
//! Gunicorn's master opens the listeners and its workers inherit them, so a listening
//! socket in both the master's and a worker's fd table is one of the instance's. The
//! master's own listeners stay out: Gunicorn 27's control socket (`gunicorn.ctl`) is a unix
//! listener its workers do not hold. The queues are then read with one dump per address
//! family per network namespace, however many instances share it.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::Path,
};

use tracing::debug;

use super::{
    diag::ListenerDiag,
    netlink::{DiagSocket, NetlinkError},
    procnet,
};

/// A listener of an instance, as last sampled.
pub type Listener = ListenerDiag;

/// What one sampling pass found, and what it could not read (label values of
/// `gunicorn_observer_queue_errors_total`).
#[derive(Debug, Default)]
pub struct ListenerSample {
    /// Master pid -> its listeners (never none), sorted by address. Masters that could not
    /// be read, or had no worker to compare with, are absent, so their last values stay.
    pub by_master: HashMap<u32, Vec<Listener>>,
    pub errors: Vec<&'static str>,
}

/// Socket inodes in `pid`'s fd table, or None if it cannot be read (the process exited).
fn socket_inodes(proc_root: &Path, pid: u32) -> Option<HashSet<u64>> {
    let entries = fs::read_dir(proc_root.join(pid.to_string()).join("fd")).ok()?;
    Some(
        entries
            .filter_map(|entry| {
                let target = fs::read_link(entry.ok()?.path()).ok()?;
                let inode = target
                    .to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?;
                inode.parse().ok()
            })
            .collect(),
    )
}

/// The network namespace of `pid` as the link text `net:[inode]`.
fn netns_of(proc_root: &Path, pid: &str) -> Option<String> {
    let link = fs::read_link(proc_root.join(pid).join("ns/net")).ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// The sockets an instance serves on: those of the master that a worker also holds.
/// `Ok(None)` while no worker can tell (booting, or every worker being replaced), which is
/// not an error; an unreadable master is.
///
/// A worker that shares nothing with its master is exiting (its fds already closed, or a
/// zombie's empty table) and is passed over: taken at its word it would make the instance's
/// listeners vanish, and their ports leave the kernel's map, until the next sample.
fn served_inodes(
    proc_root: &Path,
    master: u32,
    workers: &[u32],
) -> Result<Option<HashSet<u64>>, &'static str> {
    let mine = socket_inodes(proc_root, master).ok_or("fd_table_unreadable")?;
    let shared = workers.iter().find_map(|worker| {
        let held = socket_inodes(proc_root, *worker)?;
        let shared: HashSet<u64> = mine.intersection(&held).copied().collect();
        (!shared.is_empty()).then_some(shared)
    });
    Ok(shared)
}

/// Samples the accept queues of every listener of `instances`: (master, its workers).
pub fn sample_listeners(proc_root: &Path, instances: &[(u32, Vec<u32>)]) -> ListenerSample {
    let mut sample = ListenerSample::default();
    let own_netns = netns_of(proc_root, "self");

    // Group the masters by network namespace: one dump serves them all.
    let mut by_netns: HashMap<String, Vec<(u32, HashSet<u64>)>> = HashMap::new();
    for (master, workers) in instances {
        let master = *master;
        let served = served_inodes(proc_root, master, workers);
        match (served, netns_of(proc_root, &master.to_string())) {
            (Ok(Some(inodes)), Some(netns)) => {
                by_netns.entry(netns).or_default().push((master, inodes))
            }
            (Ok(None), _) => {}
            (Err(reason), _) => sample.errors.push(reason),
            // The master exited between the two reads.
            (Ok(Some(_)), None) => sample.errors.push("fd_table_unreadable"),
        }
    }

    for (netns, members) in by_netns {
        let socket = if Some(&netns) == own_netns.as_ref() {
            DiagSocket::open()
        } else {
            // Any member's namespace link leads to the namespace itself.
            DiagSocket::open_in(&proc_root.join(members[0].0.to_string()).join("ns/net"))
        };
        let dumped = socket.and_then(|mut socket| {
            let mut all = socket.tcp_listeners()?;
            all.extend(socket.unix_listeners()?);
            Ok(all)
        });
        let all = match dumped {
            Ok(all) => all,
            // Entering another network namespace needs CAP_SYS_ADMIN, which the
            // least-privilege DaemonSet lacks: pods' TCP listeners are then read from
            // `/proc/<master>/net/tcp{,6}`, which gives their depth but neither their limit nor
            // their drops, and nothing of unix listeners (README limitations).
            Err(NetlinkError::EnterNetns { .. }) => {
                sample.errors.push("netns_unreachable");
                match procnet::read_listeners(proc_root, members[0].0) {
                    Some(all) => all,
                    None => continue,
                }
            }
            Err(err) => {
                debug!(netns, error = %err, "cannot read listen queues");
                sample.errors.push("diag_failed");
                continue;
            }
        };
        for (master, inodes) in members {
            let mut mine: Vec<Listener> = all
                .iter()
                .filter(|listener| inodes.contains(&listener.inode))
                .cloned()
                .collect();
            // Nothing found means the sockets shared were not listeners (a worker tearing
            // down keeps odd fds); a serving instance always has one, so keep the last.
            if !mine.is_empty() {
                mine.sort_by(|a, b| a.addr.cmp(&b.addr));
                sample.by_master.insert(master, mine);
            }
        }
    }
    sample
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead as _, BufReader},
        os::fd::AsRawFd as _,
        process::{Command, Stdio},
    };

    use super::*;

    /// A listener in a network namespace of its own (as a pod's would be under hostPID) is
    /// read from inside that namespace, and is invisible from ours.
    #[test]
    fn reads_a_listener_in_another_network_namespace() {
        let mut child = Command::new("unshare")
            .args(["--net", "python3", "-c"])
            .arg(
                "import socket, sys\n\
                 s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(3)\n\
                 print(s.getsockname()[1], flush=True); sys.stdin.read()",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) and python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the child's port");
        let pid = child.id();

        let sample = sample_listeners(Path::new("/proc"), &[(pid, vec![pid])]);
        let ours = DiagSocket::open().unwrap().tcp_listeners().unwrap();
        drop(child.stdin.take());
        child.wait().unwrap();

        assert_eq!(sample.errors, Vec::<&str>::new());
        let found: Vec<(String, u32, Option<u32>)> = sample.by_master[&pid]
            .iter()
            .map(|l| (l.addr.label(), l.depth, l.backlog))
            .collect();
        assert_eq!(found, vec![(format!("0.0.0.0:{port}"), 0, Some(3))]);
        let inode = sample.by_master[&pid][0].inode;
        assert!(
            ours.iter().all(|l| l.inode != inode),
            "seen from our namespace"
        );
    }

    #[test]
    fn finds_this_processes_listeners_by_inode() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let queued = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        let me = std::process::id();

        // This process plays both master and worker: every listener is shared. Pid 1 shares
        // no socket with us, so as a "worker" it is passed over like an exiting one.
        let sample = sample_listeners(
            Path::new("/proc"),
            &[(me, vec![1, me]), (u32::MAX, vec![u32::MAX]), (1, vec![me])],
        );
        // A master that is gone is an error; one without a worker that can tell (pid 1
        // here) is not, and keeps whatever was known.
        assert_eq!(sample.errors, vec!["fd_table_unreadable"]);
        assert!(!sample.by_master.contains_key(&1));
        let mine = &sample.by_master[&me];
        let label = |l: &std::net::TcpListener| l.local_addr().unwrap().to_string();
        let find = |name: String| mine.iter().find(|l| l.addr.label() == name).cloned();
        assert_eq!(find(label(&tcp)).map(|l| l.depth), Some(1));
        assert_eq!(find(label(&other)).map(|l| l.depth), Some(0));
        // The client end of the queued connection is not a listener.
        assert!(mine.iter().all(|l| l.inode != 0));
        drop((queued, tcp.as_raw_fd()));
    }
}
