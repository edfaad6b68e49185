//! Kernel packages, downloaded with apt and unpacked once under `target/kernels/<release>/`.
//!
//! `apt-get download` plus `dpkg-deb -x` leaves the host's own boot untouched: nothing is
//! installed, no initramfs hook or bootloader runs.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::Kernel;
use crate::cmd::Cmd;

/// Written last, so an interrupted unpack is redone rather than trusted.
const STAMP: &str = ".unpacked";

/// The unpacked package of `kernel`, fetching it first if the cache lacks it.
pub fn ensure(cache: &Path, kernel: &Kernel) -> Result<PathBuf> {
    let dir = cache.join(kernel.release());
    let stamp = dir.join(STAMP);
    let want = kernel.apt_spec();
    if fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        println!("ok: kernel {want} cached in {}", dir.display());
        return Ok(dir);
    }

    println!("installing: kernel {want} into {}", dir.display());
    let downloads = cache.join("downloads");
    fs::create_dir_all(&downloads).with_context(|| format!("creating {}", downloads.display()))?;
    let deb = download(&downloads, kernel)?;

    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Cmd::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir).run()?;
    fs::remove_file(&deb).with_context(|| format!("removing {}", deb.display()))?;

    let vmlinuz = vmlinuz(&dir, kernel);
    if !vmlinuz.is_file() {
        bail!("{want} unpacked without {}", vmlinuz.display());
    }
    fs::write(&stamp, &want).with_context(|| format!("writing {}", stamp.display()))?;
    println!("ok: kernel {want} cached in {}", dir.display());
    Ok(dir)
}

pub fn vmlinuz(dir: &Path, kernel: &Kernel) -> PathBuf {
    dir.join(format!("boot/vmlinuz-{}", kernel.release()))
}

/// The `.deb` in `downloads`, running `apt-get update` once if apt does not know the
/// pinned version yet.
fn download(downloads: &Path, kernel: &Kernel) -> Result<PathBuf> {
    let spec = kernel.apt_spec();
    let get = || {
        Cmd::new("apt-get")
            .args(["download", &spec])
            .current_dir(downloads)
            .run()
    };
    if get().is_err() {
        println!("apt does not know {spec}; updating its lists once");
        Cmd::new("apt-get").arg("update").run()?;
        get().with_context(|| {
            format!(
                "downloading {spec}: Debian may have dropped that version; pick a current one \
                 with `apt-cache policy {}` and update the table in xtask/src/kernels/mod.rs",
                kernel.package
            )
        })?;
    }

    // apt names the file `<package>_<version with ':' escaped>_<arch>.deb`.
    let prefix = format!("{}_", kernel.package);
    for entry in fs::read_dir(downloads)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(path);
        }
    }
    bail!(
        "apt-get download {spec} left no .deb in {}",
        downloads.display()
    )
}
