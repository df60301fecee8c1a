//! Edits → the smallest RFC 6902 patch that makes them.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde_json::{Map, Value, json};

use crate::pod_template::Template;
use crate::resolve::{ORIGINAL_IMAGES_ANNOTATION, Resolution};

/// Builds the patch for `resolution` on `template`, found at `template_path`
/// in the object. With `annotate`, the images as written are recorded
/// (merged into any earlier record) on the template.
pub fn build(
    template: &Template<'_>,
    template_path: &[&str],
    resolution: &Resolution,
    annotate: bool,
) -> Vec<PatchOperation> {
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
        match template
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
        {
            Some(_) => {
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
        let metadata = template.metadata.as_ref();
        let annotations = metadata.and_then(|m| m.annotations.as_ref());
        let mut originals: Map<String, Value> = annotations
            .and_then(|a| a.get(ORIGINAL_IMAGES_ANNOTATION))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::{Choice, ContainerList, Rewrite};

    fn rewrite(list: ContainerList, index: usize, name: &str) -> Rewrite {
        Rewrite {
            list,
            index,
            container: name.into(),
            original: "/a:1".into(),
            resolved: "r.example/a:1".into(),
            registry: "r".into(),
            choice: Choice::NamespaceDefault,
            pin: None,
            check: None,
            pull_secret: Some("r".into()),
        }
    }

    fn ops_json(ops: &[PatchOperation]) -> Value {
        serde_json::to_value(ops).expect("serializes")
    }

    /// Builds against the template at `path` in `object`, as the webhook does.
    fn build_on(
        object: &Value,
        path: &[&str],
        resolution: &Resolution,
        annotate: bool,
    ) -> Vec<PatchOperation> {
        let text = object.to_string();
        let located = crate::pod_template::locate(&text, path)
            .expect("json")
            .expect("template");
        build(&located.template, path, resolution, annotate)
    }

    #[test]
    fn minimal_ops_with_escaped_annotation_key() {
        let object = json!({"spec": {"template": {
            "metadata": {"annotations": {"keep": "me"}},
            "spec": {"imagePullSecrets": [{"name": "mine"}], "initContainers": [{"name": "i", "image": "/a:1"}]}
        }}});
        let resolution = Resolution {
            rewrites: vec![rewrite(ContainerList::InitContainers, 0, "i")],
            add_pull_secrets: vec!["r".into()],
            ..Resolution::default()
        };
        let ops = build_on(&object, &["spec", "template"], &resolution, true);
        assert_eq!(
            ops_json(&ops),
            json!([
                {"op": "replace", "path": "/spec/template/spec/initContainers/0/image", "value": "r.example/a:1"},
                {"op": "add", "path": "/spec/template/spec/imagePullSecrets/-", "value": {"name": "r"}},
                {"op": "add", "path": "/spec/template/metadata/annotations/registry-resolver.io~1original-images", "value": "{\"i\":\"/a:1\"}"}
            ])
        );
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &ops).expect("applies");
        assert_eq!(
            patched["spec"]["template"]["metadata"]["annotations"]["keep"],
            "me"
        );
    }

    #[test]
    fn adds_missing_parents() {
        let object = json!({"spec": {"containers": [{"name": "c", "image": "/a:1"}]}});
        let resolution = Resolution {
            rewrites: vec![rewrite(ContainerList::Containers, 0, "c")],
            add_pull_secrets: vec!["r".into()],
            ..Resolution::default()
        };
        let ops = build_on(&object, &[], &resolution, true);
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &ops).expect("applies");
        assert_eq!(
            patched,
            json!({
                "spec": {"containers": [{"name": "c", "image": "r.example/a:1"}], "imagePullSecrets": [{"name": "r"}]},
                "metadata": {"annotations": {ORIGINAL_IMAGES_ANNOTATION: "{\"c\":\"/a:1\"}"}}
            })
        );
        // Metadata without annotations.
        let object = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "/a:1"}]}});
        let ops = build_on(&object, &[], &resolution, true);
        assert_eq!(ops_json(&ops)[2]["path"], "/metadata/annotations");
    }

    #[test]
    fn merges_earlier_original_images() {
        let object = json!({"metadata": {"annotations": {ORIGINAL_IMAGES_ANNOTATION: "{\"old\":\"/o:1\"}"}},
            "spec": {"containers": [{"name": "c", "image": "/a:1"}]}});
        let resolution = Resolution {
            rewrites: vec![rewrite(ContainerList::Containers, 0, "c")],
            add_pull_secrets: vec![],
            ..Resolution::default()
        };
        let ops = build_on(&object, &[], &resolution, true);
        assert_eq!(ops.len(), 2);
        assert_eq!(
            ops_json(&ops)[1]["value"],
            "{\"old\":\"/o:1\",\"c\":\"/a:1\"}"
        );
        assert_eq!(
            build_on(&object, &[], &resolution, false).len(),
            1,
            "no annotation when not annotating"
        );
    }
}
