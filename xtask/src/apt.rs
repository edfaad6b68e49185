//! Debian packages the build, the tests and the benchmarks need.

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;

/// Packages every machine needs, and why.
const PACKAGES: &[&str] = &[
    // LLVM 22 and the libraries it links against, to build bpf-linker (shared/TOOLCHAIN.md).
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
    // Load generator for the benchmarks.
    "wrk",
    // Inspecting loaded programs and maps when a test fails.
    "bpftool",
    // `ip netns` for tests that need their own network namespace.
    "iproute2",
    "curl",
    // The web_tls tests make their CA and certificates with the openssl CLI.
    "openssl",
];

/// Debian's own python3 ships `venv` without `ensurepip`; that half lives in this package.
const VENV_PACKAGE: &str = "python3-venv";

/// Installs whatever is missing, running `apt-get update` at most once.
pub fn ensure() -> Result<()> {
    let mut wanted: Vec<&str> = PACKAGES.to_vec();
    if !python_can_make_venvs() {
        wanted.push(VENV_PACKAGE);
    }
    ensure_packages(&wanted)
}

/// Installs whichever of `wanted` is missing, running `apt-get update` at most once.
pub fn ensure_packages(wanted: &[&str]) -> Result<()> {
    let installed = installed_versions(wanted);
    let mut missing = Vec::new();
    for package in wanted {
        match installed.iter().find(|(name, _)| name == package) {
            Some((_, version)) => println!("ok: apt {package} {version}"),
            None => missing.push(*package),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }

    if !crate::bootstrap::is_root() {
        bail!(
            "Debian packages {} are missing and installing them needs root",
            missing.join(" ")
        );
    }
    println!("installing: apt {}", missing.join(" "));
    Cmd::new("apt-get").arg("update").run()?;
    Cmd::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y"])
        .args(&missing)
        .run()
        .with_context(|| format!("installing Debian packages {}", missing.join(" ")))?;
    println!("ok: apt installed {}", missing.join(" "));

    Ok(())
}

fn python_can_make_venvs() -> bool {
    Cmd::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .probe_ok()
        .is_some()
}

/// `(package, version)` for each of `packages` that is fully installed. dpkg-query exits
/// non-zero when it has never heard of one of them but still lists the others, so its
/// status is not the answer.
fn installed_versions(packages: &[&str]) -> Vec<(String, String)> {
    let Some(probe) = Cmd::new("dpkg-query")
        .args(["-W", r"-f=${Package}\t${Status}\t${Version}\n"])
        .args(packages)
        .probe()
    else {
        return Vec::new();
    };
    parse_dpkg_query(&probe.stdout)
}

fn parse_dpkg_query(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (name, status, version) = (fields.next()?, fields.next()?, fields.next()?);
            // A removed package keeps a "deinstall ok config-files" entry.
            (status == "install ok installed").then(|| (name.to_owned(), version.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fully_installed_packages_count() {
        let out = "wrk\tinstall ok installed\t4.1.0-3+b1\n\
                   curl\tdeinstall ok config-files\t7.88.1-10\n\
                   bpftool\tinstall ok half-configured\t7.1.0\n";
        assert_eq!(
            parse_dpkg_query(out),
            vec![("wrk".to_owned(), "4.1.0-3+b1".to_owned())]
        );
    }
}
