//! Real-kernel test of `load::Probes`: a Python "master" forks a "worker" that serves HTTP-ish
//! exchanges over every read and write syscall the programs watch, and the ring buffer must
//! hold exactly the expected records. Needs root, as every real-kernel test here; `cargo xtask
//! test` runs it.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Shutdown, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use gunicorn_observer::load::{LoadError, Probes};
use observer_ebpf::{
    drops::DROP_REASONS,
    event::{
        AcceptEvent, CLOSE_CLOSE, CLOSE_SHUTDOWN, CloseEvent, DATA_EVENT_HEADER_LEN, DataEvent,
        EventHeader, EventKind, OomEvent, ProcEvent, QueueWaitEvent, SIGNAL_DELIVERED,
        SIGNAL_IGNORED, SignalEvent, Syscall,
    },
    limits::CAPTURE_LEN,
    tracked::{ConnKey, ROLE_MASTER, ROLE_WORKER},
};

/// Exchanges served; the worker cycles through four syscall pairs, so each is used twice.
const EXCHANGES: usize = 8;

const RESPONSE: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/// From the fifth exchange on, requests carry a header this long, so the kernel must cut
/// the capture at `CAPTURE_LEN`.
const PAD_BYTES: usize = 2000;

/// Bytes the worker adds with sendfile after the response of every fourth exchange.
const SENDFILE_BYTES: usize = 3000;

/// The master waits for a line on stdin (so the test can track it first; a SIGUSR1 from the
/// test arrives meanwhile), starts two threads and forks one worker; the worker starts a
/// thread, gets EAGAIN from a non-blocking accept and from a non-blocking read, prints its
/// port and listening fd, serves the exchanges, sends itself SIGUSR2, and exits with status 3.
const SCRIPT: &str = r#"
import os, signal, socket, sys, threading, time

n, response, body_path = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]

def threads(count):
    ts = [threading.Thread(target=time.sleep, args=(0.01,)) for _ in range(count)]
    for t in ts: t.start()
    for t in ts: t.join()

def worker():
    threads(1)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ls.setblocking(False)
    try:
        ls.accept()
        os._exit(10)
    except BlockingIOError:
        pass
    ls.setblocking(True)
    # A connection to itself, read while empty: EAGAIN must leave only its accept and close.
    client = socket.create_connection(ls.getsockname())
    conn, _ = ls.accept()
    conn.setblocking(False)
    try:
        conn.recv(16)
        os._exit(13)
    except BlockingIOError:
        pass
    conn.close()
    client.close()
    print(ls.getsockname()[1], ls.fileno(), flush=True)
    body = os.open(body_path, os.O_RDONLY)
    for i in range(n):
        conn, _ = ls.accept()
        fd, way = conn.fileno(), i % 4
        if way == 0:
            req = conn.recv(4096)
            conn.sendall(response)
            os.sendfile(fd, body, 0, os.fstat(body).st_size)
        elif way == 1:
            req = os.read(fd, 4096)
            os.write(fd, response)
        elif way == 2:
            # In the second round the first iovec is short: only it is captured.
            bufs = [bytearray(16 if i >= 4 else 4096), bytearray(4096)]
            got = os.readv(fd, bufs)
            req = b"".join(bufs)[:got]
            os.writev(fd, [response])
        else:
            req = conn.recvmsg(4096)[0]
            conn.sendmsg([response])
        if not req.startswith(b"GET ") or conn.recv(16) != b"":
            os._exit(11)
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    signal.signal(signal.SIGUSR2, lambda *_: None)
    os.kill(os.getpid(), signal.SIGUSR2)
    os._exit(3)

signal.signal(signal.SIGUSR1, lambda *_: None)
print("ready", flush=True)
sys.stdin.readline()
threads(2)
pid = os.fork()
if pid == 0:
    worker()
_, status = os.waitpid(pid, 0)
sys.exit(0 if os.waitstatus_to_exitcode(status) == 3 else 12)
"#;

/// A ring-buffer record, decoded.
#[derive(Debug)]
enum Record {
    Proc(EventKind, ProcEvent),
    Accept(AcceptEvent),
    Data(Box<DataEvent>),
    Close(CloseEvent),
    Signal(SignalEvent),
    Oom(OomEvent),
    QueueWait(QueueWaitEvent),
    Lost(EventHeader),
}

