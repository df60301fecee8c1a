//! Where registry records live. The embedded SQLite store is the first
//! backend; every backend publishes its records into the [`IndexHandle`] on
//! every change so the webhook never queries it.
//!
//! [`IndexHandle`]: crate::index::IndexHandle

mod cipher;
mod sqlite;

pub use cipher::write_private_file;
pub use cipher::{Cipher, CipherError};
pub use sqlite::SqliteStore;

use async_trait::async_trait;

use crate::index::Index;
use crate::registry::audit::{AuditEntry, AuditPage, AuditQuery};
use crate::registry::{Registry, RegistrySpec, RegistryStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("registry {0:?} already exists")]
    AlreadyExists(String),
    #[error("registry {0:?} not found")]
    NotFound(String),
    #[error("namespace {namespace:?} already has default registry {registry:?}")]
    DefaultConflict { namespace: String, registry: String },
    /// The record changed between our read and our write; the client may retry.
    #[error("registry {0:?} was changed by someone else meanwhile; read it again and retry")]
    Modified(String),
    /// A field only a cluster gives meaning to (namespaces have labels
    /// only there).
    #[error("{0} needs Kubernetes mode: namespaces have labels only in a cluster")]
    NeedsCluster(&'static str),
    /// Storage failure. The message never contains a password.
    #[error("storage error: {0}")]
    Backend(#[source] BackendError),
}

impl StoreError {
    /// The API's stable error code for this failure (the API maps it to an
    /// HTTP status; the audit trail keeps it beside the message).
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyExists(_) => "already_exists",
            Self::NotFound(_) => "not_found",
            Self::DefaultConflict { .. } => "default_conflict",
            Self::Modified(_) => "conflict",
            Self::NeedsCluster(_) => "invalid",
            Self::Backend(_) => "internal",
        }
    }
}

/// A storage failure: what the store was doing and, when another error
/// caused it (SQLite, the cluster, the file system), that error, kept as
/// the source for logs and for callers that look at it. Its text is in the
/// message too, so a message shown alone is whole.
#[derive(Debug, thiserror::Error)]
#[error("{what}{}", cause(.source))]
pub struct BackendError {
    what: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

fn cause(source: &Option<Box<dyn std::error::Error + Send + Sync>>) -> String {
    source
        .as_ref()
        .map(|s| format!(": {s}"))
        .unwrap_or_default()
}

impl StoreError {
    /// A storage failure while doing `what`, caused by `source`.
    pub fn backend(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend(BackendError {
            what: what.into(),
            source: Some(source.into()),
        })
    }

    /// A storage failure the store found itself (a corrupt value, a
    /// missing file), with no error beneath it.
    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Backend(BackendError {
            what: what.into(),
            source: None,
        })
    }
}

pub use crate::registry::Credentials;

/// Where the trail is kept.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Keeps `entry`. The write it tells of has happened (or failed)
    /// already, so a failure here is logged by the caller, not returned to
    /// the writer.
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    async fn entries(&self, query: &AuditQuery) -> Result<AuditPage, StoreError>;
}

/// Deletion of several records at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchDeleted {
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
}

/// Refuses a `defaultFor` entry another record already claims: one default
/// per namespace name (and per pattern), whichever store keeps the records.
/// Reads the index's claims, so the cost follows `spec`, not the store.
/// Overlaps the precedence rule settles are the API's to warn about.
pub fn check_default_conflict(spec: &RegistrySpec, index: &Index) -> Result<(), StoreError> {
    match index.check_defaults(&spec.name, &spec.default_for).conflict {
        Some((namespace, registry)) => Err(StoreError::DefaultConflict {
            namespace,
            registry,
        }),
        None => Ok(()),
    }
}

/// Persistence only: the rules of a write live in
/// [`RegistryService`](crate::service::RegistryService), which calls these.
#[async_trait]
pub trait RegistryStore: AuditLog + Send + Sync + 'static {
    /// Writes a new record ([`StoreError::AlreadyExists`] if the name is
    /// taken). `spec.status` (or an unverified one) becomes its status.
    async fn create(&self, spec: RegistrySpec) -> Result<Registry, StoreError>;
    /// Replaces the record if it is still at `version` (compare-and-swap;
    /// else [`StoreError::Modified`]). [`PasswordChange::Keep`](crate::registry::PasswordChange) keeps what
    /// is stored; `spec.status` `None` keeps the stored status.
    async fn replace(&self, spec: RegistrySpec, version: &str) -> Result<Registry, StoreError>;
    /// Records the outcome of a connectivity check; nothing else changes.
    /// With `version`, only if the record is still at it.
    async fn set_status(
        &self,
        name: &str,
        status: RegistryStatus,
        version: Option<&str>,
    ) -> Result<Registry, StoreError>;
    async fn get(&self, name: &str) -> Result<Option<Registry>, StoreError>;
    /// Every record, sorted by name.
    async fn list(&self) -> Result<Vec<Registry>, StoreError>;
    /// `true` if it existed; with `version`, deleted only at that version
    /// (else [`StoreError::Modified`]).
    async fn delete(&self, name: &str, version: Option<&str>) -> Result<bool, StoreError>;
    /// Deletes each of `names`, which are distinct (the API de-duplicates).
    async fn delete_many(&self, names: Vec<String>) -> Result<BatchDeleted, StoreError>;
    async fn credentials(&self, name: &str) -> Result<Option<Credentials>, StoreError>;
    /// Namespaces to suggest when authorizing a registry: the cluster's, or
    /// (without a cluster) those the records already name; sorted.
    async fn namespace_names(&self) -> Result<Vec<String>, StoreError>;
    /// Whether the namespaces this store knows have labels, for selectors
    /// to match: only a cluster's do.
    fn namespaces_have_labels(&self) -> bool;
}
