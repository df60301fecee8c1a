//! The registry record: what the API returns, what it accepts, and the rules
//! that turn the second into the first.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::server::Server;
use crate::excerpt::excerpt;
use crate::mirror::{MirrorEntry, MirrorError};
use crate::selector::SelectorInput;

/// Most characters accepted for free text fields.
const DESCRIPTION_MAX: usize = 1024;
const USERNAME_MAX: usize = 255;
const PASSWORD_MAX: usize = 4096;
/// Most namespaces one record may list (in `namespaces`, and in
/// `defaultFor`): far above any real project list, and low enough that a
/// record stays a small object in the store and in the cluster.
pub const NAMESPACES_MAX: usize = 5000;

/// A registry record as the API returns it. The password is never here:
/// `hasPassword` says whether one is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    /// DNS-1123 label, unique, immutable.
    #[schema(example = "demo")]
    pub name: String,
    /// Changes with every write to the record (its status included); never
    /// reused, not even by a record deleted and created again. `GET` sends it
    /// as the `ETag`; `PUT`, `PATCH` and `DELETE` take it in `If-Match`.
    #[serde(default)]
    #[schema(example = "42")]
    pub version: String,
    /// Normalized address with its scheme: `http://` is a plain-HTTP registry.
    #[schema(example = "https://dockerhub.qingcloud.com")]
    pub server: String,
    /// The user to log in as (a Harbor robot account, say); absent for an
    /// anonymous registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Whether a password is stored; the password itself is never returned.
    pub has_password: bool,
    /// Free text for people, at most 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Namespaces ("projects") this registry is authorized for.
    pub namespaces: Vec<String>,
    /// Namespaces where this registry fills in registry-relative images that name no registry.
    pub default_for: Vec<String>,
    /// Kubernetes mode: namespaces authorized by their labels, besides `namespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LabelSelectorDoc>)]
    pub namespace_selector: Option<LabelSelector>,
    /// Kubernetes mode: namespaces, chosen by their labels, where this registry is
    /// the default (where it is also authorized); after claims by name or pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LabelSelectorDoc>)]
    pub default_for_selector: Option<LabelSelector>,
    /// How the registry's certificate is checked, by us and by the nodes.
    pub tls: TlsOptions,
    /// The `kubernetes.io/dockerconfigjson` Secret injected into workloads.
    pub pull_secret_name: String,
    /// Rewrite `host/path:tag` to `host/path:tag@sha256:…` at admission.
    #[serde(default)]
    pub pin_digests: bool,
    /// How repositories are listed for the image picker.
    #[serde(default)]
    pub browse: BrowseMethod,
    /// Upstream registries this one mirrors (a Harbor proxy-cache project,
    /// a pull-through cache): their images are pulled through it in the
    /// namespaces it is authorized for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror_of: Vec<MirrorEntry>,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// When its settings (or, in Kubernetes mode, its credentials) were
    /// last written; a status change alone does not move it.
    pub updated_at: DateTime<Utc>,
    /// The outcome of the last connectivity check, with its `health`.
    #[serde(serialize_with = "RegistryStatus::serialize_with_health")]
    #[schema(value_type = RegistryStatusView)]
    pub status: RegistryStatus,
    /// In Kubernetes mode, for a registry with credentials: where its pull
    /// Secret is in place (from the ImageRegistry's status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secrets: Option<PullSecretState>,
    /// In Kubernetes mode with the node agent, for a registry that needs
    /// node trust: how many nodes have it configured (from the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_trust: Option<NodeTrustStatus>,
}

/// A registry's trust across the nodes, for its status.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct NodeTrustStatus {
    /// Nodes whose agent has reported.
    pub nodes: u32,
    /// Nodes with the current trust material in place.
    pub configured: u32,
    /// Nodes that could not put it in place.
    pub failed: u32,
    /// Up to ten failing nodes and why, by node name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_nodes: Vec<FailedNode>,
}

/// A node whose agent could not put a registry's trust in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ToSchema)]
pub struct FailedNode {
    /// The node's name, as its agent reported it.
    pub node: String,
    /// Why, as the agent reported it.
    pub message: String,
}

/// Where a registry's pull Secret has been replicated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullSecretState {
    /// Authorized namespaces that have the pull Secret.
    pub replicated_namespaces: Vec<String>,
    /// Every authorized namespace has it.
    pub ready: bool,
    /// Why not, when not (conflicting or failed namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For each entry of the record's `namespaces` (a name or a pattern),
    /// the namespaces it reaches that have the pull Secret.
    #[serde(default)]
    pub by_entry: Vec<EntryPlacement>,
    /// How far replication has got, counted as it goes: a rotation or a
    /// record for thousands of namespaces is written at the paced rate,
    /// and this says how much of it is done. Absent until the leader has
    /// reconciled the record once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ReplicationProgress>,
    /// The leader is writing the pull Secrets now: `progress` moves.
    /// Once it is done, a `progress` short of `authorized` is what could
    /// not be placed (`message` says why).
    #[serde(default)]
    pub replicating: bool,
}

/// How far a record's pull Secrets are in line.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    ToSchema,
)]
pub struct ReplicationProgress {
    /// Authorized namespaces whose pull Secret holds the record's current
    /// credentials.
    pub replicated: u32,
    /// The namespaces the record is authorized for (names, patterns and
    /// selector), as the cluster has them now.
    pub authorized: u32,
}

