//! Field offsets of plain tracepoint records, from their tracefs `format` files.
//!
//! A `format` file lists each field of the record on a line like
//! `field:int sig; offset:8; size:4; signed:1;` (tab-separated). The offsets moved between kernels for the
//! sched events, so the loader reads the ones the signal and OOM programs need at start.

use std::{io, path::Path};

use observer_ebpf::{layout::TracepointOffsets, queue::SockStateOffsets};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TracefsError {
    #[error("tracefs is not mounted")]
    NotMounted,
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("tracepoint {tracepoint} has no field {field}")]
    NoField {
        tracepoint: &'static str,
        field: &'static str,
    },
    #[error("field {field} of tracepoint {tracepoint} is {size} bytes, not 4")]
    NotInt32 {
        tracepoint: &'static str,
        field: &'static str,
        size: u32,
    },
    #[error("field {field} of tracepoint {tracepoint} is {size} bytes, not {expected}")]
    WrongSize {
        tracepoint: &'static str,
        field: &'static str,
        size: u32,
        expected: u32,
    },
    #[error("cannot parse the line of field {field} in tracepoint {tracepoint}'s format")]
    Malformed {
        tracepoint: &'static str,
        field: &'static str,
    },
}

/// Reads the signal and OOM record layouts under the tracefs mounted at `root`.
pub fn tracepoint_offsets(root: &Path) -> Result<TracepointOffsets, TracefsError> {
    let signal = read_format(root, "signal/signal_generate")?;
    let oom = read_format(root, "oom/mark_victim")?;
    let at = |format: &str, tracepoint, field| int32_offset(format, tracepoint, field);
    Ok(TracepointOffsets {
        signal_sig: at(&signal, "signal_generate", "sig")?,
        signal_code: at(&signal, "signal_generate", "code")?,
        signal_pid: at(&signal, "signal_generate", "pid")?,
        signal_group: at(&signal, "signal_generate", "group")?,
        signal_result: at(&signal, "signal_generate", "result")?,
        victim_pid: at(&oom, "mark_victim", "pid")?,
        valid: 1,
        reserved: 0,
    })
}

