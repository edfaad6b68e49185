//! A web config the observer cannot honour stops it at start, with an error naming the field
//! or file, exit status 1, and no kernel program attached.

use std::{
    fs,
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use observer_tests::{
    certs::{Ca, Usage},
    gunicorn::free_port,
    observer_bin, process,
    tempdir::TempDir,
};

const ATTACHED: &str = "kernel programs attached";

/// Runs the observer with `yaml` as its web config and returns how it exited.
fn run_with(dir: &Path, yaml: &str) -> Output {
    let config = dir.join("web.yml");
    fs::write(&config, yaml).unwrap();
    run(&config)
}

fn run(config: &Path) -> Output {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(observer_bin())
        .args(["--listen", &listen, "--web.config.file"])
        .arg(config)
        .env_remove("GUNICORN_OBSERVER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the observer");
    let exited = process::wait_timeout(&mut child, Duration::from_secs(20)).unwrap();
    if exited.is_none() {
        let _ = process::terminate(&mut child, Duration::from_secs(10));
        panic!("the observer kept running with a bad web config");
    }
    child.wait_with_output().unwrap()
}

/// Asserts a refused start whose stderr holds every one of `needles`.
fn assert_refused(output: &Output, needles: &[&str]) {
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    assert!(!text.contains(ATTACHED), "{text}");
}

#[test]
fn faults_in_the_web_config_are_named_at_start() {
    let dir = TempDir::new("web-config-errors");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let leaf = ca.issue(d, "observer", Usage::Server);
    let (cert, key) = (leaf.cert.display(), leaf.key.display());

    let missing = d.join("absent.yml");
    assert_refused(
        &run(&missing),
        &[&format!(
            "--web.config.file: cannot read the web config {}",
            missing.display()
        )],
    );

    assert_refused(
        &run_with(d, "tls_server_config:\n  cert_fil: /x.pem\n"),
        &["is not valid", "unknown field `cert_fil`"],
    );

    assert_refused(
        &run_with(
            d,
            &format!(
                "tls_server_config:\n  cert_file: {}/none.pem\n  key_file: {key}\n",
                d.display()
            ),
        ),
        &[&format!(
            "tls_server_config.cert_file: cannot read {}/none.pem",
            d.display()
        )],
    );

    // A key that is not a key, and a certificate with another's key.
    assert_refused(
        &run_with(
            d,
            &format!("tls_server_config:\n  cert_file: {cert}\n  key_file: {cert}\n"),
        ),
        &[&format!(
            "tls_server_config.key_file: {cert} holds no PEM private key"
        )],
    );
    let other = ca.issue(d, "other", Usage::Server);
    assert_refused(
        &run_with(
            d,
            &format!(
                "tls_server_config:\n  cert_file: {cert}\n  key_file: {}\n",
                other.key.display()
            ),
        ),
        &["tls_server_config.key_file: rustls refused it"],
    );

    assert_refused(
        &run_with(d, "basic_auth_users:\n  prometheus: plaintext-password\n"),
        &["basic_auth_users: the password of \"prometheus\" is not a bcrypt hash"],
    );

    assert_refused(
        &run_with(
            d,
            &format!(
                "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  \
                 client_auth_type: RequireAndVerifyClientCert\n"
            ),
        ),
        &["tls_server_config.client_ca_file: required to verify client certificates"],
    );
}
