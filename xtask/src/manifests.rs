//! `cargo xtask test`'s deploy step: the kustomize base and overlay rendered and validated
//! against the Kubernetes schemas offline, the DaemonSet's arguments checked against the
//! binary's real flags, the capabilities against the documented table, and the alert rules
//! through promtool.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cmd::Cmd;

const BASE: &str = "deploy/kubernetes/base";
const OVERLAYS: &[&str] = &["deploy/kubernetes/overlays/privileged"];
/// The overlay serving /metrics over TLS with basic auth from `--web.config.file`.
const TLS_OVERLAY: &str = "deploy/kubernetes/overlays/tls";
const RULES: &str = "deploy/prometheus/alerts.yaml";
const RULE_TESTS: &str = "deploy/prometheus/alerts_test.yaml";
const DASHBOARD: &str = "deploy/grafana/gunicorn-observer.json";
/// The capability table the DaemonSet must match, row for row.
const CAPABILITY_DOC: &str = "docs/DEPLOY.md";
const OBSERVER_CONTAINER: &str = "observer";

pub fn check(root: &Path) -> Result<()> {
    let out_dir = crate::target_dir(root).join("manifests");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let help = Cmd::new(crate::observer_bin(root))
        .arg("--help")
        .probe_ok()
        .context("`gunicorn-observer --help` did not run; build it first")?;
    let flags = Flags::from_help(&help);
    let doc = fs::read_to_string(root.join(CAPABILITY_DOC))
        .with_context(|| format!("reading {CAPABILITY_DOC}"))?;
    let documented = documented_capabilities(&doc);

    let base = render(root, BASE, &out_dir)?;
    validate(root, &base)?;
    let docs = to_json(root, &base)?;
    let problems = check_base(&docs, &flags, &documented);
    if !problems.is_empty() {
        bail!("{BASE}:\n  {}", problems.join("\n  "));
    }
    println!("ok: {BASE}: args, env, capabilities, probes, Service and ServiceMonitor agree");

    for overlay in OVERLAYS {
        let rendered = render(root, overlay, &out_dir)?;
        validate(root, &rendered)?;
        let docs = to_json(root, &rendered)?;
        let container = observer_container(&docs)
            .with_context(|| format!("{overlay}: no {OBSERVER_CONTAINER} container"))?;
        if container["securityContext"]["privileged"] != Value::Bool(true) {
            bail!("{overlay}: the observer container is not privileged");
        }
        println!("ok: {overlay}: renders, validates, privileged");
    }

    let rendered = render(root, TLS_OVERLAY, &out_dir)?;
    validate(root, &rendered)?;
    let docs = to_json(root, &rendered)?;
    let mut problems = check_base(&docs, &flags, &documented);
    problems.extend(check_tls(&docs));
    if !problems.is_empty() {
        bail!("{TLS_OVERLAY}:\n  {}", problems.join("\n  "));
    }
    println!("ok: {TLS_OVERLAY}: web config mounted, probes and ServiceMonitor use HTTPS");

    Cmd::new("promtool")
        .args(["check", "rules", RULES])
        .current_dir(root)
        .run()?;
    Cmd::new("promtool")
        .args(["test", "rules", RULE_TESTS])
        .current_dir(root)
        .run()?;

    let dashboard: Value = serde_json::from_str(
        &fs::read_to_string(root.join(DASHBOARD))
            .with_context(|| format!("reading {DASHBOARD}"))?,
    )
    .with_context(|| format!("{DASHBOARD} is not JSON"))?;
    let queries = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .filter(|target| target["expr"].as_str().is_some_and(|e| !e.is_empty()))
        .count();
    if queries == 0 {
        bail!("{DASHBOARD} has no queries");
    }
    println!("ok: {DASHBOARD}: {queries} queries (evaluated by the prometheus_e2e test)");
    Ok(())
}

/// `kubectl kustomize` when this machine has it (it needs no cluster). Without it the
/// base's resource files are checked one by one and overlays' patches are not applied.
fn render(root: &Path, dir: &str, out_dir: &Path) -> Result<PathBuf> {
    let name = dir.rsplit('/').next().unwrap_or(dir);
    let out = out_dir.join(format!("{name}.yaml"));
    let rendered = Cmd::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(root)
        .probe();
    let yaml = match rendered {
        Some(probe) if probe.status.success() => probe.stdout,
        Some(probe) => bail!("kubectl kustomize {dir} failed: {}", probe.stderr.trim()),
        None => {
            println!(
                "warning: no kubectl here, so no kustomize: checking {BASE}'s files as they \
                 are; {dir}'s patches are not applied"
            );
            base_files_joined(root)?
        }
    };
    fs::write(&out, yaml).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

fn base_files_joined(root: &Path) -> Result<String> {
    let mut joined = String::new();
    let dir = root.join(BASE);
    let mut files: Vec<_> = fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "yaml")
                && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    for file in files {
        joined.push_str("---\n");
        joined.push_str(&fs::read_to_string(&file)?);
    }
    Ok(joined)
}

