//! Ring-buffer records to typed events.
//!
//! Records come from our own kernel programs, but they are still bytes crossing a boundary:
//! every length and discriminant is checked, and a record that fails a check is an error the
//! caller counts, never a panic or a transmute.

use std::mem::size_of;

use observer_ebpf::{
    event::{
        AcceptEvent, CLOSE_CLOSE, CLOSE_SHUTDOWN, CloseEvent, DATA_EVENT_HEADER_LEN, DataEvent,
        EventHeader, EventKind, OomEvent, ProcEvent, QueueWaitEvent, SignalEvent, Syscall,
    },
    limits::CAPTURE_LEN,
};

/// One decoded record. Payload bytes are borrowed from the ring buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Fork {
        parent: u32,
        child: u32,
        role: u32,
        ts_ns: u64,
    },
    Exec {
        tgid: u32,
        ts_ns: u64,
    },
    Exit {
        tgid: u32,
        exit_code: i32,
        ts_ns: u64,
    },
    Accept {
        tgid: u32,
        fd: i32,
        listen_fd: i32,
        family: u32,
        ts_ns: u64,
    },
    Data {
        tgid: u32,
        tid: u32,
        fd: i32,
        syscall: Syscall,
        ret: i64,
        payload: &'a [u8],
        ts_ns: u64,
    },
    Close {
        tgid: u32,
        fd: i32,
        shutdown: bool,
        ts_ns: u64,
    },
    /// A signal generated for a tracked process.
    Signal {
        /// The process running when the signal was generated (see `SignalEvent`).
        sender: u32,
        /// The tracked process it targets.
        target: u32,
        sig: i32,
        code: i32,
        result: i32,
        ts_ns: u64,
    },
    /// The OOM killer picked a tracked process.
    OomVictim {
        pid: u32,
        ts_ns: u64,
    },
    /// A worker accepted a TCP connection; how long it queued.
    QueueWait {
        tgid: u32,
        listen_fd: i32,
        /// The listener's port; 0 when no handshake was seen.
        local_port: u16,
        family: u16,
        /// When the handshake completed, or `None` when the kernel saw none for this peer.
        handshake_ns: Option<u64>,
        /// When the accept returned.
        ts_ns: u64,
    },
    /// Earlier records of connection `(tgid, fd)` did not fit the ring buffer.
    Lost {
        tgid: u32,
        fd: i32,
        ts_ns: u64,
    },
}

impl Event<'_> {
    /// Every value [`Self::kind_name`] can return, in [`Self::kind_index`] order.
    pub const KIND_NAMES: [&'static str; 11] = [
        "fork",
        "exec",
        "exit",
        "accept",
        "data",
        "shutdown",
        "close",
        "signal",
        "oom_victim",
        "queue_wait",
        "lost",
    ];

    /// Label for the events-handled counter.
    pub fn kind_name(&self) -> &'static str {
        Self::KIND_NAMES[self.kind_index()]
    }

    /// Position of this event's kind in [`Self::KIND_NAMES`], so a caller can keep one
    /// counter per kind in an array instead of looking the label up per event.
    pub fn kind_index(&self) -> usize {
        match self {
            Self::Fork { .. } => 0,
            Self::Exec { .. } => 1,
            Self::Exit { .. } => 2,
            Self::Accept { .. } => 3,
            Self::Data { .. } => 4,
            Self::Close { shutdown: true, .. } => 5,
            Self::Close { .. } => 6,
            Self::Signal { .. } => 7,
            Self::OomVictim { .. } => 8,
            Self::QueueWait { .. } => 9,
            Self::Lost { .. } => 10,
        }
    }

    /// Socket events: the ones that only touch connections and request statistics.
    pub fn is_socket(&self) -> bool {
        matches!(
            self,
            Self::Accept { .. } | Self::Data { .. } | Self::Close { .. }
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need}-byte {what}")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("unknown syscall id {0}")]
    UnknownSyscall(u32),
    #[error("data record claims {captured} captured bytes but carries {available}")]
    BadCapture { captured: u32, available: usize },
    #[error("unknown close kind {0}")]
    UnknownClose(u32),
    #[error("data record returns {0}, which no read or write can")]
    ImpossibleReturn(i64),
}

