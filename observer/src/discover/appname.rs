//! The app name of an instance: the command line's answer, completed with what Gunicorn
//! itself would read from `GUNICORN_CMD_ARGS` and the config file.

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use super::cmdline::{self, MasterCmd, NameSource};
use super::config::{DEFAULT_CONFIG_FILE, proc_name_from_config};
use super::options;
use super::procfile::{MAX_FILE_BYTES, ProcEnv};

/// An instance's app name and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppName {
    pub name: String,
    pub source: NameSource,
    /// Set when a config file named on the command line (or in `GUNICORN_CMD_ARGS`) could
    /// not be read, so a `proc_name` in it may have been missed; callers count it.
    pub config_error: Option<ConfigReadError>,
    /// The worker timeout in seconds: the command line's, else `GUNICORN_CMD_ARGS`', else
    /// Gunicorn's default when the arguments were visible; `None` when a process title hid
    /// them. A config file's `timeout` is not read.
    pub timeout_secs: Option<u32>,
}

/// Gunicorn's default `--timeout`.
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;

/// A config file named on the command line that could not be read. The name then falls back
/// to the app argument, so this is worth a counter, not a failure.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot read gunicorn config file {path} ({kind})")]
pub struct ConfigReadError {
    pub path: PathBuf,
    pub kind: io::ErrorKind,
}

/// Resolves the app name of the master `pid` with Gunicorn's precedence: command line, then
/// `GUNICORN_CMD_ARGS`, then `proc_name` in the config file, then the app argument.
///
/// Files are read through `/proc/<pid>/cwd` and `/proc/<pid>/root`, so relative paths and
/// containers resolve as they did for the process.
pub fn resolve(proc_root: &Path, pid: u32, cmd: &MasterCmd, env: Option<&ProcEnv>) -> AppName {
    let env_words = env
        .and_then(|env| env.cmd_args.as_deref())
        .map(options::split_words)
        .unwrap_or_default();
    let env_args: Vec<&str> = env_words.iter().map(String::as_str).collect();
    let env_opts = options::parse(&env_args);

    // Gunicorn's precedence: command line, then `GUNICORN_CMD_ARGS`, then the default.
    let env_timeout = env_opts.timeout.and_then(cmdline::parse_timeout);
    let timeout_secs = cmd
        .timeout
        .or(env_timeout)
        .or_else(|| (cmd.source != NameSource::Title).then_some(DEFAULT_TIMEOUT_SECS));

    let named = |name: String, source| AppName {
        name,
        source,
        config_error: None,
        timeout_secs,
    };
    let from_cmdline = named(cmd.app.clone(), cmd.source);
    if !cmd.source.config_overrides() {
        return from_cmdline;
    }
    if let Some(name) = env_opts.name {
        return named(name.to_owned(), NameSource::EnvNameFlag);
    }

    let explicit = cmd.config.as_deref().or(env_opts.config);
    let chdir_given = cmd.chdir.is_some() || env_opts.chdir.is_some();
    let pwd = env.and_then(|env| env.pwd.as_deref());
    let file = explicit.unwrap_or(DEFAULT_CONFIG_FILE);
    if file.starts_with("python:") {
        // A config module: only Python's import system could locate it.
        return from_cmdline;
    }

    let config_error = match read_config(proc_root, pid, file, chdir_given, pwd) {
        Ok(Some(text)) => match proc_name_from_config(&text) {
            Some(name) => return named(name, NameSource::ConfigFile),
            None => None,
        },
        // No `gunicorn.conf.py` in the working directory is the common case.
        Ok(None) if explicit.is_none() => None,
        Ok(None) => Some(ConfigReadError {
            path: PathBuf::from(file),
            kind: io::ErrorKind::NotFound,
        }),
        Err(err) => Some(err),
    };
    AppName {
        config_error,
        ..from_cmdline
    }
}

/// Reads the config file the way the process saw it; `Ok(None)` when it is not there.
fn read_config(
    proc_root: &Path,
    pid: u32,
    file: &str,
    chdir_given: bool,
    pwd: Option<&str>,
) -> Result<Option<String>, ConfigReadError> {
    let file = file.strip_prefix("file:").unwrap_or(file);

    for candidate in config_candidates(proc_root, pid, file, chdir_given, pwd) {
        match read_text(&candidate) {
            Ok(text) => return Ok(Some(text)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => {
                let kind = err.kind();
                return Err(ConfigReadError {
                    path: candidate,
                    kind,
                });
            }
        }
    }
    Ok(None)
}

/// Gunicorn opens a relative config path from its launch directory, before `--chdir` moves
/// it. `/proc/<pid>/cwd` is the launch directory unless `--chdir` was given; then the
/// launch directory survives only as `PWD` (set by shells), tried first.
fn config_candidates(
    proc_root: &Path,
    pid: u32,
    file: &str,
    chdir_given: bool,
    pwd: Option<&str>,
) -> Vec<PathBuf> {
    let process = proc_root.join(pid.to_string());
    let under_root = |abs: &str| process.join("root").join(abs.trim_start_matches('/'));

    if file.starts_with('/') {
        return vec![under_root(file)];
    }

    let from_cwd = process.join("cwd").join(file);
    match pwd.filter(|pwd| pwd.starts_with('/')) {
        Some(pwd) if chdir_given => vec![under_root(pwd).join(file), from_cwd],
        _ => vec![from_cwd],
    }
}

fn read_text(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)?;
    Ok(text)
}
