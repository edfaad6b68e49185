//! Kernel programs of gunicorn-observer. Built for the bpf target by the observer's build
//! script; on the host this binary is an empty stub so workspace-wide checks still compile.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
