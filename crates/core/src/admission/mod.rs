//! AdmissionReview v1 in, AdmissionReview v1 out.
//!
//! A request's path, from `server::mutate`: [`prepare`] decodes it
//! (`wire`), [`plan`] decides what the object needs (`decision`: locate the
//! pod template, resolve, or deny with a reason), the server may pin digests
//! into the plan, and [`Prepared::finish`] answers (`response`: the patch
//! and its warnings, or the denial). `review` does all of it without I/O.

mod decision;
mod json_out;
pub mod kinds;
pub mod patch;
#[cfg(any(test, feature = "testing"))]
pub mod reference;
mod response;
mod wire;

use crate::excerpt::excerpt;
use crate::index::Index;
use crate::pod_template::Str;
pub use crate::resolve::DenialReason;
pub use decision::{MutateError, Mutation, Plan, WriteKind, plan, plan_object};
pub use kinds::{HANDLED_KINDS, PodBearingKind};
use response::Answer;
use wire::{ObjectIn, ReviewIn, kinds_lookup};

/// The only AdmissionReview version served, in requests and responses.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Longest `request.uid` accepted (a Kubernetes UID is a 36-byte UUID).
pub const UID_MAX: usize = 128;

/// Why a body gets no AdmissionReview response at all: the webhook
/// answers it with an HTTP error instead.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The body is not UTF-8, so not JSON (RFC 8259).
    #[error("malformed AdmissionReview: the body is not UTF-8: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// Not JSON, or JSON of another shape than an AdmissionReview.
    #[error("malformed AdmissionReview: {0}")]
    Json(#[source] serde_json::Error),
    /// A field every review has is missing (`request`, `uid`).
    #[error("malformed AdmissionReview: {0} is missing")]
    Missing(&'static str),
    /// The `uid`, which the answer echoes, is over [`UID_MAX`] bytes.
    #[error("malformed AdmissionReview: uid is longer than {UID_MAX} bytes")]
    UidTooLong,
    /// `request.object` does not read where its kind keeps the pod template.
    #[error("malformed AdmissionReview: request.object: {0}")]
    Object(#[source] serde_json::Error),
    /// The answer could not be encoded (it never fails for the values we
    /// build, but the encoder's type says it may).
    #[error("encoding the AdmissionReview response: {0}")]
    Encode(#[source] serde_json::Error),
    /// Another `apiVersion`/`kind` than [`API_VERSION`]
    /// `AdmissionReview`; holds the pair sent, shortened.
    #[error("unsupported AdmissionReview {0}: only {API_VERSION} is served")]
    UnsupportedVersion(String),
}

/// What happened to one review, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted with a patch.
    Mutated,
    /// Admitted unchanged: nothing to resolve, or a kind or operation that
    /// is left alone.
    Allowed,
    /// Refused; [`Reviewed::reason`] says why.
    Denied,
}

impl Outcome {
    /// The outcome as metrics label it and logs say it (`mutated`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mutated => "mutated",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
        }
    }
}

/// A review answered: the response to send, and what it said.
pub struct Reviewed {
    /// The encoded AdmissionReview response.
    pub body: Vec<u8>,
    /// What the response does, for metrics and the review's span.
    pub outcome: Outcome,
    /// Why, when denied.
    pub reason: Option<DenialReason>,
    /// The message of a denial, for the log.
    pub denial: Option<String>,
    /// What mirrors did with the object's images, for the metrics.
    pub mirror_uses: Vec<crate::resolve::MirrorUse>,
}

/// What a review is about, for its tracing span: the request's own fields,
/// borrowed from the body.
#[derive(Debug, Default, Clone, Copy)]
pub struct Subject<'a> {
    /// `request.uid`, echoed in the response.
    pub uid: &'a str,
    /// `request.namespace`; empty when not sent (a cluster-scoped object).
    pub namespace: &'a str,
    /// `request.kind.kind` (`Deployment`); empty when not sent.
    pub kind: &'a str,
    /// `request.name`; empty when the object is not named yet
    /// (`generateName`).
    pub name: &'a str,
    /// `request.operation`: `CREATE`, `UPDATE`, …; empty when not sent.
    pub operation: &'a str,
}

