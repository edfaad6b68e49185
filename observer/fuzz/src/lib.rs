//! Shared by the fuzz targets and the seed maker: a compact byte script of socket syscalls
//! that drives [`ConnTable`] the way the kernel's events do, and the checks every run must
//! pass whatever the bytes.
//!
//! A script is a sequence of operations. Each starts with one op byte: the low nibble is the
//! syscall, bits 4-5 pick one of four fds, bit 6 one of two processes. Reads and writes carry
//! a little-endian `u16` length and then that many bytes (fewer if the input ends), so any
//! byte string is a valid script and libFuzzer's mutations cut the traffic anywhere.

use std::collections::HashMap;

use gunicorn_observer::http::{Completed, ConnId, ConnTable, Output};
use observer_ebpf::limits::CAPTURE_LEN;

/// Connections the fuzzed table may follow: small, so the table-full path is exercised.
pub const MAX_CONNS: usize = 3;

/// The syscall in an op byte's low nibble.
pub mod op {
    pub const ACCEPT: u8 = 0;
    /// Followed by a u16 length and the bytes read.
    pub const READ: u8 = 1;
    /// Followed by a u16 length and the bytes written.
    pub const WRITE: u8 = 2;
    /// Followed by one byte `e`: the read returns `-e` (0 is EOF).
    pub const READ_ERR: u8 = 3;
    /// Followed by one byte `e`: the write returns `-e`.
    pub const WRITE_ERR: u8 = 4;
    /// Followed by a u16: bytes sendfile moved, none captured.
    pub const SENDFILE: u8 = 5;
    pub const SHUTDOWN: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const EXIT: u8 = 8;
}

/// Builds scripts; used to turn recorded traffic into seeds.
#[derive(Default)]
pub struct Script(pub Vec<u8>);

impl Script {
    fn push_op(&mut self, code: u8, fd: u8, process: u8) {
        self.0.push(code | (fd & 3) << 4 | (process & 1) << 6);
    }

    pub fn accept(&mut self, fd: u8) -> &mut Self {
        self.push_op(op::ACCEPT, fd, 0);
        self
    }

    /// One syscall per chunk, each at most `u16::MAX` bytes.
    fn data(&mut self, code: u8, fd: u8, bytes: &[u8], chunk: usize) -> &mut Self {
        for piece in bytes.chunks(chunk.clamp(1, u16::MAX as usize)) {
            self.push_op(code, fd, 0);
            self.0
                .extend_from_slice(&(piece.len() as u16).to_le_bytes());
            self.0.extend_from_slice(piece);
        }
        self
    }

    pub fn read(&mut self, fd: u8, bytes: &[u8], chunk: usize) -> &mut Self {
        self.data(op::READ, fd, bytes, chunk)
    }

    pub fn write(&mut self, fd: u8, bytes: &[u8], chunk: usize) -> &mut Self {
        self.data(op::WRITE, fd, bytes, chunk)
    }

    pub fn eof(&mut self, fd: u8) -> &mut Self {
        self.push_op(op::READ_ERR, fd, 0);
        self.0.push(0);
        self
    }

    pub fn shutdown(&mut self, fd: u8) -> &mut Self {
        self.push_op(op::SHUTDOWN, fd, 0);
        self
    }

    pub fn close(&mut self, fd: u8) -> &mut Self {
        self.push_op(op::CLOSE, fd, 0);
        self
    }
}

/// Bytes moved per connection, to bound what the table may attribute to requests.
#[derive(Default)]
struct Moved {
    read: u64,
    written: u64,
    attributed_in: u64,
    attributed_out: u64,
}

