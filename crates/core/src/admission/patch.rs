//! Edits → the smallest RFC 6902 patch that makes them, written as JSON
//! text: the webhook sends these bytes (base64'd) and `resolve` reads them
//! back as operations, so there is one patch for both.

use std::borrow::Cow;
use std::fmt::Write as _;

use indexmap::IndexMap;
use json_patch::PatchOperation;
use json_patch::jsonptr::Token;
use serde::Serialize;
use serde_json::Value;

use super::json_out::JsonOut;
use crate::pod_template::Template;
use crate::resolve::{ORIGINAL_IMAGES_ANNOTATION, Resolution};

/// The patch buffer's starting size: three images, a pull secret and the
/// original-images annotation come to about 700 bytes.
const PATCH_CAPACITY: usize = 1024;

/// An RFC 6902 patch as JSON text (`[{"op":…},…]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    json: Vec<u8>,
    operations: usize,
}

impl Patch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.operations == 0
    }

    /// The patch's JSON text.
    pub fn as_json(&self) -> &[u8] {
        &self.json
    }

    /// The patch read back as operations (for `resolve`, which applies it).
    pub fn operations(&self) -> Result<Vec<PatchOperation>, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }
}

/// One step of a JSON pointer below the pod template.
enum Step<'a> {
    /// An object key.
    Key(&'a str),
    /// An array index.
    Index(usize),
}
use Step::{Index, Key};

/// The pointer buffer's starting size: the longest pointer made, a
/// CronJob's original-images annotation, is about 80 bytes.
const POINTER_CAPACITY: usize = 96;

/// The operations of a patch as they are written.
struct Operations {
    out: JsonOut,
    count: usize,
    /// The operation's JSON pointer, built here (one buffer for the
    /// whole patch) before it is written as a JSON string; it starts with
    /// the pointer to the pod template, `template_len` bytes.
    pointer: String,
    template_len: usize,
}

impl Operations {
    /// No operation yet, below the template at `template_path`.
    fn new(template_path: &[&str]) -> Self {
        let mut pointer = String::with_capacity(POINTER_CAPACITY);
        for key in template_path {
            pointer.push('/');
            pointer.push_str(Token::new(*key).encoded());
        }
        Self {
            out: JsonOut::with_capacity(PATCH_CAPACITY),
            count: 0,
            template_len: pointer.len(),
            pointer,
        }
    }

