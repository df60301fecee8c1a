//! Text that came from a client or a remote server, shortened before it is
//! echoed back in an error or written to a log line.
//!
//! Anyone who can send a request chooses how long its strings are: a 3 MB
//! `request.kind` must not come back as a 3 MB answer and a 3 MB log line.
//! Values are cut at a character boundary and say how much was left out,
//! so the reader still sees which value was meant.

use std::borrow::Cow;
use std::fmt;

/// Characters of one echoed value: enough to recognise an image, a name or
/// a field, far short of anything that costs memory.
pub const VALUE_CHARS: usize = 120;
/// Characters of one whole error message (which may quote several values).
pub const MESSAGE_CHARS: usize = 2048;

/// `text`, or its first `max_chars` characters and how many bytes were cut.
pub fn shorten(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!(
            "{}… ({} more bytes)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

/// A value to quote in a message: `{:?}` prints it quoted and escaped like
/// a `&str`, `{}` plain, both at most [`VALUE_CHARS`] characters.
#[derive(Clone, Copy)]
pub struct Excerpt<'a>(pub &'a str);

/// Wraps a value for quoting; see [`Excerpt`].
pub fn excerpt(text: &str) -> Excerpt<'_> {
    Excerpt(text)
}

impl Excerpt<'_> {
    /// The shortened value, owned, for error types that keep a `String`.
    pub fn to_owned_string(self) -> String {
        shorten(self.0, VALUE_CHARS).into_owned()
    }

    /// The value as `{:?}` quotes it, owned, for error types that print it
    /// later exactly as a message formatted now would.
    pub fn quoted(self) -> String {
        format!("{self:?}")
    }
}

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shorten(self.0, VALUE_CHARS))
    }
}

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(VALUE_CHARS) {
            None => fmt::Debug::fmt(self.0, f),
            Some((cut, _)) => {
                fmt::Debug::fmt(&self.0[..cut], f)?;
                write!(f, "… ({} more bytes)", self.0.len() - cut)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(format!("{:?}", excerpt("a\"b")), r#""a\"b""#);
        assert_eq!(format!("{}", excerpt("team-a")), "team-a");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(10_000);
        let cut = shorten(&long, 5);
        assert_eq!(cut, format!("ééééé… ({} more bytes)", 20_000 - 10));
        let quoted = format!("{:?}", excerpt(&long));
        assert!(quoted.len() < 400, "{}", quoted.len());
        assert!(quoted.starts_with("\"éé") && quoted.ends_with("more bytes)"));
        assert!(excerpt(&long).to_owned_string().chars().count() < VALUE_CHARS + 30);
    }
}
