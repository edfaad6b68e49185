//! `--web.config.file`: optional TLS, basic auth, response headers and a rate limit for the
//! metrics endpoint, in the file format Prometheus exporters share.
//!
//! The file is read once at start, and every fault in it stops the start with an error that
//! names the field or file. Certificates, keys and the client CA are the exception: they are
//! re-checked on each handshake (see [`tls`]), because they rotate.

pub mod auth;
pub mod config;
pub mod rate;
pub mod tls;

use std::path::Path;

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

pub use auth::{BasicAuth, Verdict};
pub use config::{WebConfigError, WebConfigFile};
pub use rate::RateLimit;
pub use tls::Tls;

/// Label values of `gunicorn_observer_web_tls_errors_total`.
pub const TLS_ERROR_REASONS: [&str; 3] = ["handshake", "handshake_timeout", "reload"];

/// What the endpoint enforces; the default is plain HTTP with nothing enforced.
#[derive(Debug, Default)]
pub struct Web {
    pub tls: Option<Tls>,
    pub auth: Option<BasicAuth>,
    pub headers: Vec<(&'static str, String)>,
    pub rate: Option<RateLimit>,
    pub metrics: WebMetrics,
}

impl Web {
    /// Reads and checks the whole file, building the first TLS config from its files.
    pub fn load(path: &Path) -> Result<Web, WebConfigError> {
        let file = WebConfigFile::read(path)?;
        let tls = file.tls_server_config.as_ref().map(Tls::new).transpose()?;
        let auth = match &file.basic_auth_users {
            Some(users) if !users.is_empty() => Some(BasicAuth::new(users)?),
            _ => None,
        };
        let headers = config::response_headers(file.http_server_config.as_ref())?;
        let rate = file
            .rate_limit
            .as_ref()
            .map(RateLimit::new)
            .transpose()?
            .flatten();
        Ok(Web {
            tls,
            auth,
            headers,
            rate,
            metrics: WebMetrics::default(),
        })
    }
}

/// Counters of what the endpoint refused or could not do.
#[derive(Debug, Clone)]
pub struct WebMetrics {
    pub auth: IntCounterVec,
    pub tls_errors: IntCounterVec,
    pub rate_limited: IntCounter,
}

impl Default for WebMetrics {
    fn default() -> Self {
        let vec = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric definition")
        };
        let metrics = WebMetrics {
            auth: vec(
                "gunicorn_observer_web_auth_total",
                "Basic-auth checks on the metrics endpoint, by result.",
                "result",
            ),
            tls_errors: vec(
                "gunicorn_observer_web_tls_errors_total",
                "Failed TLS handshakes and certificate reloads on the metrics endpoint.",
                "reason",
            ),
            rate_limited: IntCounter::new(
                "gunicorn_observer_web_rate_limited_total",
                "Requests to the metrics endpoint refused by rate_limit.",
            )
            .expect("valid metric definition"),
        };
        // Every series exists from the start, so a rate() over them never begins with a gap.
        for result in auth::VERDICT_LABELS {
            metrics.auth.with_label_values(&[result]);
        }
        for reason in TLS_ERROR_REASONS {
            metrics.tls_errors.with_label_values(&[reason]);
        }
        metrics
    }
}

impl WebMetrics {
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.auth.clone()))?;
        registry.register(Box::new(self.tls_errors.clone()))?;
        registry.register(Box::new(self.rate_limited.clone()))
    }
}
