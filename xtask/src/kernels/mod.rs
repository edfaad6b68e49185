//! `cargo xtask test --kernels`: the observer on the LTS kernels users run, each booted under
//! QEMU (TCG) with a real Gunicorn and an exact request mix.
//!
//! Per kernel: fetch and unpack its Debian package once (`fetch`), build an initramfs of
//! busybox, the guest `/init` and any modules virtiofs needs (`modules`, `cpio`), stage the
//! fresh observer binary and the guest script in the cached Debian root (`rootfs`), boot
//! (`boot`), and judge the files the guest left on the share (`verdict`).

mod boot;
mod cpio;
mod fetch;
mod modules;
mod rootfs;
mod verdict;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use self::verdict::{GuestFiles, Request};

/// A kernel of the matrix: a Debian cloud kernel package (signed, with BTF) and its pinned
/// version. Add a line to test another.
pub struct Kernel {
    pub package: &'static str,
    pub version: &'static str,
}

pub const KERNELS: &[Kernel] = &[
    // 6.1 LTS: Debian 12, Amazon Linux 2023 and many managed Kubernetes node images.
    Kernel {
        package: "linux-image-6.1.0-57-cloud-amd64",
        version: "6.1.192-3",
    },
    // 6.12 LTS.
    Kernel {
        package: "linux-image-6.12.118+deb12-cloud-amd64",
        version: "6.12.118-1~deb12u1",
    },
];

impl Kernel {
    /// `uname -r` of the kernel, which Debian puts in the package name.
    pub fn release(&self) -> &'static str {
        self.package
            .strip_prefix("linux-image-")
            .expect("kernel packages are named linux-image-<release>")
    }

    fn apt_spec(&self) -> String {
        format!("{}={}", self.package, self.version)
    }
}

/// What the guest sends, and what the app answers: exact counts by status are the check.
const MIX: &[Request] = &[
    ("/", 200, 20),
    ("/missing", 404, 7),
    ("/status/503", 503, 3),
];

/// Debian packages the matrix needs on the host, beyond the normal suite's.
pub const PACKAGES: &[&str] = &[
    // QEMU (TCG) and, in qemu-system-common, the virtiofsd that shares the root.
    "qemu-system-x86",
    // Builds the guests' Debian root once.
    "debootstrap",
    // The initramfs's shell, insmod, mount and chroot: static, so it needs no libraries.
    "busybox-static",
];
const BUSYBOX: &str = "/bin/busybox";

/// Runs the matrix, or the kernels whose release contains `only`.
pub fn test(root: &Path, only: Option<&str>) -> Result<()> {
    let kernels: Vec<&Kernel> = KERNELS
        .iter()
        .filter(|kernel| only.is_none_or(|only| kernel.release().contains(only)))
        .collect();
    if kernels.is_empty() {
        bail!("no kernel in the matrix matches {only:?}");
    }

    let started = Instant::now();
    let cache = crate::target_dir(root).join("kernels");
    let share = rootfs::ensure(root, &cache)?;
    stage_guest(root, &share)?;

    let mut results = Vec::new();
    for kernel in kernels {
        let result = run_kernel(root, &cache, &share, kernel);
        match &result {
            Ok((detail, took)) => println!(
                "kernel {}: ok, {detail}, in {:.0} s",
                kernel.release(),
                took.as_secs_f64()
            ),
            Err(err) => println!("kernel {}: FAILED: {err:#}", kernel.release()),
        }
        results.push((kernel.release(), result.is_ok()));
    }

    let passed: Vec<&str> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
    let failed: Vec<&str> = results.iter().filter(|r| !r.1).map(|r| r.0).collect();
    println!(
        "xtask test --kernels: {} passed ({}), {} failed ({}) in {:.0} s",
        passed.len(),
        passed.join(", "),
        failed.len(),
        failed.join(", "),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("the observer failed on kernel(s) {}", failed.join(", "));
    }
    Ok(())
}

