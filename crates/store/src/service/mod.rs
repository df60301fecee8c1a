//! The one write path for registry records. The API, the console (through
//! the API), `import` and the cluster's re-verification all change records
//! here, in either store; the stores only persist (read, compare-and-swap,
//! delete).
//!
//! A write is: validate once, apply the password rule, check the registry
//! when the connection changes, then commit against the version read. When
//! someone else committed in between (the check can take seconds), the
//! edit is applied again to the record as it is now, and the registry is
//! checked again only if what the check depends on changed: two writers of
//! different fields both win, and a slow password change can never bring
//! back a namespace that was removed meanwhile.

use std::sync::Arc;

use crate::registry::audit;
pub use crate::registry::audit::{AuditAction, AuditEntry, AuditPage, AuditQuery};
pub use crate::registry::store::AuditLog;

use crate::index::IndexHandle;
use crate::registry::client::ConnectError;
use crate::registry::connectivity::Connectivity;
use crate::registry::store::{BatchDeleted, Credentials, RegistryStore, StoreError};
use crate::registry::{
    Password, PasswordChange, Registry, RegistryInput, RegistrySpec, RegistryStatus, TlsOptions,
    ValidationErrors, WriteMode,
};

/// How often an update is applied again after losing a race, before it
/// answers `conflict`: enough for any real contention on one record.
const ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry check failed: the record as given cannot be used.
    #[error("{0}")]
    CheckFailed(ConnectError),
    /// `If-Match` named another version than the record's.
    #[error("registry {name:?} is at version {current}, not {expected}: read it again")]
    PreconditionFailed {
        name: String,
        expected: String,
        current: String,
    },
    /// Lost the race to other writers every time it was tried.
    #[error("registry {0:?} kept changing while this write was applied; try again")]
    Conflict(String),
    /// A stored password would go somewhere the writer did not name:
    /// another address or another trust setting.
    #[error(
        "password is required because {what} changed: a stored password is never sent to a new address or trust setting"
    )]
    PasswordRequiredFor { what: &'static str },
    /// The update keeps the password, and none is stored.
    #[error("password is required: registry {0:?} has no stored password")]
    PasswordRequired(String),
}

/// An error with the API's stable code: what the audit trail keeps of a
/// refused write beside its message. The API's own error type has one for
/// what its edits refuse.
pub trait ErrorCode {
    fn code(&self) -> &'static str;
}

impl ErrorCode for WriteError {
    fn code(&self) -> &'static str {
        WriteError::code(self)
    }
}

impl WriteError {
    /// The API's stable error code for this refusal: what the API answers
    /// with, and what the audit trail keeps, so a reader can say it in its
    /// own language.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) | Self::PasswordRequired(_) => "invalid",
            Self::Store(error) => error.code(),
            Self::CheckFailed(error) => error.code(),
            Self::PreconditionFailed { .. } => "precondition_failed",
            Self::Conflict(_) => "conflict",
            Self::PasswordRequiredFor { .. } => "password_required",
        }
    }
}

/// Whether an update is committed or only answered as if it were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    Save,
    DryRun,
}

/// A committed write and what the writer should hear about it.
#[derive(Debug)]
pub struct Written {
    pub record: Registry,
    /// Default overlaps the precedence rule settles: allowed, and said.
    pub warnings: Vec<String>,
}

pub struct RegistryService {
    store: Arc<dyn RegistryStore>,
    index: Arc<IndexHandle>,
    connectivity: Arc<Connectivity>,
}

/// What a registry check was made with: a retry reuses its outcome while
/// these stay the same.
#[derive(PartialEq)]
struct Checked {
    server: String,
    tls: TlsOptions,
    username: Option<String>,
    password: Option<Password>,
}

impl RegistryService {
    pub fn new(
        store: Arc<dyn RegistryStore>,
        index: Arc<IndexHandle>,
        connectivity: Arc<Connectivity>,
    ) -> Self {
        Self {
            store,
            index,
            connectivity,
        }
    }

    pub fn store(&self) -> &Arc<dyn RegistryStore> {
        &self.store
    }

    /// Creates a record; with `verify`, only after its registry accepted the
    /// login.
    pub async fn create(
        &self,
        actor: &str,
        input: RegistryInput,
        verify: bool,
    ) -> Result<Written, WriteError> {
        let name = input.name.clone().unwrap_or_default();
        let mut fields = Vec::new();
        let result = async {
            let spec = self.prepare_create(input, verify, &mut fields).await?;
            let warnings = self.default_overlaps(&spec);
            let record = self.store.create(spec).await?;
            Ok(Written { record, warnings })
        }
        .await;
        self.audit(actor, AuditAction::Create, &name, fields, refusal(&result))
            .await;
        result
    }

