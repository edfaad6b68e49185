//! Copying the head of what a read or write moved into a data record.

use aya_ebpf::helpers::{bpf_probe_read_user, generated};
use observer_ebpf::{drops::DROP_READ_USER, event::Syscall, limits::CAPTURE_LEN};

/// `struct iovec` as userspace lays it out on 64-bit targets.
#[repr(C)]
#[derive(Clone, Copy)]
struct Iovec {
    base: u64,
    len: u64,
}

/// Offsets in the 64-bit `struct user_msghdr`: name (8), namelen (4) + padding, then
/// `msg_iov` (8) and `msg_iovlen` (8).
const MSG_IOV_OFFSET: u64 = 16;
const MSG_IOVLEN_OFFSET: u64 = 24;

/// The first buffer of the call and how many bytes it can hold.
///
/// `ptr` is what the enter tracepoint parked: the buffer itself for the plain calls, the
/// iovec array for readv/writev, the msghdr for recvmsg/sendmsg. Only the first iovec is
/// captured; the HTTP parser needs the head of a message, and callers put it first.
#[inline(always)]
fn first_buffer(call: Syscall, ptr: u64) -> Result<(u64, u64), u32> {
    let iov_array = match call {
        Syscall::Readv | Syscall::Writev => ptr,
        Syscall::Recvmsg | Syscall::Sendmsg => {
            let iovlen: u64 = read_user(ptr + MSG_IOVLEN_OFFSET)?;
            if iovlen == 0 {
                return Ok((0, 0));
            }
            read_user(ptr + MSG_IOV_OFFSET)?
        }
        _ => return Ok((ptr, u64::MAX)),
    };
    let first: Iovec = read_user(iov_array)?;
    Ok((first.base, first.len))
}

#[inline(always)]
fn read_user<T>(addr: u64) -> Result<T, u32> {
    unsafe { bpf_probe_read_user(addr as *const T) }.map_err(|_| DROP_READ_USER)
}

/// Copies `min(moved, first buffer's length, CAPTURE_LEN)` bytes into `dst` and returns how
/// many; on a fault it returns the drop reason and the caller sends the record uncaptured.
#[inline(always)]
pub fn capture(
    dst: &mut [u8; CAPTURE_LEN],
    call: Syscall,
    ptr: u64,
    moved: u64,
) -> Result<u32, u32> {
    let (src, room) = first_buffer(call, ptr)?;
    // The verifier sees this clamp on the register passed as the size (umax 1024 against a
    // 1024-byte destination), so the copy needs no further masking.
    let len = core::cmp::min(core::cmp::min(moved, room), CAPTURE_LEN as u64);
    if len == 0 {
        return Ok(0);
    }

    let rc = unsafe {
        generated::bpf_probe_read_user(dst.as_mut_ptr().cast(), len as u32, src as *const _)
    };
    if rc < 0 {
        return Err(DROP_READ_USER);
    }
    Ok(len as u32)
}
