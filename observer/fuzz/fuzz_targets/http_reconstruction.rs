//! HTTP reconstruction fed arbitrary bytes in arbitrary syscall-sized chunks, both ways.
//! The script format and the invariants live in the crate's lib.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gunicorn_observer_fuzz::run_script(data));