/// Where one `namespaces` entry's pull Secret is in place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EntryPlacement {
    /// The entry: a namespace name, `prefix*` or `*`.
    pub entry: String,
    /// The namespaces it reaches that have the pull Secret.
    pub namespaces: Vec<String>,
}

impl PullSecretState {
    /// The state from the namespaces that have the pull Secret, placed
    /// under each of `entries` that reaches them.
    pub fn placed(
        entries: &[String],
        replicated_namespaces: Vec<String>,
        ready: bool,
        message: Option<String>,
        progress: Option<ReplicationProgress>,
    ) -> Self {
        let by_entry = entries
            .iter()
            .map(|entry| EntryPlacement {
                entry: entry.clone(),
                namespaces: replicated_namespaces
                    .iter()
                    .filter(|ns| crate::namespaces::reaches(std::slice::from_ref(entry), ns))
                    .cloned()
                    .collect(),
            })
            .collect();
        Self {
            replicated_namespaces,
            ready,
            message,
            by_entry,
            progress,
            replicating: false,
        }
    }
}

impl Registry {
    /// Whether workloads using this registry need its pull secret.
    pub fn has_credentials(&self) -> bool {
        self.username.is_some() && self.has_password
    }

    /// The stored, normalized server, parsed. Records only enter the store
    /// through validation, so this fails only on a corrupted store.
    pub fn parsed_server(&self) -> Result<Server, super::server::ServerError> {
        Server::parse(&self.server)
    }
}

/// How a registry's TLS certificate is checked, by us and by the nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsOptions {
    /// PEM certificates trusted for this registry only (a private CA, as Harbor often uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "-----BEGIN CERTIFICATE-----")]
    pub ca_bundle: Option<String>,
    /// Skip certificate verification. Ignored when `caBundle` is given.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// How a registry's certificate is checked, as its [`TlsOptions`] decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateCheck {
    /// Against the system's CA certificates.
    SystemRoots,
    /// Against the system's and the record's own CA certificates.
    PrivateCa,
    /// Not checked (`insecureSkipVerify` without a CA bundle).
    Skipped,
}

impl TlsOptions {
    /// How the certificate is checked: a CA bundle wins over
    /// `insecureSkipVerify`, since the record says whom to trust.
    pub fn certificate_check(&self) -> CertificateCheck {
        match (&self.ca_bundle, self.insecure_skip_verify) {
            (Some(_), _) => CertificateCheck::PrivateCa,
            (None, true) => CertificateCheck::Skipped,
            (None, false) => CertificateCheck::SystemRoots,
        }
    }
}

/// How the image picker lists a registry's repositories. Tags always come
/// from the registry API (`/v2/<name>/tags/list`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BrowseMethod {
    /// Harbor's API when the registry is a Harbor (its public
    /// `systeminfo` says so), else the catalog; a registry (or account) that
    /// refuses both gets `browse_unsupported`, and the picker a path field.
    #[default]
    Auto,
    /// `/v2/_catalog` (the Distribution registry; Harbor for its admins).
    Catalog,
    /// Harbor's own API, which lists what a project robot account may see,
    /// and tags by push time.
    Harbor,
    /// Docker Hub's repository search (public repositories), for Docker Hub
    /// and mirrors of it; tags come from the record's own server.
    Dockerhub,
    /// No listing: the picker offers a path field with tag completion.
    None,
}

/// Connectivity status, filled in by registry verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatus {
    /// Whether the last check succeeded; `false` as well when none was made
    /// (then `lastVerifiedAt` is absent).
    pub verified: bool,
    /// When the last check was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_at: Option<DateTime<Utc>>,
    /// The outcome in words: `login succeeded`, why the check failed, or
    /// why none was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a record's last check says, in one word: what the console's chips
/// and the picker's order show, and what `sort=status` orders by (failed
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// The last check failed.
    Failed,
    /// No check was made (saved with `verify=false`, or never checked).
    Unchecked,
    /// The last check succeeded.
    Verified,
}

impl RegistryStatus {
    /// The status in one word.
    pub fn health(&self) -> Health {
        match (self.verified, &self.last_verified_at) {
            (true, _) => Health::Verified,
            (false, Some(_)) => Health::Failed,
            (false, None) => Health::Unchecked,
        }
    }

    /// The status as a record carries it in the API: with its health, so
    /// no client works it out again (reading ignores it).
    pub fn serialize_with_health<S: serde::Serializer>(
        status: &RegistryStatus,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct WithHealth<'a> {
            #[serde(flatten)]
            status: &'a RegistryStatus,
            health: Health,
        }
        WithHealth {
            status,
            health: status.health(),
        }
        .serialize(serializer)
    }
}

// [`RegistryStatus`] as a record carries it (`serialize_with_health`), for
// the OpenAPI document. Schema only.
/// Connectivity status, filled in by registry verification, with its health
/// in one word.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RegistryStatus)]
pub struct RegistryStatusView {
    /// Whether the last check succeeded; `false` as well when none was made
    /// (then `lastVerifiedAt` is absent).
    pub verified: bool,
    /// When the last check was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_verified_at: Option<DateTime<Utc>>,
    /// The outcome in words: `login succeeded`, why the check failed, or
    /// why none was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The status in one word.
    pub health: Health,
}

