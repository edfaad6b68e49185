//! The clock the kernel stamps events with, read from userspace.

/// `CLOCK_MONOTONIC` in nanoseconds: what `bpf_ktime_get_ns` returns in the programs, so
/// userspace readings compare directly with event timestamps.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to; CLOCK_MONOTONIC exists on every Linux,
    // so the call cannot fail and the zeroed value is never returned in practice.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_goes_backwards() {
        let first = super::monotonic_ns();
        let second = super::monotonic_ns();
        assert!(first > 0 && second >= first, "{first} then {second}");
    }
}
