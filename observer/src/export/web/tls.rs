//! TLS for the metrics endpoint: `tls_server_config` turned into a rustls server config, and
//! rebuilt when the certificate, key or client CA files change, so a rotated certificate
//! (cert-manager renewing a Secret, say) is served without a restart.
//!
//! The files are checked with one `stat` each per handshake, not re-read: a scrape every few
//! seconds costs three syscalls. A rebuild that fails (a half-written file, a key that does
//! not match yet) keeps the previous config, logs, and counts `reason="reload"` in
//! `gunicorn_observer_web_tls_errors_total`; it is retried when the files change again.

use std::{
    os::unix::fs::MetadataExt as _,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use rustls::{
    CipherSuite, NamedGroup, RootCertStore, ServerConfig, SupportedProtocolVersion,
    crypto::CryptoProvider, server::WebPkiClientVerifier, version,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tracing::{info, warn};

use super::config::{TlsServerConfig, WebConfigError};

/// Device, inode, size and mtime (seconds, nanoseconds) of a file; `None` if unreadable.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

/// Where one PEM item comes from: a file (re-checked on every handshake) or the config itself.
#[derive(Debug, Clone)]
enum Pem {
    File { field: &'static str, path: PathBuf },
    Inline { field: &'static str, text: String },
}

impl Pem {
    fn pick(
        field: &'static str,
        inline_field: &'static str,
        path: Option<&PathBuf>,
        inline: Option<&String>,
    ) -> Result<Option<Pem>, WebConfigError> {
        match (path, inline) {
            (Some(_), Some(_)) => Err(WebConfigError::Invalid {
                field: inline_field.to_owned(),
                reason: "set either the inline value or the file, not both",
            }),
            (Some(path), None) => Ok(Some(Pem::File {
                field,
                path: path.clone(),
            })),
            (None, Some(text)) => Ok(Some(Pem::Inline {
                field: inline_field,
                text: text.clone(),
            })),
            (None, None) => Ok(None),
        }
    }

    fn field(&self) -> &'static str {
        match self {
            Pem::File { field, .. } | Pem::Inline { field, .. } => field,
        }
    }

    fn origin(&self) -> String {
        match self {
            Pem::File { path, .. } => path.display().to_string(),
            Pem::Inline { .. } => "the inline value".to_owned(),
        }
    }

    fn bytes(&self) -> Result<Vec<u8>, WebConfigError> {
        match self {
            Pem::File { field, path } => {
                std::fs::read(path).map_err(|source| WebConfigError::ReadFile {
                    field,
                    path: path.clone(),
                    source,
                })
            }
            Pem::Inline { text, .. } => Ok(text.as_bytes().to_vec()),
        }
    }

    /// What identifies this version of a file: device, inode, size and mtime. Kubernetes
    /// swaps a Secret's files by renaming a symlinked directory, which changes the inode.
    fn stamp(&self) -> Stamp {
        let Pem::File { path, .. } = self else {
            return Some((0, 0, 0, 0, 0));
        };
        let meta = std::fs::metadata(path).ok()?;
        Some((
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
        ))
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
        let bytes = self.bytes()?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| WebConfigError::Pem {
                field: self.field(),
                origin: self.origin(),
                source,
            })?;
        if certs.is_empty() {
            return Err(WebConfigError::NoPem {
                field: self.field(),
                origin: self.origin(),
                what: "certificate",
            });
        }
        Ok(certs)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, WebConfigError> {
        let bytes = self.bytes()?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| match source {
            rustls_pki_types::pem::Error::NoItemsFound => WebConfigError::NoPem {
                field: self.field(),
                origin: self.origin(),
                what: "private key",
            },
            source => WebConfigError::Pem {
                field: self.field(),
                origin: self.origin(),
                source,
            },
        })
    }
}

/// `client_auth_type`. The toolkit's `RequestClientCert` and `RequireAnyClientCert` accept
/// certificates nobody verified, which authenticates nothing; they are refused at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    Require,
}

/// Everything of `tls_server_config` except the PEM items.
#[derive(Debug)]
struct Policy {
    provider: Arc<CryptoProvider>,
    versions: Vec<&'static SupportedProtocolVersion>,
    client_auth: ClientAuth,
    ignore_client_order: bool,
}

/// The TLS side of the endpoint: the current rustls config and where it came from.
#[derive(Debug)]
pub struct Tls {
    policy: Policy,
    cert: Pem,
    key: Pem,
    client_ca: Option<Pem>,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamps: Vec<Stamp>,
    config: Arc<ServerConfig>,
}

/// A rebuild after the files changed failed; the previous config stays in use.
#[derive(Debug)]
pub struct ReloadFailed(pub WebConfigError);

impl Tls {
    /// Checks `tls_server_config` and builds the first rustls config; any fault is an error.
    pub fn new(config: &TlsServerConfig) -> Result<Tls, WebConfigError> {
        let cert = Pem::pick(
            "tls_server_config.cert_file",
            "tls_server_config.cert",
            config.cert_file.as_ref(),
            config.cert.as_ref(),
        )?
        .ok_or_else(|| missing("tls_server_config.cert_file"))?;
        let key = Pem::pick(
            "tls_server_config.key_file",
            "tls_server_config.key",
            config.key_file.as_ref(),
            config.key.as_ref(),
        )?
        .ok_or_else(|| missing("tls_server_config.key_file"))?;
        let client_ca = Pem::pick(
            "tls_server_config.client_ca_file",
            "tls_server_config.client_ca",
            config.client_ca_file.as_ref(),
            config.client_ca.as_ref(),
        )?;
        let policy = policy(config, client_ca.is_some())?;

        let mut tls = Tls {
            policy,
            cert,
            key,
            client_ca,
            current: Mutex::new(Loaded {
                stamps: Vec::new(),
                config: Arc::new(placeholder()),
            }),
        };
        let stamps = tls.stamps();
        let config = tls.build()?;
        *tls.current.get_mut().expect("not shared yet") = Loaded { stamps, config };
        Ok(tls)
    }

    /// The config for the next handshake, rebuilt first if a file changed since the last one.
    pub fn config(&self) -> (Arc<ServerConfig>, Option<ReloadFailed>) {
        let stamps = self.stamps();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.stamps == stamps {
            return (Arc::clone(&current.config), None);
        }
        // Remember the stamps even on failure, so a broken file is reported once per change
        // rather than on every handshake.
        current.stamps = stamps;
        match self.build() {
            Ok(config) => {
                info!(cert = %self.cert.origin(), "reloaded the TLS certificate");
                current.config = config;
                (Arc::clone(&current.config), None)
            }
            Err(err) => {
                warn!(error = %err, "TLS files changed but cannot be used; keeping the previous ones");
                (Arc::clone(&current.config), Some(ReloadFailed(err)))
            }
        }
    }

    fn stamps(&self) -> Vec<Stamp> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(Pem::stamp)
            .collect()
    }

    fn build(&self) -> Result<Arc<ServerConfig>, WebConfigError> {
        let policy = &self.policy;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&policy.provider))
            .with_protocol_versions(&policy.versions)
            .map_err(|source| WebConfigError::Tls {
                field: "tls_server_config.min_version",
                source,
            })?;

        let builder = match (&self.client_ca, policy.client_auth) {
            (Some(ca), auth) if auth != ClientAuth::None => {
                let mut roots = RootCertStore::empty();
                for cert in ca.certificates()? {
                    roots.add(cert).map_err(|source| WebConfigError::Tls {
                        field: ca.field(),
                        source,
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&policy.provider),
                );
                let verifier = match auth {
                    ClientAuth::VerifyIfGiven => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                let verifier = verifier
                    .build()
                    .map_err(|source| WebConfigError::Verifier { source })?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };

        let certs = self.cert.certificates()?;
        let key = self.key.private_key()?;
        let mut config =
            builder
                .with_single_cert(certs, key)
                .map_err(|source| WebConfigError::Tls {
                    field: self.key.field(),
                    source,
                })?;
        config.ignore_client_order = policy.ignore_client_order;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn missing(field: &str) -> WebConfigError {
    WebConfigError::Invalid {
        field: field.to_owned(),
        reason: "required when tls_server_config is set",
    }
}

/// Only stands in while [`Tls::new`] builds the real config.
fn placeholder() -> ServerConfig {
    ServerConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()))
}

fn policy(config: &TlsServerConfig, has_ca: bool) -> Result<Policy, WebConfigError> {
    let client_auth = match config.client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::Require,
        Some("RequestClientCert" | "RequireAnyClientCert") => {
            return Err(WebConfigError::Invalid {
                field: "tls_server_config.client_auth_type".to_owned(),
                reason: "accepts client certificates without verifying them; use \
                         RequireAndVerifyClientCert or VerifyClientCertIfGiven",
            });
        }
        Some(other) => {
            return Err(WebConfigError::BadValue {
                field: "tls_server_config.client_auth_type",
                value: other.to_owned(),
                expected: "NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert",
            });
        }
    };
    if client_auth != ClientAuth::None && !has_ca {
        return Err(WebConfigError::Invalid {
            field: "tls_server_config.client_ca_file".to_owned(),
            reason: "required to verify client certificates",
        });
    }
    if client_auth == ClientAuth::None && has_ca {
        return Err(WebConfigError::Invalid {
            field: "tls_server_config.client_auth_type".to_owned(),
            reason: "a client CA is set but client_auth_type does not verify clients",
        });
    }
    if config.client_allowed_sans.is_some() {
        return Err(WebConfigError::Invalid {
            field: "tls_server_config.client_allowed_sans".to_owned(),
            reason: "not supported by this observer; issue client certificates from a \
                     dedicated CA instead",
        });
    }

    let min = tls_version(
        "tls_server_config.min_version",
        config.min_version.as_deref(),
    )?;
    let max = tls_version(
        "tls_server_config.max_version",
        config.max_version.as_deref(),
    )?;
    let (min, max) = (min.unwrap_or(12), max.unwrap_or(13));
    if max < 12 {
        return Err(WebConfigError::Invalid {
            field: "tls_server_config.max_version".to_owned(),
            reason: "rustls speaks TLS 1.2 and 1.3 only",
        });
    }
    if min > max {
        return Err(WebConfigError::Invalid {
            field: "tls_server_config.min_version".to_owned(),
            reason: "is above max_version",
        });
    }
    if min < 12 {
        warn!("tls_server_config.min_version is below TLS12; rustls offers TLS 1.2 and 1.3 only");
    }
    let versions: Vec<_> = [(12, &version::TLS12), (13, &version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, version)| version)
        .collect();

    let mut provider = ring_provider();
    if let Some(names) = &config.cipher_suites {
        provider.cipher_suites = cipher_suites(&provider, names)?;
    }
    if let Some(names) = &config.curve_preferences {
        provider.kx_groups = curves(&provider, names)?;
    }
    Ok(Policy {
        provider: Arc::new(provider),
        versions,
        client_auth,
        ignore_client_order: config.prefer_server_cipher_suites.unwrap_or(true),
    })
}

