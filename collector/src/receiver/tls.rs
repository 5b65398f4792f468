//! TLS for the receivers' listeners, from PEM files re-read while the
//! collector runs.
//!
//! A listener with a `tls` table terminates TLS itself. Its certificate,
//! key and (for mutual TLS) client CA file are read at start: a missing or
//! invalid file stops the start, naming its configuration key. They are
//! then looked at every `reload_interval`; when their content changed and
//! still makes a valid server configuration, new handshakes use it, while
//! connections already open keep theirs. A change that does not load (a
//! key that does not match its certificate, a half-written file) is refused
//! and the previous configuration stays in force, so a botched rotation
//! never takes a listener down.
//!
//! The whole `rustls::ServerConfig` is swapped, rather than the certificate
//! behind a `ResolvesServerCert`, so that a rotated client CA takes effect
//! the same way as a rotated certificate.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use spanway_service_kit::config::ConfigError;
use tokio_rustls::TlsAcceptor;

use crate::receiver::reload::{FileError, Look, Outcome, Reload, WatchedFiles};

/// A receiver's `tls` table. Present means the listener speaks only TLS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate, then any intermediate
    /// certificates clients need to build the chain.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the certificate's private key: PKCS#8, PKCS#1 (RSA) or
    /// SEC1 (EC), unencrypted.
    pub key_file: Option<PathBuf>,
    /// PEM file with the CA certificates that sign client certificates.
    /// When set, a client must present a certificate signed by one of them
    /// (mutual TLS) or its handshake fails; without it none is asked for.
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are looked at for changes. Certificates are
    /// renewed well before they expire (cert-manager: at two thirds of their
    /// life) and a mounted Kubernetes Secret takes up to a minute to change,
    /// so looking more often than every 30 seconds gains nothing, and
    /// reading three small files that often costs nothing.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            reload_interval: Duration::from_secs(30),
        }
    }
}

/// The configuration keys of one listener's `tls` table, for messages and
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsKeys {
    /// `otlp_grpc.tls`, …
    pub table: &'static str,
    /// `otlp_grpc.tls.cert_file`, …
    pub cert_file: &'static str,
    /// `otlp_grpc.tls.key_file`, …
    pub key_file: &'static str,
    /// `otlp_grpc.tls.client_ca_file`, …
    pub client_ca_file: &'static str,
    /// `otlp_grpc.tls.reload_interval`, …
    pub reload_interval: &'static str,
}

/// The [`TlsKeys`] of the section named by a string literal.
macro_rules! tls_keys {
    ($section:literal) => {
        $crate::receiver::tls::TlsKeys {
            table: concat!($section, ".tls"),
            cert_file: concat!($section, ".tls.cert_file"),
            key_file: concat!($section, ".tls.key_file"),
            client_ca_file: concat!($section, ".tls.client_ca_file"),
            reload_interval: concat!($section, ".tls.reload_interval"),
        }
    };
}
pub(crate) use tls_keys;

impl TlsConfig {
    /// Checks the table without reading the files: certificate and key come
    /// together, paths are not empty, the interval is sane.
    pub fn validate(&self, keys: &TlsKeys) -> Result<(), ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    keys.key_file,
                    format!("required when {} is set", keys.cert_file),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    keys.cert_file,
                    format!("required when {} is set", keys.key_file),
                ));
            }
            (None, None) => {
                return Err(ConfigError::invalid(
                    keys.cert_file,
                    format!(
                        "{} is present, so {} and {} are required",
                        keys.table, keys.cert_file, keys.key_file
                    ),
                ));
            }
            (Some(_), Some(_)) => {}
        }
        let paths = [
            (keys.cert_file, self.cert_file.as_ref()),
            (keys.key_file, self.key_file.as_ref()),
            (keys.client_ca_file, self.client_ca_file.as_ref()),
        ];
        for (key, path) in paths {
            if path.is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(ConfigError::invalid(key, "must not be empty"));
            }
        }
        if self.reload_interval < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                keys.reload_interval,
                "must be at least 100ms",
            ));
        }
        Ok(())
    }
}

