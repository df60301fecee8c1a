//! The `resolve` command's core: multi-document manifests in, the same
//! manifests with the webhook's edits applied out.

use serde::Deserialize;
use serde_json::Value;

use crate::admission::{self, WriteKind};
use crate::cli::OutputFormat;
use crate::index::Index;
use crate::pinning::Pinner;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {doc}: not valid YAML or JSON: {message}")]
    Parse { doc: usize, message: String },
    #[error("{object}: {message}")]
    Denied { object: String, message: String },
    #[error("{object}: applying the patch failed: {message}")]
    Patch { object: String, message: String },
    #[error("encoding output: {0}")]
    Encode(String),
}

/// The resolved manifests, and what the webhook would have warned about.
#[derive(Debug)]
pub struct Resolved {
    pub output: String,
    pub warnings: Vec<String>,
}

/// Resolves every object in `input` (YAML or JSON, any number of documents,
/// `kind: List` included). Objects that name no namespace use `namespace`.
/// Tags are pinned to digests where asked, when a `pinner` is given.
pub async fn resolve_documents(
    input: &str,
    namespace: &str,
    index: &Index,
    output: OutputFormat,
    pinner: Option<&Pinner>,
) -> Result<Resolved, ManifestError> {
    let mut objects = Vec::new();
    for (doc, document) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let value = Value::deserialize(document).map_err(|e| ManifestError::Parse {
            doc: doc + 1,
            message: e.to_string(),
        })?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    let mut warnings = Vec::new();
    for object in &mut objects {
        resolve_object(object, namespace, index, pinner, &mut warnings).await?;
    }
    let output = match output {
        OutputFormat::Yaml => {
            let mut out = String::new();
            for (i, object) in objects.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(
                    &serde_yaml::to_string(object)
                        .map_err(|e| ManifestError::Encode(e.to_string()))?,
                );
            }
            out
        }
        OutputFormat::Json => {
            let value = match objects.len() {
                1 => objects.pop().unwrap_or(Value::Null),
                _ => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            };
            let mut text = serde_json::to_string_pretty(&value)
                .map_err(|e| ManifestError::Encode(e.to_string()))?;
            text.push('\n');
            text
        }
    };
    Ok(Resolved { output, warnings })
}

async fn resolve_object(
    object: &mut Value,
    namespace: &str,
    index: &Index,
    pinner: Option<&Pinner>,
    warnings: &mut Vec<String>,
) -> Result<(), ManifestError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind == "List" {
        if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                Box::pin(resolve_object(item, namespace, index, pinner, warnings)).await?;
            }
        }
        return Ok(());
    }
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let Some(kind) = admission::kinds::lookup(group, kind) else {
        return Ok(());
    };
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(namespace)
        .to_owned();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    let label = format!("{}/{name}", kind.kind);
    let denied = |message: String| ManifestError::Denied {
        object: label.clone(),
        message,
    };
    let raw = serde_json::to_string(object).map_err(|e| ManifestError::Encode(e.to_string()))?;
    let plan = admission::plan_object(&raw, kind, &namespace, WriteKind::Full, index)
        .map_err(|e| denied(e.to_string()))?;
    let Some(mut plan) = plan else {
        return Ok(());
    };
    if plan.needs_pinning() {
        match pinner {
            Some(pinner) => pinner
                .pin(&mut plan)
                .await
                .map_err(|failed| denied(failed.to_string()))?,
            None => {
                return Err(denied(
                    "digest pinning was asked for but is not available here".into(),
                ));
            }
        }
    }
    let mutation = plan.into_mutation();
    warnings.extend(mutation.warnings.iter().map(|w| format!("{label}: {w}")));
    json_patch::patch(object, &mutation.patch).map_err(|e| ManifestError::Patch {
        object: label,
        message: e.to_string(),
    })?;
    Ok(())
}
