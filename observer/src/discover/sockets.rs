//! Connections a worker accepted before the observer started.
//!
//! The kernel side follows a socket from its accept, so a keep-alive connection that was
//! already open (a proxy's pooled upstream connection, say) would stay invisible for its whole
//! life. At startup each worker's fd table is matched against its network namespace's socket
//! tables: an established TCP socket on a port the worker listens on, or a connected unix
//! socket on a path it listens on, is a connection it accepted.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::Path,
};

use crate::queue::procnet::{TCP_LISTEN, parse_tcp_line};

/// TCP states in `/proc/net/tcp` of an accepted connection that can still carry a request
/// (a listener's is [`TCP_LISTEN`]).
const TCP_ESTABLISHED: u8 = 0x01;
const TCP_CLOSE_WAIT: u8 = 0x08;

/// `__SO_ACCEPTCON` in `/proc/net/unix` flags marks a listener; state 3 is `SS_CONNECTED`.
const UNIX_ACCEPTCON: u32 = 0x0001_0000;
const UNIX_CONNECTED: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Socket {
    Tcp {
        local_port: u16,
        state: u8,
    },
    Unix {
        listening: bool,
        state: u8,
        path: Option<String>,
    },
}

/// Parses `/proc/<pid>/net/tcp` or `tcp6` into inode → socket.
fn parse_tcp(text: &str, out: &mut HashMap<u64, Socket>) {
    for line in text.lines().skip(1).filter_map(parse_tcp_line) {
        let socket = Socket::Tcp {
            local_port: line.local.port(),
            state: line.state,
        };
        out.insert(line.inode, socket);
    }
}

/// Parses `/proc/<pid>/net/unix` into inode → socket.
fn parse_unix(text: &str, out: &mut HashMap<u64, Socket>) {
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(flags), Some(state), Some(inode)) = (fields.get(3), fields.get(5), fields.get(6))
        else {
            continue;
        };
        let flags = u32::from_str_radix(flags, 16).ok();
        let state = u8::from_str_radix(state, 16).ok();
        if let (Some(flags), Some(state), Ok(inode)) = (flags, state, inode.parse()) {
            let path = fields.get(7).map(|p| (*p).to_owned());
            let listening = flags & UNIX_ACCEPTCON != 0;
            out.insert(
                inode,
                Socket::Unix {
                    listening,
                    state,
                    path,
                },
            );
        }
    }
}

