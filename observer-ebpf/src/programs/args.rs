//! Reading the records of the `syscalls:sys_enter_*` and `sys_exit_*` tracepoints.
//!
//! Unlike the sched events, these layouts are fixed by the syscall tracing core: an 8-byte
//! common header, the syscall number padded to 8 bytes, then each argument widened to 8 bytes
//! (`sys_enter_*`) or the `long ret` (`sys_exit_*`).

use aya_ebpf::{EbpfContext as _, programs::TracePointContext};

/// Offset of the first argument in a `sys_enter_*` record.
const ENTER_ARGS_OFFSET: usize = 16;

/// Offset of `ret` in a `sys_exit_*` record.
const EXIT_RET_OFFSET: usize = 16;

/// The `n`th syscall argument, as the 8-byte value the tracepoint stores.
#[inline(always)]
pub fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    // A direct context load with a constant offset: the verifier allows it for tracepoint
    // programs, and unlike bpf_probe_read_kernel it cannot fail.
    unsafe {
        ctx.as_ptr()
            .cast::<u8>()
            .add(ENTER_ARGS_OFFSET + n * 8)
            .cast::<u64>()
            .read()
    }
}

/// A file-descriptor argument: the record widens the `int` to 8 bytes, so keep the low half.
#[inline(always)]
pub fn fd_arg(ctx: &TracePointContext, n: usize) -> i32 {
    arg(ctx, n) as i32
}

/// The syscall's return value: a count, a new fd, or a negative errno.
#[inline(always)]
pub fn ret(ctx: &TracePointContext) -> i64 {
    unsafe {
        ctx.as_ptr()
            .cast::<u8>()
            .add(EXIT_RET_OFFSET)
            .cast::<i64>()
            .read()
    }
}
