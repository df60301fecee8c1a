//! Between cluster objects and the registry record the rest of the
//! program works with (API responses, the webhook's index).

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::crd::ImageRegistry;
use super::status::{self, ConditionType};
use crate::excerpt::excerpt;
use crate::registry::{
    PullSecretState, Reach, Registry, RegistryStatus, Server, TlsOptions, check_dns1123_label,
    pull_secret_name_problem,
};

/// Username and password from a `kubernetes.io/basic-auth` Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Reads a basic-auth Secret; `None` when it lacks either key.
pub fn basic_auth(secret: &Secret) -> Option<BasicAuth> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    Some(BasicAuth {
        username: text("username").filter(|u| !u.is_empty())?,
        password: text("password").filter(|p| !p.is_empty())?,
    })
}

fn chrono_time(time: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(
        time.0.as_second(),
        u32::try_from(time.0.subsec_nanosecond()).unwrap_or(0),
    )
}

/// When the object's spec (not its status) was last written.
fn last_spec_write(meta: &ObjectMeta) -> Option<DateTime<Utc>> {
    let created = meta.creation_timestamp.as_ref().and_then(chrono_time);
    let written = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.subresource.as_deref() != Some("status"))
        .filter_map(|entry| entry.time.as_ref().and_then(chrono_time))
        .max();
    created.max(written)
}

/// Why an ImageRegistry object does not make a record. Names are held
/// quoted (see `Excerpt::quoted`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidObject {
    #[error("ImageRegistry without a name")]
    NoName,
    #[error("ImageRegistry name: {0}")]
    Name(crate::registry::NameError),
    /// A spec field the API would refuse, with the API's message.
    #[error("ImageRegistry {registry}: {field}: {message}")]
    Field {
        registry: String,
        field: String,
        message: String,
    },
    #[error("ImageRegistry {registry}: {problem}")]
    Server {
        registry: String,
        problem: crate::registry::ServerError,
    },
}

/// The record for an ImageRegistry and its credentials (if any).
pub fn to_record(
    object: &ImageRegistry,
    credentials: Option<(&BasicAuth, &Secret)>,
) -> Result<Registry, InvalidObject> {
    let name = object.metadata.name.clone().ok_or(InvalidObject::NoName)?;
    let spec = &object.spec;
    // The API refuses these on write; objects applied to the cluster
    // directly are checked here, so no record with an unusable name or
    // pull Secret name reaches the webhook.
    check_dns1123_label(&name).map_err(InvalidObject::Name)?;
    let field = |field: &str, message: String| InvalidObject::Field {
        registry: excerpt(&name).quoted(),
        field: field.to_owned(),
        message,
    };
    let reach = Reach {
        namespaces: &spec.namespaces,
        default_for: &spec.default_for,
        namespace_selector: spec.namespace_selector.as_ref(),
        default_for_selector: spec.default_for_selector.as_ref(),
    };
    let first = match reach.problems() {
        Err(oversized) => oversized.into_iter().next(),
        Ok(problems) => problems.into_iter().next(),
    };
    if let Some(problem) = first.or_else(|| {
        spec.pull_secret_name
            .as_deref()
            .and_then(pull_secret_name_problem)
    }) {
        return Err(field(&problem.field, problem.message));
    }
    // Stored as the API would store them: upstreams canonical.
    let mirror_of = match crate::mirror::validate(&spec.mirror_of) {
        Ok(entries) => entries,
        Err(problems) => {
            let (at, problem) = &problems[0];
            return Err(field(&format!("mirrorOf{at}"), problem.to_string()));
        }
    };
    let server = Server::parse(&spec.server).map_err(|problem| InvalidObject::Server {
        registry: excerpt(&name).quoted(),
        problem,
    })?;
    let created = object
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(chrono_time)
        .unwrap_or(DateTime::UNIX_EPOCH);
    // Edits of the Secret count as edits of the record: caches keyed by the
    // record's version must not outlive a password change.
    let updated = last_spec_write(&object.metadata)
        .max(credentials.and_then(|(_, secret)| last_spec_write(&secret.metadata)))
        .unwrap_or(created);
    let verified = object
        .status
        .as_ref()
        .and_then(|s| status::find(&s.conditions, ConditionType::Verified));
    Ok(Registry {
        name: name.clone(),
        version: object.metadata.resource_version.clone().unwrap_or_default(),
        server: server.to_string(),
        username: credentials.map(|(auth, _)| auth.username.clone()),
        has_password: credentials.is_some(),
        description: spec.description.clone(),
        namespaces: spec.namespaces.clone(),
        default_for: spec.default_for.clone(),
        namespace_selector: spec.namespace_selector.clone(),
        default_for_selector: spec.default_for_selector.clone(),
        tls: spec
            .tls
            .as_ref()
            .map(|t| TlsOptions {
                ca_bundle: t.ca_bundle.clone(),
                insecure_skip_verify: t.insecure_skip_verify,
            })
            .unwrap_or_default(),
        pull_secret_name: spec.pull_secret_name.clone().unwrap_or(name),
        pin_digests: spec.pin_digests,
        browse: spec.browse,
        mirror_of,
        created_at: created,
        updated_at: updated,
        status: RegistryStatus {
            verified: verified.is_some_and(status::holds),
            last_verified_at: object
                .status
                .as_ref()
                .and_then(|s| s.last_verified_at.as_deref())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            message: verified
                .map(|c| c.message.clone())
                .filter(|m| !m.is_empty()),
        },
        node_trust: object.status.as_ref().and_then(|s| s.node_trust.clone()),
        // Only a registry with credentials has pull Secrets to place.
        pull_secrets: credentials.and(object.status.as_ref()).map(|observed| {
            let replicated = status::find(&observed.conditions, ConditionType::Replicated);
            let mut state = PullSecretState::placed(
                &spec.namespaces,
                observed.replicated_namespaces.clone(),
                replicated.is_some_and(status::holds),
                // While it is in progress the count says it, in the
                // reader's language.
                replicated
                    .filter(|c| {
                        !status::holds(c)
                            && !c.message.is_empty()
                            && c.reason != status::IN_PROGRESS
                    })
                    .map(|c| c.message.clone()),
                observed.replication,
            );
            state.replicating = replicated.is_some_and(|c| c.reason == status::IN_PROGRESS);
            state
        }),
    })
}