/// The body of `POST /registries` and `PUT /registries/{name}`.
///
/// Read-only fields of [`Registry`] (`hasPassword`, `createdAt`, `updatedAt`,
/// `status`, `pullSecrets`) are accepted and ignored so a client can send
/// back what it read. Any other field is refused when the document is read
/// with [`crate::json`], as the API and `import` read it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryInput {
    /// Required on create; on PUT, when given, the name in the URL.
    #[schema(
        example = "demo",
        required = true,
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length = 63
    )]
    pub name: Option<String>,
    /// `host[:port][/path]`, with `http://` for a plain-HTTP registry.
    #[schema(
        example = "dockerhub.qingcloud.com",
        required = true,
        min_length = 1,
        max_length = 255
    )]
    pub server: Option<String>,
    /// The user to log in as; empty or absent for an anonymous registry.
    /// With it, `password` is required on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub username: Option<String>,
    /// Write-only. On PUT, omitting it keeps the stored password unless `server` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// Free text for people; empty means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    /// At most 5000; at least one unless `namespaceSelector` is given.
    #[schema(example = json!(["team-a"]), value_type = Vec<Dns1123Label>, required = true, max_items = 5000)]
    pub namespaces: Option<Vec<String>>,
    /// Each one also in `namespaces`; at most 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Dns1123Label>>, max_items = 5000)]
    pub default_for: Option<Vec<String>>,
    /// Kubernetes mode only (the embedded store answers 422): namespaces
    /// authorized by their labels, as a `LabelSelector` or in the short
    /// form `kubectl -l` takes (`kubesphere.io/workspace=ws1,env in
    /// (prod,stage),!legacy`); records keep the structured form. An empty
    /// selector is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SelectorInputDoc>)]
    pub namespace_selector: Option<SelectorInput>,
    /// Kubernetes mode only: the default where these labels match and the
    /// registry is authorized; either form, as `namespaceSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SelectorInputDoc>)]
    pub default_for_selector: Option<SelectorInput>,
    /// How the registry's certificate is checked; verified as usual when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsOptions>,
    /// A DNS-1123 subdomain; the record's name when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        max_length = 253
    )]
    pub pull_secret_name: Option<String>,
    /// Pin tags to digests at admission (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_digests: Option<bool>,
    /// How repositories are listed for the image picker (default `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browse: Option<BrowseMethod>,
    /// Upstream registries this one mirrors; at most 16, each upstream
    /// once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_of: Option<Vec<MirrorEntry>>,
    /// Read-only in [`Registry`]: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub has_password: Option<serde_json::Value>,
    /// Read-only in [`Registry`]: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub created_at: Option<serde_json::Value>,
    /// Read-only in [`Registry`]: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub updated_at: Option<serde_json::Value>,
    /// Read-only in [`Registry`]: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub status: Option<serde_json::Value>,
    /// Read-only in [`Registry`]: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub pull_secrets: Option<serde_json::Value>,
    /// Ignored: a precondition goes in `If-Match`.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub version: Option<serde_json::Value>,
    /// Read-only in [`Registry`]: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub node_trust: Option<serde_json::Value>,
    /// Read-only in the API's answers (what the server concludes from the
    /// record): accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub needs_node_trust: Option<serde_json::Value>,
    /// Read-only in the API's answers: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub certificate_check: Option<serde_json::Value>,
    /// Read-only in the API's answers (send the short form as
    /// `namespaceSelector`): accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub namespace_selector_text: Option<serde_json::Value>,
    /// Read-only in the API's answers: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub default_for_selector_text: Option<serde_json::Value>,
}

impl From<&Registry> for RegistryInput {
    /// The record as an input document (without the password): the base a
    /// merge patch is applied to.
    fn from(r: &Registry) -> Self {
        Self {
            name: Some(r.name.clone()),
            server: Some(r.server.clone()),
            username: r.username.clone(),
            password: None,
            description: r.description.clone(),
            namespaces: Some(r.namespaces.clone()),
            default_for: Some(r.default_for.clone()),
            namespace_selector: r.namespace_selector.clone().map(SelectorInput::from),
            default_for_selector: r.default_for_selector.clone().map(SelectorInput::from),
            tls: Some(r.tls.clone()),
            pull_secret_name: Some(r.pull_secret_name.clone()),
            pin_digests: Some(r.pin_digests),
            browse: Some(r.browse),
            mirror_of: Some(r.mirror_of.clone()),
            ..Self::default()
        }
    }
}

/// A password that never prints itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Password)]
pub struct Password(String);

impl Password {
    /// Wraps a password given in the clear.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The password in the clear: for logging in and for pull Secrets,
    /// never for a log line or a response.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What a write does to the stored password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    /// Store this password, replacing any stored one.
    Set(Password),
    /// Keep the stored one (PUT without a password). Refused by the store when
    /// the server changes: stored credentials are never sent to a new address.
    Keep,
    /// The record has no credentials.
    Clear,
}

/// A validated create or replace request.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrySpec {
    /// The record's name: a DNS-1123 label, the URL's on replace.
    pub name: String,
    /// The registry's address, parsed and normalized.
    pub server: Server,
    /// The user to log in as; `None` for an anonymous registry (an empty
    /// one is dropped).
    pub username: Option<String>,
    /// What the write does to the stored password.
    pub password: PasswordChange,
    /// Free text, at most 1024 characters; `None` when empty.
    pub description: Option<String>,
    /// Names and patterns the registry is authorized for, duplicates
    /// dropped; empty only when `namespace_selector` is given.
    pub namespaces: Vec<String>,
    /// Names and patterns where it is the default, each reached by
    /// `namespaces`; duplicates dropped.
    pub default_for: Vec<String>,
    /// Namespaces authorized by their labels (Kubernetes mode); never an
    /// empty selector.
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces, chosen by their labels, where it is the default
    /// (Kubernetes mode).
    pub default_for_selector: Option<LabelSelector>,
    /// Certificate options; a CA bundle, when given, holds a usable CA
    /// certificate.
    pub tls: TlsOptions,
    /// The pull Secret's name: the one given, or the record's name.
    pub pull_secret_name: String,
    /// Pin every tag resolved to this registry to its digest at admission.
    pub pin_digests: bool,
    /// How the image picker lists repositories.
    pub browse: BrowseMethod,
    /// Upstream registries it mirrors, upstreams canonical.
    pub mirror_of: Vec<MirrorEntry>,
    /// The outcome of a connectivity check made for this write; `None`
    /// keeps the stored status, or resets it when the connection changes.
    pub status: Option<RegistryStatus>,
}

