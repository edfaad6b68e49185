//! Event decoding fed arbitrary ring-buffer records, and every event it accepts fed on to
//! the connection table as the pipeline would: decoding must reject, never panic, and what
//! it accepts must respect the capture bound.

#![no_main]

use gunicorn_observer::decode::{Event, decode};
use gunicorn_observer::http::{ConnId, ConnTable};
use gunicorn_observer_fuzz::{MAX_CONNS, records};
use libfuzzer_sys::fuzz_target;
use observer_ebpf::limits::CAPTURE_LEN;

fuzz_target!(|data: &[u8]| {
    let mut table = ConnTable::new(MAX_CONNS);
    let mut sink = |_| {};
    let mut tgids = Vec::new();
    for record in records(data) {
        // The ring buffer hands records out 8-byte aligned; a copy gives the same here.
        let mut aligned: Vec<u64> = vec![0; record.len().div_ceil(8)];
        // SAFETY: the Vec holds at least record.len() bytes, and u8 has no alignment.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(aligned.as_mut_ptr().cast::<u8>(), record.len())
        };
        buf.copy_from_slice(record);

        let Ok(event) = decode(buf) else { continue };
        match event {
            Event::Accept {
                tgid, fd, ts_ns, ..
            } => {
                tgids.push(tgid);
                table.on_accept(ConnId { tgid, fd }, ts_ns, &mut sink);
            }
            Event::Data {
                tgid,
                fd,
                syscall,
                ret,
                payload,
                ts_ns,
                ..
            } => {
                assert!(
                    payload.len() <= CAPTURE_LEN,
                    "payload past the capture bound"
                );
                tgids.push(tgid);
                let id = ConnId { tgid, fd };
                if syscall.is_inbound() {
                    table.on_read(id, ts_ns, ret, payload, &mut sink);
                } else {
                    table.on_write(id, ts_ns, ret, payload, &mut sink);
                }
            }
            Event::Close {
                tgid,
                fd,
                shutdown,
                ts_ns,
            } => {
                let id = ConnId { tgid, fd };
                if shutdown {
                    table.on_shutdown(id, ts_ns, &mut sink);
                } else {
                    table.on_close(id, ts_ns, &mut sink);
                }
            }
            Event::Exit { tgid, ts_ns, .. } => {
                table.on_process_exit(tgid, ts_ns, &mut sink);
            }
            _ => {}
        }
        assert!(table.len() <= MAX_CONNS, "table grew past its cap");
    }
    for tgid in tgids {
        table.on_process_exit(tgid, u64::MAX, &mut sink);
    }
    assert!(table.is_empty(), "state left after every process exited");
});
