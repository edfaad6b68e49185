//! A real Prometheus on 127.0.0.1 for end-to-end tests: started on the config a test
//! writes, asked through its HTTP API, and stopped (by its pid) when dropped.

use std::{
    collections::BTreeSet,
    fs,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{Addr, gunicorn::free_port, http, process, tempdir::TempDir};

pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` as its whole `prometheus.yml` and waits until it says
    /// it is ready.
    pub fn start(config: &str) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config_path = dir.path().join("prometheus.yml");
        fs::write(&config_path, config).expect("writing prometheus.yml");
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("prometheus.log");
        let child = Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("prometheus.log"))
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let prometheus = Prometheus { child, addr, dir };
        let ready = process::wait_for(Duration::from_secs(30), || {
            http::get(&Addr::Tcp(addr), "/-/ready")
                .ok()
                .filter(|r| r.status == 200)
        });
        assert!(
            ready.is_some(),
            "prometheus not ready:\n{}",
            prometheus.log()
        );
        prometheus
    }

    /// What Prometheus wrote to stdout and stderr, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The `data` of a successful API answer; panics on anything else.
    pub fn api(&self, path: &str) -> Value {
        let response = http::get(&Addr::Tcp(self.addr), path)
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let body: Value = serde_json::from_str(&response.text())
            .unwrap_or_else(|err| panic!("GET {path}: {err}: {}", response.text()));
        assert_eq!(body["status"], "success", "GET {path}: {body}");
        body["data"].clone()
    }

    /// The instant vector of `query`, evaluated now.
    pub fn query(&self, query: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(query)));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of the one series `query` returns; `None` while it returns none or several.
    pub fn scalar(&self, query: &str) -> Option<String> {
        match self.query(query).as_slice() {
            [one] => one["value"][1].as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// Label names on any series of `metric`.
    pub fn labels_of(&self, metric: &str) -> BTreeSet<String> {
        let data = self.api(&format!("/api/v1/labels?match[]={}", encode(metric)));
        data.as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The scrape targets and their last errors, for failure messages.
    pub fn targets(&self) -> String {
        http::get(&Addr::Tcp(self.addr), "/api/v1/targets")
            .map(|r| r.text())
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = process::terminate(&mut self.child, Duration::from_secs(10));
    }
}

fn prometheus_bin() -> PathBuf {
    let path = PathBuf::from("/usr/bin/prometheus");
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask bootstrap` installs Debian's prometheus package",
        path.display()
    );
    path
}

/// Percent-encodes a query parameter.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
