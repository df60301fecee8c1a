//! The AdmissionReview response for a decision: the patch, what it did in
//! words (warnings, audit annotations), or the denial. Written straight
//! as JSON text (`json_out`): the answer is a fixed shape around a few
//! strings, and building a tree of it cost more than deciding it.

use std::fmt::{self, Write as _};

use super::decision::Mutation;
use super::json_out::JsonOut;
use super::{API_VERSION, Outcome};
use crate::excerpt::{MESSAGE_CHARS, shorten};
use crate::resolve::Choice;

/// The response buffer's starting size: a mutated 3-container
/// Deployment's answer is about 1.8 KB, so writing it does not grow the
/// buffer step by step.
const RESPONSE_CAPACITY: usize = 2048;

/// An answer being written: `{"apiVersion":…,"response":{"uid":…` so far.
pub(super) struct Answer {
    out: JsonOut,
}

impl Answer {
    /// Starts the answer to the review `uid`.
    pub(super) fn begin(uid: &str) -> Self {
        let mut out = JsonOut::with_capacity(RESPONSE_CAPACITY);
        out.raw(r#"{"apiVersion":"#);
        out.string(API_VERSION);
        out.raw(r#","kind":"AdmissionReview","response":{"uid":"#);
        out.string(uid);
        Self { out }
    }

    /// Admitted as it is.
    pub(super) fn allowed(mut self) -> Result<Vec<u8>, serde_json::Error> {
        self.out.raw(r#","allowed":true"#);
        self.finish()
    }

    /// Admitted with the mutation's patch, or as it is with its warnings
    /// when it changes nothing (an image left upstream because its mirror
    /// cannot serve it).
    pub(super) fn mutated(
        mut self,
        mutation: &Mutation,
    ) -> (Result<Vec<u8>, serde_json::Error>, Outcome) {
        let out = &mut self.out;
        out.raw(r#","allowed":true"#);
        if mutation.patch.is_empty() {
            let mut warnings = Warnings::new(out);
            for warning in &mutation.warnings {
                warnings.push(format_args!("registry-resolver: {warning}"));
            }
            warnings.end();
            return (self.finish(), Outcome::Allowed);
        }
        out.raw(r#","patchType":"JSONPatch","patch":"#);
        out.base64_string(mutation.patch.as_json());
        let resolution = &mutation.resolution;
        let mut warnings = Warnings::new(out);
        for r in &resolution.rewrites {
            let from: &dyn fmt::Display = match &r.choice {
                Choice::NamespaceDefault => &"namespace default",
                other => other,
            };
            warnings.push(format_args!(
                "registry-resolver: container {:?} image {:?} -> {:?} (registry {:?}, {from})",
                r.container, r.original, r.resolved, r.registry
            ));
        }
        if !resolution.add_pull_secrets.is_empty() {
            warnings.push(format_args!(
                "registry-resolver: added imagePullSecrets {}",
                resolution.add_pull_secrets.join(", ")
            ));
        }
        for warning in &mutation.warnings {
            warnings.push(format_args!("registry-resolver: {warning}"));
        }
        warnings.end();
        let mut resolved = String::new();
        for (i, r) in resolution.rewrites.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            // Writing into a String cannot fail.
            let _ = write!(resolved, "{comma}{}={}", r.container, r.resolved);
        }
        out.raw(r#","auditAnnotations":{"resolved-images":"#);
        out.string(&resolved);
        out.raw("}");
        (self.finish(), Outcome::Mutated)
    }

    /// Refused, with `message` (shortened: denials quote images and names
    /// from the object; the answer stays small).
    pub(super) fn denied(mut self, message: &str) -> Result<Vec<u8>, serde_json::Error> {
        let out = &mut self.out;
        out.raw(r#","allowed":false,"status":{"code":403,"status":"Failure","reason":"Forbidden","message":"#);
        out.string(&shorten(message, MESSAGE_CHARS));
        out.raw("}");
        self.finish()
    }

    fn finish(mut self) -> Result<Vec<u8>, serde_json::Error> {
        self.out.raw("}}");
        self.out.finish()
    }
}

/// The `warnings` list, written as each is said; left out when none is.
struct Warnings<'o> {
    out: &'o mut JsonOut,
    /// One warning's text, before it is written as a JSON string.
    text: String,
    count: usize,
}

impl<'o> Warnings<'o> {
    fn new(out: &'o mut JsonOut) -> Self {
        Self {
            out,
            text: String::new(),
            count: 0,
        }
    }

    fn push(&mut self, warning: fmt::Arguments<'_>) {
        self.text.clear();
        // Writing into a String cannot fail.
        let _ = self.text.write_fmt(warning);
        self.out.raw(if self.count == 0 {
            r#","warnings":["#
        } else {
            ","
        });
        self.out.string(&self.text);
        self.count += 1;
    }

    fn end(self) {
        if self.count > 0 {
            self.out.raw("]");
        }
    }
}