fn validate(root: &Path, file: &Path) -> Result<()> {
    // --strict rejects unknown fields. Kinds without a bundled schema (the Prometheus
    // Operator's ServiceMonitor) only warn; check_base checks that one by hand.
    Cmd::new(crate::deploy_tools::venv(root).join("bin/kubernetes-validate"))
        .args(["--strict", "--quiet", "--kubernetes-version", "1.30.0"])
        .arg(file)
        .run()
}

/// Every document of a YAML stream, through the validator venv's PyYAML.
fn to_json(root: &Path, file: &Path) -> Result<Vec<Value>> {
    let script = "import json, sys, yaml\n\
                  docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]\n\
                  print(json.dumps(docs))";
    let json = Cmd::new(crate::deploy_tools::venv(root).join("bin/python"))
        .args(["-c", script])
        .arg(file)
        .probe_ok()
        .with_context(|| format!("reading {} as YAML", file.display()))?;
    let docs: Vec<Value> = serde_json::from_str(&json)?;
    Ok(docs)
}

/// The flags and environment variables `gunicorn-observer --help` lists.
#[derive(Debug, Default, PartialEq)]
struct Flags {
    flags: BTreeSet<String>,
    env: BTreeSet<String>,
}

impl Flags {
    fn from_help(help: &str) -> Flags {
        let mut flags = Flags::default();
        for line in help.lines() {
            let trimmed = line.trim_start();
            let option = trimmed
                .strip_prefix("-h, ")
                .or_else(|| trimmed.strip_prefix("-V, "))
                .unwrap_or(trimmed);
            if let Some(name) = option.strip_prefix("--") {
                let name = name.split([' ', '=']).next().unwrap_or_default();
                flags.flags.insert(format!("--{name}"));
            }
            for (at, _) in line.match_indices("[env: ") {
                let rest = &line[at + 6..];
                if let Some(end) = rest.find('=') {
                    flags.env.insert(rest[..end].to_owned());
                }
            }
        }
        flags
    }
}

