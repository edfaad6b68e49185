//! The `--web.config.file` format that Prometheus exporters share (the exporter toolkit's
//! web configuration), parsed strictly: an unknown key is an error naming it, so a typo
//! never silently leaves /metrics open.

use std::{collections::BTreeMap, io, path::PathBuf};

use serde::Deserialize;

/// Why the web config cannot be used. Each variant names the field or the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read the web config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the web config {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{field}: cannot read {path}")]
    ReadFile {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: {origin} holds no PEM {what}")]
    NoPem {
        field: &'static str,
        origin: String,
        what: &'static str,
    },
    #[error("{field}: {origin} is not valid PEM")]
    Pem {
        field: &'static str,
        origin: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{field}: {value:?} is not one of {expected}")]
    BadValue {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: &'static str },
    #[error("basic_auth_users: the password of {user:?} is not a bcrypt hash")]
    BadHash {
        user: String,
        #[source]
        source: bcrypt::BcryptError,
    },
    #[error("{field}: rustls refused it")]
    Tls {
        field: &'static str,
        #[source]
        source: rustls::Error,
    },
    #[error("tls_server_config.client_ca_file: cannot build a client verifier")]
    Verifier {
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// The whole file. Every section is optional; an empty file means plain HTTP, no auth.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    pub tls_server_config: Option<TlsServerConfig>,
    pub http_server_config: Option<HttpServerConfig>,
    pub basic_auth_users: Option<BTreeMap<String, String>>,
    pub rate_limit: Option<RateLimitConfig>,
}

/// `tls_server_config`: key names and meanings follow the exporter toolkit.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub curve_preferences: Option<Vec<String>>,
}

/// `http_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Accepted for compatibility; the endpoint speaks HTTP/1.1 only (README, limitations).
    pub http2: Option<bool>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// `rate_limit`: a token bucket over every request to the endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub interval: Option<String>,
    pub burst: Option<u32>,
}

/// The response headers the toolkit lets a config set, and the values it allows for each
/// (`None`: any value without line breaks).
const HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

impl WebConfigFile {
    /// Reads and parses `path`; an empty file is the same as no file.
    pub fn read(path: &std::path::Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|source| WebConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    pub fn parse(text: &str) -> Result<Self, serde_yaml_ng::Error> {
        // serde_yaml refuses an empty document for a struct; the toolkit takes it as "nothing".
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str(text)
    }
}

/// The configured response headers, checked against what the toolkit allows.
pub fn response_headers(
    config: Option<&HttpServerConfig>,
) -> Result<Vec<(&'static str, String)>, WebConfigError> {
    let Some(headers) = config.and_then(|c| c.headers.as_ref()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let field = format!("http_server_config.headers.{name}");
        let Some((known, allowed)) = HEADERS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
        else {
            return Err(WebConfigError::Invalid {
                field,
                reason: "not a header the web config may set",
            });
        };
        // A line break would let the config inject headers or a body into every response.
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(WebConfigError::Invalid {
                field,
                reason: "the value holds a line break",
            });
        }
        if let Some(allowed) = allowed
            && !allowed.iter().any(|a| a.eq_ignore_ascii_case(value))
        {
            return Err(WebConfigError::Invalid {
                field,
                reason: "the value is not one the toolkit allows for this header",
            });
        }
        // A blank value means "unset" in the toolkit.
        if !value.trim().is_empty() {
            out.push((*known, value.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_full_files_parse() {
        let empty = WebConfigFile::parse("\n").unwrap();
        assert!(empty.tls_server_config.is_none() && empty.basic_auth_users.is_none());

        let full = WebConfigFile::parse(
            "tls_server_config:\n  cert_file: /c.pem\n  key_file: /k.pem\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: /ca.pem\n  \
             min_version: TLS13\n  curve_preferences: [X25519]\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  prom: $2y$04$abc\n",
        )
        .unwrap();
        let tls = full.tls_server_config.unwrap();
        assert_eq!(tls.cert_file, Some(PathBuf::from("/c.pem")));
        assert_eq!(tls.min_version.as_deref(), Some("TLS13"));
        assert_eq!(tls.curve_preferences, Some(vec!["X25519".to_owned()]));
        assert_eq!(full.basic_auth_users.unwrap()["prom"], "$2y$04$abc");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = WebConfigFile::parse("tls_server_config:\n  cert_fil: /c.pem\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `cert_fil`"),
            "{err}"
        );
        let err = WebConfigFile::parse("basic_auth: {}\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `basic_auth`"),
            "{err}"
        );
    }

    #[test]
    fn headers_are_checked() {
        let parse = |yaml: &str| {
            let file = WebConfigFile::parse(yaml).unwrap();
            response_headers(file.http_server_config.as_ref())
        };
        let ok = parse(
            "http_server_config:\n  headers:\n    x-frame-options: DENY\n    \
             Strict-Transport-Security: max-age=60\n    X-XSS-Protection: ''\n",
        )
        .unwrap();
        assert_eq!(
            ok,
            vec![
                ("Strict-Transport-Security", "max-age=60".to_owned()),
                ("X-Frame-Options", "DENY".to_owned()),
            ]
        );

        let err = parse("http_server_config:\n  headers:\n    Set-Cookie: a=b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "http_server_config.headers.Set-Cookie: not a header the web config may set"
        );
        let err = parse("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
        assert!(err.is_err());
        let err = parse("http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\r\\nA: b\"\n");
        assert!(err.unwrap_err().to_string().contains("line break"));
    }
}