impl RegistrySpec {
    /// Would this write change how we reach or log in to the registry?
    /// Then its verification status no longer holds.
    pub fn changes_connection(&self, old: &Registry) -> bool {
        self.server.to_string() != old.server
            || self.username != old.username
            || match self.password {
                PasswordChange::Set(_) => true,
                PasswordChange::Clear => old.has_password,
                PasswordChange::Keep => false,
            }
            || self.tls != old.tls
    }

    /// Whether the record has a password once this write is made over
    /// `previous` (`None` for a create).
    pub fn has_password_after(&self, previous: Option<&Registry>) -> bool {
        match self.password {
            PasswordChange::Set(_) => true,
            PasswordChange::Clear => false,
            PasswordChange::Keep => previous.is_some_and(|old| old.has_password),
        }
    }

    /// The record this write leaves, over `previous` (`None` for a
    /// create), at `version` and time `now`: what the embedded store saves
    /// and what a dry run answers. Selectors are kept as given (the
    /// service refuses them where namespaces have no labels); cluster-side
    /// state (pull Secrets, node trust) stays what `previous` had.
    pub fn to_record(
        &self,
        version: String,
        previous: Option<&Registry>,
        now: DateTime<Utc>,
    ) -> Registry {
        Registry {
            name: self.name.clone(),
            version,
            server: self.server.to_string(),
            username: self.username.clone(),
            has_password: self.has_password_after(previous),
            description: self.description.clone(),
            namespaces: self.namespaces.clone(),
            default_for: self.default_for.clone(),
            namespace_selector: self.namespace_selector.clone(),
            default_for_selector: self.default_for_selector.clone(),
            tls: self.tls.clone(),
            pull_secret_name: self.pull_secret_name.clone(),
            pin_digests: self.pin_digests,
            browse: self.browse,
            mirror_of: self.mirror_of.clone(),
            created_at: previous.map_or(now, |old| old.created_at),
            updated_at: now,
            status: match (&self.status, previous) {
                (Some(status), _) => status.clone(),
                (None, Some(old)) => old.status.clone(),
                (None, None) => RegistryStatus::default(),
            },
            pull_secrets: previous.and_then(|old| old.pull_secrets.clone()),
            node_trust: previous.and_then(|old| old.node_trust.clone()),
        }
    }
}

/// One problem with one field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the offending field, e.g. `namespaces[1]`.
    pub field: String,
    /// What kind of problem it is: a stable code a client can say in its
    /// own language (the message is English, and more specific).
    pub reason: Reason,
    /// What is wrong with it, for the person who sent it.
    pub message: String,
}

/// The kinds of problem a field can have, as [`FieldError::reason`] names
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Missing, and needed (with what else was given).
    Required,
    /// Given, but empty.
    Empty,
    /// Longer than its limit.
    TooLong,
    /// A list with more entries than its limit.
    TooMany,
    /// Cannot change once the record exists (its name).
    Immutable,
    /// Not a DNS-1123 label (record and namespace names).
    NotDns1123Label,
    /// Not a DNS-1123 subdomain (Secret names).
    NotDns1123Subdomain,
    /// Not a namespace pattern (`team-*`, `*`).
    NotPattern,
    /// A default namespace the record is not authorized for.
    NotReached,
    /// A character the field cannot hold (`:` or control characters in a
    /// username).
    InvalidCharacter,
    /// Not a registry address: scheme, syntax, parts an address must not
    /// have, or its path prefix.
    InvalidServer,
    /// A label selector Kubernetes would refuse.
    InvalidSelector,
    /// A CA bundle with no usable CA certificate.
    InvalidCa,
    /// The same value as an earlier entry (a mirrored registry).
    Duplicate,
    /// Not a repository path, or the beginning of one (a mirror's path
    /// prefix or excludes).
    InvalidPath,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason,
            message: message.into(),
        }
    }
}

/// Every problem found in a request body, each with its field; displayed
/// as `field: message; field: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors(pub Vec<FieldError>);

/// Whether a body creates a record or replaces one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `POST`: the name comes from the body, and a username needs a
    /// password.
    Create,
    /// `PUT`: the name is the URL's, and a password left out keeps the
    /// stored one.
    Replace,
}

impl RegistryInput {
    /// Checks every field and returns the spec, or every problem found.
    /// `path_name` is the `{name}` of the URL on replace.
    pub fn validate(
        self,
        mode: WriteMode,
        path_name: Option<&str>,
    ) -> Result<RegistrySpec, ValidationErrors> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, reason: Reason, message: String| {
            errors.push(FieldError::new(field, reason, message))
        };

