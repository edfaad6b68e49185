//! The dashboard and the alert rules against a real Prometheus: it scrapes a real observer
//! on loopback while a real Gunicorn (in a fake pod, named by a stub kubelet) serves
//! traffic, loads deploy/prometheus/alerts.yaml, and answers every dashboard query and every
//! selector of every alert through its HTTP API.

mod common;

use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use observer_tests::{
    GunicornOpts, Observer, kube::PodCgroups, kube::StubKubelet, process, prometheus::Prometheus,
};
use serde_json::Value;

/// promtool's lint findings that are deliberate. gunicorn-prometheus-exporter named its
/// failure counter without `_total`, and the observer keeps its names so existing dashboards
/// work (README, Known limitations); promtool still says so, and nothing else may appear.
const KNOWN_LINT: &[&str] =
    &[r#"gunicorn_worker_failed_requests counter metrics should have "_total" suffix"#];

/// What `$__rate_interval` stands for here: thirty one-second scrapes.
const RATE_INTERVAL: &str = "30s";
const SCRAPES_NEEDED: u32 = 15;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Prometheus that scrapes `observer` every second and evaluates the alert rules.
fn start_prometheus(observer: SocketAddr) -> Prometheus {
    let rules = repo_root().join("deploy/prometheus/alerts.yaml");
    Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: gunicorn-observer\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['{observer}']\n",
        rules.display()
    ))
}

