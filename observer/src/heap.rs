//! How the daemon's heap gives memory back to the kernel.
//!
//! glibc's malloc keeps freed pages for reuse, and gives each thread that allocates an arena
//! of its own. Both are right for a program that allocates in bursts and wants them fast
//! again; for a daemon whose steady state is small and that runs on every node, they leave
//! the peak of every burst (start-up's BTF parsing, 10,000 connections that came and went)
//! resident for good. Measured with 100 workers and 10,000 keep-alive connections that then
//! closed: docs/BENCHMARKS.md, part 4.

/// One arena for every thread. The event loop is a single task, so the runtime's other
/// threads allocate little (a scrape, a kube refresh), and a lock no one contends costs
/// nothing; separate arenas instead keep the memory a task freed on one thread out of
/// reach of the same task after it moved to another. Call before any thread starts.
pub fn use_one_arena() {
    // SAFETY: mallopt only changes an allocator setting; called before threads exist, it
    // races with nothing. A refusal (return 0) leaves glibc's default, which is only bigger.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns whole free pages anywhere in the heap to the kernel, not only at its top. It
/// walks the free lists once: microseconds for a heap of a few MiB, so it is cheap enough
/// to run at start-up and on every resource sample.
pub fn release_free_pages() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
