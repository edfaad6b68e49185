//! Checks run before loading anything, so a node that cannot run the observer gets one clear
//! sentence saying what to fix instead of a verifier or perf_event error.

use std::{fs, path::Path};

/// The oldest kernel the programs can run on at all: BPF ring buffers, `CAP_BPF` and
/// `bpf_ringbuf_query` arrived in 5.8.
pub const MIN_KERNEL: (u32, u32) = (5, 8);

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
const TRACEFS_PATHS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreflightError {
    #[error(
        "kernel {found} is older than the minimum {}.{}: BPF ring buffers need 5.8 or newer",
        MIN_KERNEL.0,
        MIN_KERNEL.1
    )]
    KernelTooOld { found: String },
    #[error("cannot read the kernel release from {path}: {reason}")]
    KernelUnknown { path: String, reason: String },
    #[error(
        "missing {missing}: not privileged enough to load BPF programs (effective \
         capabilities {cap_eff:#x}): run as root, or grant CAP_BPF and CAP_PERFMON \
         (CAP_SYS_ADMIN on kernels that need it)"
    )]
    NotPrivileged { cap_eff: u64, missing: &'static str },
    #[error("cannot read effective capabilities from /proc/self/status")]
    CapabilitiesUnknown,
    #[error(
        "no kernel BTF at {BTF_PATH}: the observer needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y (in a container, mount the host's /sys/kernel/btf)"
    )]
    NoBtf,
    #[error(
        "tracefs is not mounted: run `mount -t tracefs nodev /sys/kernel/tracing` \
         (in a container, mount the host's /sys/kernel/tracing)"
    )]
    NoTracefs,
    #[error(
        "missing CAP_DAC_READ_SEARCH: tracefs at {path} is mounted but not readable by this \
         user (it is root-only); run as root or grant CAP_DAC_READ_SEARCH"
    )]
    TracefsUnreadable { path: &'static str },
}

/// Runs every check and returns the first failure.
pub fn check() -> Result<(), PreflightError> {
    check_kernel(&read_release()?)?;
    check_capabilities(&read_status()?)?;
    if !Path::new(BTF_PATH).exists() {
        return Err(PreflightError::NoBtf);
    }
    if tracefs_root().is_none() {
        return Err(unreadable_tracefs().unwrap_or(PreflightError::NoTracefs));
    }
    Ok(())
}

/// A tracefs that is there but shut to us: without CAP_DAC_READ_SEARCH a non-root user
/// cannot list the root-only mount point, which would otherwise read as "not mounted".
fn unreadable_tracefs() -> Option<PreflightError> {
    TRACEFS_PATHS.into_iter().find_map(|path| {
        let denied =
            fs::read_dir(path).is_err_and(|err| err.kind() == std::io::ErrorKind::PermissionDenied);
        denied.then_some(PreflightError::TracefsUnreadable { path })
    })
}

/// The mounted tracefs, if any: the tracepoint ids live under its `events/` directory.
pub fn tracefs_root() -> Option<&'static str> {
    TRACEFS_PATHS
        .into_iter()
        .find(|root| Path::new(root).join("events").is_dir())
}

/// The running kernel's release (`uname -r`), for logs.
pub fn kernel_release() -> Option<String> {
    read_release().ok().map(|release| release.trim().to_owned())
}

fn read_release() -> Result<String, PreflightError> {
    const PATH: &str = "/proc/sys/kernel/osrelease";
    fs::read_to_string(PATH).map_err(|err| PreflightError::KernelUnknown {
        path: PATH.into(),
        reason: err.to_string(),
    })
}

fn read_status() -> Result<String, PreflightError> {
    fs::read_to_string("/proc/self/status").map_err(|_| PreflightError::CapabilitiesUnknown)
}

/// Compares a release string such as `6.18.44-fc-v1252` with [`MIN_KERNEL`].
fn check_kernel(release: &str) -> Result<(), PreflightError> {
    let release = release.trim();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return Err(PreflightError::KernelUnknown {
            path: "/proc/sys/kernel/osrelease".into(),
            reason: format!("unrecognised release {release:?}"),
        });
    };
    if (major, minor) < MIN_KERNEL {
        return Err(PreflightError::KernelTooOld {
            found: release.into(),
        });
    }
    Ok(())
}

/// Accepts CAP_SYS_ADMIN alone, or CAP_BPF with CAP_PERFMON (tracepoints are perf events).
fn check_capabilities(status: &str) -> Result<(), PreflightError> {
    let cap_eff = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or(PreflightError::CapabilitiesUnknown)?;
    let has = |cap: u32| cap_eff & (1 << cap) != 0;
    let missing = match (has(CAP_BPF), has(CAP_PERFMON)) {
        _ if has(CAP_SYS_ADMIN) => return Ok(()),
        (true, true) => return Ok(()),
        (true, false) => "CAP_PERFMON",
        (false, true) => "CAP_BPF",
        (false, false) => "CAP_BPF and CAP_PERFMON",
    };
    Err(PreflightError::NotPrivileged { cap_eff, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(check_kernel("6.18.44-fc-v1252\n"), Ok(()));
        assert_eq!(check_kernel("5.8.0"), Ok(()));
        assert_eq!(
            check_kernel("5.4.0-150-generic"),
            Err(PreflightError::KernelTooOld {
                found: "5.4.0-150-generic".into()
            })
        );
        assert!(matches!(
            check_kernel("weird"),
            Err(PreflightError::KernelUnknown { .. })
        ));
    }

    #[test]
    fn capabilities() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert_eq!(check_capabilities(root), Ok(()));

        let bpf_and_perfmon = format!("CapEff:\t{:016x}\n", (1u64 << 39) | (1u64 << 38));
        assert_eq!(check_capabilities(&bpf_and_perfmon), Ok(()));

        let bpf_only = format!("CapEff:\t{:016x}\n", 1u64 << 39);
        assert_eq!(
            check_capabilities(&bpf_only),
            Err(PreflightError::NotPrivileged {
                cap_eff: 1 << 39,
                missing: "CAP_PERFMON"
            })
        );
        let perfmon_only = format!("CapEff:\t{:016x}\n", 1u64 << 38);
        assert!(matches!(
            check_capabilities(&perfmon_only),
            Err(PreflightError::NotPrivileged {
                missing: "CAP_BPF",
                ..
            })
        ));

        assert_eq!(
            check_capabilities("Name:\tx\n"),
            Err(PreflightError::CapabilitiesUnknown)
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        assert!(
            PreflightError::NoTracefs
                .to_string()
                .contains("mount -t tracefs")
        );
        let msg = PreflightError::NotPrivileged {
            cap_eff: 0,
            missing: "CAP_BPF and CAP_PERFMON",
        }
        .to_string();
        assert!(msg.starts_with("missing CAP_BPF and CAP_PERFMON:") && msg.contains("root"));
        let msg = PreflightError::TracefsUnreadable {
            path: "/sys/kernel/tracing",
        }
        .to_string();
        assert!(msg.starts_with("missing CAP_DAC_READ_SEARCH:"));
    }
}