    /// Answers as [`Self::create`] would, and saves nothing (`?dryRun=All`):
    /// the record as it would be, or why it would be refused. Nothing goes
    /// to the audit trail, which records changes.
    pub async fn dry_run_create(
        &self,
        input: RegistryInput,
        verify: bool,
    ) -> Result<Written, WriteError> {
        let spec = self.prepare_create(input, verify, &mut Vec::new()).await?;
        crate::registry::store::check_default_conflict(&spec, &self.index.load())?;
        let warnings = self.default_overlaps(&spec);
        Ok(Written {
            record: spec.to_record(String::new(), None, chrono::Utc::now()),
            warnings,
        })
    }

    /// Everything a create decides before it commits; `fields` gets the
    /// names of the fields it sets, for the audit trail.
    async fn prepare_create(
        &self,
        input: RegistryInput,
        verify: bool,
        fields: &mut Vec<String>,
    ) -> Result<RegistrySpec, WriteError> {
        let mut spec = input.validate(WriteMode::Create, None)?;
        *fields = audit::changed_fields(&spec, None);
        self.check_selectors(&spec)?;
        if self.store.get(&spec.name).await?.is_some() {
            // Say so before spending a registry round trip.
            return Err(StoreError::AlreadyExists(spec.name).into());
        }
        let credentials = given_credentials(&spec);
        spec.status = Some(self.check_with(&spec, credentials, verify).await?);
        Ok(spec)
    }

    /// Selectors match namespaces by their labels: refused where the store
    /// knows namespaces by name only.
    fn check_selectors(&self, spec: &RegistrySpec) -> Result<(), StoreError> {
        if self.store.namespaces_have_labels() {
            return Ok(());
        }
        if spec.namespace_selector.is_some() {
            return Err(StoreError::NeedsCluster("namespaceSelector"));
        }
        if spec.default_for_selector.is_some() {
            return Err(StoreError::NeedsCluster("defaultForSelector"));
        }
        Ok(())
    }

    /// Checks what a create would check, and saves nothing.
    pub async fn check_unsaved(&self, mut input: RegistryInput) -> Result<(), WriteError> {
        // The create dialog may check before the name is typed.
        input.name.get_or_insert_with(|| "unsaved".to_owned());
        let spec = input.validate(WriteMode::Create, None)?;
        let credentials = given_credentials(&spec);
        self.check_with(&spec, credentials, true).await.map(drop)
    }

    /// Replaces or patches the record `name`: `edit` turns the record as
    /// it is into the input to write, and is applied again to the record
    /// as it is at commit time when another write came first. With
    /// `precondition` (`If-Match`), the record must still be at that
    /// version, or nothing is written.
    pub async fn update<E>(
        &self,
        actor: &str,
        name: &str,
        precondition: Option<&str>,
        verify: bool,
        edit: impl Fn(&Registry) -> Result<RegistryInput, E>,
    ) -> Result<Written, E>
    where
        E: From<WriteError> + std::fmt::Display + ErrorCode,
    {
        let mut fields = Vec::new();
        let result = self
            .apply_update(name, precondition, verify, edit, &mut fields, Commit::Save)
            .await;
        self.audit(actor, AuditAction::Update, name, fields, refusal(&result))
            .await;
        result
    }

    /// Answers as [`Self::update`] would, and saves nothing (`?dryRun=All`).
    pub async fn dry_run_update<E>(
        &self,
        name: &str,
        precondition: Option<&str>,
        verify: bool,
        edit: impl Fn(&Registry) -> Result<RegistryInput, E>,
    ) -> Result<Written, E>
    where
        E: From<WriteError>,
    {
        self.apply_update(
            name,
            precondition,
            verify,
            edit,
            &mut Vec::new(),
            Commit::DryRun,
        )
        .await
    }

