//! The observer refuses to start, with one actionable sentence, on a host it cannot work on.
//! Each case runs the real binary in a real restricted environment made for the test.

use std::process::{Command, Output};

use observer_tests::observer_bin;

fn run(wrapper: &[&str]) -> Output {
    let mut command = Command::new(wrapper[0]);
    command
        .args(&wrapper[1..])
        .arg(observer_bin())
        // A port nothing listens on: the observer must exit before it would serve.
        .args(["--listen", "127.0.0.1:1"]);
    command.output().expect("running the observer")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn without_privileges_it_says_which_capabilities_are_missing() {
    // An unprivileged uid with every capability dropped, as a pod without securityContext.
    let output = run(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not privileged enough to load BPF programs")
            && stderr.contains("CAP_BPF and CAP_PERFMON"),
        "{stderr}"
    );
}

#[test]
fn without_tracefs_it_says_how_to_mount_it() {
    // A private mount namespace in which tracefs is unmounted; the host keeps its mount.
    let script = "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing \
                  2>/dev/null; umount /sys/kernel/debug 2>/dev/null; exec \"$@\"";
    let output = run(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tracefs is not mounted")
            && stderr.contains("mount -t tracefs nodev /sys/kernel/tracing"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_are_rejected_before_anything_loads() {
    let output = Command::new(observer_bin())
        .args(["--duration-buckets", "1,0.5", "--listen", "127.0.0.1:1"])
        .output()
        .expect("running the observer");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("must be strictly increasing"), "{stderr}");

    let output = Command::new(observer_bin())
        .args(["--listen", "nonsense"])
        .output()
        .expect("running the observer");
    let stderr = stderr_of(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap's usage error: {stderr}"
    );
    assert!(stderr.contains("--listen"), "{stderr}");
}
