//! Queueing before the worker: the accept queue of every listener of every Gunicorn
//! instance, and how long connections wait in it.
//!
//! - **Depth, backlog and overflows** are sampled on the `--sample-secs` cadence through
//!   sock_diag (`diag.rs`, `netlink.rs`) in each instance's network namespace, never per
//!   request. A listener belongs to an instance when its socket inode is in the master's fd
//!   table (`listeners.rs`).
//! - **Queue wait** is measured in the kernel (`observer-ebpf/src/programs/queue.rs`) for the
//!   ports this module puts in `LISTEN_PORTS`, and arrives as one event per accept; this
//!   module tells which listener it came through.
//!
//! [`sample_listeners`] takes each instance's listeners as the listening sockets its master
//! and a worker both hold (so Gunicorn 27's master-only control socket drops out), groups the
//! instances by network namespace and dumps TCP (`inet_diag`, with `INET_DIAG_SKMEMINFO` for
//! the drop counter) and unix (`unix_diag`, `UDIAG_SHOW_RQLEN`) listeners once per namespace.
//! For a namespace other than the observer's, the netlink socket is opened on a short-lived
//! thread that has `setns`'d into `/proc/<master>/ns/net`; the socket keeps answering for that
//! namespace. It returns each master's [`ListenerDiag`]s and the reasons it could not read
//! some. A new instance is sampled at its first worker fork, not a tick later.
//! [`ListenerIndex`] maps (master, port, family) to the `listener` label of a queue wait.

pub mod diag;
mod listeners;
pub mod netlink;
pub(crate) mod procnet;

use std::collections::{BTreeSet, HashMap};

pub use diag::{ListenAddr, ListenerDiag};
pub use listeners::{Listener, ListenerSample, sample_listeners};

/// Bucket bounds of `gunicorn_listen_queue_wait_seconds`: from a fraction of a millisecond
/// (an idle worker picks a connection up at once) to the tens of seconds a saturated
/// instance makes clients wait.
pub const QUEUE_WAIT_BUCKETS: [f64; 15] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The TCP listeners of each instance as of the last sample, to attribute queue waits, and
/// the ports pushed to the kernel.
#[derive(Debug, Default)]
pub struct ListenerIndex {
    /// Master pid -> its TCP listeners: (port, family) -> label.
    tcp: HashMap<u32, HashMap<(u16, u16), String>>,
}

/// `AF_INET` and `AF_INET6` as the queue-wait event carries them.
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

impl ListenerIndex {
    /// Replaces what is known about `master`'s listeners.
    pub fn set(&mut self, master: u32, listeners: &[Listener]) {
        let tcp = listeners
            .iter()
            .filter_map(|listener| match &listener.addr {
                ListenAddr::Tcp(addr) => {
                    let family = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
                    Some(((addr.port(), family), listener.addr.label()))
                }
                ListenAddr::Unix(_) => None,
            })
            .collect();
        self.tcp.insert(master, tcp);
    }

    /// Whether `master`'s listeners have been sampled (it has a worker that could be read).
    pub fn knows(&self, master: u32) -> bool {
        self.tcp.contains_key(&master)
    }

    /// Forgets the masters not in `live`.
    pub fn retain(&mut self, live: &[u32]) {
        self.tcp.retain(|master, _| live.contains(master));
    }

    /// The listener of `master` that a connection to `port` accepted as `family` came
    /// through. An IPv4 client of an IPv6 (dual-stack) listener is accepted as `AF_INET6`.
    pub fn label(&self, master: u32, port: u16, family: u16) -> Option<&str> {
        self.tcp
            .get(&master)?
            .get(&(port, family))
            .map(String::as_str)
    }

    /// Every TCP port of every instance: what the kernel should stamp handshakes on.
    pub fn ports(&self) -> BTreeSet<u16> {
        self.tcp
            .values()
            .flat_map(|listeners| listeners.keys().map(|(port, _)| *port))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(addr: &str) -> Listener {
        let addr = match addr.strip_prefix("unix:") {
            Some(path) => ListenAddr::Unix(path.into()),
            None => ListenAddr::Tcp(addr.parse().unwrap()),
        };
        Listener {
            inode: 1,
            addr,
            depth: 0,
            backlog: Some(0),
            drops: None,
        }
    }

    #[test]
    fn attributes_waits_by_port_and_family() {
        let mut index = ListenerIndex::default();
        index.set(
            10,
            &[
                listener("127.0.0.1:8000"),
                listener("[::]:8000"),
                listener("unix:/run/a.sock"),
            ],
        );
        index.set(20, &[listener("0.0.0.0:9000")]);
        assert_eq!(index.label(10, 8000, AF_INET), Some("127.0.0.1:8000"));
        assert_eq!(index.label(10, 8000, AF_INET6), Some("[::]:8000"));
        assert_eq!(index.label(10, 9000, AF_INET), None);
        assert_eq!(index.label(20, 9000, AF_INET), Some("0.0.0.0:9000"));
        assert_eq!(index.ports(), BTreeSet::from([8000, 9000]));

        index.retain(&[20]);
        assert_eq!(index.label(10, 8000, AF_INET), None);
        assert_eq!(index.ports(), BTreeSet::from([9000]));
    }
}
