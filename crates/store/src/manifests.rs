//! The `resolve` command's core: multi-document manifests in, the same
//! manifests with the webhook's edits applied out.
//!
//! The output is the input, byte for byte, except the edits themselves
//! (images, added `imagePullSecrets` entries, the original-images
//! annotation): as a Helm post-renderer, what we print is what reaches the
//! cluster, and a re-serialized ConfigMap or `defaultMode` would not be
//! what Helm rendered. See `yaml_edit`.

use json_patch::PatchOperation;
use json_patch::jsonptr::PointerBuf;
use serde_json::Value;

use crate::admission::{self, WriteKind};
use crate::index::Index;
use crate::pinning::Pinner;
use crate::yaml_edit;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not valid YAML or JSON: {0}")]
    Parse(#[from] yaml_edit::YamlError),
    /// The webhook would refuse the object: `reason` says why in one
    /// stable word (clients translate by it), `message` for a person.
    #[error("{object}: {message}")]
    Denied {
        object: String,
        reason: admission::DenialReason,
        message: String,
    },
    /// The object does not decode as its kind (its pod template is not
    /// where, or not what, the kind says).
    #[error("{object}: {message}")]
    Malformed { object: String, message: String },
    #[error("{object}: applying the patch failed: {message}")]
    Patch { object: String, message: String },
    #[error("document {doc}: cannot be edited in place: {source}")]
    Edit {
        doc: usize,
        source: yaml_edit::EditError,
    },
    #[error(
        "document {doc}: the edited text does not read back as the resolved object (a bug; nothing was written)"
    )]
    EditMismatch { doc: usize },
    #[error("encoding output: {0}")]
    Encode(String),
}

/// How the resolved manifests are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The input's own text with only the edits made (multi-document
    /// YAML, or JSON as it came).
    Yaml,
    /// Pretty-printed JSON: one object, or a `List` of several.
    Json,
}

