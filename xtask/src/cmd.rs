//! External commands, each printed as `$ cmd args` before it runs so a CI log shows exactly
//! what was executed and in which order.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context as _, Result, bail};

/// A command plus the text it is shown as.
pub struct Cmd {
    inner: Command,
    shown: String,
    env_shown: String,
}

/// What a probe saw: the exit status and both captured streams.
pub struct Probe {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        Self {
            inner: Command::new(program),
            shown: quote(program),
            env_shown: String::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        write!(self.shown, " {}", quote(arg)).expect("writing to a String");
        self.inner.arg(arg);
        self
    }

    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Cmd::arg)
    }

    /// Sets a variable for the child and shows it in front of the command line.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        let value = value.as_ref();
        write!(self.env_shown, "{key}={} ", quote(value)).expect("writing to a String");
        self.inner.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// The command line as printed.
    pub fn shown(&self) -> String {
        format!("{}{}", self.env_shown, self.shown)
    }

    fn announce(&self) {
        println!("$ {}", self.shown());
    }

    /// Runs with inherited stdio and fails unless the command exits 0.
    pub fn run(mut self) -> Result<()> {
        self.announce();
        let status = self
            .inner
            .status()
            .with_context(|| format!("could not start `{}`", self.shown))?;
        if !status.success() {
            bail!("`{}` failed ({status})", self.shown);
        }
        Ok(())
    }

    /// Runs with captured output. A command that cannot be started (not installed) is
    /// `None`; a non-zero exit is reported in the status for the caller to judge.
    pub fn probe(mut self) -> Option<Probe> {
        self.announce();
        let output = self.inner.stdin(Stdio::null()).output().ok()?;
        Some(Probe {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs with stdout captured as bytes (stderr inherited). `None` when the command
    /// cannot be started; a non-zero exit is in the status for the caller to judge.
    pub fn probe_bytes(mut self) -> Option<(ExitStatus, Vec<u8>)> {
        self.announce();
        let output = self
            .inner
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .ok()?;
        Some((output.status, output.stdout))
    }

    /// Like `probe`, but only a zero exit counts; returns the trimmed stdout.
    pub fn probe_ok(self) -> Option<String> {
        self.probe()
            .filter(|probe| probe.status.success())
            .map(|probe| probe.stdout.trim().to_owned())
    }

    /// Runs with stdout piped to `on_line` one line at a time (stderr inherited), and
    /// returns the exit status for the caller to judge.
    pub fn stream(mut self, mut on_line: impl FnMut(&str)) -> Result<ExitStatus> {
        use std::io::BufRead as _;

        self.announce();
        let mut child = self
            .inner
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{}`", self.shown))?;
        let stdout = child.stdout.take().expect("stdout was piped");
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.with_context(|| format!("reading the output of `{}`", self.shown))?;
            on_line(&line);
        }
        child
            .wait()
            .with_context(|| format!("waiting for `{}`", self.shown))
    }

    /// Replaces this process with the command; returns only if that failed.
    pub fn exec(mut self) -> anyhow::Error {
        self.announce();
        let err = self.inner.exec();
        anyhow::Error::new(err).context(format!("could not exec `{}`", self.shown))
    }
}

/// Quotes a word for display the way a shell would need it.
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%^".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_env_and_quotes_words_that_need_it() {
        let cmd = Cmd::new("dpkg-query")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-W", "-f=${Status}\n", "it's"]);
        assert_eq!(
            cmd.shown(),
            "DEBIAN_FRONTEND=noninteractive dpkg-query -W '-f=${Status}\n' 'it'\\''s'"
        );
    }

    #[test]
    fn probe_reports_missing_programs_as_none() {
        assert!(Cmd::new("/nonexistent/program").probe().is_none());
        assert_eq!(
            Cmd::new("sh").args(["-c", "echo ' hi '"]).probe_ok(),
            Some("hi".to_owned())
        );
        assert_eq!(Cmd::new("false").probe_ok(), None);
    }
}