        let name = match (self.name, path_name) {
            (Some(body), Some(path)) if body != path => {
                fail(
                    "name",
                    Reason::Immutable,
                    format!(
                        "name is immutable: the URL names {:?}, the body {:?}",
                        excerpt(path),
                        excerpt(&body)
                    ),
                );
                Some(path.to_owned())
            }
            (_, Some(path)) => Some(path.to_owned()),
            (Some(body), None) => Some(body),
            (None, None) => {
                fail("name", Reason::Required, "required".into());
                None
            }
        };
        // An empty name is refused like any invalid one: a record that
        // cannot be named in a URL could never be read, changed or deleted.
        if let Some(Err(problem)) = name.as_deref().map(check_dns1123_label) {
            fail("name", problem.reason(), problem.to_string());
        }
        let name = name.unwrap_or_default();

        let server = match self.server.as_deref().map(Server::parse) {
            Some(Ok(server)) => Some(server),
            Some(Err(e)) => {
                fail("server", e.reason(), e.to_string());
                None
            }
            None => {
                fail("server", Reason::Required, "required".into());
                None
            }
        };

        let username = self.username.filter(|u| !u.is_empty());
        if let Some(user) = &username {
            if user.len() > USERNAME_MAX {
                fail(
                    "username",
                    Reason::TooLong,
                    format!("longer than {USERNAME_MAX} characters"),
                );
            }
            if user.contains(':') {
                fail(
                    "username",
                    Reason::InvalidCharacter,
                    "must not contain ':'".into(),
                );
            }
            if user.chars().any(char::is_control) {
                fail(
                    "username",
                    Reason::InvalidCharacter,
                    "must not contain control characters".into(),
                );
            }
        }
        let password = match (&username, self.password) {
            (Some(_), Some(p)) if p.expose().is_empty() => {
                fail("password", Reason::Empty, "must not be empty".into());
                PasswordChange::Clear
            }
            (Some(_), Some(p)) if p.expose().len() > PASSWORD_MAX => {
                fail(
                    "password",
                    Reason::TooLong,
                    format!("longer than {PASSWORD_MAX} characters"),
                );
                PasswordChange::Clear
            }
            (Some(_), Some(p)) => PasswordChange::Set(p),
            (Some(_), None) if mode == WriteMode::Create => {
                fail(
                    "password",
                    Reason::Required,
                    "required when username is given".into(),
                );
                PasswordChange::Clear
            }
            (Some(_), None) => PasswordChange::Keep,
            (None, Some(_)) => {
                fail(
                    "username",
                    Reason::Required,
                    "required when password is given".into(),
                );
                PasswordChange::Clear
            }
            (None, None) => PasswordChange::Clear,
        };

        let description = self.description.filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > DESCRIPTION_MAX)
        {
            fail(
                "description",
                Reason::TooLong,
                format!("longer than {DESCRIPTION_MAX} characters"),
            );
        }

        let namespaces = self.namespaces.unwrap_or_default();
        let default_for = self.default_for.unwrap_or_default();
        let mut structured = |field: &str, given: Option<SelectorInput>| {
            given.and_then(|given| match given.into_selector() {
                Ok(wire) => Some(wire),
                Err(problem) => {
                    fail(field, Reason::InvalidSelector, problem.to_string());
                    None
                }
            })
        };
        let namespace_selector = structured("namespaceSelector", self.namespace_selector);
        let default_for_selector = structured("defaultForSelector", self.default_for_selector);
        let reach = Reach {
            namespaces: &namespaces,
            default_for: &default_for,
            namespace_selector: namespace_selector.as_ref(),
            default_for_selector: default_for_selector.as_ref(),
        };
        match reach.problems() {
            Err(oversized) => {
                errors.extend(oversized);
                return Err(ValidationErrors(errors));
            }
            Ok(problems) => errors.extend(problems),
        }
        let mut fail = |field: &str, reason: Reason, message: String| {
            errors.push(FieldError::new(field, reason, message))
        };
        let (namespaces, default_for) = (dedup(namespaces), dedup(default_for));

        let tls = self.tls.unwrap_or_default();
        if let Some(pem) = &tls.ca_bundle
            && let Err(problem) = check_ca_bundle(pem)
        {
            fail("tls.caBundle", Reason::InvalidCa, problem.to_string());
        }

        // Defaulted from the name, it is only as valid as the name, which
        // was checked above: report one problem once.
        let pull_secret_name = match self.pull_secret_name {
            Some(given) => {
                if let Some(problem) = pull_secret_name_problem(&given) {
                    errors.push(problem);
                }
                given
            }
            None => name.clone(),
        };

        let mirror_of = match crate::mirror::validate(self.mirror_of.as_deref().unwrap_or_default())
        {
            // A registry that mirrors its own address would send its images
            // through itself again, a prefix deeper each time.
            Ok(entries)
                if let Some(i) = entries.iter().position(|e| {
                    server
                        .as_ref()
                        .is_some_and(|server| server.host == e.upstream)
                }) =>
            {
                errors.push(FieldError::new(
                    format!("mirrorOf[{i}].upstream"),
                    Reason::InvalidServer,
                    "is this registry's own address: a registry cannot mirror itself",
                ));
                Vec::new()
            }
            Ok(entries) => entries,
            Err(problems) => {
                errors.extend(problems.into_iter().map(|(field, problem)| {
                    FieldError::new(
                        format!("mirrorOf{field}"),
                        mirror_reason(&problem),
                        problem.to_string(),
                    )
                }));
                Vec::new()
            }
        };

        match server {
            Some(server) if errors.is_empty() => Ok(RegistrySpec {
                name,
                server,
                username,
                password,
                description,
                namespaces,
                default_for,
                namespace_selector,
                default_for_selector,
                tls,
                pull_secret_name,
                pin_digests: self.pin_digests.unwrap_or(false),
                browse: self.browse.unwrap_or_default(),
                mirror_of,
                status: None,
            }),
            _ => Err(ValidationErrors(errors)),
        }
    }
}