impl Record {
    fn header(&self) -> &EventHeader {
        match self {
            Self::Proc(_, e) => &e.header,
            Self::Accept(e) => &e.header,
            Self::Data(e) => &e.header,
            Self::Close(e) => &e.header,
            Self::Signal(e) => &e.header,
            Self::Oom(e) => &e.header,
            Self::QueueWait(e) => &e.header,
            Self::Lost(header) => header,
        }
    }

    /// The connection record without its fd, as `(fd, summary)`.
    fn conn_summary(&self) -> Option<(i32, String)> {
        let text = match self {
            Self::Proc(..) | Self::Signal(_) | Self::Oom(_) => return None,
            Self::Accept(e) => format!("accept listen_fd={} family={}", e.listen_fd, e.family),
            // A stamp must come before the accept that returned the connection.
            Self::QueueWait(e) => format!(
                "queue_wait listen_fd={} local_port={} family={} stamped={}",
                e.listen_fd,
                e.local_port,
                e.family,
                e.handshake_ns != 0 && e.handshake_ns <= e.header.ts_ns
            ),
            Self::Data(e) => {
                let call = Syscall::try_from(e.syscall).unwrap();
                let bytes = &e.data[..e.captured as usize];
                let head = String::from_utf8_lossy(&bytes[..bytes.len().min(6)]);
                format!("{call:?} ret={} captured={} {head:?}", e.ret, e.captured)
            }
            Self::Close(e) => format!("close how={} shutdown_how={}", e.how, e.shutdown_how),
            Self::Lost(_) => "lost".to_owned(),
        };
        Some((self.header().fd, text))
    }
}

/// Copies a record into its struct, checking the length the kernel gave it.
fn decode(bytes: &[u8]) -> Record {
    fn read<T: Copy>(bytes: &[u8]) -> T {
        assert_eq!(bytes.len(), size_of::<T>(), "record length");
        // SAFETY: the event structs are repr(C) integers and byte arrays with no padding.
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) }
    }
    let kind = u32::from_ne_bytes(bytes[..4].try_into().unwrap());
    match EventKind::try_from(kind).unwrap() {
        kind @ (EventKind::Fork | EventKind::Exec | EventKind::Exit) => {
            Record::Proc(kind, read(bytes))
        }
        EventKind::Accept => Record::Accept(read(bytes)),
        EventKind::Close => Record::Close(read(bytes)),
        EventKind::Signal => Record::Signal(read(bytes)),
        EventKind::OomVictim => Record::Oom(read(bytes)),
        EventKind::QueueWait => Record::QueueWait(read(bytes)),
        EventKind::Lost => Record::Lost(read(bytes)),
        EventKind::Data => {
            assert!(bytes.len() >= DATA_EVENT_HEADER_LEN);
            // SAFETY: as above; the payload beyond `captured` stays zero.
            let mut event: DataEvent = unsafe { std::mem::zeroed() };
            let dst = std::ptr::from_mut(&mut event).cast::<u8>();
            assert!(bytes.len() <= size_of::<DataEvent>());
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
            assert_eq!(bytes.len(), DATA_EVENT_HEADER_LEN + event.captured as usize);
            Record::Data(Box::new(event))
        }
    }
}

