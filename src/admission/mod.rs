//! AdmissionReview v1 in, AdmissionReview v1 out.
//!
//! `review` is synchronous and does no I/O: decode, find the pod template,
//! resolve against the index snapshot, build the patch, encode.

pub mod kinds;
pub mod patch;

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use json_patch::PatchOperation;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::index::Index;
use crate::resolve::{self, Choice, Denial, Resolution, Scope};
pub use kinds::{HANDLED_KINDS, PodBearingKind};

pub const API_VERSION: &str = "admission.k8s.io/v1";

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
    #[error("unsupported AdmissionReview {0}: only {API_VERSION} is served")]
    UnsupportedVersion(String),
}

/// What happened to one review, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Mutated,
    Allowed,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mutated => "mutated",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
        }
    }
}

pub struct Reviewed {
    /// The encoded AdmissionReview response.
    pub body: Vec<u8>,
    pub outcome: Outcome,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    api_version: String,
    kind: String,
    /// Decoded only once the version is known to be ours.
    #[serde(borrow)]
    request: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    operation: String,
    /// Borrowed from the body: read once, by the pod template walker.
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    kind: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct ResponseOut {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    /// Base64 of the JSON patch: the canonical JSON form of Go's `[]byte`.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct StatusOut {
    code: u16,
    status: &'static str,
    reason: &'static str,
    message: String,
}

/// The edits for one object: the patch and what it does.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub patch: Vec<PatchOperation>,
    pub resolution: Resolution,
}

/// How an object is being written, which limits what we may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// CREATE, or UPDATE of anything but a Pod.
    Full,
    /// UPDATE of a Pod: images may change, `imagePullSecrets` may not.
    PodUpdate,
    /// `pods/ephemeralcontainers`: only the ephemeral containers are applied.
    EphemeralContainers,
}

#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    #[error(transparent)]
    Denied(#[from] Denial),
    #[error("object is not a valid {kind}: {message}")]
    Malformed { kind: &'static str, message: String },
}

/// Resolves one object of a pod-bearing kind: `Ok(None)` when nothing needs
/// to change. Shared by the webhook and the `resolve` command.
pub fn mutate(
    object: &RawValue,
    kind: &PodBearingKind,
    namespace: &str,
    write: WriteKind,
    index: &Index,
) -> Result<Option<Mutation>, MutateError> {
    let located = kinds::locate(object, kind).map_err(|e| MutateError::Malformed {
        kind: kind.kind,
        message: e.to_string(),
    })?;
    let Some(located) = located else {
        return Ok(None);
    };
    let template = located.pod_template();
    if !template
        .containers
        .iter()
        .any(|c| crate::reference::is_registry_relative(c.image))
    {
        return Ok(None);
    }
    let scope = Scope {
        namespace,
        pull_secrets_mutable: write == WriteKind::Full,
    };
    let resolution = resolve::resolve(&template, scope, index)?;
    if resolution.is_empty() {
        return Ok(None);
    }
    let annotate = write != WriteKind::EphemeralContainers;
    let patch = patch::build(&located.template, kind.template_path, &resolution, annotate);
    Ok(Some(Mutation { patch, resolution }))
}

/// Reviews one encoded AdmissionReview against the index snapshot.
pub fn review(body: &[u8], index: &Index) -> Result<Reviewed, AdmissionError> {
    let review: ReviewIn =
        serde_json::from_slice(body).map_err(|e| AdmissionError::Malformed(e.to_string()))?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(AdmissionError::UnsupportedVersion(format!(
            "{}/{}",
            review.api_version, review.kind
        )));
    }
    let raw = review
        .request
        .ok_or_else(|| AdmissionError::Malformed("request is missing".into()))?;
    let request: RequestIn = serde_json::from_str(raw.get())
        .map_err(|e| AdmissionError::Malformed(format!("request: {e}")))?;
    let (response, outcome) = respond(request, index)?;
    let body = serde_json::to_vec(&ReviewOut {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response,
    })
    .map_err(|e| AdmissionError::Malformed(e.to_string()))?;
    Ok(Reviewed { body, outcome })
}

fn respond(
    request: RequestIn<'_>,
    index: &Index,
) -> Result<(ResponseOut, Outcome), AdmissionError> {
    let allow = |uid: String| {
        Ok((
            ResponseOut {
                uid,
                allowed: true,
                ..ResponseOut::default()
            },
            Outcome::Allowed,
        ))
    };
    let Some(kind) = kinds::lookup(&request.kind.group, &request.kind.kind) else {
        return allow(request.uid);
    };
    let update = match request.operation.as_str() {
        "CREATE" => false,
        "UPDATE" => true,
        _ => return allow(request.uid),
    };
    let write = match (request.sub_resource.as_deref().unwrap_or(""), kind.kind) {
        ("", "Pod") if update => WriteKind::PodUpdate,
        ("", _) => WriteKind::Full,
        ("ephemeralcontainers", "Pod") => WriteKind::EphemeralContainers,
        _ => return allow(request.uid),
    };
    let Some(object) = request.object else {
        return allow(request.uid);
    };
    let object_namespace;
    let namespace = match request.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        Some(ns) => ns,
        None => {
            object_namespace = object_namespace_of(object);
            object_namespace.as_ref().map_or("", |ns| ns.as_str())
        }
    };

    match mutate(object, kind, namespace, write, index) {
        Ok(None) => allow(request.uid),
        Ok(Some(mutation)) => {
            let patch = match serde_json::to_vec(&mutation.patch) {
                Ok(patch) => patch,
                // Serializing plain strings cannot fail; if it ever did,
                // deny rather than admit an unresolvable image.
                Err(e) => {
                    return Ok(deny(
                        request.uid,
                        format!("internal error encoding patch: {e}"),
                    ));
                }
            };
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
            let resolved = resolution
                .rewrites
                .iter()
                .map(|r| format!("{}={}", r.container, r.resolved))
                .collect::<Vec<_>>()
                .join(",");
            let response = ResponseOut {
                uid: request.uid,
                allowed: true,
                patch_type: Some("JSONPatch"),
                patch: Some(STANDARD.encode(patch)),
                warnings,
                audit_annotations: BTreeMap::from([("resolved-images", resolved)]),
                ..ResponseOut::default()
            };
            Ok((response, Outcome::Mutated))
        }
        Err(MutateError::Denied(denial)) => {
            Ok(deny(request.uid, format!("registry-resolver: {denial}")))
        }
        Err(malformed @ MutateError::Malformed { .. }) => {
            Err(AdmissionError::Malformed(malformed.to_string()))
        }
    }
}

/// `metadata.namespace` of the object, for requests that carry none.
fn object_namespace_of(object: &RawValue) -> Option<crate::pod_template::Str<'_>> {
    let metadata = crate::pod_template::field(object, "metadata").ok()??;
    let namespace = crate::pod_template::field(metadata, "namespace").ok()??;
    serde_json::from_str(namespace.get()).ok()
}

fn deny(uid: String, message: String) -> (ResponseOut, Outcome) {
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