/// The kind of problem a `mirrorOf` entry has.
fn mirror_reason(problem: &MirrorError) -> Reason {
    match problem {
        MirrorError::TooManyEntries | MirrorError::TooManyExcludes => Reason::TooMany,
        MirrorError::NoUpstream => Reason::Required,
        MirrorError::Upstream(_) => Reason::InvalidServer,
        MirrorError::Duplicate(_) => Reason::Duplicate,
        MirrorError::PathPrefix(_) | MirrorError::Exclude(_) => Reason::InvalidPath,
    }
}

/// The items in their first-seen order, each once; linear time.
pub fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

/// Whom a record reaches, as written: the part of a record the API checks
/// on every write and the cluster side checks again on every ImageRegistry
/// read (objects applied with kubectl never passed the API), by the one
/// function [`Reach::problems`].
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// `namespaces`, as written (not deduplicated).
    pub namespaces: &'a [String],
    /// `defaultFor`, as written.
    pub default_for: &'a [String],
    /// `namespaceSelector`.
    pub namespace_selector: Option<&'a LabelSelector>,
    /// `defaultForSelector`.
    pub default_for_selector: Option<&'a LabelSelector>,
}

impl Reach<'_> {
    /// Every problem, by field path. `Err` when a list is over
    /// [`NAMESPACES_MAX`]: its entries were not looked at (an oversized
    /// list costs one comparison), and nothing else should be done with it.
    pub fn problems(&self) -> Result<Vec<FieldError>, Vec<FieldError>> {
        let problem =
            |field: &str, reason: Reason, message: String| FieldError::new(field, reason, message);
        let oversized: Vec<FieldError> = [
            ("namespaces", self.namespaces),
            ("defaultFor", self.default_for),
        ]
        .into_iter()
        .filter(|(_, list)| list.len() > NAMESPACES_MAX)
        .map(|(field, list)| {
            problem(
                field,
                Reason::TooMany,
                format!("at most {NAMESPACES_MAX} namespaces (got {})", list.len()),
            )
        })
        .collect();
        if !oversized.is_empty() {
            return Err(oversized);
        }
        let mut problems = Vec::new();
        if self.namespaces.is_empty() && self.namespace_selector.is_none() {
            problems.push(problem(
                "namespaces",
                Reason::Required,
                "at least one namespace is required (or a namespaceSelector)".into(),
            ));
        }
        problems.extend(namespace_entry_errors(self.namespaces, self.default_for));
        for (field, selector) in [
            ("namespaceSelector", self.namespace_selector),
            ("defaultForSelector", self.default_for_selector),
        ] {
            for (part, message) in selector.into_iter().flat_map(crate::selector::problems) {
                let at = if part.is_empty() {
                    field.to_owned()
                } else {
                    format!("{field}.{part}")
                };
                problems.push(FieldError::new(at, Reason::InvalidSelector, message));
            }
        }
        Ok(problems)
    }
}

/// What is wrong with a `pullSecretName` someone gave, if anything.
pub fn pull_secret_name_problem(given: &str) -> Option<FieldError> {
    check_dns1123_subdomain(given).err().map(|problem| {
        FieldError::new(
            "pullSecretName",
            problem.reason(),
            format!("{problem}; leave it out to use the record's name"),
        )
    })
}

/// What is wrong with a record's `namespaces` and `defaultFor` entries, by
/// field: each entry must be a name or a pattern, and each default must be
/// reached by `namespaces` (by the same name, or by a pattern whose prefix
/// begins it). The API and the cluster's records are checked by this one
/// function. Each default is checked by looking up each of its beginnings
/// (at most 63), not by pairing every entry with every other.
pub fn namespace_entry_errors(namespaces: &[String], default_for: &[String]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (field, list) in [("namespaces", namespaces), ("defaultFor", default_for)] {
        for (i, entry) in list.iter().enumerate() {
            if let Err(problem) = crate::namespaces::check_entry(entry) {
                errors.push(FieldError::new(
                    format!("{field}[{i}]"),
                    problem.reason(),
                    problem.to_string(),
                ));
            }
        }
    }
    let authorized: HashSet<&str> = namespaces.iter().map(String::as_str).collect();
    for (i, ns) in default_for.iter().enumerate() {
        let stem = ns.strip_suffix('*').unwrap_or(ns);
        let covered = authorized.contains(ns.as_str())
            || (0..=stem.len()).any(|k| {
                stem.get(..k)
                    .is_some_and(|prefix| authorized.contains(format!("{prefix}*").as_str()))
            });
        if !covered {
            errors.push(FieldError::new(
                format!("defaultFor[{i}]"),
                Reason::NotReached,
                format!("namespace {:?} is not reached by namespaces", excerpt(ns)),
            ));
        }
    }
    errors
}