fn python() -> String {
    // Resolve the real interpreter so pyenv-style shims add no exec of their own.
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn request(i: usize) -> String {
    let pad = if i >= 4 {
        "x".repeat(PAD_BYTES)
    } else {
        String::new()
    };
    if pad.is_empty() {
        format!("GET /{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    } else {
        format!("GET /{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {pad}\r\n\r\n")
    }
}

fn exchange(port: u16, i: usize) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request(i).as_bytes()).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

/// What the worker's records for exchange `i` must be, in order (fds checked separately).
fn expected_exchange(i: usize, listen_fd: i32, port: u16) -> Vec<String> {
    let request_len = request(i).len();
    let captured = match (i >= 4, i % 4) {
        (false, _) => request_len,
        // readv's first iovec holds 16 bytes.
        (true, 2) => 16,
        (true, _) => CAPTURE_LEN,
    };
    let (inbound, outbound) = match i % 4 {
        0 => ("Recvfrom", "Sendto"),
        1 => ("Read", "Write"),
        2 => ("Readv", "Writev"),
        _ => ("Recvmsg", "Sendmsg"),
    };
    let mut records = vec![
        format!("accept listen_fd={listen_fd} family={}", libc::AF_INET),
        format!(
            "queue_wait listen_fd={listen_fd} local_port={port} family={} stamped=true",
            libc::AF_INET
        ),
        format!("{inbound} ret={request_len} captured={captured} \"GET /{i}\""),
        format!(
            "{outbound} ret={} captured={} \"HTTP/1\"",
            RESPONSE.len(),
            RESPONSE.len()
        ),
    ];
    if i.is_multiple_of(4) {
        records.push(format!("Sendfile ret={SENDFILE_BYTES} captured=0 \"\""));
    }
    records.extend([
        "Recvfrom ret=0 captured=0 \"\"".to_owned(),
        format!(
            "close how={CLOSE_SHUTDOWN} shutdown_how={}",
            libc::SHUT_RDWR
        ),
        format!("close how={CLOSE_CLOSE} shutdown_how=0"),
    ]);
    records
}

#[test]
fn follows_a_forked_worker_exactly() {
    let mut probes = Probes::load().unwrap_or_else(|err| panic!("{:#}", anyhow::Error::new(err)));
    assert_eq!(probes.attached(), 32);
    let mut events = probes.take_events().unwrap();
    assert!(matches!(probes.take_events(), Err(LoadError::EventsTaken)));

    let body = std::env::temp_dir().join(format!("kernel-probes-{}.body", std::process::id()));
    std::fs::write(&body, vec![b'x'; SENDFILE_BYTES]).unwrap();

    let mut master = Command::new(python())
        .args(["-c", SCRIPT, &EXCHANGES.to_string(), RESPONSE])
        .arg(&body)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let master_pid = master.id();
    let mut stdout = BufReader::new(master.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    probes.track(master_pid, ROLE_MASTER).unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
    assert_eq!(unsafe { libc::kill(master_pid as i32, libc::SIGUSR1) }, 0);
    writeln!(master.stdin.take().unwrap(), "go").unwrap();

    line.clear();
    stdout.read_line(&mut line).unwrap();
    let mut fields = line.split_whitespace().map(|f| f.parse::<i64>().unwrap());
    let (port, listen_fd) = (fields.next().unwrap() as u16, fields.next().unwrap() as i32);
    // Handshakes on the worker's port are stamped from now on, so each exchange's accept
    // carries its queue wait.
    probes.watch_listen_port(port).unwrap();

    let mut expected_reply = RESPONSE.as_bytes().to_vec();
    for i in 0..EXCHANGES {
        let mut expected = expected_reply.clone();
        if i.is_multiple_of(4) {
            expected.extend(std::iter::repeat_n(b'x', SENDFILE_BYTES));
        }
        assert_eq!(exchange(port, i), expected, "reply {i}");
    }
    assert!(
        master.wait().unwrap().success(),
        "the script checks its own syscalls"
    );
    expected_reply.clear();
    std::fs::remove_file(&body).unwrap();

    let mut records = Vec::new();
    while let Some(item) = events.next() {
        records.push(decode(&item));
    }

    // Process records of our two processes (exec is sent for every process on the node).
    let forks: Vec<&ProcEvent> = records
        .iter()
        .filter_map(|r| match r {
            Record::Proc(EventKind::Fork, e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(
        forks.len(),
        1,
        "one fork, none for the master's threads: {forks:?}"
    );
    let fork = forks[0];
    let worker_pid = fork.child_tgid;
    assert_eq!(
        (
            fork.header.tgid,
            fork.parent_tgid,
            fork.role,
            fork.header.fd
        ),
        (master_pid, master_pid, ROLE_WORKER, -1)
    );

    let ours = |kind: EventKind| -> Vec<(u32, i32)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Proc(k, e)
                    if *k == kind && [master_pid, worker_pid].contains(&e.header.tgid) =>
                {
                    Some((e.child_tgid, e.exit_code))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(ours(EventKind::Exec), [(master_pid, 0)]);
    // The worker's _exit(3) is wait status 3 << 8; the master exits 0.
    assert_eq!(
        ours(EventKind::Exit),
        [(worker_pid, 3 << 8), (master_pid, 0)]
    );

    // Signals to our two processes, as (sender, target pid, target tgid, sig, code, result,
    // group): the test's SIGUSR1 to the master, the worker's SIGUSR2 to itself, and the
    // SIGCHLD of its exit (CLD_EXITED), which the master ignores. Nothing else is tracked.
    let test_pid = std::process::id();
    let signals: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Signal(e) => Some((
                e.header.tgid,
                e.target_pid,
                e.target_tgid,
                e.sig,
                e.code,
                e.result,
                e.group,
            )),
            _ => None,
        })
        .collect();
    let (delivered, ignored) = (SIGNAL_DELIVERED, SIGNAL_IGNORED);
    let cld_exited = 1;
    assert_eq!(
        signals,
        [
            (
                test_pid,
                master_pid,
                master_pid,
                libc::SIGUSR1,
                0,
                delivered,
                1
            ),
            (
                worker_pid,
                worker_pid,
                worker_pid,
                libc::SIGUSR2,
                0,
                delivered,
                1
            ),
            (
                worker_pid,
                master_pid,
                master_pid,
                libc::SIGCHLD,
                cld_exited,
                ignored,
                1
            ),
        ]
    );
    assert!(!records.iter().any(|r| matches!(r, Record::Oom(_))));

    // Connection records: all from the worker, in exchange order, each on its accepted fd.
    let conn: Vec<(i32, String)> = records
        .iter()
        .filter(|r| !matches!(r, Record::Proc(..) | Record::Signal(_)))
        .inspect(|r| assert_eq!(r.header().tgid, worker_pid, "{r:?}"))
        .filter_map(Record::conn_summary)
        .collect();
    let self_connection = [
        format!("accept listen_fd={listen_fd} family={}", libc::AF_INET),
        // Made before the test learnt the port, so its handshake was not stamped.
        format!(
            "queue_wait listen_fd={listen_fd} local_port=0 family={} stamped=false",
            libc::AF_INET
        ),
        format!("close how={CLOSE_CLOSE} shutdown_how=0"),
    ];
    let expected: Vec<String> = self_connection
        .into_iter()
        .chain((0..EXCHANGES).flat_map(|i| expected_exchange(i, listen_fd, port)))
        .collect();
    let got: Vec<&str> = conn.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(got, expected);
    for exchange in conn.chunk_by(|_, (_, text)| !text.starts_with("accept")) {
        let fd = exchange[0].0;
        assert!(exchange.iter().all(|(f, _)| *f == fd), "{exchange:?}");
    }

    // Captured payloads are the real bytes, not just their heads.
    let first_request = records.iter().find_map(|r| match r {
        Record::Data(e) if e.syscall == Syscall::Recvfrom as u32 && e.captured > 0 => Some(e),
        _ => None,
    });
    let padded = records.iter().find_map(|r| match r {
        Record::Data(e) if e.syscall == Syscall::Recvfrom as u32 && e.captured == 1024 => Some(e),
        _ => None,
    });
    assert_eq!(first_request.unwrap().data[..36], *request(0).as_bytes());
    assert_eq!(
        padded.unwrap().data[..],
        request(4).as_bytes()[..CAPTURE_LEN]
    );

    assert_eq!(probes.drop_counts().unwrap(), [0; DROP_REASONS as usize]);

    // The kernel untracked both leaders at exit; untracking and forgetting absent keys is fine.
    probes.untrack(master_pid).unwrap();
    probes.untrack(worker_pid).unwrap();
    probes
        .forget_conn(ConnKey {
            tgid: worker_pid,
            fd: listen_fd,
        })
        .unwrap();

    // Dropping the probes detaches and unloads every program.
    let ids = probes.program_ids().unwrap();
    assert_eq!(ids.len(), 32);
    drop(events);
    drop(probes);
    // The kernel frees a program after an RCU grace period, not at the last close, so give
    // it a moment; a program that is really leaked stays loaded for good.
    let still_loaded = || -> Vec<u32> {
        aya::programs::loaded_programs()
            .map(|info| info.unwrap().id())
            .filter(|id| ids.contains(id))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !still_loaded().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(still_loaded(), Vec::<u32>::new());
}
