//! JSON written straight into a byte buffer, without building a tree:
//! the review's answer and its patch are a fixed shape around a few
//! strings, so only the strings need an encoder. Strings go through
//! serde_json's own escaping, so the bytes are exactly what serializing a
//! tree of the same values gives.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A JSON text being written. A failed write (which neither a `Vec` nor
/// the values written here can cause, but the encoders' types allow) is
/// kept and reported once, by [`JsonOut::finish`].
pub(super) struct JsonOut {
    buf: Vec<u8>,
    error: Option<serde_json::Error>,
}

impl JsonOut {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
            error: None,
        }
    }

    /// JSON syntax or text known to need no escaping, as is.
    pub(super) fn raw(&mut self, json: &str) {
        self.buf.extend_from_slice(json.as_bytes());
    }

    /// A JSON string holding `text`, escaped by serde_json.
    pub(super) fn string(&mut self, text: &str) {
        if self.error.is_none()
            && let Err(error) = serde_json::to_writer(&mut self.buf, text)
        {
            self.error = Some(error);
        }
    }

    /// A JSON string holding the standard base64 of `bytes` (how Go's
    /// `[]byte` is written in JSON). Its alphabet needs no escaping.
    pub(super) fn base64_string(&mut self, bytes: &[u8]) {
        self.raw("\"");
        // Encoded in place, in one call: the whole-input encoder is several
        // times faster than feeding a streaming one.
        let start = self.buf.len();
        self.buf.resize(
            start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
            0,
        );
        if let Err(error) = STANDARD.encode_slice(bytes, &mut self.buf[start..])
            && self.error.is_none()
        {
            self.error = Some(serde_json::Error::io(std::io::Error::other(error)));
        }
        self.raw("\"");
    }

    /// The text written, or the first failure.
    pub(super) fn finish(self) -> Result<Vec<u8>, serde_json::Error> {
        match self.error {
            None => Ok(self.buf),
            Some(error) => Err(error),
        }
    }
}
