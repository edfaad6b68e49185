//! Fixtures laid out as the kernel sends them on a little-endian host (the machines we run
//! on); the listener fields are chosen so every offset is told apart.

use super::*;

/// An `nlmsghdr` of `SOCK_DIAG_BY_FAMILY` (or `kind`) around `payload`.
fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&((16 + payload.len()) as u32).to_le_bytes());
    msg.extend_from_slice(&kind.to_le_bytes());
    msg.extend_from_slice(&[0x02, 0x00]); // NLM_F_MULTI
    msg.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]); // seq 7, port 0
    msg.extend_from_slice(payload);
    while msg.len() % 4 != 0 {
        msg.push(0);
    }
    msg
}

/// `inet_diag_msg` for a listener on 127.0.0.1:8000 with 3 queued of 4, inode 0x1234,
/// followed by an skmeminfo attribute whose drops slot is 9.
#[rustfmt::skip]
const INET_LISTENER: [u8; 72 + 4 + 36] = [
    2, 10, 0, 0,                                      // AF_INET, TCP_LISTEN, timer, retrans
    0x1f, 0x40, 0x00, 0x00,                           // sport 8000 (big endian), dport 0
    127, 0, 0, 1,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0, // src
    0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,   // dst
    0, 0, 0, 0,                                       // interface
    0xaa, 0, 0, 0, 0, 0, 0, 0,                        // cookie
    0, 0, 0, 0,                                       // expires
    3, 0, 0, 0,                                       // rqueue: queued now
    4, 0, 0, 0,                                       // wqueue: backlog
    0, 0, 0, 0,                                       // uid
    0x34, 0x12, 0, 0,                                 // inode
    40, 0, 7, 0,                                      // rtattr: len 40, INET_DIAG_SKMEMINFO
    0, 0, 0, 0,  0, 0, 2, 0,  0, 0, 0, 0,  0, 64, 0, 0,  // rmem, rcvbuf, wmem, sndbuf
    0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,   // fwd, queued, optmem, backlog
    9, 0, 0, 0,                                       // drops
];

/// `unix_diag_msg` for a listener on /tmp/a.sock with 2 queued of 2048, inode 77.
#[rustfmt::skip]
const UNIX_LISTENER: [u8; 16 + 4 + 12 + 4 + 8] = [
    1, 1, 10, 0,                                      // AF_UNIX, SOCK_STREAM, listening
    77, 0, 0, 0,                                      // inode
    1, 0, 0, 0, 0, 0, 0, 0,                           // cookie
    15, 0, 0, 0,                                      // rtattr: len 15, UNIX_DIAG_NAME
    b'/', b't', b'm', b'p', b'/', b'a', b'.', b's', b'o', b'c', b'k', 0, // name, padded
    12, 0, 4, 0,                                      // rtattr: len 12, UNIX_DIAG_RQLEN
    2, 0, 0, 0,  0, 8, 0, 0,                          // rqlen 2, wqlen 2048
];

#[test]
fn requests_ask_for_listeners_only() {
    let tcp = inet_listeners_request(AF_INET6, 5);
    assert_eq!(tcp.len(), 16 + 56);
    assert_eq!(&tcp[..4], &72u32.to_ne_bytes());
    assert_eq!(&tcp[4..8], &[20, 0, 0x01, 0x03]); // SOCK_DIAG_BY_FAMILY, REQUEST | DUMP
    assert_eq!(&tcp[8..12], &5u32.to_ne_bytes());
    // family, protocol, ext = skmeminfo bit, pad, states = 1 << TCP_LISTEN
    assert_eq!(&tcp[16..24], &[10, 6, 0x40, 0, 0x00, 0x04, 0, 0]);
    assert!(tcp[24..].iter().all(|b| *b == 0));

    let unix = unix_listeners_request(6);
    assert_eq!(unix.len(), 16 + 24);
    assert_eq!(
        &unix[16..32],
        &[1, 0, 0, 0, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0x11, 0, 0, 0]
    );
    assert_eq!(&unix[32..], &[0xff; 8]);
}

#[test]
fn parses_a_tcp_listener_with_its_drops() {
    let datagram = [
        message(SOCK_DIAG_BY_FAMILY, &INET_LISTENER),
        message(3, &[0, 0, 0, 0]),
    ]
    .concat();
    let batch = parse_batch(&datagram, parse_inet).unwrap();
    assert!(batch.done);
    assert_eq!(
        batch.listeners,
        vec![ListenerDiag {
            inode: 0x1234,
            addr: ListenAddr::Tcp("127.0.0.1:8000".parse().unwrap()),
            depth: 3,
            backlog: Some(4),
            drops: Some(9),
        }]
    );
    assert_eq!(batch.listeners[0].addr.label(), "127.0.0.1:8000");
}

#[test]
fn parses_an_ipv6_listener_without_meminfo() {
    let mut msg = INET_LISTENER[..72].to_vec();
    msg[0] = 10;
    msg[8..24].fill(0); // [::]
    let batch = parse_batch(&message(SOCK_DIAG_BY_FAMILY, &msg), parse_inet).unwrap();
    assert!(!batch.done);
    let listener = &batch.listeners[0];
    assert_eq!(listener.addr.label(), "[::]:8000");
    assert_eq!(listener.drops, None);
}

#[test]
fn parses_unix_listeners_path_and_abstract() {
    let batch = parse_batch(&message(SOCK_DIAG_BY_FAMILY, &UNIX_LISTENER), parse_unix).unwrap();
    assert_eq!(
        batch.listeners,
        vec![ListenerDiag {
            inode: 77,
            addr: ListenAddr::Unix("/tmp/a.sock".into()),
            depth: 2,
            backlog: Some(2048),
            drops: None,
        }]
    );
    assert_eq!(batch.listeners[0].addr.label(), "unix:/tmp/a.sock");

    let mut abstract_name = UNIX_LISTENER.to_vec();
    abstract_name[20] = 0;
    let listener = parse_unix(&abstract_name).unwrap();
    assert_eq!(listener.addr.label(), "unix:@tmp/a.sock");
}

#[test]
fn kernel_errors_and_truncation_are_errors() {
    let error = message(2, &(-13i32).to_le_bytes());
    assert_eq!(
        parse_batch(&error, parse_inet),
        Err(DiagError::Kernel { errno: 13 })
    );

    let short = message(SOCK_DIAG_BY_FAMILY, &INET_LISTENER[..40]);
    assert_eq!(
        parse_batch(&short, parse_inet),
        Err(DiagError::Short {
            what: "inet_diag_msg",
            len: 40,
            need: 72
        })
    );

    let mut lying = message(SOCK_DIAG_BY_FAMILY, &INET_LISTENER);
    lying[0] = 200;
    assert!(matches!(
        parse_batch(&lying, parse_inet),
        Err(DiagError::Short {
            what: "netlink message",
            ..
        })
    ));

    // A unix listener without its queue lengths cannot be reported.
    assert!(parse_unix(&UNIX_LISTENER[..32]).is_err());
}
