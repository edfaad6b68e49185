//! The Python venv holding the pinned Gunicorn the integration tests and benchmarks run.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;

/// The pins, relative to the workspace root.
const REQUIREMENTS: &str = "tests/apps/requirements.txt";
/// Older Gunicorn releases the fidelity tests also run against, each in a venv of its own
/// beside the main one (`target/venv-gunicorn-<version>`), pinned in
/// `tests/apps/requirements-<version>.txt`.
pub const OLDER_GUNICORNS: [&str; 2] = ["21.2", "23.0"];
/// A copy of the requirements the venv was last built from, kept inside the venv so that
/// deleting the venv also forgets it.
const STAMP: &str = "requirements.stamp";

pub fn dir(root: &Path) -> PathBuf {
    crate::target_dir(root).join("venv")
}

/// The venv of an older Gunicorn release from [`OLDER_GUNICORNS`].
pub fn older_dir(root: &Path, version: &str) -> PathBuf {
    crate::target_dir(root).join(format!("venv-gunicorn-{version}"))
}

/// Builds every venv the tests use: the main one and one per older Gunicorn.
pub fn ensure(root: &Path) -> Result<()> {
    ensure_one(&dir(root), &root.join(REQUIREMENTS))?;
    for version in OLDER_GUNICORNS {
        let requirements = root.join(format!("tests/apps/requirements-{version}.txt"));
        ensure_one(&older_dir(root, version), &requirements)?;
    }
    Ok(())
}

/// Builds one venv afresh when it is missing, broken, or its requirements changed.
fn ensure_one(venv: &Path, requirements_path: &Path) -> Result<()> {
    let venv = venv.to_path_buf();
    let requirements = fs::read_to_string(requirements_path)
        .with_context(|| format!("reading {}", requirements_path.display()))?;
    let stamp_path = venv.join(STAMP);
    let stamp = fs::read_to_string(&stamp_path).ok();

    let gunicorn = gunicorn_version(&venv);
    if let Some(version) = &gunicorn
        && stamp.as_deref() == Some(requirements.as_str())
    {
        println!("ok: venv {} ({version})", venv.display());
        return Ok(());
    }

    let why = match (&gunicorn, &stamp) {
        (_, None) => "new",
        (None, Some(_)) => "its gunicorn does not run",
        (Some(_), Some(_)) => "requirements changed",
    };
    println!("installing: venv {} ({why})", venv.display());
    create(&venv, [OsStr::new("-r"), requirements_path.as_os_str()])?;

    // What pip resolved, for the log: the pins say what we asked for, this what we got.
    Cmd::new(venv.join("bin/python"))
        .args(["-m", "pip", "freeze", "--disable-pip-version-check"])
        .run()?;

    let Some(version) = gunicorn_version(&venv) else {
        bail!("gunicorn does not run from the fresh venv");
    };
    fs::write(&stamp_path, &requirements)
        .with_context(|| format!("writing {}", stamp_path.display()))?;
    println!("ok: venv {} ({version})", venv.display());
    Ok(())
}

/// Makes `venv` afresh and installs into it what `pip_args` name (packages, or `-r FILE`).
/// `--clear` drops packages a previous set of requirements pulled in.
pub fn create<S: AsRef<OsStr>>(venv: &Path, pip_args: impl IntoIterator<Item = S>) -> Result<()> {
    Cmd::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(venv)
        .run()?;
    pip_install(&venv.join("bin/python"), pip_args)
}

/// Runs `python -m pip install` quietly about itself with `pip_args` (packages, `-r FILE`,
/// `--target DIR`).
pub fn pip_install<S: AsRef<OsStr>>(
    python: &Path,
    pip_args: impl IntoIterator<Item = S>,
) -> Result<()> {
    Cmd::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(pip_args)
        .run()
}

/// `gunicorn (version 27.0.1)` as `gunicorn 27.0.1`, or `None` if it does not run.
fn gunicorn_version(venv: &Path) -> Option<String> {
    let out = Cmd::new(venv.join("bin/gunicorn"))
        .arg("--version")
        .probe_ok()?;
    let version = out
        .strip_prefix("gunicorn (version ")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(&out);
    Some(format!("gunicorn {version}"))
}
