//! sock_diag netlink messages: the dump requests for listening sockets, and the parsing of
//! the answers. Pure byte work, so it is tested on fixtures; the socket lives in
//! `netlink.rs`.
//!
//! For a TCP listener, `inet_diag_msg.idiag_rqueue` is the accept queue's current length
//! and `idiag_wqueue` its limit (the backlog); the `INET_DIAG_SKMEMINFO` attribute carries
//! the socket's drop counter, which `tcp_listendrop()` bumps for every SYN or final ACK
//! refused because the accept queue was full (and, rarely, packets the listener dropped for
//! other reasons: that counter is not overflow-only, see README limitations). For a unix
//! listener, `UNIX_DIAG_RQLEN` holds the number of connections waiting and the backlog;
//! a unix listener has no drop counter, as a full one makes clients wait rather than drop.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// `SOCK_DIAG_BY_FAMILY`, the message type of requests and answers.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;

pub const AF_UNIX: u8 = 1;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
/// `TCP_LISTEN`; unix sockets use the same state numbers.
const TCP_LISTEN: u32 = 10;

/// `INET_DIAG_SKMEMINFO` attribute type; asked for with bit `type - 1` of `idiag_ext`.
const INET_DIAG_SKMEMINFO: u16 = 7;
/// Index of `SK_MEMINFO_DROPS` in the skmeminfo array of u32s.
const SK_MEMINFO_DROPS: usize = 8;
/// `inet_diag_msg` without attributes.
const INET_DIAG_MSG_LEN: usize = 72;

const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_RQLEN: u16 = 4;
/// `unix_diag_msg` without attributes.
const UNIX_DIAG_MSG_LEN: usize = 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DiagError {
    #[error("netlink message of {len} bytes is shorter than its {need}-byte {what}")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("the kernel answered the dump with error {errno}")]
    Kernel { errno: i32 },
    #[error("unexpected netlink message type {0}")]
    UnexpectedType(u16),
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    /// The bound path; an abstract name starts with `@`.
    Unix(String),
}

impl ListenAddr {
    /// The `listener` label: `127.0.0.1:8000`, `[::]:8000`, `unix:/run/app.sock`.
    pub fn label(&self) -> String {
        match self {
            Self::Tcp(addr) => addr.to_string(),
            Self::Unix(path) => format!("unix:{path}"),
        }
    }
}

/// One listening socket as sock_diag reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerDiag {
    pub inode: u64,
    pub addr: ListenAddr,
    /// Connections waiting in the accept queue now.
    pub depth: u32,
    /// The queue's limit, `listen()`'s backlog capped by `net.core.somaxconn` (unknown when
    /// read through `/proc/<pid>/net/tcp`, see `procnet.rs`).
    pub backlog: Option<u32>,
    /// The listener's drop counter (TCP only; unix listeners make connecting clients wait
    /// or fail instead of dropping).
    pub drops: Option<u64>,
}

/// A dump request for the TCP listeners of one address family, asking for skmeminfo.
pub fn inet_listeners_request(family: u8, seq: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(56);
    body.extend_from_slice(&[family, IPPROTO_TCP, 1 << (INET_DIAG_SKMEMINFO - 1), 0]);
    body.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    // inet_diag_sockid: ports, addresses, interface and cookie, all zero for a dump.
    body.extend_from_slice(&[0; 48]);
    with_header(&body, seq)
}

/// A dump request for unix listeners with their names and queue lengths.
pub fn unix_listeners_request(seq: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&[AF_UNIX, 0, 0, 0]);
    body.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    body.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN).to_ne_bytes());
    body.extend_from_slice(&[0xff; 8]); // no cookie
    with_header(&body, seq)
}

fn with_header(body: &[u8], seq: u32) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + body.len()) as u32;
    let mut msg = Vec::with_capacity(len as usize);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // to the kernel
    msg.extend_from_slice(body);
    msg
}

/// What one `recv` of a dump held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub listeners: Vec<ListenerDiag>,
    /// The dump ended (`NLMSG_DONE`).
    pub done: bool,
}

