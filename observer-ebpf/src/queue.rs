//! Types of the queue-wait measurement: the time a connection spends in a listener's accept
//! queue, from the completed handshake to the worker's accept.
//!
//! The `sock:inet_sock_set_state` program stamps each handshake that completes on a port
//! userspace put in `LISTEN_PORTS`; the accept program looks the stamp up by the peer address
//! the accept returns. The tracepoint fires in softirq context, where the current process
//! means nothing, so addresses are the only link between the two.

/// Local ports of the TCP listeners of tracked Gunicorn instances.
pub const MAX_LISTEN_PORTS: u32 = 1024;

/// Handshakes completed but not yet accepted. An LRU map: entries of connections that never
/// reach a tracked accept (reset while queued, or on the same port in another network
/// namespace) age out instead of filling it.
pub const MAX_HANDSHAKES: u32 = 16_384;

/// `TCP_ESTABLISHED` and `TCP_SYN_RECV` in the kernel's `enum tcp_state`.
pub const TCP_ESTABLISHED: i32 = 1;
pub const TCP_SYN_RECV: i32 = 3;

/// `IPPROTO_TCP`, as the tracepoint's `protocol` field holds it.
pub const IPPROTO_TCP: u16 = 6;

/// Key of the handshake map: the client's end of the connection. The accept call returns
/// exactly this (its peer address); it does not return the local port, which travels in the
/// value instead and is checked by userspace. Known gap (README, limitations): one client
/// address and port connected to two tracked listeners at once share a key, so the later
/// handshake's stamp replaces the earlier one's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey {
    /// IPv6 address, or an IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`), which is how
    /// the tracepoint reports IPv4 sockets too.
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    /// Always zero; keys are compared as bytes.
    pub reserved: u16,
}

/// Value of the handshake map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// `bpf_ktime_get_ns()` when the child socket became ESTABLISHED.
    pub ts_ns: u64,
    /// The listener's port, host byte order.
    pub local_port: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Always zero.
    pub reserved: u32,
}

/// Byte offsets of the `sock:inet_sock_set_state` fields the program reads, from tracefs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockStateOffsets {
    /// `oldstate` and `newstate`: 4-byte ints.
    pub oldstate: u32,
    pub newstate: u32,
    /// `sport`, `dport`, `family`, `protocol`: 2-byte, host order.
    pub sport: u32,
    pub dport: u32,
    pub family: u32,
    pub protocol: u32,
    /// `daddr_v6`: 16 bytes.
    pub daddr_v6: u32,
    /// Non-zero once userspace has filled the other fields.
    pub valid: u32,
}

const _: () = assert!(core::mem::size_of::<PeerKey>() == 20);
const _: () = assert!(core::mem::size_of::<Handshake>() == 16);
const _: () = assert!(core::mem::size_of::<SockStateOffsets>() == 32);
