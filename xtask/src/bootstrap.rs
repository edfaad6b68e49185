//! `cargo xtask bootstrap`: check each prerequisite, install what is missing, one line each.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;
use crate::{apt, deploy_tools, venv};

/// The bpf-linker line that links against LLVM 22 (shared/TOOLCHAIN.md).
const BPF_LINKER_VERSION: &str = "0.13";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const TRACEFS: &str = "/sys/kernel/tracing";

pub fn bootstrap(root: &Path) -> Result<()> {
    apt::ensure().context("bootstrap: Debian packages")?;
    ensure_rust_src().context("bootstrap: nightly rust-src")?;
    ensure_bpf_linker(root).context("bootstrap: bpf-linker")?;
    ensure_tracefs().context("bootstrap: tracefs")?;
    venv::ensure(root).context("bootstrap: Python venv")?;
    deploy_tools::ensure(root).context("bootstrap: deploy tools")?;
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// aya-build compiles the eBPF crate with `cargo +nightly -Z build-std=core`, which needs
/// the standard library's source.
fn ensure_rust_src() -> Result<()> {
    let nightly = Cmd::new("rustc").args(["+nightly", "--version"]).probe();
    let version = match nightly {
        Some(probe) if probe.status.success() => probe.stdout.trim().to_owned(),
        failed => bail!(
            "the `nightly` toolchain does not run ({}); aya-build needs it to compile the eBPF \
             programs, and with RUSTUP_AUTO_INSTALL=0 nothing installs it on demand \
             (install it with `rustup toolchain install nightly`)",
            failed.map_or("rustc not found".to_owned(), |probe| probe
                .stderr
                .trim()
                .to_owned())
        ),
    };

    let installed = Cmd::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .probe_ok()
        .context("`rustup component list` failed")?;
    if installed.lines().any(|line| line.trim() == "rust-src") {
        println!("ok: rust-src for {version}");
        return Ok(());
    }

    println!("installing: rust-src for {version}");
    Cmd::new("rustup")
        .args(["component", "add", "rust-src", "--toolchain", "nightly"])
        .run()?;
    println!("ok: rust-src for {version}");
    Ok(())
}

fn ensure_bpf_linker(root: &Path) -> Result<()> {
    let found = bpf_linker_version();
    if let Some(version) = &found
        && is_wanted_bpf_linker(version)
    {
        println!("ok: {version}");
        return Ok(());
    }

    match &found {
        Some(version) => println!("installing: bpf-linker {BPF_LINKER_VERSION}.x over {version}"),
        None => println!("installing: bpf-linker {BPF_LINKER_VERSION}.x (builds against LLVM 22)"),
    }
    // Without LLVM_PREFIX, or LLVM 22's llvm-config first on PATH, the build finds
    // Debian's default LLVM 14 and fails to link.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![Path::new(LLVM_PREFIX).join("bin")];
    paths.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(paths).context("joining PATH")?;
    Cmd::new("cargo")
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("PATH", path)
        .args(["install", "bpf-linker", "--locked", "--force"])
        .args(["--version", &format!("~{BPF_LINKER_VERSION}")])
        .args(["--no-default-features", "--features", "llvm-22"])
        .current_dir(root)
        .run()?;

    match bpf_linker_version() {
        Some(version) => {
            println!("ok: {version}");
            Ok(())
        }
        None => bail!("bpf-linker was installed but does not run; is $CARGO_HOME/bin on PATH?"),
    }
}

/// `bpf-linker 0.13.0`, or `None` when it is missing or does not run.
fn bpf_linker_version() -> Option<String> {
    Cmd::new("bpf-linker").arg("--version").probe_ok()
}

fn is_wanted_bpf_linker(version: &str) -> bool {
    version
        .strip_prefix("bpf-linker ")
        .and_then(|number| number.strip_prefix(BPF_LINKER_VERSION))
        .is_some_and(|rest| rest.starts_with('.'))
}

/// aya attaches tracepoints by reading ids under tracefs, which these VMs do not mount at boot.
fn ensure_tracefs() -> Result<()> {
    if Cmd::new("mountpoint")
        .args(["-q", TRACEFS])
        .probe_ok()
        .is_some()
    {
        println!("ok: tracefs mounted at {TRACEFS}");
        return Ok(());
    }

    println!("installing: mounting tracefs at {TRACEFS} (it was not mounted)");
    Cmd::new("mount")
        .args(["-t", "tracefs", "nodev", TRACEFS])
        .run()
        .context("mounting tracefs needs root")?;
    println!("ok: tracefs mounted at {TRACEFS}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_patch_of_the_wanted_line_only() {
        assert!(is_wanted_bpf_linker("bpf-linker 0.13.0"));
        assert!(is_wanted_bpf_linker("bpf-linker 0.13.12"));
        assert!(!is_wanted_bpf_linker("bpf-linker 0.130.0"));
        assert!(!is_wanted_bpf_linker("bpf-linker 0.12.1"));
        assert!(!is_wanted_bpf_linker("0.13.0"));
    }
}