/// rustls' *ring* provider. rustls 0.23.48 deprecated it because it has no post-quantum key
/// exchange; the alternative, aws-lc-rs, needs cmake and a C toolchain in every build
/// (the image's included), so the endpoint goes without X25519MLKEM768 (README, limitations).
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// `TLS12` → 12. Go's names for the versions, as the toolkit takes them.
fn tls_version(field: &'static str, name: Option<&str>) -> Result<Option<u8>, WebConfigError> {
    let Some(name) = name else { return Ok(None) };
    match name {
        "TLS10" => Ok(Some(10)),
        "TLS11" => Ok(Some(11)),
        "TLS12" => Ok(Some(12)),
        "TLS13" => Ok(Some(13)),
        other => Err(WebConfigError::BadValue {
            field,
            value: other.to_owned(),
            expected: "TLS10, TLS11, TLS12, TLS13",
        }),
    }
}

/// The TLS 1.2 suites named, in the config's order; Go's `cipher_suites` never touches TLS
/// 1.3, so all of its suites stay, first.
fn cipher_suites(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<rustls::SupportedCipherSuite>, WebConfigError> {
    let mut chosen: Vec<_> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &version::TLS13)
        .copied()
        .collect();
    for name in names {
        // Go also spells the ChaCha suites without the `_SHA256` tail.
        let wanted = match name.as_str() {
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            }
            other => other,
        };
        let suite = provider
            .cipher_suites
            .iter()
            .find(|s| s.version() == &version::TLS12 && suite_name(s.suite()) == Some(wanted))
            .ok_or_else(|| WebConfigError::BadValue {
                field: "tls_server_config.cipher_suites",
                value: name.clone(),
                expected: "the ECDHE AES-GCM and ChaCha20-Poly1305 suites rustls offers",
            })?;
        chosen.push(*suite);
    }
    Ok(chosen)
}

