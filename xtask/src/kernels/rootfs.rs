//! The guests' root filesystem: Debian bookworm minbase with python3, built once by
//! debootstrap under `target/kernels/rootfs/` and shared into every guest over virtiofs.
//!
//! Bookworm because the observer binary is built on this Debian 12 host and links its glibc
//! 2.36; the same release in the guest runs it as it is. Gunicorn comes from the pinned
//! requirements, installed from the host with `pip install --target` into `/opt/python`:
//! the wheels are pure Python, and bookworm's python3 is the host's 3.11 anyway.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::cmd::Cmd;

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
const INCLUDE: &str = "python3";
/// Where the guest finds Gunicorn (its `PYTHONPATH`).
const SITE: &str = "opt/python";

/// Describes what the cached root was built from; a change rebuilds it.
const STAMP: &str = "rootfs.stamp";

/// The cached root, built first if it is missing or was built from other inputs.
pub fn ensure(root: &Path, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("rootfs");
    let stamp_path = cache.join(STAMP);
    let requirements_path = root.join("tests/apps/requirements.txt");
    let requirements = fs::read_to_string(&requirements_path)
        .with_context(|| format!("reading {}", requirements_path.display()))?;
    let want = format!(
        "debootstrap --variant=minbase --include={INCLUDE} {SUITE} {MIRROR}\n{requirements}"
    );
    if fs::read_to_string(&stamp_path).ok().as_deref() == Some(want.as_str()) {
        println!("ok: guest root {} ({SUITE} minbase)", dir.display());
        return Ok(dir);
    }

    println!(
        "installing: guest root {} ({SUITE} minbase + {INCLUDE} + Gunicorn)",
        dir.display()
    );
    // Built beside its final place and renamed, so an interrupted debootstrap is redone.
    let partial = cache.join("rootfs.partial");
    for stale in [&partial, &dir] {
        if stale.exists() {
            fs::remove_dir_all(stale).with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    Cmd::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
        .arg(&partial)
        .arg(MIRROR)
        .run()
        .context("debootstrap of the guest root")?;

    let site = partial.join(SITE);
    crate::venv::pip_install(
        &crate::venv::dir(root).join("bin/python"),
        [
            OsStr::new("--target"),
            site.as_os_str(),
            OsStr::new("-r"),
            requirements_path.as_os_str(),
        ],
    )
    .context("installing Gunicorn into the guest root")?;

    fs::rename(&partial, &dir).with_context(|| format!("renaming to {}", dir.display()))?;
    fs::write(&stamp_path, &want).with_context(|| format!("writing {}", stamp_path.display()))?;
    println!("ok: guest root {} ({SUITE} minbase)", dir.display());
    Ok(dir)
}