/// The records node trust is made from: every ImageRegistry not being
/// deleted whose spec converts. Credentials play no part in trust, so a
/// record whose Secret is missing still gets its nodes configured.
pub fn trust_records(objects: &[std::sync::Arc<ImageRegistry>]) -> Vec<Registry> {
    objects
        .iter()
        .filter(|object| object.metadata.deletion_timestamp.is_none())
        .filter_map(|object| to_record(object, None).ok())
        .collect()
}

/// `defaultFor` entries another registry claims ahead of this one, by the
/// index's one precedence rule (the older registry keeps a contested entry),
/// with the reason for the losing registry's status. Records are left as
/// written: the index applies the same rule when it resolves.
pub fn contested_defaults(records: &[Registry]) -> Vec<(String, RecordProblem)> {
    crate::index::outranked_claims(records)
        .into_iter()
        .map(|(registry, entry, holder)| {
            (registry, RecordProblem::DefaultOutranked { entry, holder })
        })
        .collect()
}

/// Why an ImageRegistry cannot be used as written; its status says so.
/// Decisions (the condition's reason) follow the variant, never the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    #[error("credentials Secret {0:?} not found")]
    CredentialsMissing(String),
    #[error("credentials Secret {0:?} has no non-empty username and password")]
    CredentialsIncomplete(String),
    /// The spec does not convert (an invalid server, name, entry…).
    #[error(transparent)]
    Invalid(InvalidObject),
    /// A `defaultFor` entry another record claims ahead of this one.
    #[error("namespace {entry:?} already has default registry {holder:?}")]
    DefaultOutranked { entry: String, holder: String },
}