/// [`check_dns1123_label`] as JSON Schema says it, for the OpenAPI document
/// (a test holds the two to the same answers).
pub const DNS1123_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A label selector as the API takes it, in the OpenAPI document: the
/// structured form, or the short form as a string. Schema only.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = SelectorInput)]
#[allow(
    dead_code,
    reason = "describes `SelectorInput` in the OpenAPI document"
)]
pub enum SelectorInputDoc {
    /// `{"matchLabels": …, "matchExpressions": …}`.
    Structured(LabelSelectorDoc),
    /// The short form `kubectl -l` takes: `key=value`, `key!=value`,
    /// `key in (a,b)`, `key notin (a,b)`, `key`, `!key`, separated by `,`.
    #[schema(example = "kubesphere.io/workspace=ws1,env in (prod,stage)")]
    Text(String),
}

/// A Kubernetes label selector (`metav1.LabelSelector`) in the OpenAPI
/// document; values are k8s-openapi's own type. Schema only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LabelSelector)]
pub struct LabelSelectorDoc {
    /// Labels a namespace must carry, each with this value; at most 32.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<std::collections::BTreeMap<String, String>>,
    /// Requirements a namespace's labels must all meet.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 32)]
    pub match_expressions: Option<Vec<LabelSelectorRequirementDoc>>,
}

/// One requirement of a label selector.
#[derive(Serialize, ToSchema)]
#[schema(as = LabelSelectorRequirement)]
pub struct LabelSelectorRequirementDoc {
    #[schema(min_length = 1, max_length = 317)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[schema(pattern = "^(In|NotIn|Exists|DoesNotExist)$")]
    pub operator: String,
    /// Required for `In` and `NotIn`, empty otherwise; at most 64.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64)]
    pub values: Option<Vec<String>>,
}

/// A name or namespace in the OpenAPI document: a string that passes
/// [`check_dns1123_label`]. Schema only; values stay `String`s.
pub struct Dns1123Label;

impl utoipa::PartialSchema for Dns1123Label {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(DNS1123_LABEL_PATTERN))
            .min_length(Some(1))
            .max_length(Some(63))
            .into()
    }
}

impl ToSchema for Dns1123Label {}

/// Why a name is not one Kubernetes accepts. Values are quoted as an
/// excerpt: they come from requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing was given.
    #[error("must not be empty")]
    Empty,
    /// Longer than the limit: 63 characters for a label, 253 for a
    /// subdomain.
    #[error("{value} is longer than {max} characters")]
    TooLong {
        /// The value, quoted (see `Excerpt::quoted`).
        value: String,
        /// The limit, in characters.
        max: usize,
    },
    /// Not a DNS-1123 label, as namespace and record names must be; holds
    /// the value, quoted.
    #[error(
        "{0} is not a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"
    )]
    NotLabel(String),
    /// Not a DNS-1123 subdomain, as Secret names and label key prefixes
    /// must be; holds the value, quoted.
    #[error("{0} is not a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'")]
    NotSubdomain(String),
}

impl NameError {
    /// The kind of problem, for [`FieldError::reason`].
    pub fn reason(&self) -> Reason {
        match self {
            Self::Empty => Reason::Empty,
            Self::TooLong { .. } => Reason::TooLong,
            Self::NotLabel(_) => Reason::NotDns1123Label,
            Self::NotSubdomain(_) => Reason::NotDns1123Subdomain,
        }
    }
}

/// RFC 1123 label, as Kubernetes checks namespace and object names.
pub fn check_dns1123_label(value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty);
    }
    let quoted = || excerpt(value).quoted();
    if value.len() > 63 {
        return Err(NameError::TooLong {
            value: quoted(),
            max: 63,
        });
    }
    if !is_label(value) {
        return Err(NameError::NotLabel(quoted()));
    }
    Ok(())
}

/// RFC 1123 subdomain, as Kubernetes checks Secret names.
pub fn check_dns1123_subdomain(value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty);
    }
    let quoted = || excerpt(value).quoted();
    if value.len() > 253 {
        return Err(NameError::TooLong {
            value: quoted(),
            max: 253,
        });
    }
    if !value.split('.').all(is_label) {
        return Err(NameError::NotSubdomain(quoted()));
    }
    Ok(())
}

fn is_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// Why a CA bundle cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaBundleError {
    #[error("not valid PEM: {0}")]
    NotPem(String),
    #[error("certificate {position} is not a usable CA certificate: {reason}")]
    NotCa { position: usize, reason: String },
    #[error("contains no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    Empty,
}

/// The bundle must hold at least one certificate a TLS client could trust.
fn check_ca_bundle(pem: &str) -> Result<(), CaBundleError> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| CaBundleError::NotPem(e.to_string()))?;
        roots.add(cert).map_err(|e| CaBundleError::NotCa {
            position: count + 1,
            reason: e.to_string(),
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(CaBundleError::Empty);
    }
    Ok(())
}

