//! The kernel modules a guest must load before it can mount its root over virtiofs.
//!
//! Debian's 6.1 cloud kernel builds virtio-pci and virtiofs as modules; 6.12 builds them in.
//! Which is which is read from the package's `config-*`, and each module's dependencies from
//! the `depends=` entry of its `.modinfo` section, so a new kernel in the table needs no list
//! of its own. The host has no kmod (`modinfo`, `depmod`), hence the small parser here.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;

/// The drivers the guest needs, by config symbol and module name.
const NEEDED: &[(&str, &str)] = &[
    ("CONFIG_VIRTIO_PCI", "virtio_pci"),
    ("CONFIG_VIRTIO_FS", "virtiofs"),
];

/// A module ready for the initramfs: its file name there and its uncompressed bytes.
pub struct Module {
    pub file: String,
    pub bytes: Vec<u8>,
}

/// The modules to `insmod`, dependencies first; empty when the drivers are built in.
pub fn needed(kernel_dir: &Path, release: &str) -> Result<Vec<Module>> {
    let config_path = kernel_dir.join(format!("boot/config-{release}"));
    let config = fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;

    let mut roots = Vec::new();
    for (symbol, module) in NEEDED {
        match config_value(&config, symbol) {
            Some("y") => {}
            Some("m") => roots.push(*module),
            _ => bail!("kernel {release} has no {symbol}: the guest cannot mount its root"),
        }
    }
    if roots.is_empty() {
        return Ok(Vec::new());
    }

    let index = index_modules(&kernel_dir.join(format!("lib/modules/{release}/kernel")))?;
    let mut ordered = Vec::new();
    for root in roots {
        visit(root, &index, &mut ordered, &mut Vec::new())?;
    }
    Ok(ordered)
}

/// The value of `symbol` in a kernel config (`CONFIG_X=y` lines; `# CONFIG_X is not set`
/// reads as absent).
fn config_value<'a>(config: &'a str, symbol: &str) -> Option<&'a str> {
    config.lines().find_map(|line| {
        line.strip_prefix(symbol)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// Module name (dashes as underscores, as the kernel compares them) → file.
fn index_modules(dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut index = HashMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            if let Some((name, _)) = file.split_once(".ko") {
                index.insert(name.replace('-', "_"), path.clone());
            }
        }
    }
    Ok(index)
}

/// Depth-first: each module after everything it depends on, each once.
fn visit(
    name: &str,
    index: &HashMap<String, PathBuf>,
    ordered: &mut Vec<Module>,
    path: &mut Vec<String>,
) -> Result<()> {
    let file = format!("{name}.ko");
    if ordered.iter().any(|module| module.file == file) {
        return Ok(());
    }
    if path.iter().any(|seen| seen == name) {
        bail!("module dependency cycle through {name}");
    }
    let source = index
        .get(name)
        .with_context(|| format!("module {name} is not in the kernel package"))?;
    let bytes = uncompressed(source)?;

    path.push(name.to_owned());
    for dependency in depends(&bytes) {
        visit(&dependency.replace('-', "_"), index, ordered, path)?;
    }
    path.pop();

    ordered.push(Module { file, bytes });
    Ok(())
}

/// busybox's insmod takes plain ELF only; Debian compresses 6.12's modules with xz.
fn uncompressed(path: &Path) -> Result<Vec<u8>> {
    let tool = match path.extension().and_then(|ext| ext.to_str()) {
        Some("ko") => return fs::read(path).with_context(|| format!("reading {}", path.display())),
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => bail!("unknown module compression: {}", path.display()),
    };
    let probe = Cmd::new(tool)
        .args(["-dc"])
        .arg(path)
        .probe_bytes()
        .with_context(|| format!("`{tool}` is not installed"))?;
    if !probe.0.success() {
        bail!("`{tool} -dc {}` failed ({})", path.display(), probe.0);
    }
    Ok(probe.1)
}

/// The names in a module's `depends=a,b` entry; `.modinfo` entries are NUL-separated.
fn depends(module: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = module
        .windows(KEY.len())
        .position(|window| window == KEY)
        .map(|at| at + KEY.len())
    else {
        return Vec::new();
    };
    let end = module[start..]
        .iter()
        .position(|&byte| byte == 0)
        .map_or(module.len(), |len| start + len);
    String::from_utf8_lossy(&module[start..end])
        .split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_module_and_builtin_symbols() {
        let config = "CONFIG_VIRTIO=m\nCONFIG_VIRTIO_PCI=m\n# CONFIG_VIRTIO_FS is not set\n\
                      CONFIG_VIRTIO_PCI_LEGACY=y\n";
        assert_eq!(config_value(config, "CONFIG_VIRTIO_PCI"), Some("m"));
        assert_eq!(config_value(config, "CONFIG_VIRTIO"), Some("m"));
        assert_eq!(config_value(config, "CONFIG_VIRTIO_PCI_LEGACY"), Some("y"));
        assert_eq!(config_value(config, "CONFIG_VIRTIO_FS"), None);
    }

    #[test]
    fn reads_the_depends_entry_between_its_neighbours() {
        let modinfo = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring,fuse\0retpoline=Y\0";
        assert_eq!(depends(modinfo), ["virtio", "virtio_ring", "fuse"]);
        assert_eq!(
            depends(b"\0license=GPL\0depends=\0name=virtio\0"),
            [] as [&str; 0]
        );
        assert_eq!(depends(b"\0license=GPL\0"), [] as [&str; 0]);
    }
}
