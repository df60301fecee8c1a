//! The one TLS crypto provider of the process, chosen explicitly: the
//! server's listeners and the registry client both take it from here.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider we use everywhere.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs our provider as the process default (needed by libraries that
/// build their own rustls configs). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