fn suite_name(suite: CipherSuite) -> Option<&'static str> {
    suite.as_str()
}

fn curves(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, WebConfigError> {
    names
        .iter()
        .map(|name| {
            let group = match name.as_str() {
                "X25519" => Some(NamedGroup::X25519),
                "CurveP256" => Some(NamedGroup::secp256r1),
                "CurveP384" => Some(NamedGroup::secp384r1),
                _ => None,
            };
            group
                .and_then(|g| provider.kx_groups.iter().find(|k| k.name() == g).copied())
                .ok_or_else(|| WebConfigError::BadValue {
                    field: "tls_server_config.curve_preferences",
                    value: name.clone(),
                    expected: "X25519, CurveP256, CurveP384",
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(yaml: &str) -> TlsServerConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn policy_maps_versions_suites_and_curves() {
        let p = policy(
            &tls("min_version: TLS13\ncurve_preferences: [CurveP256, X25519]\n"),
            false,
        )
        .unwrap();
        assert_eq!(p.versions, vec![&version::TLS13]);
        let groups: Vec<_> = p.provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, vec![NamedGroup::secp256r1, NamedGroup::X25519]);
        assert!(p.ignore_client_order);

        let p = policy(
            &tls("max_version: TLS12\ncipher_suites: [TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305]\n"),
            false,
        )
        .unwrap();
        assert_eq!(p.versions, vec![&version::TLS12]);
        let tls12: Vec<_> = p
            .provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &version::TLS12)
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            tls12,
            vec![CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256]
        );
    }

    #[test]
    fn policy_refuses_what_it_cannot_honour() {
        let err = |yaml: &str, ca: bool| policy(&tls(yaml), ca).unwrap_err().to_string();
        assert_eq!(
            err("client_auth_type: Sometimes\n", true),
            "tls_server_config.client_auth_type: \"Sometimes\" is not one of NoClientCert, \
             VerifyClientCertIfGiven, RequireAndVerifyClientCert"
        );
        assert!(
            err("client_auth_type: RequireAnyClientCert\n", true).contains("without verifying")
        );
        assert_eq!(
            err("client_auth_type: RequireAndVerifyClientCert\n", false),
            "tls_server_config.client_ca_file: required to verify client certificates"
        );
        assert!(err("max_version: TLS11\n", false).contains("max_version"));
        assert!(err("min_version: TLS13\nmax_version: TLS12\n", false).contains("min_version"));
        assert!(err("min_version: SSL3\n", false).contains("\"SSL3\""));
        assert!(err("cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", false).contains("RC4"));
        assert!(err("curve_preferences: [CurveP521]\n", false).contains("CurveP521"));
    }

    #[test]
    fn missing_and_duplicate_sources_are_named() {
        let err = Tls::new(&tls("key_file: /k.pem\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tls_server_config.cert_file: required when tls_server_config is set"
        );
        let err = Tls::new(&tls("cert_file: /c\ncert: x\nkey_file: /k\n")).unwrap_err();
        assert!(
            err.to_string().starts_with("tls_server_config.cert:"),
            "{err}"
        );
        let err = Tls::new(&tls("cert_file: /nonexistent/c.pem\nkey_file: /k\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tls_server_config.cert_file: cannot read /nonexistent/c.pem"
        );
        let err = Tls::new(&tls("cert: hello\nkey: hello\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tls_server_config.cert: the inline value holds no PEM certificate"
        );
    }
}