impl DecodeError {
    /// Every value [`Self::reason`] can return, so the counter's series exist at zero.
    pub const REASONS: [&str; 6] = [
        "short_record",
        "unknown_kind",
        "unknown_syscall",
        "bad_capture",
        "unknown_close",
        "impossible_return",
    ];

    /// Label for the decode-errors counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Short { .. } => "short_record",
            Self::UnknownKind(_) => "unknown_kind",
            Self::UnknownSyscall(_) => "unknown_syscall",
            Self::BadCapture { .. } => "bad_capture",
            Self::UnknownClose(_) => "unknown_close",
            Self::ImpossibleReturn(_) => "impossible_return",
        }
    }
}

/// Reads a `T` from the start of `bytes`. The ring buffer only guarantees 8-byte alignment of
/// the record, so the read is unaligned-safe.
fn read<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            what,
            len: bytes.len(),
            need: size_of::<T>(),
        });
    }
    // SAFETY: the length was checked above, and T is one of the shared #[repr(C)] event
    // structs, made only of integers and byte arrays, for which every bit pattern is valid.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

pub fn decode(bytes: &[u8]) -> Result<Event<'_>, DecodeError> {
    let header: EventHeader = read(bytes, "event header")?;
    let kind = EventKind::try_from(header.kind).map_err(DecodeError::UnknownKind)?;
    let ts_ns = header.ts_ns;

    Ok(match kind {
        EventKind::Fork | EventKind::Exec | EventKind::Exit => {
            let proc: ProcEvent = read(bytes, "process event")?;
            match kind {
                EventKind::Fork => Event::Fork {
                    parent: proc.parent_tgid,
                    child: proc.child_tgid,
                    role: proc.role,
                    ts_ns,
                },
                EventKind::Exec => Event::Exec {
                    tgid: header.tgid,
                    ts_ns,
                },
                _ => Event::Exit {
                    tgid: header.tgid,
                    exit_code: proc.exit_code,
                    ts_ns,
                },
            }
        }
        EventKind::Accept => {
            let accept: AcceptEvent = read(bytes, "accept event")?;
            Event::Accept {
                tgid: header.tgid,
                fd: header.fd,
                listen_fd: accept.listen_fd,
                family: accept.family,
                ts_ns,
            }
        }
        EventKind::Data => decode_data(bytes, header)?,
        EventKind::Close => {
            let close: CloseEvent = read(bytes, "close event")?;
            let shutdown = match close.how {
                CLOSE_CLOSE => false,
                CLOSE_SHUTDOWN => true,
                other => return Err(DecodeError::UnknownClose(other)),
            };
            Event::Close {
                tgid: header.tgid,
                fd: header.fd,
                shutdown,
                ts_ns,
            }
        }
        EventKind::Signal => {
            let signal: SignalEvent = read(bytes, "signal event")?;
            Event::Signal {
                sender: header.tgid,
                target: signal.target_tgid,
                sig: signal.sig,
                code: signal.code,
                result: signal.result,
                ts_ns,
            }
        }
        EventKind::OomVictim => {
            let oom: OomEvent = read(bytes, "OOM event")?;
            Event::OomVictim {
                pid: oom.victim_pid,
                ts_ns,
            }
        }
        EventKind::QueueWait => {
            let wait: QueueWaitEvent = read(bytes, "queue-wait event")?;
            Event::QueueWait {
                tgid: header.tgid,
                listen_fd: wait.listen_fd,
                local_port: wait.local_port,
                family: wait.family,
                handshake_ns: (wait.handshake_ns != 0).then_some(wait.handshake_ns),
                ts_ns,
            }
        }
        // The header is the whole record.
        EventKind::Lost => Event::Lost {
            tgid: header.tgid,
            fd: header.fd,
            ts_ns,
        },
    })
}

/// The kernel moves at most `MAX_RW_COUNT` (`INT_MAX` rounded down to a page) bytes in one
/// read, write, vectored call or sendfile, and errors are `-1..=-MAX_ERRNO`. A return outside
/// that is a corrupt record; taken at its word it would credit a connection with exabytes.
const MAX_RW_COUNT: i64 = i32::MAX as i64;
const MAX_ERRNO: i64 = 4095;