    /// Starts an operation: `{"op":<op>,"path":<pointer>,"value":`, the
    /// pointer being the template path and then `tail`.
    fn begin(&mut self, op: &str, tail: &[Step<'_>]) {
        self.out.raw(if self.count == 0 { "[" } else { "," });
        self.count += 1;
        self.out.raw(r#"{"op":""#);
        self.out.raw(op);
        self.out.raw(r#"","path":"#);
        self.pointer.truncate(self.template_len);
        for step in tail {
            self.pointer.push('/');
            match step {
                Key(key) => self.pointer.push_str(Token::new(*key).encoded()),
                Index(index) => {
                    // Writing into a String cannot fail.
                    let _ = write!(self.pointer, "{index}");
                }
            }
        }
        self.out.string(&self.pointer);
        self.out.raw(r#","value":"#);
    }

    fn end(&mut self) {
        self.out.raw("}");
    }
}

/// Builds the patch for `resolution` on `template`, found at `template_path`
/// in the object. With `annotate`, the images as written are recorded
/// (merged into any earlier record) on the template.
pub fn build(
    template: &Template<'_>,
    template_path: &[&str],
    resolution: &Resolution,
    annotate: bool,
) -> Result<Patch, serde_json::Error> {
    let mut ops = Operations::new(template_path);

    for rewrite in &resolution.rewrites {
        ops.begin(
            "replace",
            &[
                Key("spec"),
                Key(rewrite.list.field()),
                Index(rewrite.index),
                Key("image"),
            ],
        );
        ops.out.string(&rewrite.resolved);
        ops.end();
    }

    if !resolution.add_pull_secrets.is_empty() {
        let has_list = template
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .is_some();
        if has_list {
            // Appended one by one, after the pod's own entries.
            for name in &resolution.add_pull_secrets {
                ops.begin("add", &[Key("spec"), Key("imagePullSecrets"), Key("-")]);
                pull_secret_entry(&mut ops.out, name);
                ops.end();
            }
        } else {
            ops.begin("add", &[Key("spec"), Key("imagePullSecrets")]);
            for (i, name) in resolution.add_pull_secrets.iter().enumerate() {
                ops.out.raw(if i == 0 { "[" } else { "," });
                pull_secret_entry(&mut ops.out, name);
            }
            ops.out.raw("]");
            ops.end();
        }
    }

    if annotate && !resolution.rewrites.is_empty() {
        let metadata = template.metadata.as_ref();
        let annotations = metadata.and_then(|m| m.annotations.as_ref());
        let recorded = original_images(
            annotations.and_then(|a| a.get(ORIGINAL_IMAGES_ANNOTATION)),
            resolution,
        )?;
        match (metadata, annotations) {
            (None, _) => {
                ops.begin("add", &[Key("metadata")]);
                ops.out.raw(r#"{"annotations":{"#);
                ops.out.string(ORIGINAL_IMAGES_ANNOTATION);
                ops.out.raw(":");
                ops.out.string(&recorded);
                ops.out.raw("}}");
            }
            (Some(_), None) => {
                ops.begin("add", &[Key("metadata"), Key("annotations")]);
                ops.out.raw("{");
                ops.out.string(ORIGINAL_IMAGES_ANNOTATION);
                ops.out.raw(":");
                ops.out.string(&recorded);
                ops.out.raw("}");
            }
            (Some(_), Some(_)) => {
                ops.begin(
                    "add",
                    &[
                        Key("metadata"),
                        Key("annotations"),
                        Key(ORIGINAL_IMAGES_ANNOTATION),
                    ],
                );
                ops.out.string(&recorded);
            }
        }
        ops.end();
    }
    let Operations { mut out, count, .. } = ops;
    out.raw(if count == 0 { "[]" } else { "]" });
    Ok(Patch {
        json: out.finish()?,
        operations: count,
    })
}

/// `{"name":<name>}`: an `imagePullSecrets` entry.
fn pull_secret_entry(out: &mut JsonOut, name: &str) {
    out.raw(r#"{"name":"#);
    out.string(name);
    out.raw("}");
}

/// The original-images annotation's new value: the earlier record (if it
/// reads as a JSON object) with each rewritten container's image as
/// written, in the order first seen (a key seen again keeps its place and
/// takes the new value).
fn original_images(
    earlier: Option<&str>,
    resolution: &Resolution,
) -> Result<String, serde_json::Error> {
    let mut originals: IndexMap<Cow<'_, str>, Original<'_>> = earlier
        .and_then(|s| serde_json::from_str::<IndexMap<String, Value>>(s).ok())
        .map(|earlier| {
            earlier
                .into_iter()
                .map(|(container, image)| (Cow::Owned(container), Original::Earlier(image)))
                .collect()
        })
        .unwrap_or_default();
    for rewrite in &resolution.rewrites {
        originals.insert(
            Cow::Borrowed(&rewrite.container),
            Original::Written(&rewrite.original),
        );
    }
    serde_json::to_string(&originals)
}

/// An image in the original-images record: from an earlier record (any
/// JSON value, kept as it was), or as written in this object.
enum Original<'a> {
    Earlier(Value),
    Written(&'a str),
}

impl Serialize for Original<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Earlier(value) => value.serialize(serializer),
            Self::Written(image) => serializer.serialize_str(image),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::{Choice, ContainerList, Rewrite};
    use serde_json::json;

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
            .expect("writes")
            .operations()
            .expect("reads back")
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
