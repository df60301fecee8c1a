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
use crate::pod_template::{LocateSeed, Located, Str};
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

/// The review, decoded in one pass over the body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(borrow, default)]
    api_version: Option<Str<'a>>,
    #[serde(borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    group: Option<Str<'a>>,
    #[serde(borrow, default)]
    kind: Option<Str<'a>>,
}

/// The parts of `request` we use. The object is read straight into its pod
/// template when its kind is already known (the API server writes `kind`
/// before `object`); otherwise it is kept raw and read afterwards.
#[derive(Default)]
struct RequestIn<'a> {
    uid: Option<String>,
    kind: Option<GroupVersionKind<'a>>,
    sub_resource: Option<Str<'a>>,
    namespace: Option<Str<'a>>,
    operation: Option<Str<'a>>,
    object: ObjectIn<'a>,
}

#[derive(Default)]
enum ObjectIn<'a> {
    #[default]
    Absent,
    /// Read with the kind's template path (`None`: it has no template).
    Located(Option<Located<'a>>),
    /// Not a kind we handle: skipped unread.
    Skipped,
    /// Seen before `kind`: kept to read once the kind is known.
    Raw(&'a RawValue),
}

impl<'de: 'a, 'a> Deserialize<'de> for RequestIn<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RequestVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for RequestVisitor<'a> {
            type Value = RequestIn<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an AdmissionRequest object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut request = RequestIn::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str() {
                        "uid" => request.uid = map.next_value()?,
                        "kind" => request.kind = map.next_value()?,
                        "subResource" => request.sub_resource = map.next_value()?,
                        "namespace" => request.namespace = map.next_value()?,
                        "operation" => request.operation = map.next_value()?,
                        "object" => {
                            request.object = match request.kind.as_ref().map(|k| kinds_lookup(k)) {
                                Some(Some(kind)) => {
                                    ObjectIn::Located(map.next_value_seed(LocateSeed {
                                        path: kind.template_path,
                                    })?)
                                }
                                Some(None) => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                    ObjectIn::Skipped
                                }
                                None => ObjectIn::Raw(map.next_value()?),
                            }
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(request)
            }
        }
        deserializer.deserialize_map(RequestVisitor(std::marker::PhantomData))
    }
}

fn kinds_lookup(kind: &GroupVersionKind<'_>) -> Option<&'static PodBearingKind> {
    kinds::lookup(
        kind.group.as_ref().map_or("", Str::as_str),
        kind.kind.as_ref().map_or("", Str::as_str),
    )
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

/// Resolves one object of a pod-bearing kind, given as JSON text:
/// `Ok(None)` when nothing needs to change. Used by the `resolve` command.
pub fn mutate(
    object: &str,
    kind: &PodBearingKind,
    namespace: &str,
    write: WriteKind,
    index: &Index,
) -> Result<Option<Mutation>, MutateError> {
    let located = crate::pod_template::locate(object, kind.template_path).map_err(|e| {
        MutateError::Malformed {
            kind: kind.kind,
            message: e.to_string(),
        }
    })?;
    match located {
        Some(located) => mutate_located(&located, kind, namespace, write, index),
        None => Ok(None),
    }
}

/// Resolves an object whose pod template has been located.
pub fn mutate_located(
    located: &Located<'_>,
    kind: &PodBearingKind,
    namespace: &str,
    write: WriteKind,
    index: &Index,
) -> Result<Option<Mutation>, MutateError> {
    let template = kinds::resolution_input(located);
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
    let review: ReviewIn<'_> =
        serde_json::from_slice(body).map_err(|e| AdmissionError::Malformed(e.to_string()))?;
    let api_version = review.api_version.as_ref().map_or("", Str::as_str);
    let kind = review.kind.as_ref().map_or("", Str::as_str);
    if api_version != API_VERSION || kind != "AdmissionReview" {
        return Err(AdmissionError::UnsupportedVersion(format!(
            "{api_version}/{kind}"
        )));
    }
    let request = review
        .request
        .ok_or_else(|| AdmissionError::Malformed("request is missing".into()))?;
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
    let uid = request
        .uid
        .ok_or_else(|| AdmissionError::Malformed("uid is missing".into()))?;
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
    let Some(kind) = request.kind.as_ref().and_then(kinds_lookup) else {
        return allow(uid);
    };
    let update = match request.operation.as_ref().map(Str::as_str) {
        Some("CREATE") => false,
        Some("UPDATE") => true,
        _ => return allow(uid),
    };
    let sub_resource = request.sub_resource.as_ref().map_or("", Str::as_str);
    let write = match (sub_resource, kind.kind) {
        ("", "Pod") if update => WriteKind::PodUpdate,
        ("", _) => WriteKind::Full,
        ("ephemeralcontainers", "Pod") => WriteKind::EphemeralContainers,
        _ => return allow(uid),
    };
    let malformed =
        |e: serde_json::Error| AdmissionError::Malformed(format!("request.object: {e}"));
    let located = match request.object {
        ObjectIn::Located(located) => located,
        ObjectIn::Raw(raw) => {
            crate::pod_template::locate(raw.get(), kind.template_path).map_err(malformed)?
        }
        ObjectIn::Absent | ObjectIn::Skipped => None,
    };
    let Some(located) = located else {
        return allow(uid);
    };
    let namespace = request
        .namespace
        .as_ref()
        .map(Str::as_str)
        .filter(|ns| !ns.is_empty())
        .or_else(|| located.namespace())
        .unwrap_or("");

    match mutate_located(&located, kind, namespace, write, index) {
        Ok(None) => allow(uid),
        Ok(Some(mutation)) => {
            let patch = match serde_json::to_vec(&mutation.patch) {
                Ok(patch) => patch,
                // Serializing plain strings cannot fail; if it ever did,
                // deny rather than admit an unresolvable image.
                Err(e) => {
                    return Ok(deny(uid, format!("internal error encoding patch: {e}")));
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
                uid,
                allowed: true,
                patch_type: Some("JSONPatch"),
                patch: Some(STANDARD.encode(patch)),
                warnings,
                audit_annotations: BTreeMap::from([("resolved-images", resolved)]),
                ..ResponseOut::default()
            };
            Ok((response, Outcome::Mutated))
        }
        Err(MutateError::Denied(denial)) => Ok(deny(uid, format!("registry-resolver: {denial}"))),
        Err(malformed @ MutateError::Malformed { .. }) => {
            Err(AdmissionError::Malformed(malformed.to_string()))
        }
    }
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