/// Runs a script through a fresh table and panics if any invariant breaks:
/// - every request ends at or after its start, and inside the run's clock;
/// - no connection is credited more request or response bytes than its syscalls moved;
/// - the table never holds more than [`MAX_CONNS`];
/// - once every process has exited, no state and no in-flight request is left.
pub fn run_script(mut input: &[u8]) {
    let mut table = ConnTable::new(MAX_CONNS);
    let mut moved: HashMap<ConnId, Moved> = HashMap::new();
    let mut outputs: Vec<Output> = Vec::new();
    let mut now = 0u64;

    while let Some((&op_byte, rest)) = input.split_first() {
        input = rest;
        now += 1;
        let id = ConnId {
            tgid: 100 + u32::from(op_byte >> 6 & 1),
            fd: i32::from(op_byte >> 4 & 3),
        };
        let mut sink = |o| outputs.push(o);
        match op_byte & 0x0f {
            op::ACCEPT => table.on_accept(id, now, &mut sink),
            code @ (op::READ | op::WRITE) => {
                let (bytes, rest) = take_chunk(input);
                input = rest;
                let captured = &bytes[..bytes.len().min(CAPTURE_LEN)];
                let ret = bytes.len() as i64;
                let entry = moved.entry(id).or_default();
                if code == op::READ {
                    entry.read += bytes.len() as u64;
                    table.on_read(id, now, ret, captured, &mut sink);
                } else {
                    entry.written += bytes.len() as u64;
                    table.on_write(id, now, ret, captured, &mut sink);
                }
            }
            code @ (op::READ_ERR | op::WRITE_ERR) => {
                let errno = input.first().copied().unwrap_or(0);
                input = input.get(1..).unwrap_or_default();
                let ret = -i64::from(errno);
                if code == op::READ_ERR {
                    table.on_read(id, now, ret, b"", &mut sink);
                } else {
                    table.on_write(id, now, ret, b"", &mut sink);
                }
            }
            op::SENDFILE => {
                let (len, rest) = take_u16(input);
                input = rest;
                moved.entry(id).or_default().written += u64::from(len);
                table.on_write(id, now, i64::from(len), b"", &mut sink);
            }
            op::SHUTDOWN => table.on_shutdown(id, now, &mut sink),
            op::CLOSE => table.on_close(id, now, &mut sink),
            op::EXIT => {
                table.on_process_exit(id.tgid, now, &mut sink);
            }
            _ => {}
        }
        assert!(table.len() <= MAX_CONNS, "table grew past its cap");
    }

    now += 1;
    for tgid in [100, 101] {
        table.on_process_exit(tgid, now, &mut |o| outputs.push(o));
        assert_eq!(table.in_flight(tgid), 0, "in-flight count left for {tgid}");
    }
    assert!(table.is_empty(), "state left after every process exited");

    for output in outputs {
        if let Output::Request(request) = output {
            check_request(&request, now, &mut moved);
        }
    }
}

fn check_request(request: &Completed, now: u64, moved: &mut HashMap<ConnId, Moved>) {
    assert!(
        request.start_ns <= request.end_ns && request.end_ns <= now,
        "request times out of order: {request:?}"
    );
    let entry = moved.entry(request.conn).or_default();
    entry.attributed_in += request.request_bytes;
    entry.attributed_out += request.response_bytes;
    assert!(
        entry.attributed_in <= entry.read,
        "{} request bytes attributed on {:?}, {} read",
        entry.attributed_in,
        request.conn,
        entry.read
    );
    assert!(
        entry.attributed_out <= entry.written,
        "{} response bytes attributed on {:?}, {} written",
        entry.attributed_out,
        request.conn,
        entry.written
    );
}

fn take_u16(input: &[u8]) -> (u16, &[u8]) {
    match input {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (0, &[]),
    }
}

fn take_chunk(input: &[u8]) -> (&[u8], &[u8]) {
    let (len, rest) = take_u16(input);
    rest.split_at(usize::from(len).min(rest.len()))
}

/// Splits a decode-target input into records: each a little-endian `u16` length and bytes.
pub fn records(mut input: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if input.is_empty() {
            return None;
        }
        let (record, rest) = take_chunk(input);
        input = rest;
        Some(record)
    })
}
