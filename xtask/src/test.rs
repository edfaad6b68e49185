//! `cargo xtask test`: what CI runs. Bootstrap, then each step in order, stopping at the
//! first failure.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;

pub fn test(root: &Path) -> Result<()> {
    // The integration tests load eBPF programs; skipping them when not root would let a
    // run pass that tested nothing of the kind.
    if !crate::bootstrap::is_root() {
        bail!("`cargo xtask test` runs integration tests that load eBPF programs: run it as root");
    }
    crate::bootstrap::bootstrap(root)?;

    let started = Instant::now();
    let mut done: Vec<(&str, Duration)> = Vec::new();
    let mut step = |name: &'static str, run: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        println!("== step {}: {name}", done.len() + 1);
        let begun = Instant::now();
        run().with_context(|| format!("xtask test: step `{name}` failed"))?;
        done.push((name, begun.elapsed()));
        Ok(())
    };

    step("fmt", &mut || {
        cargo(root).args(["fmt", "--all", "--check"]).run()
    })?;
    step("clippy", &mut || {
        cargo(root)
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .run()
    })?;
    step("build", &mut || crate::build_observer(root))?;
    step("deploy", &mut || crate::manifests::check(root))?;
    let mut counts = Counts::default();
    step("test", &mut || run_tests(root, &mut counts))?;
    // Not a benchmark: each part once for a second or so, so the harness keeps working.
    step("bench smoke", &mut || {
        crate::bench::run(root, crate::bench::Mode::Smoke)
    })?;

    let steps: Vec<String> = done
        .iter()
        .map(|(name, took)| format!("{name} {:.0}s", took.as_secs_f64()))
        .collect();
    println!(
        "xtask test: all steps passed in {:.0}s ({})",
        started.elapsed().as_secs_f64(),
        steps.join(", ")
    );
    println!("summary: {}", counts.line());
    Ok(())
}

/// `cargo xtask test --kernels`: bootstrap with the matrix's extra packages, a release
/// build, then every kernel of the matrix under QEMU.
pub fn kernels(root: &Path, only: Option<&str>) -> Result<()> {
    if !crate::bootstrap::is_root() {
        bail!("`cargo xtask test --kernels` runs QEMU and virtiofsd as root: run it as root");
    }
    let started = Instant::now();
    crate::bootstrap::bootstrap(root)?;
    crate::apt::ensure_packages(crate::kernels::PACKAGES)
        .context("bootstrap: kernel-matrix packages")?;
    crate::build_observer(root)?;
    crate::kernels::test(root, only)?;
    println!(
        "xtask test --kernels: done in {:.0} s with bootstrap and build",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cargo(root: &Path) -> Cmd {
    Cmd::new("cargo").current_dir(root)
}

/// The whole suite, one test at a time because integration tests share the kernel's
/// tracepoints and the machine's two cores.
fn run_tests(root: &Path, counts: &mut Counts) -> Result<()> {
    let venv = crate::venv::dir(root);
    let status = cargo(root)
        .env("GUNICORN_OBSERVER_TEST_VENV", &venv)
        .env("GUNICORN_OBSERVER_BIN", crate::observer_bin(root))
        .args(["test", "--workspace", "--release", "--", "--test-threads=1"])
        .stream(|line| {
            println!("{line}");
            counts.add(line);
        })?;

    if !status.success() {
        println!("summary: {}", counts.line());
        bail!("cargo test failed ({status})");
    }
    if counts.passed == 0 {
        bail!("cargo test ran no test");
    }
    Ok(())
}

/// Totals over every `test result:` line libtest prints, one per test binary.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            let (Some(number), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                "ignored" => self.ignored += number,
                _ => {}
            }
        }
    }

    fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.ignored
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_result_lines_of_every_binary() {
        let mut counts = Counts::default();
        for line in [
            "running 3 tests",
            "test metrics::tests::parses ... ok",
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
             finished in 0.01s",
            "test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; \
             finished in 1.20s",
        ] {
            counts.add(line);
        }
        assert_eq!(
            counts,
            Counts {
                passed: 7,
                failed: 2,
                ignored: 1
            }
        );
        assert_eq!(counts.line(), "7 passed, 2 failed, 1 skipped");
    }
}
