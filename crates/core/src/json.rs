//! Reading a JSON document into a type, strictly: a field the type does not
//! have is refused, and every error names the field at fault by its path
//! (`tls.caBundle`, `names[1]`), the way the Kubernetes API server's strict
//! field validation does. The API's request bodies and `import` files read
//! records this way, so a typo (`insecureSkipVerfy`) is an error instead of
//! a setting silently left out.
//!
//! The field is named from the deserializer's own account of what it
//! ignored (`serde_ignored`) and where it failed (`serde_path_to_error`),
//! never from the wording of an error message.

use serde::de::DeserializeOwned;
use std::fmt::Write;

/// Why a document did not read as the type asked for.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (a syntax error, an unexpected end).
    #[error("{0}")]
    Syntax(#[source] serde_json::Error),
    /// JSON, but a value of the wrong shape: a wrong type, a missing field.
    #[error("{}{source}", at(.field))]
    Data {
        /// Where, as `a.b[2].c`; `None` at the top of the document.
        field: Option<String>,
        /// What serde found there.
        #[source]
        source: serde_json::Error,
    },
    /// A field the type does not have.
    #[error("{field}: unknown field")]
    UnknownField {
        /// Its path, as `a.b[2].c`.
        field: String,
    },
}

impl JsonError {
    /// The path of the field at fault, when the error has one.
    pub fn field(&self) -> Option<&str> {
        match self {
            JsonError::Syntax(_) => None,
            JsonError::Data { field, .. } => field.as_deref(),
            JsonError::UnknownField { field } => Some(field),
        }
    }
}

fn at(field: &Option<String>) -> String {
    match field {
        // serde's message names a missing field itself.
        Some(field) => format!("{field}: "),
        None => String::new(),
    }
}

/// Reads `bytes` as a `T`, refusing fields `T` does not have (the first one
/// found, in document order).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut unknown: Option<String> = None;
    let mut track = serde_path_to_error::Track::new();
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let tracked = serde_path_to_error::Deserializer::new(&mut *deserializer, &mut track);
    let value = serde_ignored::deserialize(tracked, |path| {
        unknown.get_or_insert_with(|| field_path(&path));
    });
    // A type error after an unknown field is reported too, but the unknown
    // field is the likelier cause (a misspelt key), so it wins.
    if let Some(field) = unknown {
        return Err(JsonError::UnknownField { field });
    }
    match value {
        Ok(value) => {
            deserializer.end().map_err(JsonError::Syntax)?;
            Ok(value)
        }
        Err(error) if error.is_data() => {
            let path = track.path().to_string();
            Err(JsonError::Data {
                field: (path != ".").then_some(path),
                source: error,
            })
        }
        Err(error) => Err(JsonError::Syntax(error)),
    }
}

/// Like [`from_slice`], from a parsed value.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, JsonError> {
    // Through bytes so both readers share one path and one set of paths; the
    // documents are a record's size.
    let bytes = serde_json::to_vec(&value).map_err(JsonError::Syntax)?;
    from_slice(&bytes)
}

/// `tls.caBundle`, `names[1]`: the way our errors name fields, leaving out
/// the steps serde takes through `Option`s and newtypes.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => {
            let mut out = field_path(parent);
            let _ = write!(out, "[{index}]");
            out
        }
        Path::Map { parent, key } => {
            let mut out = field_path(parent);
            if !out.is_empty() {
                out.push('.');
            }
            // A key is the sender's text, of any length: quoted short.
            out.push_str(&crate::excerpt::excerpt(key).to_owned_string());
            out
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryInput;

    fn read(text: &str) -> Result<RegistryInput, JsonError> {
        from_slice(text.as_bytes())
    }

    /// A misspelt key anywhere in a record is refused by its path, at the
    /// top, in a nested object and in a list, never silently dropped.
    #[test]
    fn unknown_fields_are_refused_by_path() {
        for (document, path) in [
            (r#"{"name": "a", "servr": "r.example"}"#, "servr"),
            (
                r#"{"name": "a", "tls": {"insecureSkipVerfy": true}}"#,
                "tls.insecureSkipVerfy",
            ),
            (
                r#"{"name": "a", "namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "Exists", "value": []}]}}"#,
                "namespaceSelector.matchExpressions[0].value",
            ),
        ] {
            match read(document) {
                Err(JsonError::UnknownField { field }) => assert_eq!(field, path, "{document}"),
                other => panic!("{document}: {other:?}"),
            }
        }
    }

    /// What the record's read-only fields hold is accepted and ignored, so a
    /// client can send back what it read.
    #[test]
    fn read_only_fields_are_accepted() {
        let input = read(
            r#"{"name": "a", "status": {"verified": true, "x": 1}, "hasPassword": true, "version": "7"}"#,
        )
        .expect("read-only fields");
        assert_eq!(input.name.as_deref(), Some("a"));
    }

    /// A value of the wrong type is named by its path; broken JSON is a
    /// syntax error with no field.
    #[test]
    fn wrong_types_and_syntax() {
        let error = read(r#"{"name": "a", "namespaces": ["a", 7]}"#).expect_err("a number");
        assert!(matches!(error, JsonError::Data { .. }), "{error:?}");
        assert_eq!(error.field(), Some("namespaces[1]"));
        assert!(error.to_string().starts_with("namespaces[1]: "), "{error}");

        let error = read(r#"{"name": "a""#).expect_err("cut short");
        assert!(matches!(error, JsonError::Syntax(_)), "{error:?}");
        assert_eq!(error.field(), None);

        let error = read(r#"{"name": "a"} {}"#).expect_err("trailing");
        assert!(matches!(error, JsonError::Syntax(_)), "{error:?}");
    }

    /// A huge key is named short: error answers stay small.
    #[test]
    fn a_huge_key_is_excerpted() {
        let key = "k".repeat(100_000);
        let error = read(&format!(r#"{{"name": "a", "{key}": 1}}"#)).expect_err("unknown");
        assert!(
            error.to_string().len() < 1024,
            "{} bytes",
            error.to_string().len()
        );
    }
}