    async fn apply_update<E>(
        &self,
        name: &str,
        precondition: Option<&str>,
        verify: bool,
        edit: impl Fn(&Registry) -> Result<RegistryInput, E>,
        fields: &mut Vec<String>,
        commit: Commit,
    ) -> Result<Written, E>
    where
        E: From<WriteError>,
    {
        let mut checked: Option<(Checked, RegistryStatus)> = None;
        for _ in 0..ATTEMPTS {
            let current = self.current(name, precondition).await?;
            let mut spec = edit(&current)?
                .validate(WriteMode::Replace, Some(name))
                .map_err(WriteError::from)?;
            *fields = audit::changed_fields(&spec, Some(&current));
            self.check_selectors(&spec).map_err(WriteError::from)?;
            let credentials = self.credentials_for(&spec, &current).await?;
            if spec.changes_connection(&current) {
                let this = Checked::of(&spec, credentials.as_ref());
                let status = match checked.take() {
                    Some((made, status)) if made == this => status,
                    _ => self.check_with(&spec, credentials, verify).await?,
                };
                spec.status = Some(status.clone());
                checked = Some((this, status));
            }
            let warnings = self.default_overlaps(&spec);
            if commit == Commit::DryRun {
                crate::registry::store::check_default_conflict(&spec, &self.index.load())
                    .map_err(WriteError::from)?;
                let record =
                    spec.to_record(current.version.clone(), Some(&current), chrono::Utc::now());
                return Ok(Written { record, warnings });
            }
            match self.store.replace(spec, &current.version).await {
                Ok(record) => return Ok(Written { record, warnings }),
                // Someone else wrote first: apply the edit to what they wrote
                // (a precondition fails on the next read).
                Err(StoreError::Modified(_)) => continue,
                Err(other) => return Err(WriteError::from(other).into()),
            }
        }
        Err(WriteError::Conflict(name.to_owned()).into())
    }

    /// Deletes the record; with `precondition`, only at that version.
    pub async fn delete(
        &self,
        actor: &str,
        name: &str,
        precondition: Option<&str>,
    ) -> Result<(), WriteError> {
        let result = async {
            for _ in 0..ATTEMPTS {
                let current = self.current(name, precondition).await?;
                match self.store.delete(name, Some(&current.version)).await {
                    Ok(true) => return Ok(()),
                    Ok(false) => return Err(StoreError::NotFound(name.to_owned()).into()),
                    // Someone else wrote first: the next read sees what they
                    // wrote (and fails a precondition).
                    Err(StoreError::Modified(_)) => continue,
                    Err(other) => return Err(other.into()),
                }
            }
            Err(WriteError::Conflict(name.to_owned()))
        }
        .await;
        self.audit(actor, AuditAction::Delete, name, vec![], refusal(&result))
            .await;
        result
    }

    /// Deletes each of `names`; one audit entry for each record deleted.
    pub async fn delete_many(
        &self,
        actor: &str,
        names: Vec<String>,
    ) -> Result<BatchDeleted, WriteError> {
        let result = self.store.delete_many(names).await?;
        for name in &result.deleted {
            self.audit(actor, AuditAction::Delete, name, vec![], None)
                .await;
        }
        Ok(result)
    }

    /// Checks a saved record with its stored credentials, at its stored
    /// address, and saves the outcome in its status unless the record
    /// changed meanwhile (then the newer write's status stands). Returns
    /// the record as it now is and what the check found.
    /// `actor` is who asked; the periodic re-verification (`None`) is not
    /// a change anyone made and stays out of the audit trail (it would
    /// add an entry per record every interval).
    pub async fn recheck(
        &self,
        actor: Option<&str>,
        record: &Registry,
    ) -> Result<(Registry, Result<(), ConnectError>), WriteError> {
        let server = record
            .parsed_server()
            .map_err(|e| StoreError::backend("stored server", e))?;
        let credentials = self.store.credentials(&record.name).await?;
        let result = self
            .connectivity
            .check(&server, &record.tls, credentials)
            .await;
        let status = Connectivity::status_after(&result);
        let written = self
            .store
            .set_status(&record.name, status, Some(&record.version))
            .await;
        let updated = match written {
            Ok(updated) => updated,
            Err(StoreError::Modified(_)) => self
                .store
                .get(&record.name)
                .await?
                .ok_or_else(|| StoreError::NotFound(record.name.clone()))?,
            Err(other) => return Err(other.into()),
        };
        if let Some(actor) = actor {
            let failed = result
                .as_ref()
                .err()
                .map(|e| (e.code().to_owned(), e.to_string()));
            self.audit(
                actor,
                AuditAction::Verify,
                &record.name,
                vec!["status".into()],
                failed,
            )
            .await;
        }
        Ok((updated, result))
    }

    /// The audit trail, newest first.
    pub async fn audit_entries(&self, query: &AuditQuery) -> Result<AuditPage, WriteError> {
        Ok(self.store.entries(query).await?)
    }

    /// Keeps one entry of the trail (and logs it). Failing to keep it does
    /// not undo or fail the write it tells of: that is logged loudly.
    async fn audit(
        &self,
        actor: &str,
        action: AuditAction,
        registry: &str,
        fields: Vec<String>,
        failed: Option<(String, String)>,
    ) {
        let (code, message) = failed.unzip();
        let entry = AuditEntry {
            time: chrono::Utc::now(),
            actor: actor.to_owned(),
            action,
            registry: registry.to_owned(),
            fields,
            succeeded: message.is_none(),
            code,
            message: message.map(|m| crate::excerpt::shorten(&m, 300).into_owned()),
        };
        tracing::info!(
            target: "audit",
            actor = %entry.actor,
            action = entry.action.as_str(),
            registry = %entry.registry,
            fields = ?entry.fields,
            succeeded = entry.succeeded,
            message = entry.message.as_deref().unwrap_or_default(),
            "registry {}{}",
            entry.action.past_tense(),
            if entry.succeeded { "" } else { ": refused" }
        );
        if let Err(error) = self.store.append(&entry).await {
            tracing::error!(%error, registry = %entry.registry, "the audit trail could not keep an entry");
        }
    }