/// `CAP_X` of every `| `CAP_X` |` row, as `X` (how Kubernetes spells them).
fn documented_capabilities(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `CAP_"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|doc| doc["kind"] == kind)
}

fn observer_container(docs: &[Value]) -> Option<&Value> {
    find(docs, "DaemonSet")?["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == OBSERVER_CONTAINER)
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Every disagreement between the base's objects, the binary and the docs.
fn check_base(docs: &[Value], flags: &Flags, documented: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(daemonset) = find(docs, "DaemonSet") else {
        return vec!["no DaemonSet".to_owned()];
    };
    let pod = &daemonset["spec"]["template"];
    if pod["spec"]["hostPID"] != Value::Bool(true) {
        problems.push("the DaemonSet does not set hostPID: true".to_owned());
    }
    let Some(container) = observer_container(docs) else {
        problems.push(format!("no container named {OBSERVER_CONTAINER}"));
        return problems;
    };

    let mut listen_port = None;
    for arg in strings(&container["args"]) {
        let flag = arg.split('=').next().unwrap_or(arg);
        if !flags.flags.contains(flag) {
            problems.push(format!("arg {arg:?}: the binary has no {flag} flag"));
        }
        if flag == "--listen" {
            listen_port = arg.rsplit(':').next().and_then(|p| p.parse::<u64>().ok());
        }
    }
    for env in container["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().unwrap_or_default();
        if name.starts_with("GUNICORN_OBSERVER_") && !flags.env.contains(name) {
            problems.push(format!("env {name}: the binary reads no such variable"));
        }
    }

    let security = &container["securityContext"];
    if security["readOnlyRootFilesystem"] != Value::Bool(true) {
        problems.push("the root filesystem is not read-only".to_owned());
    }
    let added: BTreeSet<String> = strings(&security["capabilities"]["add"])
        .into_iter()
        .map(str::to_owned)
        .collect();
    if &added != documented {
        problems.push(format!(
            "capabilities {added:?} differ from the table in {CAPABILITY_DOC}: {documented:?}"
        ));
    }
    if !strings(&security["capabilities"]["drop"]).contains(&"ALL") {
        problems.push("capabilities do not drop ALL first".to_owned());
    }

    let metrics_port = container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "metrics")
        .and_then(|p| p["containerPort"].as_u64());
    if metrics_port.is_none() || metrics_port != listen_port {
        problems.push(format!(
            "containerPort `metrics` {metrics_port:?} is not the --listen port {listen_port:?}"
        ));
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        if container[probe]["httpGet"]["path"] != path {
            problems.push(format!("{probe} does not GET {path}"));
        }
    }
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for needed in ["/sys/kernel/tracing", "/sys/kernel/btf"] {
        if !mounts.contains(&needed) {
            problems.push(format!("{needed} is not mounted"));
        }
    }

    let pod_labels = &pod["metadata"]["labels"];
    let Some(service) = find(docs, "Service") else {
        problems.push("no Service".to_owned());
        return problems;
    };
    if !subset(&service["spec"]["selector"], pod_labels) {
        problems.push("the Service's selector does not select the DaemonSet's pods".to_owned());
    }
    let service_ports: Vec<&str> = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    match find(docs, "ServiceMonitor") {
        None => problems.push("no ServiceMonitor".to_owned()),
        Some(monitor) => {
            if !subset(
                &monitor["spec"]["selector"]["matchLabels"],
                &service["metadata"]["labels"],
            ) {
                problems.push("the ServiceMonitor does not select the Service".to_owned());
            }
            for endpoint in monitor["spec"]["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let port = endpoint["port"].as_str().unwrap_or_default();
                if !service_ports.contains(&port) {
                    problems.push(format!(
                        "ServiceMonitor port {port:?} is not a Service port"
                    ));
                }
            }
        }
    }
    problems
}

/// The TLS overlay's own promises: the web config file lies in a mounted Secret, the probes
/// speak HTTPS, and the ServiceMonitor scrapes with TLS and basic auth.
fn check_tls(docs: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(container) = observer_container(docs) else {
        return vec![format!("no container named {OBSERVER_CONTAINER}")];
    };
    let config = strings(&container["args"])
        .into_iter()
        .find_map(|arg| arg.strip_prefix("--web.config.file="));
    let Some(config) = config else {
        return vec!["no --web.config.file argument".to_owned()];
    };
    let volumes = &find(docs, "DaemonSet").map(|d| &d["spec"]["template"]["spec"]["volumes"]);
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|p| config.starts_with(&format!("{p}/")))
        });
    let secret_volume = mount.is_some_and(|m| {
        volumes
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|v| v["name"] == m["name"] && v["secret"]["secretName"].is_string())
    });
    if !secret_volume {
        problems.push(format!("{config} is not in a mounted Secret"));
    }
    for probe in ["livenessProbe", "readinessProbe"] {
        if container[probe]["httpGet"]["scheme"] != "HTTPS" {
            problems.push(format!("{probe} does not use HTTPS"));
        }
    }
    let endpoint = find(docs, "ServiceMonitor").map(|m| &m["spec"]["endpoints"][0]);
    match endpoint {
        Some(e)
            if e["scheme"] == "https"
                && e["tlsConfig"].is_object()
                && e["basicAuth"].is_object() => {}
        _ => problems.push(
            "the ServiceMonitor does not scrape with https, tlsConfig and basicAuth".to_owned(),
        ),
    }
    problems
}

/// Whether every key of the object `small` has the same value in `big` (and `small` has
/// at least one key: an empty selector selects everything, never what was meant).
fn subset(small: &Value, big: &Value) -> bool {
    small
        .as_object()
        .is_some_and(|small| !small.is_empty() && small.iter().all(|(k, v)| &big[k] == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "Usage: gunicorn-observer [OPTIONS]\n\nOptions:\n      --listen <LISTEN>\n          Address [env: GUNICORN_OBSERVER_LISTEN=] [default: 0.0.0.0:9464]\n      --kube-pods-url <KUBE_PODS_URL>\n          URL [env: GUNICORN_OBSERVER_KUBE_PODS_URL=]\n  -h, --help\n          Print help\n";

    fn flags() -> Flags {
        Flags::from_help(HELP)
    }

    #[test]
    fn help_lists_flags_and_env() {
        let set = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            flags(),
            Flags {
                flags: set(&["--help", "--kube-pods-url", "--listen"]),
                env: set(&[
                    "GUNICORN_OBSERVER_KUBE_PODS_URL",
                    "GUNICORN_OBSERVER_LISTEN"
                ]),
            }
        );
    }

    #[test]
    fn capability_rows_of_the_table() {
        let doc = "| capability | why |\n|---|---|\n| `CAP_BPF` | load |\n| `CAP_PERFMON` | attach |\ntext `CAP_SYS_ADMIN`\n";
        let caps: Vec<String> = documented_capabilities(doc).into_iter().collect();
        assert_eq!(caps, ["BPF", "PERFMON"]);
    }

    fn docs(args: &[&str], caps: &[&str]) -> Vec<Value> {
        let labels = serde_json::json!({"app.kubernetes.io/name": "gunicorn-observer"});
        vec![
            serde_json::json!({"kind": "DaemonSet", "spec": {"template": {
                "metadata": {"labels": labels},
                "spec": {"hostPID": true, "containers": [{
                    "name": "observer", "args": args,
                    "env": [{"name": "GUNICORN_OBSERVER_KUBE_PODS_URL", "value": "http://x/pods"}],
                    "ports": [{"name": "metrics", "containerPort": 9464}],
                    "livenessProbe": {"httpGet": {"path": "/healthz"}},
                    "readinessProbe": {"httpGet": {"path": "/readyz"}},
                    "volumeMounts": [{"mountPath": "/sys/kernel/tracing"}, {"mountPath": "/sys/kernel/btf"}],
                    "securityContext": {"readOnlyRootFilesystem": true,
                                        "capabilities": {"drop": ["ALL"], "add": caps}}}]}}}}),
            serde_json::json!({"kind": "Service", "metadata": {"labels": labels},
                "spec": {"selector": labels, "ports": [{"name": "metrics"}]}}),
            serde_json::json!({"kind": "ServiceMonitor", "spec": {
                "selector": {"matchLabels": labels}, "endpoints": [{"port": "metrics"}]}}),
        ]
    }

    #[test]
    fn the_tls_overlay_promises_are_checked() {
        // The base as it is: no web config at all.
        let base = docs(&["--listen=0.0.0.0:9464"], &["BPF"]);
        assert_eq!(check_tls(&base), vec!["no --web.config.file argument"]);

        // The config path is mounted from a Secret, but probes and monitor stay plain.
        let mut plain = docs(&["--web.config.file=/etc/web/web.yml"], &["BPF"]);
        let pod = &mut plain[0]["spec"]["template"]["spec"];
        pod["volumes"] = serde_json::json!([{"name": "w", "secret": {"secretName": "s"}}]);
        pod["containers"][0]["volumeMounts"] =
            serde_json::json!([{"name": "w", "mountPath": "/etc/web"}]);
        assert_eq!(
            check_tls(&plain),
            vec![
                "livenessProbe does not use HTTPS",
                "readinessProbe does not use HTTPS",
                "the ServiceMonitor does not scrape with https, tlsConfig and basicAuth",
            ]
        );

        // A mount of another directory does not hold the file.
        let mut elsewhere = plain.clone();
        elsewhere[0]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] =
            "/etc/we".into();
        assert!(
            check_tls(&elsewhere)
                .contains(&"/etc/web/web.yml is not in a mounted Secret".to_owned())
        );
    }

    #[test]
    fn a_consistent_base_has_no_problem() {
        let documented = ["BPF".to_owned(), "PERFMON".to_owned()].into();
        let docs = docs(&["--listen=0.0.0.0:9464"], &["BPF", "PERFMON"]);
        assert_eq!(
            check_base(&docs, &flags(), &documented),
            Vec::<String>::new()
        );
    }

    #[test]
    fn unknown_flags_undocumented_caps_and_port_mismatch_are_named() {
        let documented = ["BPF".to_owned()].into();
        let docs = docs(
            &["--listen=0.0.0.0:9000", "--verbose"],
            &["BPF", "SYS_ADMIN"],
        );
        assert_eq!(
            check_base(&docs, &flags(), &documented),
            [
                r#"arg "--verbose": the binary has no --verbose flag"#,
                r#"capabilities {"BPF", "SYS_ADMIN"} differ from the table in docs/DEPLOY.md: {"BPF"}"#,
                "containerPort `metrics` Some(9464) is not the --listen port Some(9000)",
            ]
        );
    }
}
