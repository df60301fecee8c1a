//! Passwords at rest: XChaCha20-Poly1305 with a random 24-byte nonce per
//! write, the record name as associated data (a ciphertext copied onto
//! another record does not decrypt), and a 32-byte key kept in a 0600 file.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("encryption key {path}: {message}")]
    Key { path: String, message: String },
    #[error("encryption key must be {KEY_LEN} bytes, base64-encoded")]
    KeyFormat,
    #[error("stored password could not be decrypted (wrong encryption key or corrupted data)")]
    Decrypt,
    #[error("no randomness available: {0}")]
    Random(String),
}

pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    /// From a base64 key (flag or environment variable).
    pub fn from_base64(key: &str) -> Result<Self, CipherError> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| CipherError::KeyFormat)?;
        let aead = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| CipherError::KeyFormat)?;
        Ok(Self { aead })
    }

    /// Loads the key file, creating it (0600, random key) on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, CipherError> {
        let key_err = |message: String| CipherError::Key {
            path: path.display().to_string(),
            message,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                getrandom::fill(&mut key).map_err(|e| CipherError::Random(e.to_string()))?;
                let encoded = STANDARD.encode(key);
                write_private_file(path, encoded.as_bytes()).map_err(|e| key_err(e.to_string()))?;
                tracing::info!(path = %path.display(), "created encryption key for stored passwords");
                Self::from_base64(&encoded)
            }
            Err(e) => Err(key_err(e.to_string())),
        }
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| CipherError::Random(e.to_string()))?;
        let sealed = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Decrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, blob: &[u8], context: &str) -> Result<Vec<u8>, CipherError> {
        if blob.len() < NONCE_LEN {
            return Err(CipherError::Decrypt);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CipherError::Decrypt)?;
        self.aead
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Decrypt)
    }
}

/// Creates `path` readable by its owner only; fails if it already exists so
/// two processes starting at once cannot overwrite each other's secret.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_to_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        let cipher = Cipher::load_or_create(&path).expect("created");
        let sealed = cipher.seal(b"s3cret", "demo").expect("sealed");
        assert!(
            !sealed.windows(6).any(|w| w == b"s3cret"),
            "ciphertext must not contain the plaintext"
        );
        assert_eq!(cipher.open(&sealed, "demo").expect("opens"), b"s3cret");
        assert!(
            cipher.open(&sealed, "other").is_err(),
            "bound to the record name"
        );

        let again = Cipher::load_or_create(&path).expect("reloaded");
        assert_eq!(again.open(&sealed, "demo").expect("same key"), b"s3cret");

        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(Cipher::from_base64("short").is_err());
        assert!(Cipher::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(Cipher::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
    }
}
