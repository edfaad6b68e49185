//! Types shared by the kernel programs and the userspace daemon.
//!
//! Everything here is `#[repr(C)]`, `Copy` and free of implicit padding, because the same bytes
//! are written by the eBPF programs and read back by userspace. Event kinds travel as plain
//! `u32`s and are decoded with `TryFrom`; userspace never transmutes an untrusted integer into
//! an enum.
#![cfg_attr(not(feature = "user"), no_std)]

pub mod drops;
pub mod event;
pub mod layout;
pub mod limits;
pub mod queue;
pub mod tracked;

#[cfg(feature = "user")]
mod pod;