/// Data records are sent truncated to their captured payload, so only the fixed part is read
/// as a struct and the payload is sliced out of the record.
fn decode_data(bytes: &[u8], header: EventHeader) -> Result<Event<'_>, DecodeError> {
    if bytes.len() < DATA_EVENT_HEADER_LEN {
        return Err(DecodeError::Short {
            what: "data event",
            len: bytes.len(),
            need: DATA_EVENT_HEADER_LEN,
        });
    }
    let ret = read_i64(bytes, std::mem::offset_of!(DataEvent, ret));
    let syscall = read_u32(bytes, std::mem::offset_of!(DataEvent, syscall));
    let captured = read_u32(bytes, std::mem::offset_of!(DataEvent, captured));

    let syscall = Syscall::try_from(syscall).map_err(DecodeError::UnknownSyscall)?;
    if !(-MAX_ERRNO..=MAX_RW_COUNT).contains(&ret) {
        return Err(DecodeError::ImpossibleReturn(ret));
    }
    let available = bytes.len() - DATA_EVENT_HEADER_LEN;
    let len = captured as usize;
    if len > CAPTURE_LEN || len > available {
        return Err(DecodeError::BadCapture {
            captured,
            available,
        });
    }
    let payload = &bytes[DATA_EVENT_HEADER_LEN..DATA_EVENT_HEADER_LEN + len];

    Ok(Event::Data {
        tgid: header.tgid,
        tid: header.tid,
        fd: header.fd,
        syscall,
        ret,
        payload,
        ts_ns: header.ts_ns,
    })
}