/// The resolved manifests, and what the webhook would have warned about.
#[derive(Debug)]
pub struct Resolved {
    /// The manifests with the webhook's edits applied.
    pub output: String,
    /// What the webhook would have said beside them, each with its object.
    pub warnings: Vec<String>,
    /// The records images were resolved against, each once, in the order
    /// first used: whose pull Secrets the namespace needs.
    pub registries: Vec<String>,
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
    let documents = yaml_edit::parse_stream(input)?;
    let mut warnings = Vec::new();
    let mut registries = Vec::new();
    let mut edits = Vec::new();
    // Every document's value after the patch (null for empty ones).
    let mut objects = Vec::with_capacity(documents.len());
    for (doc, document) in documents.iter().enumerate() {
        let mut object = document.to_value()?;
        if object.is_null() {
            objects.push(object);
            continue;
        }
        let mut ops = Vec::new();
        resolve_object(
            &object,
            &mut Vec::new(),
            namespace,
            index,
            pinner,
            Found {
                warnings: &mut warnings,
                registries: &mut registries,
                ops: &mut ops,
            },
        )
        .await?;
        if !ops.is_empty() {
            json_patch::patch(&mut object, &ops).map_err(|e| ManifestError::Patch {
                object: format!("document {}", doc + 1),
                message: e.to_string(),
            })?;
            edits.extend(document.edits(&ops).map_err(|source| ManifestError::Edit {
                doc: doc + 1,
                source,
            })?);
        }
        objects.push(object);
    }
    let output = match output {
        OutputFormat::Yaml => {
            let text = yaml_edit::apply(input, edits);
            verify_edited(&text, &objects)?;
            text
        }
        OutputFormat::Json => {
            let mut objects: Vec<Value> = objects.into_iter().filter(|o| !o.is_null()).collect();
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
    Ok(Resolved {
        output,
        warnings,
        registries,
    })
}

/// The edited text must read back as exactly the patched objects: a text
/// edit that meant something else is a bug, and is never printed.
fn verify_edited(text: &str, objects: &[Value]) -> Result<(), ManifestError> {
    let documents = yaml_edit::parse_stream(text)?;
    if documents.len() != objects.len() {
        return Err(ManifestError::EditMismatch {
            doc: documents.len().min(objects.len()) + 1,
        });
    }
    for (doc, (document, object)) in documents.iter().zip(objects).enumerate() {
        if document.to_value()? != *object {
            return Err(ManifestError::EditMismatch { doc: doc + 1 });
        }
    }
    Ok(())
}

/// `op` with its path under `prefix` (an item of a `List`).
fn prefixed(op: PatchOperation, prefix: &[String]) -> PatchOperation {
    if prefix.is_empty() {
        return op;
    }
    let under = |path: &PointerBuf| {
        let tail: Vec<String> = path.tokens().map(|t| t.decoded().into_owned()).collect();
        PointerBuf::from_tokens(prefix.iter().chain(tail.iter()))
    };
    match op {
        PatchOperation::Add(mut add) => {
            add.path = under(&add.path);
            PatchOperation::Add(add)
        }
        PatchOperation::Replace(mut replace) => {
            replace.path = under(&replace.path);
            PatchOperation::Replace(replace)
        }
        other => other,
    }
}

/// What resolving the objects of one document gathers.
struct Found<'a> {
    warnings: &'a mut Vec<String>,
    registries: &'a mut Vec<String>,
    ops: &'a mut Vec<PatchOperation>,
}

async fn resolve_object(
    object: &Value,
    prefix: &mut Vec<String>,
    namespace: &str,
    index: &Index,
    pinner: Option<&Pinner>,
    found: Found<'_>,
) -> Result<(), ManifestError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind == "List" {
        if let Some(items) = object.get("items").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                prefix.extend(["items".to_owned(), i.to_string()]);
                let found = Found {
                    warnings: &mut *found.warnings,
                    registries: &mut *found.registries,
                    ops: &mut *found.ops,
                };
                Box::pin(resolve_object(
                    item, prefix, namespace, index, pinner, found,
                ))
                .await?;
                prefix.truncate(prefix.len() - 2);
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
    let denied = |reason, message: String| ManifestError::Denied {
        object: label.clone(),
        reason,
        message,
    };
    let raw = serde_json::to_string(object).map_err(|e| ManifestError::Encode(e.to_string()))?;
    let plan = admission::plan_object(&raw, kind, &namespace, WriteKind::Full, index).map_err(
        |e| match e {
            admission::MutateError::Denied(denial) => denied(denial.reason, denial.to_string()),
            malformed @ admission::MutateError::Malformed { .. } => ManifestError::Malformed {
                object: label.clone(),
                message: malformed.to_string(),
            },
        },
    )?;
    let Some(mut plan) = plan else {
        return Ok(());
    };
    if plan.needs_lookups() {
        match pinner {
            Some(pinner) => pinner
                .look_up(&mut plan)
                .await
                .map_err(|failed| denied(failed.reason(), failed.to_string()))?,
            None if plan.resolution.rewrites.iter().any(|r| r.pin.is_some()) => {
                return Err(denied(
                    admission::DenialReason::PinFailed,
                    "digest pinning was asked for but is not available here".into(),
                ));
            }
            // Offline, a mirror cannot be asked: the rewrite stands, and
            // the output says it was not checked.
            None => {
                for rewrite in &mut plan.resolution.rewrites {
                    if rewrite.check.take().is_some() {
                        plan.warnings.push(format!(
                            "container {:?}: mirror {:?} was not asked whether it serves {:?} (no registry access here)",
                            rewrite.container, rewrite.registry, rewrite.original
                        ));
                    }
                }
            }
        }
    }
    let encoding = |e: serde_json::Error| ManifestError::Encode(e.to_string());
    let mutation = plan.into_mutation().map_err(encoding)?;
    for rewrite in &mutation.resolution.rewrites {
        if !found.registries.contains(&rewrite.registry) {
            found.registries.push(rewrite.registry.clone());
        }
    }
    found
        .warnings
        .extend(mutation.warnings.iter().map(|w| format!("{label}: {w}")));
    found.ops.extend(
        (mutation.patch.operations().map_err(encoding)?)
            .into_iter()
            .map(|op| prefixed(op, prefix)),
    );
    Ok(())
}