/// Protocols offered by ALPN to clients of gRPC listeners.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// Protocols offered by ALPN to clients of HTTP listeners.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The TLS settings in force for one listener; the accept loop asks for
/// them at every handshake.
#[derive(Debug)]
pub struct ServerTls {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl ServerTls {
    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    fn replace(&self, config: rustls::ServerConfig) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

/// Re-reads one listener's TLS files.
#[derive(Debug)]
pub(crate) struct TlsReloader {
    keys: TlsKeys,
    files: WatchedFiles,
    alpn: &'static [&'static [u8]],
    tls: Arc<ServerTls>,
}

/// Reads the files of `config` and builds the listener's TLS settings,
/// with the reloader that keeps them current. `config` must have passed
/// [`TlsConfig::validate`].
pub(crate) fn load(
    config: &TlsConfig,
    keys: TlsKeys,
    alpn: &'static [&'static [u8]],
) -> Result<(Arc<ServerTls>, TlsReloader), FileError> {
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Err(FileError::new(
            keys.cert_file,
            &PathBuf::new(),
            "certificate and key files are required",
        ));
    };
    let mut files = vec![
        (keys.cert_file, cert_file.clone()),
        (keys.key_file, key_file.clone()),
    ];
    if let Some(ca) = &config.client_ca_file {
        files.push((keys.client_ca_file, ca.clone()));
    }
    let (watched, contents) = WatchedFiles::open(files.clone())?;
    let server_config = server_config(&files, &contents, alpn)?;
    let tls = Arc::new(ServerTls {
        current: RwLock::new(Arc::new(server_config)),
    });
    let reloader = TlsReloader {
        keys,
        files: watched,
        alpn,
        tls: tls.clone(),
    };
    Ok((tls, reloader))
}

impl Reload for TlsReloader {
    fn key(&self) -> &'static str {
        self.keys.table
    }

    fn check(&mut self) -> Outcome {
        match self.files.look() {
            Look::Unchanged | Look::StillUnreadable => Outcome::Unchanged,
            Look::Unreadable(error) => Outcome::Refused(error),
            Look::Changed(contents) => {
                match server_config(self.files.files(), &contents, self.alpn) {
                    Ok(config) => {
                        self.tls.replace(config);
                        Outcome::Reloaded
                    }
                    Err(error) => Outcome::Refused(error),
                }
            }
        }
    }
}

