//! `cargo xtask`: the one entry point for setting a machine up, running the observer and
//! running what CI runs.

mod apt;
mod bench;
mod bootstrap;
mod cmd;
mod deploy_tools;
mod kernels;
mod manifests;
mod run;
mod soak;
mod test;
mod venv;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::cmd::Cmd;

#[derive(Parser)]
#[command(about = "Bootstrap, run, test and benchmark gunicorn-observer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every prerequisite and install what is missing (needs root to install).
    Bootstrap,
    /// Bootstrap, build the observer in release mode and run it with the given arguments.
    Run {
        /// Passed to gunicorn-observer, e.g. `cargo xtask run -- --listen 127.0.0.1:9464`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Bootstrap, then fmt, clippy, release build and the whole test suite, as CI does.
    Test {
        /// Instead of the suite: boot each kernel of the matrix (xtask/src/kernels) under
        /// QEMU and check the observer's counts there (docs/KERNELS.md).
        #[arg(long)]
        kernels: bool,
        /// With --kernels: only the kernels whose release contains this, e.g. `6.1.`.
        #[arg(long, requires = "kernels")]
        kernel: Option<String>,
    },
    /// Measure the observer against bare Gunicorn and gunicorn-prometheus-exporter, and write
    /// docs/BENCHMARKS.md (needs root; loopback only).
    Bench {
        /// Shorter runs, every part kept: under 10 minutes.
        #[arg(long, conflicts_with = "smoke")]
        quick: bool,
        /// Each part once for seconds, written under target/bench/: checks the harness only.
        #[arg(long)]
        smoke: bool,
    },
    /// Bootstrap, build, then only the deploy checks: manifests, alert rules, dashboard.
    CheckDeploy,
    /// A long run under load with workers recycled, checking the observer stays flat.
    Soak {
        /// How long to run.
        #[arg(long, default_value_t = 30)]
        minutes: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Command::Bootstrap => bootstrap::bootstrap(&root),
        Command::Run { args } => run::run(&root, &args),
        Command::Test { kernels: false, .. } => test::test(&root),
        Command::Test {
            kernels: true,
            kernel,
        } => test::kernels(&root, kernel.as_deref()),
        Command::Bench { quick, smoke } => {
            let mode = match (quick, smoke) {
                (_, true) => bench::Mode::Smoke,
                (true, false) => bench::Mode::Quick,
                (false, false) => bench::Mode::Full,
            };
            bench::bench(&root, mode)
        }
        Command::CheckDeploy => bootstrap::bootstrap(&root)
            .and_then(|()| build_observer(&root))
            .and_then(|()| manifests::check(&root)),
        Command::Soak { minutes } => soak::soak(&root, minutes),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory, honouring CARGO_TARGET_DIR as cargo does.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn observer_bin(root: &Path) -> PathBuf {
    target_dir(root).join("release/gunicorn-observer")
}

fn build_observer(root: &Path) -> Result<()> {
    Cmd::new("cargo")
        .args(["build", "--release", "-p", "gunicorn-observer"])
        .current_dir(root)
        .run()
}
