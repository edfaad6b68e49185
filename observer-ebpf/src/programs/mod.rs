//! The kernel programs, grouped by what they watch.
//!
//! Every program is a thin `#[tracepoint]` (or `#[btf_tracepoint]`) wrapper around a fallible
//! `try_*` function whose error is a drop reason; [`maps::finish`] counts it. All of them but
//! the exec tracepoint begin with one lookup of the caller in `TRACKED`, so the cost for the
//! rest of the node is one hash lookup per syscall.

mod accept;
mod args;
mod capture;
mod close;
mod emit;
mod heartbeat;
mod io;
mod maps;
mod process;
mod queue;
mod signal;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program in which a panic is reachable, so this never runs.
    loop {}
}