// Callers have checked that `bytes` holds the whole fixed part of the record.
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(raw)
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_ne_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_bytes<T>(value: &T) -> Vec<u8> {
        // SAFETY: test-only view of a #[repr(C)] struct without padding.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn header(kind: EventKind, fd: i32) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            tgid: 4242,
            tid: 4243,
            fd,
            ts_ns: 1_000_000,
        }
    }

    fn data_record(syscall: u32, ret: i64, payload: &[u8]) -> Vec<u8> {
        let mut event = DataEvent {
            header: header(EventKind::Data, 7),
            ret,
            syscall,
            captured: payload.len() as u32,
            data: [0; CAPTURE_LEN],
        };
        event.data[..payload.len()].copy_from_slice(payload);
        let mut bytes = as_bytes(&event);
        bytes.truncate(DATA_EVENT_HEADER_LEN + payload.len());
        bytes
    }

    #[test]
    fn data_record_borrows_exactly_the_captured_bytes() {
        let bytes = data_record(Syscall::Recvfrom as u32, 18, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            decode(&bytes).unwrap(),
            Event::Data {
                tgid: 4242,
                tid: 4243,
                fd: 7,
                syscall: Syscall::Recvfrom,
                ret: 18,
                payload: b"GET / HTTP/1.1\r\n\r\n",
                ts_ns: 1_000_000,
            }
        );
    }

    #[test]
    fn data_record_claiming_more_than_it_carries_is_rejected() {
        let mut bytes = data_record(Syscall::Write as u32, 10, b"HTTP/1.1 2");
        bytes.truncate(bytes.len() - 3);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::BadCapture {
                captured: 10,
                available: 7
            })
        );
    }

    /// Found by the `event_decode` fuzzer: two reads each "returning" close to `i64::MAX`
    /// overflowed the request's byte count.
    #[test]
    fn a_return_no_syscall_can_give_is_rejected() {
        for ret in [i64::MAX, 1 << 40, i64::from(i32::MAX) + 1, -4096, i64::MIN] {
            let bytes = data_record(Syscall::Read as u32, ret, b"GET");
            assert_eq!(decode(&bytes), Err(DecodeError::ImpossibleReturn(ret)));
        }
        for ret in [i64::from(i32::MAX), 0, -4095] {
            let bytes = data_record(Syscall::Read as u32, ret, b"");
            assert!(decode(&bytes).is_ok(), "{ret} is a real return");
        }
    }

    #[test]
    fn unknown_discriminants_are_errors() {
        assert_eq!(
            decode(&data_record(99, 1, b"x")),
            Err(DecodeError::UnknownSyscall(99))
        );

        let mut bytes = as_bytes(&header(EventKind::Fork, -1));
        bytes[0..4].copy_from_slice(&77u32.to_ne_bytes());
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownKind(77)));
    }

    #[test]
    fn lost_notice_is_a_bare_header() {
        let bytes = as_bytes(&header(EventKind::Lost, 9));
        assert_eq!(
            decode(&bytes).unwrap(),
            Event::Lost {
                tgid: 4242,
                fd: 9,
                ts_ns: 1_000_000
            }
        );
        assert_eq!(decode(&bytes).unwrap().kind_name(), "lost");
    }

    #[test]
    fn short_records_are_errors() {
        assert!(matches!(
            decode(&[1, 0, 0]),
            Err(DecodeError::Short { need: 24, .. })
        ));
        let bytes = as_bytes(&header(EventKind::Fork, -1));
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::Short {
                what: "process event",
                len: 24,
                need: 40
            })
        );
    }

    #[test]
    fn process_accept_and_close_records() {
        let fork = ProcEvent {
            header: header(EventKind::Fork, -1),
            parent_tgid: 10,
            child_tgid: 11,
            exit_code: 0,
            role: 2,
        };
        assert_eq!(
            decode(&as_bytes(&fork)).unwrap(),
            Event::Fork {
                parent: 10,
                child: 11,
                role: 2,
                ts_ns: 1_000_000
            }
        );

        let exit = ProcEvent {
            header: header(EventKind::Exit, -1),
            parent_tgid: 4242,
            child_tgid: 4242,
            exit_code: 9,
            role: 0,
        };
        assert_eq!(
            decode(&as_bytes(&exit)).unwrap(),
            Event::Exit {
                tgid: 4242,
                exit_code: 9,
                ts_ns: 1_000_000
            }
        );

        let accept = AcceptEvent {
            header: header(EventKind::Accept, 9),
            listen_fd: 5,
            family: 2,
        };
        assert_eq!(
            decode(&as_bytes(&accept)).unwrap(),
            Event::Accept {
                tgid: 4242,
                fd: 9,
                listen_fd: 5,
                family: 2,
                ts_ns: 1_000_000
            }
        );

        let mut close = CloseEvent {
            header: header(EventKind::Close, 9),
            how: CLOSE_SHUTDOWN,
            shutdown_how: 2,
        };
        assert!(matches!(
            decode(&as_bytes(&close)).unwrap(),
            Event::Close {
                shutdown: true,
                fd: 9,
                ..
            }
        ));
        close.how = 5;
        assert_eq!(decode(&as_bytes(&close)), Err(DecodeError::UnknownClose(5)));
    }

    #[test]
    fn signal_and_oom_records() {
        let signal = SignalEvent {
            header: header(EventKind::Signal, -1),
            target_pid: 4250,
            target_tgid: 4250,
            sig: 6,
            code: 0,
            result: 0,
            group: 1,
        };
        assert_eq!(
            decode(&as_bytes(&signal)).unwrap(),
            Event::Signal {
                sender: 4242,
                target: 4250,
                sig: 6,
                code: 0,
                result: 0,
                ts_ns: 1_000_000
            }
        );
        let bytes = as_bytes(&signal);
        assert_eq!(
            decode(&bytes[..40]),
            Err(DecodeError::Short {
                what: "signal event",
                len: 40,
                need: 48
            })
        );

        let oom = OomEvent {
            header: header(EventKind::OomVictim, -1),
            victim_pid: 4250,
            reserved: 0,
        };
        assert_eq!(
            decode(&as_bytes(&oom)).unwrap(),
            Event::OomVictim {
                pid: 4250,
                ts_ns: 1_000_000
            }
        );
    }

    #[test]
    fn queue_waits_with_and_without_a_handshake() {
        let matched = QueueWaitEvent {
            header: header(EventKind::QueueWait, 7),
            listen_fd: 5,
            local_port: 8000,
            family: 2,
            handshake_ns: 400_000,
        };
        assert_eq!(
            decode(&as_bytes(&matched)).unwrap(),
            Event::QueueWait {
                tgid: 4242,
                listen_fd: 5,
                local_port: 8000,
                family: 2,
                handshake_ns: Some(400_000),
                ts_ns: 1_000_000
            }
        );
        let unmatched = QueueWaitEvent {
            local_port: 0,
            handshake_ns: 0,
            ..matched
        };
        assert!(matches!(
            decode(&as_bytes(&unmatched)).unwrap(),
            Event::QueueWait {
                handshake_ns: None,
                local_port: 0,
                ..
            }
        ));
        assert_eq!(
            decode(&as_bytes(&matched)[..32]),
            Err(DecodeError::Short {
                what: "queue-wait event",
                len: 32,
                need: 40
            })
        );
    }
}
