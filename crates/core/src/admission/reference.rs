//! The webhook's answer as it was written before it was written without
//! a tree: serde values for the response and the patch. Kept (for tests
//! and the fuzz targets, feature `testing`) as the reference the written
//! answer must equal byte for byte.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{API_VERSION, AdmissionError, Index, Outcome, Pending, Reviewed, prepare};
use crate::excerpt::{MESSAGE_CHARS, shorten};
use crate::pod_template::Template;
use crate::resolve::{Choice, ORIGINAL_IMAGES_ANNOTATION, Resolution};

/// The patch buffer's starting size.
const PATCH_CAPACITY: usize = 1024;
/// The response buffer's starting size.
const RESPONSE_CAPACITY: usize = 2048;

/// [`super::review`], answered the reference way.
pub fn review(body: &[u8], index: &Index) -> Result<Reviewed, AdmissionError> {
    finish(prepare(body, index)?)
}

/// [`Prepared::finish`](super::Prepared::finish), the reference way.
pub fn finish(mut prepared: super::Prepared<'_>) -> Result<Reviewed, AdmissionError> {
    if let Pending::Mutate(plan) = &mut prepared.pending {
        prepared.mirror_uses = std::mem::take(&mut plan.resolution.mirror_uses);
    }
    let (reason, denial) = match &prepared.pending {
        Pending::Deny(reason, message) => (Some(*reason), Some(message.clone())),
        _ => (None, None),
    };
    let uid = prepared.uid;
    let (response, outcome) = match prepared.pending {
        Pending::Allow => (
            ResponseOut {
                uid,
                allowed: true,
                ..ResponseOut::default()
            },
            Outcome::Allowed,
        ),
        Pending::Deny(_, message) => deny(uid, message),
        Pending::Mutate(plan) => mutated(uid, plan.into_reference_mutation()),
    };
    // Sized for a typical answer (a mutated 3-container Deployment's is
    // about 1.8 KB), so encoding does not grow the buffer step by step.
    let mut body = Vec::with_capacity(RESPONSE_CAPACITY);
    serde_json::to_writer(
        &mut body,
        &ReviewOut {
            api_version: API_VERSION,
            kind: "AdmissionReview",
            response,
        },
    )
    .map_err(AdmissionError::Encode)?;
    Ok(Reviewed {
        body,
        outcome,
        reason,
        denial,
        mirror_uses: prepared.mirror_uses,
    })
}

/// The old `Mutation`: operations as values.
pub(super) struct Mutation {
    pub(super) patch: Vec<PatchOperation>,
    pub(super) resolution: Resolution,
    pub(super) warnings: Vec<String>,
}

