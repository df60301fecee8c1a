//! The AdmissionReview response for a decision: the patch, what it did in
//! words (warnings, audit annotations), or the denial.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Outcome;
use super::decision::Mutation;
use super::wire::{ResponseOut, StatusOut};
use crate::excerpt::{MESSAGE_CHARS, shorten};
use crate::resolve::Choice;

/// The patch buffer's starting size: three images, a pull secret and the
/// original-images annotation come to about 700 bytes.
const PATCH_CAPACITY: usize = 1024;

pub(super) fn mutated(uid: String, mutation: Mutation) -> (ResponseOut, Outcome) {
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

pub(super) fn deny(uid: String, message: String) -> (ResponseOut, Outcome) {
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
