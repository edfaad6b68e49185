//! The Python venv holding the pinned Gunicorn the integration tests and benchmarks run.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;

/// The pins, relative to the workspace root.
const REQUIREMENTS: &str = "tests/apps/requirements.txt";
/// A copy of the requirements the venv was last built from, kept inside the venv so that
/// deleting the venv also forgets it.
const STAMP: &str = "requirements.stamp";

pub fn dir(root: &Path) -> PathBuf {
    crate::target_dir(root).join("venv")
}

/// Builds the venv afresh when it is missing, broken, or its requirements changed.
pub fn ensure(root: &Path) -> Result<()> {
    let venv = dir(root);
    let requirements_path = root.join(REQUIREMENTS);
    let requirements = fs::read_to_string(&requirements_path)
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
    // --clear drops packages a previous set of requirements pulled in.
    Cmd::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .run()?;
    Cmd::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .arg("-r")
        .arg(&requirements_path)
        .run()?;

    let Some(version) = gunicorn_version(&venv) else {
        bail!("gunicorn does not run from the fresh venv");
    };
    fs::write(&stamp_path, &requirements)
        .with_context(|| format!("writing {}", stamp_path.display()))?;
    println!("ok: venv {} ({version})", venv.display());
    Ok(())
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