/// Builds a server configuration from the contents of the certificate, key
/// and optional client CA files (in that order in `files` and `contents`).
fn server_config(
    files: &[(&'static str, PathBuf)],
    contents: &[Vec<u8>],
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, FileError> {
    let error = |i: usize, reason: String| FileError::new(files[i].0, &files[i].1, reason);
    let chain = certificates(&contents[0]).map_err(|reason| error(0, reason))?;
    let key = PrivateKeyDer::from_pem_slice(&contents[1])
        .map_err(|e| error(1, format!("no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| error(0, e.to_string()))?;
    let builder = match contents.get(2) {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(
            client_verifier(ca, provider).map_err(|reason| error(2, reason))?,
        ),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        error(
            1,
            format!("does not go with the certificate in {}: {e}", files[0].0),
        )
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(chain)
}

fn client_verifier(
    pem: &[u8],
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem)? {
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: TlsKeys = tls_keys!("otlp_grpc");

    fn config(cert: Option<&str>, key: Option<&str>) -> TlsConfig {
        TlsConfig {
            cert_file: cert.map(PathBuf::from),
            key_file: key.map(PathBuf::from),
            ..TlsConfig::default()
        }
    }

    #[test]
    fn certificate_and_key_come_together() {
        let err = config(Some("c.pem"), None).validate(&KEYS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration key otlp_grpc.tls.key_file: required when otlp_grpc.tls.cert_file is set"
        );
        let err = config(None, Some("k.pem")).validate(&KEYS).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("configuration key otlp_grpc.tls.cert_file:")
        );
        let err = config(None, None).validate(&KEYS).unwrap_err();
        assert!(err.to_string().contains("otlp_grpc.tls.cert_file"), "{err}");
        let err = config(Some("c.pem"), Some("")).validate(&KEYS).unwrap_err();
        assert!(err.to_string().contains("otlp_grpc.tls.key_file"), "{err}");
        let mut ok = config(Some("c.pem"), Some("k.pem"));
        ok.validate(&KEYS).unwrap();
        ok.reload_interval = Duration::ZERO;
        let err = ok.validate(&KEYS).unwrap_err();
        assert!(
            err.to_string().contains("otlp_grpc.tls.reload_interval"),
            "{err}"
        );
    }

    struct Pki {
        dir: tempfile::TempDir,
        ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    impl Pki {
        fn new() -> Pki {
            let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let key = rcgen::KeyPair::generate().unwrap();
            Pki {
                dir: tempfile::tempdir().unwrap(),
                ca: rcgen::Issuer::new(params, key),
            }
        }

        /// Writes `name.crt` and `name.key`, a leaf signed by the CA.
        fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
            let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.ca).unwrap();
            let (c, k) = (
                self.dir.path().join(format!("{name}.crt")),
                self.dir.path().join(format!("{name}.key")),
            );
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (c, k)
        }
    }

    fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> TlsConfig {
        TlsConfig {
            cert_file: Some(cert.into()),
            key_file: Some(key.into()),
            ..TlsConfig::default()
        }
    }

    #[test]
    fn bad_files_at_start_name_their_key() {
        let pki = Pki::new();
        let (cert, key) = pki.leaf("a");
        let (_, other_key) = pki.leaf("b");
        load(&tls_config(&cert, &key), KEYS, ALPN_GRPC).unwrap();

        let err = load(&tls_config(&key, &key), KEYS, ALPN_GRPC).unwrap_err();
        assert_eq!(err.key, "otlp_grpc.tls.cert_file", "{err}");
        let err = load(&tls_config(&cert, &cert), KEYS, ALPN_GRPC).unwrap_err();
        assert_eq!(err.key, "otlp_grpc.tls.key_file", "{err}");
        let err = load(&tls_config(&cert, &other_key), KEYS, ALPN_GRPC).unwrap_err();
        assert_eq!(err.key, "otlp_grpc.tls.key_file", "{err}");
        assert!(err.reason.contains("does not go with"), "{err}");
        let missing = pki.dir.path().join("missing.crt");
        let err = load(&tls_config(&missing, &key), KEYS, ALPN_GRPC).unwrap_err();
        assert!(err.to_string().starts_with("otlp_grpc.tls.cert_file "));
        let mut with_ca = tls_config(&cert, &key);
        with_ca.client_ca_file = Some(key.clone());
        let err = load(&with_ca, KEYS, ALPN_GRPC).unwrap_err();
        assert_eq!(err.key, "otlp_grpc.tls.client_ca_file", "{err}");
    }

    #[test]
    fn a_bad_change_keeps_the_old_settings_and_a_good_one_replaces_them() {
        let pki = Pki::new();
        let (cert, key) = pki.leaf("a");
        let (tls, mut reloader) = load(&tls_config(&cert, &key), KEYS, ALPN_HTTP).unwrap();
        let before = tls.acceptor().config().clone();
        assert_eq!(
            before.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(matches!(reloader.check(), Outcome::Unchanged));

        // A new certificate whose key has not been written yet.
        let (new_cert, new_key) = pki.leaf("b");
        std::fs::copy(&new_cert, &cert).unwrap();
        match reloader.check() {
            Outcome::Refused(error) => assert_eq!(error.key, "otlp_grpc.tls.key_file"),
            other => panic!("{other:?}"),
        }
        assert!(Arc::ptr_eq(&before, tls.acceptor().config()));
        assert!(
            matches!(reloader.check(), Outcome::Unchanged),
            "reported once"
        );

        std::fs::copy(&new_key, &key).unwrap();
        assert!(matches!(reloader.check(), Outcome::Reloaded));
        assert!(!Arc::ptr_eq(&before, tls.acceptor().config()));
    }
}
