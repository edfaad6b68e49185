//! `cargo xtask run`: bootstrap, build the observer in release mode, then become it.

use std::path::Path;

use anyhow::Result;

use crate::cmd::Cmd;

/// A demo on a developer's machine listens on loopback only; the observer's own default
/// (all addresses) is for a node that Prometheus scrapes from outside.
const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
const LISTEN_ENV: &str = "GUNICORN_OBSERVER_LISTEN";

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    crate::bootstrap::bootstrap(root)?;
    crate::build_observer(root)?;

    let mut args = args.to_vec();
    let listen = match listen_arg(&args)
        .map(str::to_owned)
        .or_else(|| std::env::var(LISTEN_ENV).ok())
    {
        Some(listen) => listen,
        None => {
            args.extend(["--listen".to_owned(), DEFAULT_LISTEN.to_owned()]);
            DEFAULT_LISTEN.to_owned()
        }
    };
    println!("metrics: http://{listen}/metrics");

    Err(Cmd::new(crate::observer_bin(root)).args(&args).exec())
}

/// The value of `--listen ADDR` or `--listen=ADDR`, if given.
fn listen_arg(args: &[String]) -> Option<&str> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            return args.next().map(String::as_str);
        }
        if let Some(value) = arg.strip_prefix("--listen=") {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn finds_listen_in_both_spellings() {
        let spaced = strings(&["-v", "--listen", "127.0.0.1:1"]);
        assert_eq!(listen_arg(&spaced), Some("127.0.0.1:1"));
        let joined = strings(&["--listen=[::1]:2", "-v"]);
        assert_eq!(listen_arg(&joined), Some("[::1]:2"));
        assert_eq!(listen_arg(&strings(&["--verbose"])), None);
    }
}
