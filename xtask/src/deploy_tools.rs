//! Tools the deploy checks need: Debian's `prometheus` package (promtool, and the server the
//! end-to-end test starts on loopback) and a venv with a Kubernetes schema validator.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;

/// Ships the Kubernetes JSON schemas, so validation needs no network.
const VALIDATOR: &str = "kubernetes-validate==1.37.0";
const PROMETHEUS_PACKAGE: &str = "prometheus";
const PROMETHEUS_SERVICE: &str = "prometheus";

pub fn venv(root: &Path) -> PathBuf {
    crate::target_dir(root).join("deploy-venv")
}

pub fn ensure(root: &Path) -> Result<()> {
    ensure_prometheus().context("Debian's prometheus package")?;
    ensure_validator(root).context("the manifest validator venv")?;
    Ok(())
}

fn ensure_prometheus() -> Result<()> {
    if let Some(version) = Cmd::new("promtool").arg("--version").probe_ok() {
        println!("ok: {}", version.lines().next().unwrap_or_default());
        return quiet_packaged_service();
    }
    if !crate::bootstrap::is_root() {
        bail!("promtool is missing and installing Debian's prometheus package needs root");
    }
    println!(
        "installing: apt {PROMETHEUS_PACKAGE} (promtool, and a server the tests start on 127.0.0.1)"
    );
    Cmd::new("apt-get").arg("update").run()?;
    // Without recommends: the node exporter it recommends is another service to keep quiet.
    Cmd::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args([
            "install",
            "-y",
            "--no-install-recommends",
            PROMETHEUS_PACKAGE,
        ])
        .run()?;
    quiet_packaged_service()
}

/// The package enables a prometheus service scraping localhost. The tests start their own
/// server with their own configuration; the packaged one must neither run nor start at boot.
fn quiet_packaged_service() -> Result<()> {
    let enabled = Cmd::new("systemctl")
        .args(["is-enabled", PROMETHEUS_SERVICE])
        .probe_ok()
        .is_some_and(|state| state == "enabled");
    if enabled {
        println!("disabling: the packaged {PROMETHEUS_SERVICE} service (the tests run their own)");
        Cmd::new("systemctl")
            .args(["disable", PROMETHEUS_SERVICE])
            .run()?;
    }
    // `service` reaches the service manager in charge (systemd or the init script), so it
    // stops only the packaged daemon, never another prometheus process.
    let running = Cmd::new("service")
        .args([PROMETHEUS_SERVICE, "status"])
        .probe()
        .is_some_and(|probe| probe.status.success());
    if running {
        println!("stopping: the packaged {PROMETHEUS_SERVICE} service (the tests run their own)");
        Cmd::new("service")
            .args([PROMETHEUS_SERVICE, "stop"])
            .run()?;
    }
    println!("ok: the packaged {PROMETHEUS_SERVICE} service is stopped and not enabled");
    Ok(())
}

fn ensure_validator(root: &Path) -> Result<()> {
    let venv = venv(root);
    let validator = venv.join("bin/kubernetes-validate");
    let wanted = VALIDATOR.split("==").nth(1).unwrap_or_default();
    if let Some(version) = Cmd::new(&validator).arg("--version").probe_ok()
        && version.contains(wanted)
    {
        println!("ok: {} (kubernetes-validate {version})", venv.display());
        return Ok(());
    }

    println!("installing: venv {} with {VALIDATOR}", venv.display());
    crate::venv::create(&venv, [VALIDATOR])?;
    let Some(version) = Cmd::new(&validator).arg("--version").probe_ok() else {
        bail!("kubernetes-validate does not run from the fresh venv");
    };
    println!("ok: {} (kubernetes-validate {version})", venv.display());
    Ok(())
}