impl RecordProblem {
    /// The `Accepted` condition's reason; the most telling of several
    /// problems is the one with the highest rank.
    pub fn condition_reason(&self) -> (u8, &'static str) {
        match self {
            Self::DefaultOutranked { .. } => (3, "DefaultConflict"),
            Self::CredentialsMissing(_) | Self::CredentialsIncomplete(_) => {
                (2, "CredentialsMissing")
            }
            Self::Invalid(_) => (1, "Invalid"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str, created: &str, default_for: &[&str]) -> ImageRegistry {
        serde_json::from_value(json!({
            "apiVersion": "registry-resolver.io/v1alpha1", "kind": "ImageRegistry",
            "metadata": {"name": name, "uid": "u-1", "generation": 2, "creationTimestamp": created,
                "managedFields": [
                    {"manager": "kubectl", "operation": "Apply", "apiVersion": "registry-resolver.io/v1alpha1", "time": "2026-11-02T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {}},
                    {"manager": "registry-resolver", "operation": "Update", "apiVersion": "registry-resolver.io/v1alpha1", "time": "2026-11-09T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {}, "subresource": "status"}
                ]},
            "spec": {"server": "Harbor.Example.com:8443/library", "namespaces": ["a", "b"], "defaultFor": default_for,
                     "credentialsSecretRef": {"name": format!("{name}-credentials")}},
            "status": {"conditions": [{"type": "Verified", "status": "True", "reason": "LoginSucceeded", "message": "login succeeded",
                                       "lastTransitionTime": "2026-11-03T00:00:00Z"}],
                       "lastVerifiedAt": "2026-11-03T00:00:00Z"}
        }))
        .expect("ImageRegistry")
    }

    fn credentials() -> Secret {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": "c", "namespace": "rr", "creationTimestamp": "2026-11-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2026-11-05T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {}}]},
            "data": {"username": "cm9ib3Q=", "password": "czNjcmV0"}}))
        .expect("Secret")
    }

    #[test]
    fn converts_objects_and_credentials() {
        let secret = credentials();
        let auth = basic_auth(&secret).expect("basic auth");
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("robot", "s3cret")
        );
        assert!(!format!("{auth:?}").contains("s3cret"));
        let record = to_record(
            &object("harbor", "2026-11-01T00:00:00Z", &["a"]),
            Some((&auth, &secret)),
        )
        .expect("record");
        assert_eq!(record.server, "https://harbor.example.com:8443/library");
        assert_eq!(record.username.as_deref(), Some("robot"));
        assert!(record.has_password && record.has_credentials());
        assert_eq!(record.pull_secret_name, "harbor");
        assert!(record.status.verified);
        // The spec edit (11-02) and the Secret edit (11-05) count; the status write (11-09) does not.
        assert_eq!(record.updated_at.to_rfc3339(), "2026-11-05T00:00:00+00:00");
        let public = to_record(&object("pub", "2026-11-01T00:00:00Z", &[]), None).expect("record");
        assert!(!public.has_credentials());
    }

    #[test]
    fn objects_with_unusable_names_never_become_records() {
        let dotted = object("a.b", "2026-11-01T00:00:00Z", &[]);
        let error = to_record(&dotted, None).expect_err("a record name is a DNS-1123 label");
        assert!(matches!(error, InvalidObject::Name(_)), "{error}");
        assert!(error.to_string().contains("ImageRegistry name"), "{error}");
        for secret in ["", "Pull_Secret"] {
            let mut bad = object("harbor", "2026-11-01T00:00:00Z", &[]);
            bad.spec.pull_secret_name = Some(secret.into());
            let error = to_record(&bad, None).expect_err("pullSecretName is checked");
            assert!(
                matches!(&error, InvalidObject::Field { field, .. } if field == "pullSecretName"),
                "{error}"
            );
        }
        let mut many = object("harbor", "2026-11-01T00:00:00Z", &[]);
        many.spec.namespaces = (0..=crate::registry::NAMESPACES_MAX)
            .map(|i| format!("ns-{i}"))
            .collect();
        let error = to_record(&many, None).expect_err("too many namespaces");
        assert!(error.to_string().contains("at most"), "{error}");
    }

    #[test]
    fn the_older_registry_keeps_a_contested_default() {
        let records = vec![
            to_record(&object("newer", "2026-11-02T00:00:00Z", &["a"]), None).expect("record"),
            to_record(&object("older", "2026-11-01T00:00:00Z", &["a", "b"]), None).expect("record"),
        ];
        let dropped = contested_defaults(&records);
        // Left as written; the index settles it by the same rule.
        assert_eq!(records[0].default_for, ["a"]);
        assert_eq!(
            crate::index::Index::build(&records)
                .default_registry("a")
                .as_deref(),
            Some("older")
        );
        assert_eq!(
            dropped,
            [(
                "newer".to_string(),
                RecordProblem::DefaultOutranked {
                    entry: "a".into(),
                    holder: "older".into()
                }
            )]
        );
    }
}
