//! The audit trail: who changed which record, how, and whether it worked.
//! Each entry names the fields a write changed, never a value of theirs
//! (a password or a CA bundle never reaches the trail).
//!
//! The stores keep the trail (their `AuditLog`): the embedded store in a table
//! of its own, bounded; the cluster as Events on the ImageRegistry, which
//! `kubectl describe` shows. Every entry is also logged (target `audit`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::registry::{PasswordChange, Registry, RegistrySpec};

/// What a write did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    /// A record was created.
    Create,
    /// A record was replaced or patched.
    Update,
    /// A record was deleted.
    Delete,
    /// A re-check of a saved record, whose outcome became its status.
    Verify,
}

impl AuditAction {
    /// The action as the API and the stored entries spell it (`create`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Verify => "verify",
        }
    }

    /// "created", "updated", …: for logs and Events.
    pub fn past_tense(self) -> &'static str {
        match self {
            Self::Create => "created",
            Self::Update => "updated",
            Self::Delete => "deleted",
            Self::Verify => "verified",
        }
    }

    /// The action [`AuditAction::as_str`] spells as `text`, if any: for
    /// reading stored entries back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "create" => Self::Create,
            "update" => Self::Update,
            "delete" => Self::Delete,
            "verify" => Self::Verify,
            _ => return None,
        })
    }
}

/// One change, or one refused attempt at a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// When the write was made or refused.
    pub time: DateTime<Utc>,
    /// Who: the admin token (`admin`) on the embedded store, the user the
    /// cluster authenticated in Kubernetes mode, or the command (`import`,
    /// `reverify`).
    pub actor: String,
    /// What the write did, or would have done.
    pub action: AuditAction,
    /// The record written, by name.
    pub registry: String,
    /// The names of the fields the write changed (`password` when one was
    /// given), never their values.
    pub fields: Vec<String>,
    /// Whether it was committed.
    pub succeeded: bool,
    /// Why not, when it failed: the API's error code (`invalid`,
    /// `precondition_failed`, `password_required`, `unreachable`, …), for
    /// a reader to say in its own language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why not, when it failed, in the server's (English) words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Which entries, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this record's.
    pub registry: Option<String>,
    /// Most entries to return; the caller bounds it (the API's `limit`).
    pub limit: usize,
    /// Entries older than this position (a previous page's `next`).
    pub before: Option<String>,
}

/// A page of the trail.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    /// The entries, newest first; at most the query's `limit`.
    pub items: Vec<AuditEntry>,
    /// The position to ask `before` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// The fields `spec` changes in `current` (every field it sets, for a new
/// record), by their API names.
pub fn changed_fields(spec: &RegistrySpec, current: Option<&Registry>) -> Vec<String> {
    let mut fields = Vec::new();
    let mut note = |name: &str, changed: bool| {
        if changed {
            fields.push(name.to_owned());
        }
    };
    match current {
        None => {
            note("server", true);
            note("username", spec.username.is_some());
            note("password", matches!(spec.password, PasswordChange::Set(_)));
            note("description", spec.description.is_some());
            note("namespaces", !spec.namespaces.is_empty());
            note("defaultFor", !spec.default_for.is_empty());
            note("namespaceSelector", spec.namespace_selector.is_some());
            note("defaultForSelector", spec.default_for_selector.is_some());
            note("tls.caBundle", spec.tls.ca_bundle.is_some());
            note("tls.insecureSkipVerify", spec.tls.insecure_skip_verify);
            note("pullSecretName", spec.pull_secret_name != spec.name);
            note("pinDigests", spec.pin_digests);
            note("browse", spec.browse != Default::default());
            note("mirrorOf", !spec.mirror_of.is_empty());
        }
        Some(old) => {
            note("server", spec.server.to_string() != old.server);
            note("username", spec.username != old.username);
            note(
                "password",
                match spec.password {
                    PasswordChange::Set(_) => true,
                    PasswordChange::Clear => old.has_password,
                    PasswordChange::Keep => false,
                },
            );
            note("description", spec.description != old.description);
            note("namespaces", spec.namespaces != old.namespaces);
            note("defaultFor", spec.default_for != old.default_for);
            note(
                "namespaceSelector",
                spec.namespace_selector != old.namespace_selector,
            );
            note(
                "defaultForSelector",
                spec.default_for_selector != old.default_for_selector,
            );
            note("tls.caBundle", spec.tls.ca_bundle != old.tls.ca_bundle);
            note(
                "tls.insecureSkipVerify",
                spec.tls.insecure_skip_verify != old.tls.insecure_skip_verify,
            );
            note(
                "pullSecretName",
                spec.pull_secret_name != old.pull_secret_name,
            );
            note("pinDigests", spec.pin_digests != old.pin_digests);
            note("browse", spec.browse != old.browse);
            note("mirrorOf", spec.mirror_of != old.mirror_of);
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{RegistryInput, WriteMode};
    use serde_json::json;

    fn spec(body: serde_json::Value) -> RegistrySpec {
        serde_json::from_value::<RegistryInput>(body)
            .expect("input")
            .validate(WriteMode::Create, None)
            .expect("valid")
    }

    /// Names only: a password or a CA is named, never shown.
    #[test]
    fn changed_fields_name_what_changed_and_never_a_value() {
        let created = spec(
            json!({"name": "lab", "server": "r.example", "username": "u",
            "password": "hunter2-secret", "namespaces": ["a"]}),
        );
        let fields = changed_fields(&created, None);
        assert_eq!(fields, ["server", "username", "password", "namespaces"]);
        let record = Registry {
            name: "lab".into(),
            version: "1".into(),
            server: "https://r.example".into(),
            username: Some("u".into()),
            has_password: true,
            description: None,
            namespaces: vec!["a".into()],
            default_for: vec![],
            namespace_selector: None,
            default_for_selector: None,
            tls: Default::default(),
            pull_secret_name: "lab".into(),
            pin_digests: false,
            browse: Default::default(),
            mirror_of: vec![],
            created_at: Utc::now(),
            updated_at: Utc::now(),
            status: Default::default(),
            pull_secrets: None,
            node_trust: None,
        };
        let mut input = RegistryInput::from(&record);
        input.namespaces = Some(vec!["a".into(), "b".into()]);
        let ca = {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).expect("ca").pem()
        };
        let body_of_ca = ca.lines().nth(1).expect("a PEM line").to_owned();
        input.tls = Some(crate::registry::TlsOptions {
            ca_bundle: Some(ca),
            insecure_skip_verify: false,
        });
        input.password = Some(crate::registry::Password::new("new-secret"));
        let updated = input
            .validate(WriteMode::Replace, Some("lab"))
            .expect("valid");
        let fields = changed_fields(&updated, Some(&record));
        assert_eq!(fields, ["password", "namespaces", "tls.caBundle"]);
        let text = serde_json::to_string(&fields).expect("json");
        assert!(
            !text.contains("secret") && !text.contains(&body_of_ca),
            "{text}"
        );
    }
}
