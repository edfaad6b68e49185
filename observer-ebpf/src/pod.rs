//! `Pod` impls so userspace can read and write these types through aya maps.

use crate::{
    layout::TracepointOffsets,
    queue::{Handshake, PeerKey, SockStateOffsets},
    tracked::{ConnKey, TaskOffsets},
};

// SAFETY: all three are #[repr(C)], Copy, and made only of integers with no padding, so
// every bit pattern is a valid value.
unsafe impl aya::Pod for ConnKey {}
unsafe impl aya::Pod for TaskOffsets {}
unsafe impl aya::Pod for TracepointOffsets {}

// SAFETY: the queue-wait types are #[repr(C)], Copy, integers only, and their sizes are
// asserted free of padding in `queue.rs`.
unsafe impl aya::Pod for PeerKey {}
unsafe impl aya::Pod for Handshake {}
unsafe impl aya::Pod for SockStateOffsets {}
