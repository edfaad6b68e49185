//! `Pod` impls so userspace can read and write these types through aya maps.

use crate::{
    layout::TracepointOffsets,
    tracked::{ConnKey, TaskOffsets},
};

// SAFETY: all three are #[repr(C)], Copy, and made only of integers with no padding, so
// every bit pattern is a valid value.
unsafe impl aya::Pod for ConnKey {}
unsafe impl aya::Pod for TaskOffsets {}
unsafe impl aya::Pod for TracepointOffsets {}