/// Parses one datagram of a dump's answer; `parse` reads each `SOCK_DIAG_BY_FAMILY` payload.
pub fn parse_batch(
    buf: &[u8],
    parse: fn(&[u8]) -> Result<ListenerDiag, DiagError>,
) -> Result<Batch, DiagError> {
    let mut batch = Batch::default();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32_at(rest, 0) as usize;
        let kind = u16_at(rest, 4);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(DiagError::Short {
                what: "netlink message",
                len: rest.len(),
                need: len.max(NLMSG_HDRLEN),
            });
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => {
                batch.done = true;
                return Ok(batch);
            }
            NLMSG_ERROR => {
                let errno = payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                    .unwrap_or(0);
                return Err(DiagError::Kernel { errno: -errno });
            }
            SOCK_DIAG_BY_FAMILY => batch.listeners.push(parse(payload)?),
            other => return Err(DiagError::UnexpectedType(other)),
        }
        rest = &rest[align4(len).min(rest.len())..];
    }
    Ok(batch)
}

/// Parses an `inet_diag_msg` and its attributes.
pub fn parse_inet(msg: &[u8]) -> Result<ListenerDiag, DiagError> {
    need(msg, INET_DIAG_MSG_LEN, "inet_diag_msg")?;
    let family = msg[0];
    // inet_diag_sockid starts at 4: sport (big endian), dport, src[16], dst[16], ...
    let port = u16::from_be_bytes([msg[4], msg[5]]);
    let src: [u8; 16] = msg[8..24].try_into().expect("16 bytes");
    let ip = if family == AF_INET {
        Ipv4Addr::new(src[0], src[1], src[2], src[3]).into()
    } else {
        Ipv6Addr::from(src).into()
    };
    let mut drops = None;
    for (kind, value) in attributes(&msg[INET_DIAG_MSG_LEN..]) {
        if kind == INET_DIAG_SKMEMINFO && value.len() >= (SK_MEMINFO_DROPS + 1) * 4 {
            drops = Some(u64::from(u32_at(value, SK_MEMINFO_DROPS * 4)));
        }
    }
    Ok(ListenerDiag {
        inode: u64::from(u32_at(msg, 68)),
        addr: ListenAddr::Tcp(SocketAddr::new(ip, port)),
        depth: u32_at(msg, 56),
        backlog: Some(u32_at(msg, 60)),
        drops,
    })
}

/// Parses a `unix_diag_msg` and its attributes.
pub fn parse_unix(msg: &[u8]) -> Result<ListenerDiag, DiagError> {
    need(msg, UNIX_DIAG_MSG_LEN, "unix_diag_msg")?;
    let mut name = String::new();
    let mut queue = None;
    for (kind, value) in attributes(&msg[UNIX_DIAG_MSG_LEN..]) {
        match kind {
            UNIX_DIAG_NAME => name = unix_name(value),
            UNIX_DIAG_RQLEN if value.len() >= 8 => {
                queue = Some((u32_at(value, 0), u32_at(value, 4)))
            }
            _ => {}
        }
    }
    let (depth, backlog) = queue.ok_or(DiagError::Short {
        what: "unix_diag_msg without UNIX_DIAG_RQLEN",
        len: msg.len(),
        need: UNIX_DIAG_MSG_LEN + 12,
    })?;
    Ok(ListenerDiag {
        inode: u64::from(u32_at(msg, 4)),
        addr: ListenAddr::Unix(name),
        depth,
        backlog: Some(backlog),
        drops: None,
    })
}

/// A bound unix name: a path, or an abstract name (leading NUL) shown with `@`.
fn unix_name(raw: &[u8]) -> String {
    match raw.split_first() {
        Some((0, abstract_name)) => format!("@{}", String::from_utf8_lossy(abstract_name)),
        _ => {
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        }
    }
}

/// `(type, value)` of each `rtattr` in `buf`; a truncated tail ends the walk.
fn attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16_at(buf, 0));
        if len < 4 || len > buf.len() {
            return None;
        }
        let item = (u16_at(buf, 2), &buf[4..len]);
        buf = &buf[align4(len).min(buf.len())..];
        Some(item)
    })
}

fn need(msg: &[u8], len: usize, what: &'static str) -> Result<(), DiagError> {
    if msg.len() < len {
        return Err(DiagError::Short {
            what,
            len: msg.len(),
            need: len,
        });
    }
    Ok(())
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
#[path = "diag_tests.rs"]
mod tests;
