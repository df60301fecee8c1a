//! Edits → the smallest RFC 6902 patch that makes them.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde_json::{Map, Value, json};

use crate::resolve::{ORIGINAL_IMAGES_ANNOTATION, Resolution};

/// Builds the patch for `resolution` on the pod template found at
/// `template_path` inside `object`. With `annotate`, the images as written
/// are recorded (merged into any earlier record) on the template.
pub fn build(
    object: &Value,
    template_path: &[&str],
    resolution: &Resolution,
    annotate: bool,
) -> Vec<PatchOperation> {
    let template = super::kinds::template_value(object, template_path).unwrap_or(&Value::Null);
    let at = |tail: &[&str]| {
        PointerBuf::from_tokens(template_path.iter().copied().chain(tail.iter().copied()))
    };
    let mut ops = Vec::with_capacity(resolution.rewrites.len() + 2);

    for rewrite in &resolution.rewrites {
        let index = rewrite.index.to_string();
        ops.push(PatchOperation::Replace(ReplaceOperation {
            path: at(&["spec", rewrite.list.field(), &index, "image"]),
            value: Value::String(rewrite.resolved.clone()),
        }));
    }

    if !resolution.add_pull_secrets.is_empty() {
        let entries = resolution
            .add_pull_secrets
            .iter()
            .map(|name| json!({ "name": name }));
        match template.get("spec").and_then(|s| s.get("imagePullSecrets")) {
            Some(Value::Array(_)) => {
                for entry in entries {
                    ops.push(PatchOperation::Add(AddOperation {
                        path: at(&["spec", "imagePullSecrets", "-"]),
                        value: entry,
                    }));
                }
            }
            _ => ops.push(PatchOperation::Add(AddOperation {
                path: at(&["spec", "imagePullSecrets"]),
                value: Value::Array(entries.collect()),
            })),
        }
    }

    if annotate && !resolution.rewrites.is_empty() {
        let metadata = template.get("metadata").filter(|m| m.is_object());
        let annotations = metadata
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_object);
        let mut originals: Map<String, Value> = annotations
            .and_then(|a| a.get(ORIGINAL_IMAGES_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        for rewrite in &resolution.rewrites {
            originals.insert(
                rewrite.container.clone(),
                Value::String(rewrite.original.clone()),
            );
        }
        let recorded = Value::String(Value::Object(originals).to_string());
        let op = match (metadata, annotations) {
            (None, _) => AddOperation {
                path: at(&["metadata"]),
                value: json!({ "annotations": { ORIGINAL_IMAGES_ANNOTATION: recorded } }),
            },
            (Some(_), None) => AddOperation {
                path: at(&["metadata", "annotations"]),
                value: json!({ ORIGINAL_IMAGES_ANNOTATION: recorded }),
            },
            (Some(_), Some(_)) => AddOperation {
                path: at(&["metadata", "annotations", ORIGINAL_IMAGES_ANNOTATION]),
                value: recorded,
            },
        };
        ops.push(PatchOperation::Add(op));
    }
    ops
}