/// Builds the patch for `resolution` on `template`, found at `template_path`
/// in the object. With `annotate`, the images as written are recorded
/// (merged into any earlier record) on the template.
pub(super) fn build_patch(
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

fn mutated(uid: String, mutation: Mutation) -> (ResponseOut, Outcome) {
    // Nothing to change, only something to say (an image left upstream
    // because its mirror is unhealthy): allowed as it is, with the words.
    if mutation.patch.is_empty() {
        let response = ResponseOut {
            uid,
            allowed: true,
            warnings: mutation
                .warnings
                .iter()
                .map(|w| format!("registry-resolver: {w}"))
                .collect(),
            ..ResponseOut::default()
        };
        return (response, Outcome::Allowed);
    }
    let mut patch = Vec::with_capacity(PATCH_CAPACITY);
    // Serializing plain strings cannot fail; if it ever did, deny rather
    // than admit an unresolvable image.
    if let Err(e) = serde_json::to_writer(&mut patch, &mutation.patch) {
        return deny(
            uid,
            format!("registry-resolver: internal error encoding patch: {e}"),
        );
    }
    let resolution = &mutation.resolution;
    let mut warnings: Vec<String> = resolution
        .rewrites
        .iter()
        .map(|r| {
            let from = match &r.choice {
                Choice::NamespaceDefault => "namespace default".to_owned(),
                other => other.to_string(),
            };
            format!(
                "registry-resolver: container {:?} image {:?} -> {:?} (registry {:?}, {from})",
                r.container, r.original, r.resolved, r.registry
            )
        })
        .collect();
    if !resolution.add_pull_secrets.is_empty() {
        warnings.push(format!(
            "registry-resolver: added imagePullSecrets {}",
            resolution.add_pull_secrets.join(", ")
        ));
    }
    warnings.extend(
        mutation
            .warnings
            .iter()
            .map(|w| format!("registry-resolver: {w}")),
    );
    let resolved = resolution
        .rewrites
        .iter()
        .map(|r| format!("{}={}", r.container, r.resolved))
        .collect::<Vec<_>>()
        .join(",");
    let response = ResponseOut {
        uid,
        allowed: true,
        patch_type: Some("JSONPatch"),
        patch: Some(STANDARD.encode(patch)),
        warnings,
        audit_annotations: BTreeMap::from([("resolved-images", resolved)]),
        ..ResponseOut::default()
    };
    (response, Outcome::Mutated)
}

fn deny(uid: String, message: String) -> (ResponseOut, Outcome) {
    // Denials quote images and names from the object; keep the answer small.
    let message = match shorten(&message, MESSAGE_CHARS) {
        std::borrow::Cow::Owned(short) => short,
        std::borrow::Cow::Borrowed(_) => message,
    };
    (
        ResponseOut {
            uid,
            allowed: false,
            status: Some(StatusOut {
                code: 403,
                status: "Failure",
                reason: "Forbidden",
                message,
            }),
            ..ResponseOut::default()
        },
        Outcome::Denied,
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReviewOut {
    pub(super) api_version: &'static str,
    pub(super) kind: &'static str,
    pub(super) response: ResponseOut,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponseOut {
    pub(super) uid: String,
    pub(super) allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) patch_type: Option<&'static str>,
    /// Base64 of the JSON patch: the canonical JSON form of Go's `[]byte`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) warnings: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) audit_annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
pub(super) struct StatusOut {
    pub(super) code: u16,
    pub(super) status: &'static str,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

/// The written answer against the reference, byte for byte, over every
/// fixture the tests use, each reviewed under the variations that reach
/// each branch of the answer: mutated, denied, allowed, warnings without a
/// patch, earlier original-images records, names that need escaping.
#[cfg(test)]
mod differential {
    use serde_json::{Value, json};

    use crate::index::Index;
    use crate::mirror::Fallback;
    use crate::testing::{mirror, record, unhealthy_mirrors};

    fn index() -> Index {
        let demo = record(
            "demo",
            "https://dockerhub.qingcloud.com",
            &["team-a", "default"],
            &["team-a", "default"],
            true,
        );
        let harbor = record(
            "harbor",
            "http://harbor.local:8080/library",
            &["team-a", "team-b"],
            &["team-b"],
            false,
        );
        let mut hub = record("hub", "https://hub.example", &["mirrored"], &[], true);
        hub.mirror_of = vec![crate::mirror::MirrorEntry {
            check_upstream: true,
            ..mirror("docker.io", Some("proxy"), Fallback::Upstream)
        }];
        let [shaky, sealed] = unhealthy_mirrors();
        Index::build(&[demo, harbor, hub, shaky, sealed])
    }

    /// Every fixture as an AdmissionReview.
    fn fixtures() -> Vec<(String, Value)> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut paths: Vec<_> = std::fs::read_dir(format!("{root}/tests/fixtures"))
            .expect("tests/fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.push(format!("{root}/benches/review-deployment.json").into());
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).expect("a fixture");
                let object: Value = serde_json::from_str(&text).expect("JSON");
                let review = if object["kind"] == "AdmissionReview" {
                    object
                } else {
                    let (group, version) = match object["apiVersion"].as_str() {
                        Some(v) => v.rsplit_once('/').unwrap_or(("", v)),
                        None => ("", "v1"),
                    };
                    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "request": {"uid": "u", "kind": {"group": group, "version": version, "kind": object["kind"]},
                            "namespace": "team-a", "operation": "CREATE", "object": object}})
                };
                (path.display().to_string(), review)
            })
            .collect()
    }

    /// The pod template of a review's object (the object itself for a Pod).
    fn template(review: &mut Value) -> Option<&mut Value> {
        let object = &mut review["request"]["object"];
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Pod" => Some(object),
            "CronJob" => object.pointer_mut("/spec/jobTemplate/spec/template"),
            _ => object.pointer_mut("/spec/template"),
        }
    }

    /// The review under each variation.
    fn variations(review: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let mut vary = |what: &str, edit: &dyn Fn(&mut Value)| {
            let mut varied = review.clone();
            edit(&mut varied);
            out.push((what.to_owned(), varied));
        };
        vary("as written", &|_| {});
        for namespace in ["team-b", "team-c", "mirrored", "lab", "edge", ""] {
            vary(&format!("namespace {namespace:?}"), &|r| {
                r["request"]["namespace"] = json!(namespace)
            });
        }
        for operation in ["UPDATE", "DELETE", "CONNECT"] {
            vary(operation, &|r| r["request"]["operation"] = json!(operation));
        }
        vary("ephemeral containers", &|r| {
            r["request"]["subResource"] = json!("ephemeralcontainers")
        });
        vary("fully qualified images", &|r| {
            let text = r
                .to_string()
                .replace("\"image\":\"/", "\"image\":\"docker.io/");
            *r = serde_json::from_str(&text).expect("JSON");
        });
        vary("fully qualified images, mirrored", &|r| {
            let text = r.to_string().replace("\"image\":\"/", "\"image\":\"");
            *r = serde_json::from_str(&text).expect("JSON");
            r["request"]["namespace"] = json!("mirrored");
        });
        vary("unresolvable image", &|r| {
            let text = r
                .to_string()
                .replacen("\"image\":\"/", "\"image\":\"/Bad Image::\\\"", 1);
            *r = serde_json::from_str(&text).expect("JSON");
        });
        vary("names to escape", &|r| {
            let text = r
                .to_string()
                .replace("\"name\":\"", "\"name\":\"q\\\"\\\\ ~/ é\\u0001\\n");
            *r = serde_json::from_str(&text).expect("JSON");
        });
        vary("two containers of one name", &|r| {
            if let Some(spec) = template(r).map(|t| &mut t["spec"]) {
                let first = spec["containers"][0].clone();
                spec["initContainers"] = json!([first]);
            }
        });
        vary("no template metadata", &|r| {
            if let Some(t) = template(r).and_then(Value::as_object_mut) {
                t.remove("metadata");
            }
        });
        vary("template metadata without annotations", &|r| {
            if let Some(t) = template(r) {
                t["metadata"] = json!({"labels": {"app": "x"}});
            }
        });
        for earlier in [
            r#"{"old":"/o:1","web":"/w:0"}"#,
            r#"{"a":1,"a":"/twice","n":{"x":[1.5e3,null]}}"#,
            "not JSON",
            "[1]",
        ] {
            vary(&format!("earlier record {earlier}"), &|r| {
                if let Some(t) = template(r) {
                    t["metadata"]["annotations"]["registry-resolver.io/original-images"] =
                        json!(earlier);
                }
            });
        }
        vary("registry annotation", &|r| {
            if let Some(t) = template(r) {
                t["metadata"]["annotations"]["registry-resolver.io/registry"] = json!("harbor");
            }
        });
        vary("unauthorized registry annotation", &|r| {
            if let Some(t) = template(r) {
                t["metadata"]["annotations"]["registry-resolver.io/registry"] = json!("hub");
            }
        });
        for secrets in [json!([]), json!([{"name": "mine"}, {"name": "demo"}])] {
            vary(&format!("imagePullSecrets {secrets}"), &|r| {
                if let Some(t) = template(r) {
                    t["spec"]["imagePullSecrets"] = secrets.clone();
                }
            });
        }
        vary("a long uid", &|r| {
            r["request"]["uid"] = json!("u".repeat(200))
        });
        vary("no request", &|r| {
            if let Some(r) = r.as_object_mut() {
                r.remove("request");
            }
        });
        out
    }

    /// What the webhook's lookups do to a plan: digests appended, a
    /// warning, a mirror that could not serve undone (or denied).
    fn after_lookups(mut prepared: super::super::Prepared<'_>) -> super::super::Prepared<'_> {
        let mut denied = None;
        if let Some(plan) = prepared.plan_mut() {
            for rewrite in &mut plan.resolution.rewrites {
                rewrite.resolved.push_str(DIGEST);
            }
            plan.warnings.push("pinned \"x\"".into());
            let checked = (plan.resolution.rewrites.iter()).position(|r| r.check.is_some());
            if let Some(at) = checked
                && let Err(denials) = plan.fall_back(vec![(at, "timed out".into())])
            {
                denied = Some(denials.join("; "));
            }
        }
        if let Some(denial) = denied {
            prepared.deny(crate::resolve::DenialReason::MirrorUnavailable, denial);
        }
        prepared
    }

    const DIGEST: &str = "@sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";

    #[test]
    fn the_written_answer_is_the_reference_answer_byte_for_byte() {
        let indexes = [
            ("index", index(), false),
            (
                "index knowing the pull Secrets",
                index().with_present_pull_secrets([("team-b".into(), "harbor".into())]),
                false,
            ),
            ("index, after lookups", index(), true),
        ];
        let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
        let mut compared = 0;
        for (fixture, review) in fixtures() {
            for (variation, review) in variations(&review) {
                let body = review.to_string();
                for (index_name, index, looked_up) in &indexes {
                    let case = format!("{fixture}, {variation}, {index_name}");
                    let (written, reference) = if *looked_up {
                        (
                            super::super::prepare(body.as_bytes(), index)
                                .map(after_lookups)
                                .and_then(super::super::Prepared::finish),
                            super::super::prepare(body.as_bytes(), index)
                                .map(after_lookups)
                                .and_then(super::finish),
                        )
                    } else {
                        (
                            super::super::review(body.as_bytes(), index),
                            super::review(body.as_bytes(), index),
                        )
                    };
                    compared += 1;
                    match (written, reference) {
                        (Ok(written), Ok(reference)) => {
                            assert_eq!(
                                String::from_utf8_lossy(&written.body),
                                String::from_utf8_lossy(&reference.body),
                                "{case}"
                            );
                            assert_eq!(written.outcome, reference.outcome, "{case}");
                            assert_eq!(written.reason, reference.reason, "{case}");
                            assert_eq!(written.denial, reference.denial, "{case}");
                            assert_eq!(written.mirror_uses, reference.mirror_uses, "{case}");
                            let said = if written.body.windows(10).any(|w| w == b"\"warnings\"") {
                                "with warnings"
                            } else {
                                "without"
                            };
                            *outcomes.entry(written.outcome.as_str()).or_default() += 1;
                            let text = String::from_utf8_lossy(&written.body);
                            if *looked_up && text.contains("timed out") {
                                *outcomes.entry("fell back").or_default() += 1;
                            }
                            if *looked_up && text.contains(&DIGEST[..20]) {
                                *outcomes.entry("pinned").or_default() += 1;
                            }
                            *outcomes.entry(said).or_default() += 1;
                        }
                        (Err(written), Err(reference)) => {
                            assert_eq!(written.to_string(), reference.to_string(), "{case}");
                            *outcomes.entry("error").or_default() += 1;
                        }
                        (written, reference) => panic!(
                            "{case}: written {:?}, reference {:?}",
                            written.map(|r| r.outcome),
                            reference.map(|r| r.outcome)
                        ),
                    }
                }
            }
        }
        // Every branch of the answer was compared, not only the common one.
        for outcome in [
            "mutated",
            "allowed",
            "denied",
            "error",
            "with warnings",
            "without",
            "fell back",
            "pinned",
        ] {
            assert!(
                outcomes.get(outcome).is_some_and(|n| *n > 3),
                "{outcome}: {outcomes:?}"
            );
        }
        assert!(compared > 300, "{compared}");
    }
}
