//! Where the venv and the observer binary are; `cargo xtask test` sets both.

use std::path::PathBuf;

pub const VENV_VAR: &str = "GUNICORN_OBSERVER_TEST_VENV";
pub const BIN_VAR: &str = "GUNICORN_OBSERVER_BIN";

/// The Python venv holding the pinned Gunicorn.
pub fn venv() -> PathBuf {
    from_env(VENV_VAR)
}

/// The venv of an older Gunicorn (`21.2`, `23.0`), which `cargo xtask bootstrap` builds
/// beside the main one.
pub fn older_venv(version: &str) -> PathBuf {
    let main = venv();
    let target = main.parent().unwrap_or(&main).to_path_buf();
    target.join(format!("venv-gunicorn-{version}"))
}

/// The release build of gunicorn-observer.
pub fn observer_bin() -> PathBuf {
    from_env(BIN_VAR)
}

/// The WSGI apps under tests/apps.
pub fn apps_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/apps"))
}

fn from_env(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!("{var} is not set: run the integration tests via `cargo xtask test`"),
    }
}