    /// The record as stored now, if it is at `precondition` (when given).
    async fn current(
        &self,
        name: &str,
        precondition: Option<&str>,
    ) -> Result<Registry, WriteError> {
        let current = self
            .store
            .get(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
        match precondition {
            Some(expected) if expected != current.version => Err(WriteError::PreconditionFailed {
                name: name.to_owned(),
                expected: expected.to_owned(),
                current: current.version,
            }),
            _ => Ok(current),
        }
    }

    /// The credentials an update would log in with: those it gives, or the
    /// stored ones when it keeps the password — only while the address and
    /// the trust setting stay as they are (a stored password is never sent
    /// anywhere the writer did not name).
    async fn credentials_for(
        &self,
        spec: &RegistrySpec,
        current: &Registry,
    ) -> Result<Option<Credentials>, WriteError> {
        match (&spec.username, &spec.password) {
            (Some(_), PasswordChange::Set(_)) => Ok(given_credentials(spec)),
            (Some(username), PasswordChange::Keep) => {
                if let Some(what) = trust_change(spec, current) {
                    return Err(WriteError::PasswordRequiredFor { what });
                }
                let stored = self
                    .store
                    .credentials(&spec.name)
                    .await?
                    .ok_or_else(|| WriteError::PasswordRequired(spec.name.clone()))?;
                Ok(Some(Credentials {
                    username: username.clone(),
                    password: stored.password,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The registry check a write needs; with `verify` off, the status says
    /// it was not made.
    async fn check_with(
        &self,
        spec: &RegistrySpec,
        credentials: Option<Credentials>,
        verify: bool,
    ) -> Result<RegistryStatus, WriteError> {
        if !verify {
            return Ok(RegistryStatus {
                verified: false,
                last_verified_at: None,
                message: Some("not verified: saved with verify=false".into()),
            });
        }
        let result = self
            .connectivity
            .check(&spec.server, &spec.tls, credentials)
            .await;
        let status = Connectivity::status_after(&result);
        result.map_err(WriteError::CheckFailed)?;
        Ok(status)
    }

    /// Overlaps of `spec`'s defaults with other records' that the
    /// precedence rule settles: allowed, and said to the writer.
    fn default_overlaps(&self, spec: &RegistrySpec) -> Vec<String> {
        let index = self.index.load();
        let mut said = index.check_defaults(&spec.name, &spec.default_for).overlaps;
        if let Some(selector) = spec
            .default_for_selector
            .as_ref()
            .and_then(crate::selector::NamespaceSelector::compile)
        {
            said.extend(index.check_selector_default(&spec.name, &selector));
        }
        said
    }
}

/// What went wrong, for the audit trail; `None` when it worked.
/// A refused write's code and message, for its audit entry.
fn refusal<T, E: std::fmt::Display + ErrorCode>(result: &Result<T, E>) -> Option<(String, String)> {
    result
        .as_ref()
        .err()
        .map(|error| (error.code().to_owned(), error.to_string()))
}

/// The credentials a write gives itself (a username and a new password).
fn given_credentials(spec: &RegistrySpec) -> Option<Credentials> {
    match (&spec.username, &spec.password) {
        (Some(username), PasswordChange::Set(password)) => Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }),
        _ => None,
    }
}

impl Checked {
    fn of(spec: &RegistrySpec, credentials: Option<&Credentials>) -> Self {
        Self {
            server: spec.server.to_string(),
            tls: spec.tls.clone(),
            username: credentials.map(|c| c.username.clone()),
            password: credentials.map(|c| c.password.clone()),
        }
    }
}

/// What of the address or trust setting `spec` changes, if anything: a
/// stored password may not follow such a change unasked.
pub fn trust_change(spec: &RegistrySpec, current: &Registry) -> Option<&'static str> {
    if spec.server.to_string() != current.server {
        Some("server")
    } else if spec.tls.ca_bundle != current.tls.ca_bundle {
        Some("tls.caBundle")
    } else if spec.tls.insecure_skip_verify != current.tls.insecure_skip_verify {
        Some("tls.insecureSkipVerify")
    } else {
        None
    }
}