/// The files every guest uses, copied into the shared root's `/opt/kernel-matrix`.
fn stage_guest(root: &Path, share: &Path) -> Result<()> {
    let home = share.join("opt/kernel-matrix");
    fs::create_dir_all(home.join("apps"))
        .with_context(|| format!("creating {}", home.display()))?;
    let copies = [
        (crate::observer_bin(root), home.join("gunicorn-observer")),
        (root.join("tests/kernels/guest.py"), home.join("guest.py")),
        (root.join("tests/apps/app.py"), home.join("apps/app.py")),
    ];
    for (from, to) in copies {
        fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    let mix: String = MIX
        .iter()
        .map(|(path, _, count)| format!("{path} {count}\n"))
        .collect();
    fs::write(home.join("mix.txt"), mix).context("writing mix.txt")
}

/// Boots one kernel and judges its run: `Ok((detail, boot time))`.
fn run_kernel(
    root: &Path,
    cache: &Path,
    share: &Path,
    kernel: &Kernel,
) -> Result<(String, Duration)> {
    let release = kernel.release();
    let kernel_dir = fetch::ensure(cache, kernel)?;
    let run_dir = cache.join("runs").join(release);
    fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    for stale in ["console.log", "virtiofsd.log"] {
        let _ = fs::remove_file(run_dir.join(stale));
    }

    let initramfs = run_dir.join("initramfs.cpio");
    let modules = modules::needed(&kernel_dir, release)?;
    let names: Vec<&str> = modules.iter().map(|module| module.file.as_str()).collect();
    if names.is_empty() {
        println!("kernel {release}: virtio-pci and virtiofs are built in");
    } else {
        println!("kernel {release}: modules to load: {}", names.join(" "));
    }
    write_initramfs(root, &initramfs, &modules)?;

    // The guest writes its results here; clear the previous kernel's.
    let out = share.join("opt/kernel-matrix/out");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }

    println!("kernel {release}: booting under QEMU TCG");
    let booted = boot::Boot {
        vmlinuz: &fetch::vmlinuz(&kernel_dir, kernel),
        initramfs: &initramfs,
        share,
        run_dir: &run_dir,
    }
    .run()?;

    // Kept beside the console log for a look after the run.
    let kept = run_dir.join("out");
    if kept.exists() {
        fs::remove_dir_all(&kept)?;
    }
    if out.exists() {
        copy_dir(&out, &kept)?;
    }

    let console = fs::read_to_string(&booted.console).unwrap_or_default();
    let read = |name: &str| fs::read_to_string(kept.join(name)).unwrap_or_default();
    let uname = read("uname.txt");
    let files = GuestFiles {
        client: read("client.txt"),
        metrics: read("metrics.txt"),
        observer_exit: read("observer_exit.txt"),
        error: read("error.txt"),
    };

    let failure = |what: String| -> anyhow::Error {
        anyhow::anyhow!(
            "{what}\n--- observer log ---\n{}\n--- console (tail) ---\n{}\n\
             (everything is in {})",
            observer_excerpt(&read("observer.log")),
            tail(&console, 30),
            run_dir.display()
        )
    };
    if uname.trim() != release {
        return Err(failure(format!(
            "the guest script did not run on {release} (QEMU {}, guest said {:?})",
            booted.status,
            uname.trim()
        )));
    }
    let detail = verdict::judge(MIX, &files).map_err(failure)?;
    Ok((detail, booted.took))
}

fn write_initramfs(root: &Path, path: &Path, modules: &[modules::Module]) -> Result<()> {
    use cpio::Entry;

    let busybox = fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX}"))?;
    let init_path = root.join("tests/kernels/init");
    let init = fs::read(&init_path).with_context(|| format!("reading {}", init_path.display()))?;
    let order: String = modules
        .iter()
        .map(|module| format!("{}\n", module.file))
        .collect();
    let module_paths: Vec<String> = modules
        .iter()
        .map(|module| format!("modules/{}", module.file))
        .collect();

    let mut entries = vec![
        Entry::Dir { path: "bin" },
        Entry::Dir { path: "dev" },
        // The kernel opens it for init's stdio before anything is mounted.
        Entry::CharDevice {
            path: "dev/console",
            major: 5,
            minor: 1,
        },
        Entry::Dir { path: "modules" },
        Entry::File {
            path: "bin/busybox",
            mode: 0o755,
            data: &busybox,
        },
        Entry::File {
            path: "init",
            mode: 0o755,
            data: &init,
        },
        Entry::File {
            path: "modules/order",
            mode: 0o644,
            data: order.as_bytes(),
        },
    ];
    for (module, path) in modules.iter().zip(&module_paths) {
        entries.push(Entry::File {
            path,
            mode: 0o644,
            data: &module.bytes,
        });
    }
    fs::write(path, cpio::archive(&entries)).with_context(|| format!("writing {}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        fs::copy(entry.path(), &target)
            .with_context(|| format!("copying {}", entry.path().display()))?;
    }
    Ok(())
}

/// A verifier rejection whole (aya puts the verifier's log in the error, and its last lines
/// say why), anything else by its tail.
fn observer_excerpt(log: &str) -> String {
    match log.find("Verifier output") {
        Some(at) => tail(&log[log[..at].rfind('\n').map_or(0, |nl| nl + 1)..], 400),
        None => tail(log, 40),
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_rejection_is_shown_from_its_first_line() {
        let log = "INFO kernel layouts read kernel=\"6.1.0\"\n\
                   gunicorn-observer: loading the eBPF programs: the BPF_PROG_LOAD syscall \
                   failed. Verifier output: 0: (bf) r6 = r1\n\
                   1: (85) call bpf_get_current_pid_tgid#14\n\
                   invalid mem access 'scalar'\n";
        assert_eq!(
            observer_excerpt(log),
            "gunicorn-observer: loading the eBPF programs: the BPF_PROG_LOAD syscall failed. \
             Verifier output: 0: (bf) r6 = r1\n\
             1: (85) call bpf_get_current_pid_tgid#14\n\
             invalid mem access 'scalar'"
        );
    }

    #[test]
    fn other_logs_are_shown_by_their_tail() {
        let log: String = (1..=50).map(|n| format!("line {n}\n")).collect();
        let shown = observer_excerpt(&log);
        assert_eq!(shown.lines().count(), 40);
        assert!(shown.starts_with("line 11\n") && shown.ends_with("line 50"));
    }

    #[test]
    fn releases_come_from_the_package_names() {
        let releases: Vec<&str> = KERNELS.iter().map(Kernel::release).collect();
        assert_eq!(
            releases,
            ["6.1.0-57-cloud-amd64", "6.12.118+deb12-cloud-amd64"]
        );
        assert_eq!(
            KERNELS[0].apt_spec(),
            "linux-image-6.1.0-57-cloud-amd64=6.1.192-3"
        );
    }
}
