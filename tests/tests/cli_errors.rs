//! Bad command lines and a busy port: the observer must say what is wrong, exit non-zero,
//! and never get as far as attaching kernel programs.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use observer_tests::{observer_bin, process};

/// What the observer logs once its programs are attached.
const ATTACHED: &str = "kernel programs attached";

/// Runs the observer with `args`, killing it if it is still running after `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(observer_bin())
        .args(args)
        .env_remove("GUNICORN_OBSERVER_LISTEN")
        .env_remove("GUNICORN_OBSERVER_DURATION_BUCKETS")
        .env_remove("GUNICORN_OBSERVER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the observer");
    let started = Instant::now();
    let exited = process::wait_timeout(&mut child, limit).expect("waiting for the observer");
    if exited.is_none() {
        let _ = process::terminate(&mut child, Duration::from_secs(10));
        let output = child.wait_with_output().expect("collecting output");
        panic!(
            "still running after {:?}: {}",
            started.elapsed(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    child.wait_with_output().expect("collecting output")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_listen_address_that_is_not_an_address_is_a_usage_error() {
    let output = run(&["--listen", "nonsense"], Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let text = stderr(&output);
    assert!(text.contains("--listen"), "{text}");
    assert!(!text.contains(ATTACHED), "{text}");
}

#[test]
fn decreasing_duration_buckets_are_refused_before_loading() {
    let output = run(
        &["--listen", "127.0.0.1:0", "--duration-buckets", "1,0.5"],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stderr(&output);
    assert!(text.contains("strictly increasing"), "{text}");
    assert!(!text.contains(ATTACHED), "{text}");
}

#[test]
fn a_busy_port_is_refused_before_loading() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let output = run(&["--listen", &addr], Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stderr(&output);
    assert!(text.contains(&format!("cannot listen on {addr}")), "{text}");
    assert!(text.contains("Address already in use"), "{text}");
    assert!(!text.contains(ATTACHED), "{text}");
}

#[test]
fn an_invalid_log_filter_is_refused() {
    let port = observer_tests::gunicorn::free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let output = run(
        &["--listen", &listen, "--log", "gunicorn_observer=[[["],
        Duration::from_secs(10),
    );
    assert_ne!(output.status.code(), Some(0), "{output:?}");
    assert!(stderr(&output).contains("--log"), "{}", stderr(&output));
}
