//! `--web.config.file` against real clients: curl and a real Prometheus talk TLS and basic
//! auth to a real observer on loopback, with a CA and certificates made by openssl here.

use std::{fs, net::SocketAddr, path::Path, time::Duration};

use observer_tests::{
    Observer,
    certs::{Ca, CurlResult, Usage, curl},
    process,
    prometheus::Prometheus,
    tempdir::TempDir,
};

const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";

/// Writes `yaml` as the web config and starts an observer with it, up once `probe` holds.
fn observer_with(dir: &Path, yaml: &str, probe: impl FnMut(SocketAddr) -> bool) -> Observer {
    let config = dir.join("web.yml");
    fs::write(&config, yaml).unwrap();
    Observer::start_probed(&[], &["--web.config.file", config.to_str().unwrap()], probe)
}

fn cacert(ca: &Ca) -> [&str; 2] {
    ["--cacert", ca.cert.to_str().unwrap()]
}

/// The value of one unlabelled or labelled series line in a scrape, e.g.
/// `gunicorn_observer_web_auth_total{result="cached"}`.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn replace_atomically(from: &Path, to: &Path) {
    let staged = to.with_extension("staged");
    fs::copy(from, &staged).unwrap();
    fs::rename(&staged, to).unwrap();
}

#[test]
fn tls_basic_auth_headers_and_rotation_with_curl() {
    let dir = TempDir::new("web-tls");
    let ca = Ca::new(dir.path(), "ca-one");
    let leaf = ca.issue(dir.path(), "observer-one", Usage::Server);
    // The observer reads fixed paths; rotation replaces the files behind them.
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    fs::copy(&leaf.cert, &cert).unwrap();
    fs::copy(&leaf.key, &key).unwrap();
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    let yaml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n\
         http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n\
         basic_auth_users:\n  {USER}: '{hash}'\n",
        cert.display(),
        key.display()
    );
    let ca_path = ca.cert.clone();
    let observer = observer_with(dir.path(), &yaml, |addr| {
        curl(addr, "/healthz", &["--cacert", ca_path.to_str().unwrap()]).status == 200
    });
    let addr = observer.addr();
    let credentials = format!("{USER}:{PASSWORD}");

    // The probes answer without credentials.
    let health = curl(addr, "/healthz", &cacert(&ca));
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, "ok\n"),
        "{health:?}"
    );
    assert!(
        health.headers.contains("X-Content-Type-Options: nosniff"),
        "{health:?}"
    );
    assert_eq!(curl(addr, "/readyz", &cacert(&ca)).status, 200);

    // Without the CA, curl cannot verify the server: exit 60, no HTTP at all.
    let untrusted = curl(addr, "/metrics", &["-u", &credentials]);
    assert_eq!(
        (untrusted.exit, untrusted.status),
        (Some(60), 0),
        "{untrusted:?}"
    );

    // No credentials, then a wrong password: 401 with a challenge.
    for args in [vec![], vec!["-u", "prometheus:wrong"]] {
        let refused = curl(addr, "/metrics", &[&cacert(&ca)[..], &args].concat());
        assert_eq!(refused.status, 401, "{refused:?}");
        assert!(
            refused
                .headers
                .contains("WWW-Authenticate: Basic realm=\"gunicorn-observer\""),
            "{refused:?}"
        );
        assert!(!refused.body.contains("gunicorn_"), "{refused:?}");
    }

    // The right password, three times: one bcrypt run, then the cache.
    let mut last = CurlResult {
        exit: None,
        status: 0,
        headers: String::new(),
        body: String::new(),
        stderr: String::new(),
    };
    for _ in 0..3 {
        last = curl(
            addr,
            "/metrics",
            &[&cacert(&ca)[..], &["-u", &credentials]].concat(),
        );
        assert_eq!(last.status, 200, "{last:?}");
    }
    let scrape = &last.body;
    let auth = |result: &str| {
        sample(
            scrape,
            &format!("gunicorn_observer_web_auth_total{{result=\"{result}\"}}"),
        )
    };
    // The third scrape's own check is counted before its body is rendered.
    assert_eq!(auth("missing"), Some(1.0), "{scrape}");
    assert_eq!(auth("denied"), Some(1.0), "{scrape}");
    assert_eq!(auth("verified"), Some(1.0), "{scrape}");
    assert_eq!(auth("cached"), Some(2.0), "{scrape}");
    // curl without the CA aborted its handshake; that is the one handshake error.
    let tls_errors = |reason: &str| {
        sample(
            scrape,
            &format!("gunicorn_observer_web_tls_errors_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(tls_errors("handshake"), Some(1.0), "{scrape}");
    assert_eq!(tls_errors("reload"), Some(0.0), "{scrape}");

    // Rotation: a certificate from another CA replaces the files; the next handshake uses
    // it, with no restart. The old CA no longer verifies, the new one does.
    let ca_two = Ca::new(dir.path(), "ca-two");
    let rotated = ca_two.issue(dir.path(), "observer-two", Usage::Server);
    replace_atomically(&rotated.key, &key);
    replace_atomically(&rotated.cert, &cert);
    let after = curl(addr, "/healthz", &cacert(&ca_two));
    assert_eq!(after.status, 200, "{after:?}\n{}", observer.stderr());
    let old = curl(addr, "/healthz", &cacert(&ca));
    assert_eq!((old.exit, old.status), (Some(60), 0), "{old:?}");
    assert!(observer.stderr().contains("reloaded the TLS certificate"));

    // A broken file keeps the working certificate, and the failed reload is counted once.
    fs::write(&cert, "not a certificate\n").unwrap();
    for _ in 0..2 {
        assert_eq!(curl(addr, "/healthz", &cacert(&ca_two)).status, 200);
    }
    let scrape = curl(
        addr,
        "/metrics",
        &[&cacert(&ca_two)[..], &["-u", &credentials]].concat(),
    );
    assert_eq!(
        sample(
            &scrape.body,
            "gunicorn_observer_web_tls_errors_total{reason=\"reload\"}"
        ),
        Some(1.0),
        "{scrape:?}"
    );
    observer.stop();
}

#[test]
fn required_client_certificates_refuse_clients_without_one() {
    let dir = TempDir::new("web-mtls");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "observer", Usage::Server);
    let client = ca.issue(dir.path(), "scraper", Usage::Client);
    let stranger_ca = Ca::new(dir.path(), "other-ca");
    let stranger = stranger_ca.issue(dir.path(), "stranger", Usage::Client);
    let yaml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
        server.cert.display(),
        server.key.display(),
        ca.cert.display()
    );
    let with_client = |leaf: &observer_tests::certs::Leaf| {
        vec![
            "--cacert".to_owned(),
            ca.cert.display().to_string(),
            "--cert".to_owned(),
            leaf.cert.display().to_string(),
            "--key".to_owned(),
            leaf.key.display().to_string(),
        ]
    };
    let good: Vec<String> = with_client(&client);
    let good_args: Vec<&str> = good.iter().map(String::as_str).collect();
    let observer = observer_with(dir.path(), &yaml, |addr| {
        curl(addr, "/healthz", &good_args).status == 200
    });
    let addr = observer.addr();

    let ok = curl(addr, "/metrics", &good_args);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.body.contains("gunicorn_observer_build_info"), "{ok:?}");

    // No certificate: TLS 1.3 reports the refusal after the handshake, so curl fails
    // reading (56) rather than connecting (35); either way no HTTP status arrives.
    let bare = curl(addr, "/metrics", &cacert(&ca));
    assert_eq!(bare.status, 0, "{bare:?}");
    assert!(matches!(bare.exit, Some(35 | 56)), "{bare:?}");

    let foreign: Vec<String> = with_client(&stranger);
    let foreign_args: Vec<&str> = foreign.iter().map(String::as_str).collect();
    let refused = curl(addr, "/metrics", &foreign_args);
    assert_eq!(refused.status, 0, "{refused:?}");
    assert!(matches!(refused.exit, Some(35 | 56)), "{refused:?}");
    observer.stop();
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let dir = TempDir::new("web-prom");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "observer", Usage::Server);
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    let yaml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS12\n\
         basic_auth_users:\n  {USER}: '{hash}'\n",
        server.cert.display(),
        server.key.display()
    );
    let ca_path = ca.cert.clone();
    let observer = observer_with(dir.path(), &yaml, |addr| {
        curl(addr, "/healthz", &["--cacert", ca_path.to_str().unwrap()]).status == 200
    });

    let job = |name: &str, auth: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    \
             tls_config:\n      ca_file: {}\n    {auth}\n    \
             static_configs:\n      - targets: ['{}']\n",
            ca.cert.display(),
            observer.addr()
        )
    };
    let good = job(
        "observer-tls",
        &format!("basic_auth:\n      username: {USER}\n      password: '{PASSWORD}'"),
    );
    let bad = job(
        "observer-wrong-password",
        &format!("basic_auth:\n      username: {USER}\n      password: nope"),
    );
    let prometheus = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{good}{bad}"
    ));

    let up = process::wait_for(Duration::from_secs(60), || {
        let good = prometheus.scalar("up{job=\"observer-tls\"}")?;
        let bad = prometheus.scalar("up{job=\"observer-wrong-password\"}")?;
        Some((good, bad))
    });
    assert_eq!(
        up,
        Some(("1".to_owned(), "0".to_owned())),
        "targets: {}\n{}",
        prometheus.targets(),
        prometheus.log()
    );
    // What Prometheus stored came through the authenticated scrape.
    let build_info = prometheus.scalar("gunicorn_observer_build_info{job=\"observer-tls\"}");
    assert_eq!(build_info.as_deref(), Some("1"), "{}", prometheus.log());
    observer.stop();
}
