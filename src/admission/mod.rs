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

use crate::excerpt::{MESSAGE_CHARS, excerpt, shorten};
use crate::index::Index;
use crate::pod_template::{LocateSeed, Located, Str};
pub use crate::resolve::DenialReason;
use crate::resolve::{self, Choice, Denial, Resolution, Scope};
pub use kinds::{HANDLED_KINDS, PodBearingKind};

pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Longest `request.uid` accepted (a Kubernetes UID is a 36-byte UUID).
const UID_MAX: usize = 128;

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
    /// Why, when denied.
    pub reason: Option<DenialReason>,
    /// The message of a denial, for the log.
    pub denial: Option<String>,
}

/// What a review is about, for its tracing span: the request's own fields,
/// borrowed from the body.
#[derive(Debug, Default, Clone, Copy)]
pub struct Subject<'a> {
    pub uid: &'a str,
    pub namespace: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub operation: &'a str,
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
    name: Option<Str<'a>>,
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
                        "name" => request.name = map.next_value()?,
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
    pub warnings: Vec<String>,
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

/// A resolution not yet turned into a patch: pinning may still change
/// its images, and add warnings.
#[derive(Debug)]
pub struct Plan<'a> {
    located: Located<'a>,
    kind: &'static PodBearingKind,
    write: WriteKind,
    pub resolution: Resolution,
    /// Said to the user beside the rewrites (e.g. a tag that could not be pinned).
    pub warnings: Vec<String>,
}

impl Plan<'_> {
    /// Whether any rewrite waits for a digest.
    pub fn needs_pinning(&self) -> bool {
        self.resolution.rewrites.iter().any(|r| r.pin.is_some())
    }

    /// The patch and what it does.
    pub fn into_mutation(self) -> Mutation {
        let annotate = self.write != WriteKind::EphemeralContainers;
        let patch = patch::build(
            &self.located.template,
            self.kind.template_path,
            &self.resolution,
            annotate,
        );
        Mutation {
            patch,
            resolution: self.resolution,
            warnings: self.warnings,
        }
    }
}

/// Locates and resolves one object of a pod-bearing kind given as JSON
/// text: `Ok(None)` when nothing needs to change. Used by `resolve`.
pub fn plan_object<'a>(
    object: &'a str,
    kind: &'static PodBearingKind,
    namespace: &str,
    write: WriteKind,
    index: &Index,
) -> Result<Option<Plan<'a>>, MutateError> {
    let located = crate::pod_template::locate(object, kind.template_path).map_err(|e| {
        MutateError::Malformed {
            kind: kind.kind,
            message: e.to_string(),
        }
    })?;
    match located {
        Some(located) => Ok(plan(located, kind, namespace, write, index)?),
        None => Ok(None),
    }
}

/// Resolves an object whose pod template has been located.
pub fn plan<'a>(
    located: Located<'a>,
    kind: &'static PodBearingKind,
    namespace: &str,
    write: WriteKind,
    index: &Index,
) -> Result<Option<Plan<'a>>, Denial> {
    let template = kinds::resolution_input(&located);
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
    drop(template);
    if resolution.is_empty() {
        return Ok(None);
    }
    // Where the store knows the cluster's pull Secrets, say so when one we
    // inject is not there yet: the pods would fail to pull until it is.
    let warnings = resolution
        .add_pull_secrets
        .iter()
        .filter(|secret| index.pull_secret_missing(namespace, secret))
        .map(|secret| {
            format!("pull secret {secret:?} is not yet present in namespace {namespace:?}; pods cannot pull until it is replicated")
        })
        .collect();
    Ok(Some(Plan {
        located,
        kind,
        write,
        resolution,
        warnings,
    }))
}

/// A review decoded and resolved, not yet answered: the webhook may pin
/// digests (I/O) between [`prepare`] and [`Prepared::finish`].
#[derive(Debug)]
pub struct Prepared<'a> {
    uid: String,
    pending: Pending<'a>,
    subject: SubjectIn<'a>,
}

/// The request fields a span names, kept from the decode.
#[derive(Debug, Default)]
struct SubjectIn<'a> {
    namespace: Option<Str<'a>>,
    kind: Option<Str<'a>>,
    name: Option<Str<'a>>,
    operation: Option<Str<'a>>,
}

// One short-lived value per review, on the stack: not worth a heap
// allocation to shrink the rare variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Pending<'a> {
    Allow,
    Deny(DenialReason, String),
    Mutate(Plan<'a>),
}

impl<'a> Prepared<'a> {
    /// The resolution about to be patched, if any.
    pub fn plan_mut(&mut self) -> Option<&mut Plan<'a>> {
        match &mut self.pending {
            Pending::Mutate(plan) => Some(plan),
            _ => None,
        }
    }

    /// Turns the answer into a denial.
    pub fn deny(&mut self, reason: DenialReason, message: String) {
        self.pending = Pending::Deny(reason, format!("registry-resolver: {message}"));
    }

    /// What the review is about.
    pub fn subject(&self) -> Subject<'_> {
        fn text<'s>(s: &'s Option<Str<'_>>) -> &'s str {
            s.as_ref().map_or("", Str::as_str)
        }
        Subject {
            uid: &self.uid,
            namespace: text(&self.subject.namespace),
            kind: text(&self.subject.kind),
            name: text(&self.subject.name),
            operation: text(&self.subject.operation),
        }
    }

    /// Encodes the AdmissionReview response.
    pub fn finish(self) -> Result<Reviewed, AdmissionError> {
        let (reason, denial) = match &self.pending {
            Pending::Deny(reason, message) => (Some(*reason), Some(message.clone())),
            _ => (None, None),
        };
        let (response, outcome) = match self.pending {
            Pending::Allow => (
                ResponseOut {
                    uid: self.uid,
                    allowed: true,
                    ..ResponseOut::default()
                },
                Outcome::Allowed,
            ),
            Pending::Deny(_, message) => deny(self.uid, message),
            Pending::Mutate(plan) => mutated(self.uid, plan.into_mutation()),
        };
        let body = serde_json::to_vec(&ReviewOut {
            api_version: API_VERSION,
            kind: "AdmissionReview",
            response,
        })
        .map_err(|e| AdmissionError::Malformed(e.to_string()))?;
        Ok(Reviewed {
            body,
            outcome,
            reason,
            denial,
        })
    }
}