/// A review decoded and resolved, not yet answered: the webhook may pin
/// digests (I/O) between [`prepare`] and [`Prepared::finish`].
#[derive(Debug)]
pub struct Prepared<'a> {
    uid: String,
    pending: Pending<'a>,
    subject: SubjectIn<'a>,
    mirror_uses: Vec<crate::resolve::MirrorUse>,
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

    /// Whether the answer is a denial.
    pub fn is_denied(&self) -> bool {
        matches!(self.pending, Pending::Deny(..))
    }

    /// Turns the answer into a denial.
    pub fn deny(&mut self, reason: DenialReason, message: String) {
        // Nothing of a refused object was pulled through a mirror.
        if let Pending::Mutate(plan) = &mut self.pending {
            self.mirror_uses = std::mem::take(&mut plan.resolution.mirror_uses);
            self.mirror_uses
                .retain(|used| used.outcome == crate::resolve::MirrorOutcome::Denied);
        }
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
    pub fn finish(mut self) -> Result<Reviewed, AdmissionError> {
        if let Pending::Mutate(plan) = &mut self.pending {
            self.mirror_uses = std::mem::take(&mut plan.resolution.mirror_uses);
        }
        let answer = Answer::begin(&self.uid);
        let (body, outcome, reason, denial) = match self.pending {
            Pending::Allow => (answer.allowed(), Outcome::Allowed, None, None),
            Pending::Deny(reason, message) => (
                answer.denied(&message),
                Outcome::Denied,
                Some(reason),
                Some(message),
            ),
            Pending::Mutate(plan) => match plan.into_mutation() {
                Ok(mutation) => {
                    let (body, outcome) = answer.mutated(&mutation);
                    (body, outcome, None, None)
                }
                // Writing plain strings cannot fail; if it ever did, deny
                // rather than admit an unresolvable image.
                Err(e) => {
                    let message = format!("registry-resolver: internal error encoding patch: {e}");
                    (answer.denied(&message), Outcome::Denied, None, None)
                }
            },
        };
        Ok(Reviewed {
            body: body.map_err(AdmissionError::Encode)?,
            outcome,
            reason,
            denial,
            mirror_uses: self.mirror_uses,
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
    let body = std::str::from_utf8(body).map_err(AdmissionError::NotUtf8)?;
    let review: ReviewIn<'a> = serde_json::from_str(body).map_err(AdmissionError::Json)?;
    let api_version = review.api_version.as_ref().map_or("", Str::as_str);
    let kind = review.kind.as_ref().map_or("", Str::as_str);
    if api_version != API_VERSION || kind != "AdmissionReview" {
        return Err(AdmissionError::UnsupportedVersion(format!(
            "{}/{}",
            excerpt(api_version),
            excerpt(kind)
        )));
    }
    let request = review.request.ok_or(AdmissionError::Missing("request"))?;
    let uid = request.uid.ok_or(AdmissionError::Missing("uid"))?;
    // The API server sends a UUID; the uid is echoed, so it is bounded.
    if uid.len() > UID_MAX {
        return Err(AdmissionError::UidTooLong);
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
            mirror_uses: Vec::new(),
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
    let located = match request.object {
        ObjectIn::Located(located) => located,
        ObjectIn::Raw(raw) => crate::pod_template::locate(raw.get(), kind.template_path)
            .map_err(AdmissionError::Object)?,
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
    let mut mirror_uses = Vec::new();
    let pending = match plan(located, kind, &namespace, write, index) {
        Ok(None) => Pending::Allow,
        // What mirrors did stays with the plan until it is answered:
        // lookups may still change it.
        Ok(Some(plan)) => Pending::Mutate(plan),
        Err(mut denial) => {
            mirror_uses = std::mem::take(&mut denial.mirror_uses);
            Pending::Deny(denial.reason, format!("registry-resolver: {denial}"))
        }
    };
    Ok(Prepared {
        uid,
        pending,
        subject,
        mirror_uses,
    })
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