/// Of `fds` (fd → socket inode), those that are connections accepted from one of the
/// process's own listeners, sorted.
fn accepted(fds: &HashMap<i32, u64>, sockets: &HashMap<u64, Socket>) -> Vec<i32> {
    let mine = || {
        fds.iter()
            .filter_map(|(fd, inode)| Some((*fd, sockets.get(inode)?)))
    };
    let mut ports = HashSet::new();
    let mut paths = HashSet::new();
    for (_, socket) in mine() {
        match socket {
            Socket::Tcp { local_port, state } if *state == TCP_LISTEN => {
                ports.insert(*local_port);
            }
            Socket::Unix {
                listening: true,
                path: Some(path),
                ..
            } => {
                paths.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut fds: Vec<i32> = mine()
        .filter(|(_, socket)| match socket {
            Socket::Tcp { local_port, state } => {
                matches!(*state, TCP_ESTABLISHED | TCP_CLOSE_WAIT) && ports.contains(local_port)
            }
            Socket::Unix {
                listening,
                state,
                path,
            } => {
                !listening
                    && *state == UNIX_CONNECTED
                    && path.as_ref().is_some_and(|p| paths.contains(p))
            }
        })
        .map(|(fd, _)| fd)
        .collect();
    fds.sort_unstable();
    fds
}

/// The fds of `pid` that are connections it accepted. Unreadable tables give an empty list:
/// the process may have exited, and the connections are then picked up at their next accept.
pub fn accepted_connections(proc_root: &Path, pid: u32) -> Vec<i32> {
    accepted_connections_in(proc_root, pid, &mut SocketTables::default())
}

/// Socket tables already read, by network namespace, for one pass over many workers.
///
/// A namespace's tables list every socket in it, TIME_WAIT included: tens of thousands of
/// lines on a busy node. Read once per worker, 100 workers took the observer's start-up
/// scan over ten seconds; now they are read again only for a worker holding a socket they
/// do not list (one accepted since, or one that is not TCP or unix).
#[derive(Debug, Default)]
pub struct SocketTables {
    by_netns: HashMap<String, HashMap<u64, Socket>>,
}

/// [`accepted_connections`], reusing tables of a namespace that `tables` has already read.
pub fn accepted_connections_in(proc_root: &Path, pid: u32, tables: &mut SocketTables) -> Vec<i32> {
    let dir = proc_root.join(pid.to_string());
    let Ok(entries) = fs::read_dir(dir.join("fd")) else {
        return Vec::new();
    };
    let fds: HashMap<i32, u64> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            let inode = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?;
            Some((fd, inode.parse().ok()?))
        })
        .collect();
    if fds.is_empty() {
        return Vec::new();
    }

    // Without a readable namespace link the tables are read for this process alone.
    let netns = fs::read_link(dir.join("ns/net"))
        .ok()
        .and_then(|link| link.to_str().map(str::to_owned));
    let fresh;
    let sockets = match netns {
        Some(netns) => {
            let cached = tables.by_netns.entry(netns).or_default();
            // A socket newer than the cached tables (accepted since they were read) must
            // not be missed: read them again.
            if cached.is_empty() || fds.values().any(|inode| !cached.contains_key(inode)) {
                *cached = read_tables(&dir);
            }
            &*cached
        }
        None => {
            fresh = read_tables(&dir);
            &fresh
        }
    };
    accepted(&fds, sockets)
}

fn read_tables(dir: &Path) -> HashMap<u64, Socket> {
    let mut sockets = HashMap::new();
    for (table, parse) in [
        ("net/tcp", parse_tcp as fn(&str, &mut HashMap<u64, Socket>)),
        ("net/tcp6", parse_tcp),
        ("net/unix", parse_unix),
    ] {
        if let Ok(text) = fs::read_to_string(dir.join(table)) {
            parse(&text, &mut sockets);
        }
    }
    sockets
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0 100 0 0 10 0
   1: 0100007F:1F40 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1F40 01 00000000:00000000 00:00000000 00000000     0        0 102 1 0 20 4 30 10 -1
   3: 0100007F:1F40 0100007F:D432 08 00000000:00000000 00:00000000 00000000     0        0 103 1 0 20 4 30 10 -1
   4: 0100007F:1F40 0100007F:D433 06 00000000:00000000 03:00000DE1 00000000     0        0 0 3 0
";
    const UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 200 /run/app.sock
0000000000000000: 00000003 00000000 00000000 0001 03 201 /run/app.sock
0000000000000000: 00000003 00000000 00000000 0001 03 202
0000000000000000: 00000003 00000000 00000000 0001 03 203 /run/other.sock
";

    #[test]
    fn keeps_only_connections_accepted_from_own_listeners() {
        let mut sockets = HashMap::new();
        parse_tcp(TCP, &mut sockets);
        parse_unix(UNIX, &mut sockets);
        // fd 3 listens on 8000; 4 and 6 were accepted on it (6 half-closed by the client);
        // 5 is the client end of a connection to it (an ephemeral local port); 9 listens on
        // a unix path and 10 was accepted there; 11 is a socketpair (no path); 12 is
        // connected to another path; 13 is no socket we know.
        let fds = HashMap::from([
            (3, 100),
            (4, 101),
            (5, 102),
            (6, 103),
            (9, 200),
            (10, 201),
            (11, 202),
            (12, 203),
            (13, 999),
        ]);
        assert_eq!(accepted(&fds, &sockets), vec![4, 6, 10]);
    }

    #[test]
    fn nothing_without_a_listener() {
        let mut sockets = HashMap::new();
        parse_tcp(TCP, &mut sockets);
        let fds = HashMap::from([(4, 101), (6, 103)]);
        assert_eq!(accepted(&fds, &sockets), Vec::<i32>::new());
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let mut sockets = HashMap::new();
        parse_tcp("header\n 0: zz:zz 0 QQ\n\n", &mut sockets);
        parse_unix("header\n0: 1 2 nothex 1 01 7\n", &mut sockets);
        assert!(sockets.is_empty());
    }

    #[test]
    fn reads_this_process_tables() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let fds = accepted_connections(Path::new("/proc"), std::process::id());
        use std::os::fd::AsRawFd as _;
        assert!(fds.contains(&server.as_raw_fd()), "{fds:?}");
        assert!(!fds.contains(&client.as_raw_fd()), "{fds:?}");
        assert!(!fds.contains(&listener.as_raw_fd()), "{fds:?}");
    }
}
