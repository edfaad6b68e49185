//! Hash maps for keys the kernel hands out: pids, fds, and connections made of them.
//!
//! std's SipHash is built to resist keys an attacker chooses, and cost about a seventh of the
//! replay bench's time on these maps. Pids and fds are picked by the kernel, not by clients,
//! so the per-event maps use foldhash's fast hasher (still seeded per process, so iteration
//! order reveals nothing stable). Maps keyed by what a client sends, such as routes, keep
//! SipHash.

/// A `HashMap` with the fast hasher, for kernel-chosen keys only.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
