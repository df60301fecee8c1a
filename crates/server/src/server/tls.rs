//! The serving certificate, reloaded from disk without a restart.
//!
//! We poll the files rather than watch them: a Kubernetes Secret volume
//! swaps a `..data` symlink, which inotify watches on the files miss, while
//! reading the paths always follows the current link. A new pair that does
//! not load (half-written, mismatched key) is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not the PEM it should be.
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: BoxError,
    },
    /// The file holds no certificate (or no CA certificate).
    #[error("{path}: no {what} found")]
    Empty { path: String, what: &'static str },
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(#[source] rustls::Error),
    #[error("TLS configuration: {0}")]
    Config(#[source] BoxError),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use crate::crypto::{install_crypto_provider, provider};

#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The bytes behind `current`, to notice a change cheaply.
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl ReloadingCert {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let (cert_pem, key_pem) = read_pair(cert_path, key_path)?;
        let key = certified_key(cert_path, key_path, &cert_pem, &key_pem)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(key),
            seen: Mutex::new((cert_pem, key_pem)),
        })
    }

    /// Re-reads the files; swaps in the new pair if it changed and loads.
    /// Returns whether a new pair was installed.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = read_pair(&self.cert_path, &self.key_path)?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0 == cert_pem && seen.1 == key_pem {
            return Ok(false);
        }
        let key = certified_key(&self.cert_path, &self.key_path, &cert_pem, &key_pem)?;
        self.current.store(Arc::new(key));
        *seen = (cert_pem, key_pem);
        Ok(true)
    }

    /// Polls for changes until `shutdown`. Never panics; errors keep the old pair.
    pub fn spawn_reloader(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                let this = self.clone();
                match tokio::task::spawn_blocking(move || this.reload_if_changed()).await {
                    Ok(Ok(true)) => {
                        tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => {
                        tracing::error!(%error, "serving certificate reload failed; keeping the current certificate")
                    }
                    Err(error) => {
                        tracing::error!(%error, "serving certificate reload task failed; keeping the current certificate")
                    }
                }
            }
        });
    }

    /// A TLS 1.2+ server config that always serves the current pair. With
    /// `client_ca`, clients may present a certificate, which must then
    /// chain to it; those that present none still connect (the console
    /// and the API authenticate by token) and the webhooks refuse them.
    pub fn server_config(
        self: Arc<Self>,
        client_ca: Option<&Path>,
    ) -> Result<rustls::ServerConfig, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.into()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => builder.with_client_cert_verifier(client_verifier(path)?),
        };
        let mut config = builder.with_cert_resolver(self);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Verifies client certificates against the CA bundle at `path`; a client
/// without one is let through (marked unauthenticated).
fn client_verifier(
    path: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let parse_err = |source: BoxError| TlsError::Parse {
        path: path.display().to_string(),
        source,
    };
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| parse_err(e.into()))?)
            .map_err(|e| parse_err(e.into()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Empty {
            path: path.display().to_string(),
            what: "CA certificate",
        });
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(e.into()))
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    Ok((read(cert_path)?, read(key_path)?))
}

fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let parse_err = |path: &Path, source: rustls_pki_types::pem::Error| TlsError::Parse {
        path: path.display().to_string(),
        source: source.into(),
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_err(cert_path, e))?;
    if chain.is_empty() {
        return Err(TlsError::Empty {
            path: cert_path.display().to_string(),
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| parse_err(key_path, e))?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Pair)?;
    // `from_der` tolerates keys whose match it cannot check; we do not.
    certified.keys_match().map_err(TlsError::Pair)?;
    Ok(certified)
}
