//! Compiles the kernel programs for the bpf target and embeds them in the binary.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../observer-ebpf");
    let ebpf = Package {
        name: "observer-ebpf",
        root_dir: root,
        ..Default::default()
    };

    // "nightly" is the one nightly our machines carry; RUSTUP_AUTO_INSTALL=0 forbids pinning
    // a date that is not installed (shared/TOOLCHAIN.md).
    aya_build::build_ebpf([ebpf], Toolchain::default())
        .map_err(|err| anyhow!("{err:#}"))
        .context("building the eBPF programs (is bpf-linker installed? run `cargo xtask run`)")
}