/// Reviews one encoded AdmissionReview against the index snapshot, without
/// pinning digests.
pub fn review(body: &[u8], index: &Index) -> Result<Reviewed, AdmissionError> {
    prepare(body, index)?.finish()
}

/// Decodes a review and resolves its object against the index.
pub fn prepare<'a>(body: &'a [u8], index: &Index) -> Result<Prepared<'a>, AdmissionError> {
    // JSON is UTF-8 (RFC 8259). The decoder skips the parts of the object
    // we do not read without looking inside their strings, so check the
    // whole body first: a patch is only ever made for valid JSON. (Found by
    // fuzzing; the check costs well under a microsecond for a review.)
    let body = std::str::from_utf8(body)
        .map_err(|e| AdmissionError::Malformed(format!("the body is not UTF-8: {e}")))?;
    let review: ReviewIn<'a> =
        serde_json::from_str(body).map_err(|e| AdmissionError::Malformed(e.to_string()))?;
    let api_version = review.api_version.as_ref().map_or("", Str::as_str);
    let kind = review.kind.as_ref().map_or("", Str::as_str);
    if api_version != API_VERSION || kind != "AdmissionReview" {
        return Err(AdmissionError::UnsupportedVersion(format!(
            "{}/{}",
            excerpt(api_version),
            excerpt(kind)
        )));
    }
    let request = review
        .request
        .ok_or_else(|| AdmissionError::Malformed("request is missing".into()))?;
    let uid = request
        .uid
        .ok_or_else(|| AdmissionError::Malformed("uid is missing".into()))?;
    // The API server sends a UUID; the uid is echoed, so it is bounded.
    if uid.len() > UID_MAX {
        return Err(AdmissionError::Malformed(format!(
            "uid is longer than {UID_MAX} bytes"
        )));
    }
    let subject = SubjectIn {
        namespace: request.namespace.clone(),
        kind: request.kind.as_ref().and_then(|k| k.kind.clone()),
        name: request.name.clone(),
        operation: request.operation.clone(),
    };
    let allow = |uid: String, subject: SubjectIn<'a>| {
        Ok(Prepared {
            uid,
            pending: Pending::Allow,
            subject,
        })
    };
    let Some(kind) = request.kind.as_ref().and_then(kinds_lookup) else {
        return allow(uid, subject);
    };
    let update = match request.operation.as_ref().map(Str::as_str) {
        Some("CREATE") => false,
        Some("UPDATE") => true,
        _ => return allow(uid, subject),
    };
    let sub_resource = request.sub_resource.as_ref().map_or("", Str::as_str);
    let write = match (sub_resource, kind.kind) {
        ("", "Pod") if update => WriteKind::PodUpdate,
        ("", _) => WriteKind::Full,
        ("ephemeralcontainers", "Pod") => WriteKind::EphemeralContainers,
        _ => return allow(uid, subject),
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
        return allow(uid, subject);
    };
    let namespace = request
        .namespace
        .as_ref()
        .map(Str::as_str)
        .filter(|ns| !ns.is_empty())
        .or_else(|| located.namespace())
        .unwrap_or("")
        .to_owned();
    let pending = match plan(located, kind, &namespace, write, index) {
        Ok(None) => Pending::Allow,
        Ok(Some(plan)) => Pending::Mutate(plan),
        Err(denial) => Pending::Deny(denial.reason, format!("registry-resolver: {denial}")),
    };
    Ok(Prepared {
        uid,
        pending,
        subject,
    })
}

fn mutated(uid: String, mutation: Mutation) -> (ResponseOut, Outcome) {
    let patch = match serde_json::to_vec(&mutation.patch) {
        Ok(patch) => patch,
        // Serializing plain strings cannot fail; if it ever did, deny
        // rather than admit an unresolvable image.
        Err(e) => {
            return deny(
                uid,
                format!("registry-resolver: internal error encoding patch: {e}"),
            );
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

#[cfg(test)]
mod utf8_tests {
    use super::*;

    /// A review whose object holds invalid UTF-8 where we do not read is
    /// refused, not patched (a fuzzing finding).
    #[test]
    fn a_body_that_is_not_utf8_is_refused_even_where_it_is_not_read() {
        let index = Index::build(&[]);
        let mut body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"a","object":{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"x":"cpu"}},"spec":{"containers":[{"name":"c","image":"/a/b:1"}]}}}}"#.to_vec();
        let at = body.windows(3).position(|w| w == b"cpu").expect("cpu");
        body[at] = 0xBC;
        match review(&body, &index) {
            Err(error) => assert!(error.to_string().contains("not UTF-8"), "{error}"),
            Ok(_) => panic!("a body that is not UTF-8 was answered"),
        }
    }
}
