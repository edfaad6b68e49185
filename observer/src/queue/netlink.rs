//! A `NETLINK_SOCK_DIAG` socket in a chosen network namespace, and the listener dumps.
//!
//! A netlink socket answers for the network namespace it was created in. With hostPID the
//! observer shares the node's process table but usually not a pod's network namespace, so
//! for a Gunicorn in another namespace the socket is created on a short-lived thread that
//! first joins that namespace (`setns` changes only the calling thread); the socket then
//! keeps answering for it from any thread.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use thiserror::Error;

use super::diag::{
    self, AF_INET, AF_INET6, DiagError, ListenerDiag, inet_listeners_request, parse_batch,
    unix_listeners_request,
};

/// Room for one datagram of a dump; the kernel fills up to a page or so per `recv`.
const RECV_BUF: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum NetlinkError {
    #[error("opening a sock_diag netlink socket")]
    Open(#[source] io::Error),
    #[error("entering network namespace {path}")]
    EnterNetns {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("sending a sock_diag dump request")]
    Send(#[source] io::Error),
    #[error("receiving a sock_diag dump")]
    Recv(#[source] io::Error),
    #[error("parsing a sock_diag dump")]
    Parse(#[from] DiagError),
}

/// A sock_diag socket bound to one network namespace.
pub struct DiagSocket {
    fd: OwnedFd,
    seq: u32,
}

impl DiagSocket {
    /// A socket in the observer's own network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        // SAFETY: a plain socket(2) call; the result is checked before it is wrapped.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(NetlinkError::Open(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, seq: 0 })
    }

    /// A socket in the network namespace at `netns` (`/proc/<pid>/ns/net`).
    pub fn open_in(netns: &Path) -> Result<Self, NetlinkError> {
        let enter_error = |source| NetlinkError::EnterNetns {
            path: netns.display().to_string(),
            source,
        };
        let ns = File::open(netns).map_err(enter_error)?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on this thread only, with a namespace fd we hold open.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(enter_error(io::Error::last_os_error()));
                    }
                    Self::open()
                })
                .join()
                .unwrap_or_else(|_| Err(enter_error(io::Error::other("netns thread panicked"))))
        })
    }

    /// Every TCP listener (IPv4 and IPv6) in the socket's namespace.
    pub fn tcp_listeners(&mut self) -> Result<Vec<ListenerDiag>, NetlinkError> {
        let mut all = Vec::new();
        for family in [AF_INET, AF_INET6] {
            let seq = self.next_seq();
            all.extend(self.dump(&inet_listeners_request(family, seq), diag::parse_inet)?);
        }
        Ok(all)
    }

    /// Every unix stream listener in the socket's namespace.
    pub fn unix_listeners(&mut self) -> Result<Vec<ListenerDiag>, NetlinkError> {
        let seq = self.next_seq();
        self.dump(&unix_listeners_request(seq), diag::parse_unix)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn dump(
        &mut self,
        request: &[u8],
        parse: fn(&[u8]) -> Result<ListenerDiag, DiagError>,
    ) -> Result<Vec<ListenerDiag>, NetlinkError> {
        // SAFETY: the kernel's netlink address (all zero but the family) is valid for sendto.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buffer and address point at live memory of the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
                (&raw const kernel).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(NetlinkError::Send(io::Error::last_os_error()));
        }

        let mut buf = vec![0u8; RECV_BUF];
        let mut listeners = Vec::new();
        loop {
            // SAFETY: `buf` is a live, writable buffer of the length given.
            let got =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NetlinkError::Recv(err));
            }
            let batch = parse_batch(&buf[..got as usize], parse)?;
            listeners.extend(batch.listeners);
            if batch.done || got == 0 {
                return Ok(listeners);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    fn inode_of(fd: i32) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let link = link.to_str().unwrap();
        link.trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }

    /// Reads this process's own listeners: a TCP one with two connections queued, and a
    /// unix one with one.
    #[test]
    fn dumps_this_namespaces_listeners() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _queued: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap())
            .collect();
        let dir = std::env::temp_dir().join(format!("queue-diag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let _ = std::fs::remove_file(&path);
        let unix = UnixListener::bind(&path).unwrap();
        let _waiting = std::os::unix::net::UnixStream::connect(&path).unwrap();

        let mut socket = DiagSocket::open().unwrap();
        let tcp_inode = inode_of(tcp.as_raw_fd());
        let found = socket.tcp_listeners().unwrap();
        let mine = found
            .iter()
            .find(|l| l.inode == tcp_inode)
            .expect("own TCP listener");
        assert_eq!(mine.addr.label(), tcp.local_addr().unwrap().to_string());
        assert_eq!((mine.depth, mine.drops), (2, Some(0)));
        // Rust's std listens with a backlog of 128, capped by somaxconn (4096 by default).
        assert_eq!(mine.backlog, Some(128));

        let unix_inode = inode_of(unix.as_raw_fd());
        let found = socket.unix_listeners().unwrap();
        let mine = found
            .iter()
            .find(|l| l.inode == unix_inode)
            .expect("own unix listener");
        assert_eq!(mine.addr.label(), format!("unix:{}", path.display()));
        // std's UnixListener listens with a backlog of -1, which the kernel reads as
        // `net.core.somaxconn`.
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!((mine.depth, mine.backlog), (1, Some(somaxconn)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn enters_a_namespace_by_path() {
        // Our own namespace through its path: the same answers as `open()`.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut socket = DiagSocket::open_in(Path::new("/proc/self/ns/net")).unwrap();
        let inode = inode_of(tcp.as_raw_fd());
        assert!(
            socket
                .tcp_listeners()
                .unwrap()
                .iter()
                .any(|l| l.inode == inode)
        );
        assert!(matches!(
            DiagSocket::open_in(Path::new("/nonexistent/ns/net")),
            Err(NetlinkError::EnterNetns { .. })
        ));
    }
}
