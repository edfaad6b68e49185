//! `cargo xtask soak`: the long run that is not part of `cargo xtask test`. Builds the
//! observer and runs the ignored `soak` test with the requested duration.

use std::path::Path;

use anyhow::{Result, bail};

use crate::cmd::Cmd;

pub fn soak(root: &Path, minutes: u32) -> Result<()> {
    if !crate::bootstrap::is_root() {
        bail!("`cargo xtask soak` loads eBPF programs: run it as root");
    }
    crate::bootstrap::bootstrap(root)?;
    crate::build_observer(root)?;
    Cmd::new("cargo")
        .current_dir(root)
        .env("GUNICORN_OBSERVER_TEST_VENV", crate::venv::dir(root))
        .env("GUNICORN_OBSERVER_BIN", crate::observer_bin(root))
        .env("GUNICORN_OBSERVER_SOAK_MINUTES", minutes.to_string())
        .args([
            "test",
            "--release",
            "-p",
            "observer-tests",
            "--test",
            "soak",
        ])
        .args(["--", "--ignored", "--nocapture", "--test-threads=1"])
        .run()
}
