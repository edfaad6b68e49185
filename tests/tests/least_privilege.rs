//! The observer as an unprivileged user with only the capabilities docs/SECURITY.md lists:
//! with all of them it counts exactly; without one it refuses to start and names it.

mod common;

use std::process::Command;

use observer_tests::{Gunicorn, GunicornOpts, Observer, observer_bin};

use common::{by_method_status, expect, settled};

/// Every capability of the table in docs/SECURITY.md.
const MINIMAL: [&str; 4] = ["bpf", "perfmon", "dac_read_search", "sys_ptrace"];
/// `nobody`: no file of the host belongs to it.
const UNPRIVILEGED: &str = "65534";

/// `setpriv` arguments that drop to `nobody` keeping exactly `caps` (as ambient capabilities,
/// so they survive the exec of the observer).
fn setpriv(caps: &[&str]) -> Vec<String> {
    let list: Vec<String> = caps.iter().map(|cap| format!("+{cap}")).collect();
    let list = list.join(",");
    vec![
        "setpriv".into(),
        format!("--reuid={UNPRIVILEGED}"),
        format!("--regid={UNPRIVILEGED}"),
        "--clear-groups".into(),
        format!("--inh-caps=-all,{list}"),
        format!("--ambient-caps=-all,{list}"),
        format!("--bounding-set=-all,{list}"),
        "--".into(),
    ]
}

#[test]
fn the_documented_capabilities_are_enough_to_count_exactly() {
    let app = common::unique_app("least-privilege");
    let app = app.as_str();
    let wrapper = setpriv(&MINIMAL);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let observer = Observer::start_wrapped(&wrapper, &[]);

    let status = std::fs::read_to_string(format!("/proc/{}/status", observer.pid()))
        .expect("the observer's status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| {
                value
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), UNPRIVILEGED, "runs as nobody");
    // CAP_DAC_READ_SEARCH 2, CAP_SYS_PTRACE 19, CAP_PERFMON 38, CAP_BPF 39.
    assert_eq!(
        field("CapEff:"),
        "000000c000080004",
        "exactly the minimal set"
    );

    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={app}")));
    for _ in 0..20 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/status/404").status, 404);
    }
    let after = settled(&observer, app, 25.0);
    assert_eq!(
        by_method_status(&after, app),
        expect(&[("GET", "200", 20.0), ("GET", "404", 5.0)])
    );
}

/// Runs the observer with `caps` only and returns its exit code and stderr.
fn refused_with(caps: &[&str]) -> (Option<i32>, String) {
    let wrapper = setpriv(caps);
    let output = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(observer_bin())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("running the observer under setpriv");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_capability_is_named_in_the_error() {
    for (missing, message) in [
        ("bpf", "missing CAP_BPF:"),
        ("perfmon", "missing CAP_PERFMON:"),
        ("dac_read_search", "missing CAP_DAC_READ_SEARCH:"),
    ] {
        let caps: Vec<&str> = MINIMAL.into_iter().filter(|cap| *cap != missing).collect();
        let (code, stderr) = refused_with(&caps);
        assert_eq!(code, Some(1), "without {missing}: {stderr}");
        assert!(
            stderr.starts_with(&format!("gunicorn-observer: {message}")),
            "without {missing} the error should start with {message:?}, got: {stderr}"
        );
    }
}
