//! Sizes fixed at compile time on both sides of the ring buffer.

/// Payload bytes copied per read or write. Enough for a request line and a typical header
/// block; the first bytes of a message are all the HTTP parser needs, and body bytes beyond
/// this are only counted, never copied.
pub const CAPTURE_LEN: usize = 1024;

/// Default ring buffer size (`--ring-buffer-bytes` overrides it at load). A power-of-two
/// multiple of the page size, as the kernel requires. At full `wrk` load on two workers
/// 256 KiB already dropped nothing; 2 MiB holds about a second of that load's events while
/// the daemon is off the CPU, and costs 4 MiB of RSS, since the kernel maps the data pages
/// twice (docs/BENCHMARKS.md, part 4).
pub const RING_BUF_BYTES: u32 = 2 * 1024 * 1024;

/// Userspace is woken only once this much data is waiting; below it the daemon drains on its
/// own short timer. Waking on every event cost the prototype 15-20% of Gunicorn's throughput.
pub const WAKEUP_THRESHOLD_BYTES: u64 = 256 * 1024;

/// Processes the kernel side will follow (masters and workers together).
pub const MAX_TRACKED_PROCESSES: u32 = 16_384;

/// Accepted sockets followed at once across all tracked workers.
pub const MAX_CONNECTIONS: u32 = 65_536;

/// Syscalls in flight between their enter and exit tracepoints, one per thread.
pub const MAX_PENDING_SYSCALLS: u32 = 16_384;

/// Connections remembered as having lost an event until their next record can carry the
/// news (`LOST_CONNS`). LRU: a mark that ages out is one connection reported as it is.
pub const MAX_LOST_CONNS: u32 = 16_384;