/// The username and password of a registry, for the registry client and
/// pull-secret writers; never for API responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry user (a Harbor robot account's full name, say).
    pub username: String,
    /// Its password or token.
    pub password: Password,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one word for a status, as the API sends it beside the status
    /// (and `sort=status` orders by): failed, unchecked, verified.
    #[test]
    fn a_status_says_its_health_and_carries_it_in_the_api() {
        let failed = RegistryStatus {
            verified: false,
            last_verified_at: Some(Utc::now()),
            message: Some("connection refused".into()),
        };
        let cases = [
            (RegistryStatus::default(), Health::Unchecked),
            (failed, Health::Failed),
            (
                RegistryStatus {
                    verified: true,
                    ..RegistryStatus::default()
                },
                Health::Verified,
            ),
        ];
        for (status, health) in cases {
            assert_eq!(status.health(), health, "{status:?}");
            let mut json = serde_json::Value::Null;
            if let Ok(value) =
                RegistryStatus::serialize_with_health(&status, serde_json::value::Serializer)
            {
                json = value;
            }
            assert_eq!(
                json["health"],
                serde_json::to_value(health).unwrap_or_default()
            );
            assert_eq!(json["verified"], status.verified);
            // Read back, the word is ignored: it is worked out again.
            let read: RegistryStatus = serde_json::from_value(json).unwrap_or_default();
            assert_eq!(read, status);
        }
        assert!(Health::Failed < Health::Unchecked && Health::Unchecked < Health::Verified);
    }

    /// A CA bundle wins over `insecureSkipVerify`: the record says whom to
    /// trust. The client and the API's `certificateCheck` both ask this.
    #[test]
    fn a_ca_bundle_wins_over_skipping_verification() {
        let tls = |ca: Option<&str>, skip: bool| TlsOptions {
            ca_bundle: ca.map(str::to_owned),
            insecure_skip_verify: skip,
        };
        assert_eq!(
            tls(None, false).certificate_check(),
            CertificateCheck::SystemRoots
        );
        assert_eq!(
            tls(None, true).certificate_check(),
            CertificateCheck::Skipped
        );
        assert_eq!(
            tls(Some("pem"), true).certificate_check(),
            CertificateCheck::PrivateCa
        );
        assert_eq!(
            tls(Some("pem"), false).certificate_check(),
            CertificateCheck::PrivateCa
        );
    }

    /// Each `namespaces` entry with the namespaces it reaches that have the
    /// pull Secret: what the console shows beside each entry.
    #[test]
    fn pull_secrets_are_placed_under_the_entries_that_reach_them() {
        let entries = ["team-*".to_owned(), "ops".to_owned(), "missing".to_owned()];
        let state = PullSecretState::placed(
            &entries,
            vec!["ops".into(), "team-a".into(), "team-b".into(), "web".into()],
            false,
            None,
            None,
        );
        let placed: Vec<(&str, Vec<&str>)> = state
            .by_entry
            .iter()
            .map(|p| {
                (
                    p.entry.as_str(),
                    p.namespaces.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            placed,
            [
                ("team-*", vec!["team-a", "team-b"]),
                ("ops", vec!["ops"]),
                ("missing", vec![]),
            ]
        );
    }

    fn input(json: serde_json::Value) -> RegistryInput {
        serde_json::from_value(json).expect("test input deserializes")
    }

    fn fields(result: Result<RegistrySpec, ValidationErrors>) -> Vec<String> {
        result
            .expect_err("validation should fail")
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn minimal_create_defaults_pull_secret_to_name() {
        let spec = input(serde_json::json!({
            "name": "demo", "server": "dockerhub.qingcloud.com", "namespaces": ["a", "b", "a"]
        }))
        .validate(WriteMode::Create, None)
        .expect("valid");
        assert_eq!(spec.pull_secret_name, "demo");
        assert_eq!(spec.namespaces, ["a", "b"], "duplicates are dropped");
        assert_eq!(spec.password, PasswordChange::Clear);
    }

    #[test]
    fn reports_every_invalid_field() {
        let got = fields(
            input(serde_json::json!({
                "name": "Demo_1", "server": "ftp://x", "namespaces": ["ok", "Bad"],
                "defaultFor": ["other"], "pullSecretName": "UPPER",
                "tls": {"caBundle": "not pem"}
            }))
            .validate(WriteMode::Create, None),
        );
        assert_eq!(
            got,
            [
                "name",
                "server",
                "namespaces[1]",
                "defaultFor[0]",
                "tls.caBundle",
                "pullSecretName"
            ]
        );
    }

    #[test]
    fn credentials_rules() {
        let base = serde_json::json!({"name": "r", "server": "r.example", "namespaces": ["a"]});
        let with = |extra: serde_json::Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            input(v)
        };
        assert_eq!(
            fields(with(serde_json::json!({"username": "u"})).validate(WriteMode::Create, None)),
            ["password"]
        );
        assert_eq!(
            fields(with(serde_json::json!({"password": "p"})).validate(WriteMode::Create, None)),
            ["username"]
        );
        assert_eq!(
            fields(
                with(serde_json::json!({"username": "a:b", "password": "p"}))
                    .validate(WriteMode::Create, None)
            ),
            ["username"]
        );
        let keep = with(serde_json::json!({"username": "u"}))
            .validate(WriteMode::Replace, Some("r"))
            .expect("replace may omit the password");
        assert_eq!(keep.password, PasswordChange::Keep);
        let set = with(serde_json::json!({"username": "u", "password": "p"}))
            .validate(WriteMode::Create, None)
            .expect("valid");
        assert_eq!(set.password, PasswordChange::Set(Password::new("p")));
    }

    #[test]
    fn name_is_immutable_on_replace() {
        let got = fields(
            input(serde_json::json!({"name": "other", "server": "r.example", "namespaces": ["a"]}))
                .validate(WriteMode::Replace, Some("r")),
        );
        assert_eq!(got, ["name"]);
    }

    #[test]
    fn password_debug_is_redacted() {
        assert_eq!(format!("{:?}", Password::new("hunter2")), "Password(***)");
    }

    #[test]
    fn dns_names() {
        assert!(check_dns1123_label("team-a").is_ok());
        assert!(check_dns1123_label(&"a".repeat(64)).is_err());
        assert!(check_dns1123_label("-a").is_err());
        assert!(check_dns1123_subdomain("pull.secret-1").is_ok());
        assert!(check_dns1123_subdomain("a..b").is_err());
    }
}
