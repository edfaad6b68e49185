//! TCP listeners from `/proc/<pid>/net/tcp` and `tcp6`: the fallback when the observer
//! cannot enter an instance's network namespace for a `sock_diag` dump.
//!
//! `setns` into a network namespace needs `CAP_SYS_ADMIN`, which the least-privilege
//! DaemonSet does not have, while these files show the namespace of the process they belong
//! to and are readable without any capability. They carry less: the accept-queue depth (the
//! `rx_queue` column of a listener is `sk_ack_backlog`) and the socket inode, but neither the
//! queue's limit (`tx_queue` is always zero for a listener and the last column is the
//! fast-open queue) nor the drop counter, and nothing for unix listeners.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use super::diag::{ListenAddr, ListenerDiag};

/// `TCP_LISTEN` in the `st` column.
pub(crate) const TCP_LISTEN: u8 = 0x0A;

/// One socket of a `/proc/<pid>/net/tcp` or `tcp6` table: the columns the observer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpLine {
    pub local: SocketAddr,
    pub state: u8,
    /// `rx_queue`: bytes waiting to be read, or for a listener its accept-queue depth.
    pub rx_queue: u32,
    pub inode: u64,
}

/// The TCP listeners of `pid`'s network namespace, both families. `None` when neither file
/// could be read (the process exited).
pub fn read_listeners(proc_root: &Path, pid: u32) -> Option<Vec<ListenerDiag>> {
    let net = proc_root.join(pid.to_string()).join("net");
    let v4 = fs::read_to_string(net.join("tcp")).ok();
    let v6 = fs::read_to_string(net.join("tcp6")).ok();
    if v4.is_none() && v6.is_none() {
        return None;
    }
    let mut all = v4.as_deref().map(parse_listeners).unwrap_or_default();
    all.extend(v6.as_deref().map(parse_listeners).unwrap_or_default());
    Some(all)
}

/// The listening sockets of one `/proc/net/tcp`-format table.
pub fn parse_listeners(table: &str) -> Vec<ListenerDiag> {
    table
        .lines()
        .skip(1)
        .filter_map(parse_tcp_line)
        .filter(|line| line.state == TCP_LISTEN)
        .map(|line| ListenerDiag {
            inode: line.inode,
            addr: ListenAddr::Tcp(line.local),
            depth: line.rx_queue,
            backlog: None,
            drops: None,
        })
        .collect()
}

/// One line of a `/proc/net/tcp`-format table (not the header). `None` for a line that does
/// not parse: the kernel writes this format, and a line we cannot read is one socket fewer,
/// never a wrong number.
pub(crate) fn parse_tcp_line(line: &str) -> Option<TcpLine> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = parse_address(fields.next()?)?;
    let _remote = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let (_tx, rx) = fields.next()?.split_once(':')?;
    let _timer = fields.next()?;
    let _retransmits = fields.next()?;
    let _uid = fields.next()?;
    let _timeout = fields.next()?;
    Some(TcpLine {
        local,
        state,
        rx_queue: u32::from_str_radix(rx, 16).ok()?,
        inode: fields.next()?.parse().ok()?,
    })
}

/// `0100007F:1F90` or the 32-digit IPv6 form. The kernel prints each 32-bit word of the
/// address as a host-order integer of its network-order bytes, so on a little-endian
/// machine every word reads byte-reversed; the port is plain host order.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Option<Vec<[u8; 4]>> = (0..addr.len() / 8)
        .map(|i| {
            let word = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
            Some(word.to_ne_bytes())
        })
        .collect();
    let bytes: Vec<u8> = words?.concat();
    let ip = match (addr.len(), bytes.len()) {
        (8, 4) => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        (32, 16) => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

    /// The tables as a little-endian kernel prints them.
    #[test]
    #[cfg(target_endian = "little")]
    fn reads_listeners_and_skips_other_states() {
        let table = format!(
            "{HEADER}\n   \
             0: 0100007F:1F90 00000000:0000 0A 00000000:00000005 00:00000000 00000000     0        0 7948022 1 000000005bb4518e 100 0 0 10 0\n   \
             1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 7948030 1 000000005bb4518e 20 4 30 10 -1\n   \
             2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 12 1 000000005bb4518e 100 0 0 10 0\n"
        );
        let found: Vec<(String, u32, u64)> = parse_listeners(&table)
            .into_iter()
            .map(|l| (l.addr.label(), l.depth, l.inode))
            .collect();
        assert_eq!(
            found,
            vec![
                ("127.0.0.1:8080".to_owned(), 5, 7948022),
                ("0.0.0.0:80".to_owned(), 0, 12)
            ]
        );
    }

    /// The tables as a little-endian kernel prints them.
    #[test]
    #[cfg(target_endian = "little")]
    fn reads_ipv6_addresses() {
        let table = format!(
            "{HEADER}\n   \
             0: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 99 1 0 100 0 0 10 0\n   \
             1: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98 1 0 100 0 0 10 0\n"
        );
        let found: Vec<(String, u32)> = parse_listeners(&table)
            .into_iter()
            .map(|l| (l.addr.label(), l.depth))
            .collect();
        assert_eq!(
            found,
            vec![("[::1]:8000".to_owned(), 2), ("[::]:443".to_owned(), 0)]
        );
    }

    #[test]
    fn a_truncated_or_garbled_line_is_skipped() {
        let table = format!(
            "{HEADER}\n   0: 0100007F:1F90 00000000:0000 0A 00000000:zz 00:00000000\n   \
             1: 0100007F 00000000:0000 0A\n   2:\n"
        );
        assert_eq!(parse_listeners(&table), Vec::new());
    }

    /// This process's own listener, read the way the fallback reads a pod's: its depth is
    /// the connections waiting to be accepted.
    #[test]
    fn the_depth_of_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let queued: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let all = read_listeners(Path::new("/proc"), std::process::id()).unwrap();
        let mine = all
            .iter()
            .find(|l| l.addr == ListenAddr::Tcp(addr))
            .expect("our listener");
        assert_eq!((mine.depth, mine.backlog, mine.drops), (3, None, None));
        drop(queued);
    }
}