fn read_format(root: &Path, event: &str) -> Result<String, TracefsError> {
    let path = root.join("events").join(event).join("format");
    std::fs::read_to_string(&path).map_err(|source| TracefsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Reads the `sock:inet_sock_set_state` layout for the queue-wait program, checking each
/// field's size as the program reads it.
pub fn sock_state_offsets(root: &Path) -> Result<SockStateOffsets, TracefsError> {
    const TP: &str = "inet_sock_set_state";
    let format = read_format(root, "sock/inet_sock_set_state")?;
    let at = |field, size| sized_offset(&format, TP, field, size);
    Ok(SockStateOffsets {
        oldstate: at("oldstate", 4)?,
        newstate: at("newstate", 4)?,
        sport: at("sport", 2)?,
        dport: at("dport", 2)?,
        family: at("family", 2)?,
        protocol: at("protocol", 2)?,
        daddr_v6: at("daddr_v6", 16)?,
        valid: 1,
    })
}

/// The offset of `field`, which must be `size` bytes wide.
pub fn sized_offset(
    format: &str,
    tracepoint: &'static str,
    field: &'static str,
    size: u32,
) -> Result<u32, TracefsError> {
    let (offset, actual) = field_layout(format, tracepoint, field)?;
    if actual != size {
        return Err(TracefsError::WrongSize {
            tracepoint,
            field,
            size: actual,
            expected: size,
        });
    }
    Ok(offset)
}

/// The offset of a 4-byte field named `field` in a `format` file's text.
pub fn int32_offset(
    format: &str,
    tracepoint: &'static str,
    field: &'static str,
) -> Result<u32, TracefsError> {
    let (offset, size) = field_layout(format, tracepoint, field)?;
    if size != 4 {
        return Err(TracefsError::NotInt32 {
            tracepoint,
            field,
            size,
        });
    }
    Ok(offset)
}

/// `(offset, size)` of the field named `field` in a `format` file's text.
fn field_layout(
    format: &str,
    tracepoint: &'static str,
    field: &'static str,
) -> Result<(u32, u32), TracefsError> {
    for line in format.lines() {
        let mut parts = line.trim().split(';').map(str::trim);
        let Some(declaration) = parts.next().and_then(|d| d.strip_prefix("field:")) else {
            continue;
        };
        // The name is the declaration's last word, minus any array suffix (`comm[16]`).
        let name = declaration.rsplit(' ').next().unwrap_or_default();
        if name.split('[').next() != Some(field) {
            continue;
        }

        let malformed = || TracefsError::Malformed { tracepoint, field };
        let mut value = |key: &str| -> Result<u32, TracefsError> {
            parts
                .next()
                .and_then(|part| part.strip_prefix(key))
                .and_then(|number| number.parse().ok())
                .ok_or_else(malformed)
        };
        let offset = value("offset:")?;
        let size = value("size:")?;
        return Ok((offset, size));
    }
    Err(TracefsError::NoField { tracepoint, field })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `signal_generate` as Linux 6.18 lays it out.
    const SIGNAL_6_18: &str = "name: signal_generate
ID: 261
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int errno;\toffset:12;\tsize:4;\tsigned:1;
\tfield:int code;\toffset:16;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:0;
\tfield:pid_t pid;\toffset:36;\tsize:4;\tsigned:1;
\tfield:int group;\toffset:40;\tsize:4;\tsigned:1;
\tfield:int result;\toffset:44;\tsize:4;\tsigned:1;

print fmt: \"sig=%d errno=%d code=%d comm=%s pid=%d grp=%d res=%d\", REC->sig
";

    #[test]
    fn finds_each_field_by_its_exact_name() {
        let at = |field| int32_offset(SIGNAL_6_18, "signal_generate", field).unwrap();
        assert_eq!(
            [at("sig"), at("code"), at("pid"), at("group"), at("result")],
            [8, 16, 36, 40, 44]
        );
        // `common_pid` must not match `pid`.
        assert_eq!(at("common_pid"), 4);
    }

    #[test]
    fn refuses_missing_wide_and_garbled_fields() {
        assert!(matches!(
            int32_offset(SIGNAL_6_18, "signal_generate", "nope"),
            Err(TracefsError::NoField { field: "nope", .. })
        ));
        assert!(matches!(
            int32_offset(SIGNAL_6_18, "signal_generate", "comm"),
            Err(TracefsError::NotInt32 { size: 16, .. })
        ));
        let garbled = "\tfield:int sig;\toffset:x;\tsize:4;\tsigned:1;";
        assert!(matches!(
            int32_offset(garbled, "signal_generate", "sig"),
            Err(TracefsError::Malformed { .. })
        ));
    }

    /// `inet_sock_set_state` as Linux 6.18 lays it out (the fields the program reads).
    const SOCK_STATE_6_18: &str = "name: inet_sock_set_state
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;
";

    #[test]
    fn sized_fields_are_checked() {
        let at = |field, size| sized_offset(SOCK_STATE_6_18, "inet_sock_set_state", field, size);
        assert_eq!(at("sport", 2).unwrap(), 24);
        assert_eq!(at("daddr_v6", 16).unwrap(), 56);
        assert!(matches!(
            at("skaddr", 4),
            Err(TracefsError::WrongSize {
                size: 8,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn reads_this_kernels_sock_state_layout() {
        let root = crate::preflight::tracefs_root().expect("tracefs mounted");
        let offsets = sock_state_offsets(Path::new(root)).unwrap();
        assert_eq!(
            (
                offsets.oldstate,
                offsets.newstate,
                offsets.sport,
                offsets.dport
            ),
            (16, 20, 24, 26)
        );
        assert_eq!((offsets.daddr_v6, offsets.valid), (56, 1));
    }

    #[test]
    fn reads_this_kernels_layouts() {
        let root = crate::preflight::tracefs_root().expect(
            "tracefs mounted (`cargo xtask` mounts it; the observer refuses to run without)",
        );
        let offsets = tracepoint_offsets(Path::new(root)).unwrap();
        assert_eq!(offsets.valid, 1);
        // Both are the first field after the 8-byte common header on every kernel since 4.x;
        // the others are checked through the signals the kernel-probe test sends.
        assert_eq!((offsets.signal_sig, offsets.victim_pid), (8, 8));
    }
}