/// The metric names and the label names one PromQL expression refers to: selectors'
/// names and matchers, and the labels of `by`, `without`, `on` and `ignoring`. Our metric
/// names all start with `gunicorn_`; `up` is Prometheus's own.
#[derive(Debug, Default, PartialEq)]
struct Refs {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

fn refs(expr: &str) -> Refs {
    let mut refs = Refs::default();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut last_word = String::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i = skip_string(&chars, i);
            continue;
        }
        if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if ident(c) && !c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word.starts_with("gunicorn_") || word == "up" {
                refs.metrics.insert(word.clone());
            }
            last_word = word;
            continue;
        }
        if c == '{' {
            // Matchers: `label op "value"` separated by commas.
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                if chars[i] == '"' || chars[i] == '\'' {
                    i = skip_string(&chars, i);
                    continue;
                }
                if ident(chars[i]) {
                    let start = i;
                    while i < chars.len() && ident(chars[i]) {
                        i += 1;
                    }
                    refs.labels.insert(chars[start..i].iter().collect());
                    continue;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '(' && matches!(last_word.as_str(), "by" | "without" | "on" | "ignoring") {
            let end = chars[i..]
                .iter()
                .position(|&c| c == ')')
                .map_or(chars.len(), |p| i + p);
            let inside: String = chars[i + 1..end].iter().collect();
            refs.labels.extend(
                inside
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
            i = end + 1;
            last_word.clear();
            continue;
        }
        if !c.is_whitespace() {
            last_word.clear();
        }
        i += 1;
    }
    refs
}

fn skip_string(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut i = open + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Every `expr` of the dashboard, with Grafana's variables replaced.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = repo_root().join("deploy/grafana/gunicorn-observer.json");
    let dashboard: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", RATE_INTERVAL)
                .replace("$app", ".*");
            queries.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    queries
}

/// What a query refers to that this Prometheus does not have: metric names without series,
/// and label names no series of the query's metrics carries.
fn missing_refs(prometheus: &Prometheus, refs: &Refs) -> Vec<String> {
    let mut missing = Vec::new();
    let mut labels = BTreeSet::new();
    for metric in &refs.metrics {
        let known = prometheus.labels_of(metric);
        if known.is_empty() {
            missing.push(format!("metric {metric}"));
        }
        labels.extend(known);
    }
    for label in &refs.labels {
        if label != "__name__" && !labels.contains(label) {
            missing.push(format!("label {label}"));
        }
    }
    missing
}

#[test]
fn every_dashboard_query_and_alert_selector_has_data() {
    let cgroups = PodCgroups::new();
    let pod = cgroups.pod(1, "shop", "shop-0");
    let kubelet = StubKubelet::start(&[&pod]);
    // --max-requests makes restarts (reason max_requests) happen under the test's traffic.
    let gunicorn = cgroups.start_in(
        &pod,
        GunicornOpts::sync(2)
            .arg(&format!("--name={}", common::unique_app("e2e-shop")))
            .arg("--max-requests=10"),
    );
    let observer = Observer::start(&[
        "--kube-pods-url",
        &kubelet.url(),
        "--kube-refresh-secs",
        "1",
        "--sample-secs",
        "1",
    ]);
    let prometheus = start_prometheus(observer.addr());

    // Traffic over a few scrapes: successes, 5xx from the app, and an unhandled error.
    for round in 0..SCRAPES_NEEDED {
        for path in ["/", "/", "/status/503", "/error"] {
            gunicorn.get(path);
        }
        if round % 5 == 0 {
            gunicorn.get("/sleep/20");
        }
        thread::sleep(Duration::from_millis(700));
    }
    let scraped = process::wait_for(Duration::from_secs(30), || {
        let result = prometheus.query(&format!(
            "count_over_time(up{{job=\"gunicorn-observer\"}}[1m]) >= {SCRAPES_NEEDED}"
        ));
        (!result.is_empty()).then_some(())
    });
    assert!(scraped.is_some(), "too few scrapes:\n{}", prometheus.log());

    promtool_check_metrics(&observer.scrape());

    let mut empty = Vec::new();
    for (panel, expr) in dashboard_queries() {
        let refs = refs(&expr);
        let mut problems = missing_refs(&prometheus, &refs);
        if prometheus.query(&expr).is_empty() {
            problems.push("no data".to_owned());
        }
        if problems.is_empty() {
            continue;
        }
        let line = format!("dashboard {panel:?}: {expr} ({})", problems.join(", "));
        empty.push(line);
    }

    // The rules as Prometheus itself loaded them.
    let groups = prometheus.api("/api/v1/rules")["groups"].clone();
    let mut alerts = 0;
    for rule in groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        alerts += 1;
        let (name, expr) = (
            rule["name"].as_str().unwrap(),
            rule["query"].as_str().unwrap(),
        );
        assert_eq!(rule["health"], "ok", "rule {name}: {rule}");
        let refs = refs(expr);
        let problems = missing_refs(&prometheus, &refs);
        if problems.is_empty() {
            continue;
        }
        let line = format!("alert {name}: {}", problems.join(", "));
        empty.push(line);
    }
    assert_eq!(alerts, 8, "alerts.yaml has eight alerts");

    assert!(
        empty.is_empty(),
        "queries that returned nothing or refer to what does not exist:\n  {}",
        empty.join("\n  ")
    );

    drop(gunicorn);
    observer.stop();
}

/// `promtool check metrics` on a scrape taken while every kind of series exists.
fn promtool_check_metrics(scrape: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool (installed with Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !KNOWN_LINT.contains(line))
        .collect();
    assert!(
        problems.is_empty(),
        "promtool check metrics ({}):\n{}",
        out.status,
        problems.join("\n")
    );
}

#[test]
fn refs_finds_selectors_matchers_and_grouping_labels() {
    let expr = r#"sum by (instance, app) (rate(gunicorn_worker_requests_total{status=~"5..",app!="x{y}"}[5m]))
        / on (instance) group_left sum(up{job="gunicorn-observer"}) and absent(gunicorn_workers)"#;
    let found = refs(expr);
    let set = |items: &[&str]| {
        items
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        found.metrics,
        set(&["gunicorn_worker_requests_total", "gunicorn_workers", "up"])
    );
    assert_eq!(found.labels, set(&["app", "instance", "job", "status"]));
}
