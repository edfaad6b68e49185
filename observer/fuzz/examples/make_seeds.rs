//! Records real exchanges with a running Gunicorn (tests/apps/app.py) and writes them as
//! seeds for both fuzz targets: as a syscall script, and as the ring-buffer records our
//! kernel programs would send for the same traffic.
//!
//!     cargo run --example make_seeds -- 127.0.0.1:8000 seeds
//!
//! Only loopback addresses are accepted: this tool talks to a Gunicorn you started.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use gunicorn_observer_fuzz::Script;
use observer_ebpf::event::{
    AcceptEvent, CLOSE_CLOSE, CLOSE_SHUTDOWN, CloseEvent, DATA_EVENT_HEADER_LEN, DataEvent,
    EventHeader, EventKind, Syscall,
};
use observer_ebpf::limits::CAPTURE_LEN;

/// (name, request bytes): each sent on a fresh connection, which Gunicorn answers and closes
/// (sync workers) or keeps (`Connection: keep-alive` on gthread).
const REQUESTS: &[(&str, &[u8])] = &[
    ("get", b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    (
        "keepalive",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET /status/404 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ),
    (
        "post",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
    ),
    (
        "chunked",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    ("error", b"GET /error HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    ("head", b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    ("http10", b"GET / HTTP/1.0\r\n\r\n"),
    ("bad", b"GARBAGE\x00\x01 / HTTP/9\r\n\r\n"),
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(out)) = (args.next(), args.next()) else {
        bail!("usage: make_seeds <127.0.0.1:port> <seeds dir>");
    };
    let addr: SocketAddr = addr.parse().context("parsing the address")?;
    if !addr.ip().is_loopback() {
        bail!("{addr} is not a loopback address");
    }
    let out = Path::new(&out);
    for target in ["http_reconstruction", "event_decode"] {
        std::fs::create_dir_all(out.join(target))?;
    }

    for (name, request) in REQUESTS {
        let response = exchange(addr, request).with_context(|| format!("exchange {name}"))?;
        // Whole, and cut small, to seed both the one-syscall and the split paths.
        for (suffix, chunk) in [("whole", usize::MAX), ("split", 7)] {
            let mut script = Script::default();
            script
                .accept(0)
                .read(0, request, chunk)
                .write(0, &response, chunk)
                .eof(0)
                .shutdown(0)
                .close(0);
            std::fs::write(
                out.join("http_reconstruction")
                    .join(format!("{name}-{suffix}")),
                &script.0,
            )?;
        }
        std::fs::write(
            out.join("event_decode").join(name),
            records(request, &response),
        )?;
    }
    Ok(())
}

/// Sends `request`, half-closes, and returns every byte Gunicorn answered.
fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    stream.shutdown(Shutdown::Write)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(response)
}

/// The records our programs send for one connection carrying this traffic, each prefixed
/// with its u16 length (the event_decode input format).
fn records(request: &[u8], response: &[u8]) -> Vec<u8> {
    let header = |kind: EventKind, ts_ns: u64| EventHeader {
        kind: kind as u32,
        tgid: 100,
        tid: 100,
        fd: 7,
        ts_ns,
    };
    let mut out = Vec::new();
    let mut push = |record: &[u8]| {
        out.extend_from_slice(&(record.len() as u16).to_le_bytes());
        out.extend_from_slice(record);
    };

    push(as_bytes(&AcceptEvent {
        header: header(EventKind::Accept, 1),
        listen_fd: 5,
        family: AF_INET,
    }));
    for (ts, (syscall, bytes)) in [(Syscall::Recvfrom, request), (Syscall::Sendto, response)]
        .into_iter()
        .enumerate()
    {
        let captured = bytes.len().min(CAPTURE_LEN);
        let mut event = DataEvent {
            header: header(EventKind::Data, 2 + ts as u64),
            ret: bytes.len() as i64,
            syscall: syscall as u32,
            captured: captured as u32,
            data: [0; CAPTURE_LEN],
        };
        event.data[..captured].copy_from_slice(&bytes[..captured]);
        // The kernel sends data records truncated to what was captured.
        push(&as_bytes(&event)[..DATA_EVENT_HEADER_LEN + captured]);
    }
    for (ts, how) in [(4, CLOSE_SHUTDOWN), (5, CLOSE_CLOSE)] {
        push(as_bytes(&CloseEvent {
            header: header(EventKind::Close, ts),
            how,
            shutdown_how: 1,
        }));
    }
    out
}

/// The peer's family in the accept record (linux/socket.h).
const AF_INET: u32 = 2;

fn as_bytes<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: T is one of the shared #[repr(C)] event structs, asserted free of padding.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}
