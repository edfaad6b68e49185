//! Queue wait: from the handshake that puts a connection in a listener's accept queue to the
//! worker's accept that takes it out.
//!
//! `sock:inet_sock_set_state` reports the child socket going SYN_RECV -> ESTABLISHED (the
//! client's final ACK arrived; the child is then in the accept queue). Only handshakes on a
//! port in `LISTEN_PORTS`, the TCP listeners of tracked instances, are stamped, so the rest of
//! the node costs one array-free hash lookup per established connection. The accept exit in
//! a tracked worker reads the peer address the kernel wrote back and takes the stamp.

use aya_ebpf::{
    Global,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap},
    programs::TracePointContext,
};
use observer_ebpf::{
    drops::{DROP_HANDSHAKE_TABLE_FULL, DROP_READ_TRACEPOINT, DROP_READ_USER},
    event::{EventKind, QueueWaitEvent},
    queue::{
        Handshake, IPPROTO_TCP, MAX_HANDSHAKES, MAX_LISTEN_PORTS, PeerKey, SockStateOffsets,
        TCP_ESTABLISHED, TCP_SYN_RECV,
    },
};

use super::{
    emit::{header, send},
    maps::finish,
};

/// `AF_INET` and `AF_INET6`.
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// TCP listener port (host order) -> 1. Filled by userspace from the listeners it samples.
#[map]
pub static LISTEN_PORTS: HashMap<u16, u32> = HashMap::with_max_entries(MAX_LISTEN_PORTS, 0);

/// Completed handshakes on tracked ports, waiting for their accept.
#[map]
pub static HANDSHAKES: LruHashMap<PeerKey, Handshake> =
    LruHashMap::with_max_entries(MAX_HANDSHAKES, 0);

/// Field offsets of `inet_sock_set_state`, read from tracefs by userspace.
#[unsafe(no_mangle)]
pub static SOCK_STATE_OFFSETS: Global<SockStateOffsets> = Global::new(SockStateOffsets {
    oldstate: 0,
    newstate: 0,
    sport: 0,
    dport: 0,
    family: 0,
    protocol: 0,
    daddr_v6: 0,
    valid: 0,
});

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    finish(try_state(&ctx))
}

fn try_state(ctx: &TracePointContext) -> Result<(), u32> {
    let offsets = SOCK_STATE_OFFSETS.load();
    if offsets.valid == 0 {
        return Err(DROP_READ_TRACEPOINT);
    }
    // Cheapest tests first: most state changes on a node are not a handshake completing.
    let newstate: i32 = field(ctx, offsets.newstate)?;
    if newstate != TCP_ESTABLISHED {
        return Ok(());
    }
    let oldstate: i32 = field(ctx, offsets.oldstate)?;
    let protocol: u16 = field(ctx, offsets.protocol)?;
    if oldstate != TCP_SYN_RECV || protocol != IPPROTO_TCP {
        return Ok(());
    }
    let local_port: u16 = field(ctx, offsets.sport)?;
    if LISTEN_PORTS.get_ptr(&local_port).is_none() {
        return Ok(());
    }

    let key = PeerKey {
        addr: field(ctx, offsets.daddr_v6)?,
        port: field(ctx, offsets.dport)?,
        reserved: 0,
    };
    let stamp = Handshake {
        // SAFETY: a helper without arguments that reads the monotonic clock.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        local_port,
        family: field(ctx, offsets.family)?,
        reserved: 0,
    };
    HANDSHAKES
        .insert(&key, &stamp, 0)
        .map_err(|_| DROP_HANDSHAKE_TABLE_FULL)
}

/// The start of `sockaddr_in` and `sockaddr_in6` up to the address.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockaddrIn {
    family: u16,
    port_be: u16,
    addr: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SockaddrIn6 {
    family: u16,
    port_be: u16,
    flowinfo: u32,
    addr: [u8; 16],
}

/// A tracked worker's accept returned `fd` from `listen_fd`, having written the peer's
/// address at `sockaddr` (0 when the caller passed no buffer). Sends the connection's queue
/// wait for TCP peers; unix peers have no handshake and send nothing.
#[inline(always)]
pub fn accepted(pid_tgid: u64, fd: i32, listen_fd: i32, sockaddr: u64) -> Result<(), u32> {
    if sockaddr == 0 {
        return Ok(());
    }
    let family: u16 =
        unsafe { bpf_probe_read_user(sockaddr as *const u16) }.map_err(|_| DROP_READ_USER)?;
    let key = match family {
        AF_INET => {
            let peer: SockaddrIn = unsafe { bpf_probe_read_user(sockaddr as *const SockaddrIn) }
                .map_err(|_| DROP_READ_USER)?;
            // The tracepoint reports IPv4 peers as IPv4-mapped IPv6 addresses.
            let mut addr = [0u8; 16];
            addr[10] = 0xff;
            addr[11] = 0xff;
            addr[12..].copy_from_slice(&peer.addr);
            PeerKey {
                addr,
                port: u16::from_be(peer.port_be),
                reserved: 0,
            }
        }
        AF_INET6 => {
            let peer: SockaddrIn6 = unsafe { bpf_probe_read_user(sockaddr as *const SockaddrIn6) }
                .map_err(|_| DROP_READ_USER)?;
            PeerKey {
                addr: peer.addr,
                port: u16::from_be(peer.port_be),
                reserved: 0,
            }
        }
        _ => return Ok(()),
    };

    let stamp = unsafe { HANDSHAKES.get(&key) }.copied();
    if stamp.is_some() {
        // A failed delete means the LRU already evicted it; the copy is ours either way.
        let _ = HANDSHAKES.remove(&key);
    }
    let stamp = stamp.unwrap_or(Handshake {
        ts_ns: 0,
        local_port: 0,
        family,
        reserved: 0,
    });
    send(QueueWaitEvent {
        header: header(EventKind::QueueWait, pid_tgid, fd),
        listen_fd,
        local_port: stamp.local_port,
        family,
        handshake_ns: stamp.ts_ns,
    })
}

/// A field of the record at an offset only known at run time (through probe_read: the
/// verifier refuses a direct context load at a variable offset).
#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, offset: u32) -> Result<T, u32> {
    unsafe { ctx.read_at::<T>(offset as usize) }.map_err(|_| DROP_READ_TRACEPOINT)
}
