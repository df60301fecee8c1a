//! `import` and `export`: a way in for the registries people already have
//! (Docker/Podman `config.json`, KubeSphere's image registry Secrets) and a
//! way out (every record in a file `import --records` reads), so records
//! move between the embedded store and a cluster.
//!
//! Each record is validated like an API write, checked against its registry
//! (unless told not to), and written only when it differs from what is
//! stored: running the same import twice changes nothing. A record that
//! fails names where it came from and why; the rest go on.

pub mod sources;

use serde_json::{Value, json};

use crate::registry::store::Credentials;
use crate::registry::{PasswordChange, Registry, RegistryInput, RegistrySpec, WriteMode};
use crate::service::{RegistryService, WriteError};
pub use sources::{Plan, Planned, Problem};

/// How the audit trail names writes made by `import`.
pub const IMPORT_ACTOR: &str = "import";

/// What an import did (or, with `dry_run`, would do), a line each.
#[derive(Debug, Default)]
pub struct Outcome {
    pub lines: Vec<String>,
    /// Records that could not be imported (and source entries that could
    /// not become records).
    pub failed: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Say what would be done; write nothing.
    pub dry_run: bool,
    /// Log in to each registry before writing its record.
    pub verify: bool,
}

/// What to do with one planned record, given what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Update,
    Unchanged,
}

/// Writes `plan` through `service`, the API's write path.
pub async fn apply(plan: Plan, service: &RegistryService, options: ImportOptions) -> Outcome {
    let mut outcome = Outcome::default();
    for problem in &plan.problems {
        outcome
            .lines
            .push(format!("error {}: {}", problem.from, problem.message));
        outcome.failed += 1;
    }
    for planned in plan.records {
        let from = planned.from.join(", ");
        let name = planned.input.name.clone().unwrap_or_default();
        match import_one(planned.input, service, options).await {
            Ok((action, spec)) => {
                let verb = match (action, options.dry_run) {
                    (Action::Create, false) => "created",
                    (Action::Create, true) => "would create",
                    (Action::Update, false) => "updated",
                    (Action::Update, true) => "would update",
                    (Action::Unchanged, _) => "unchanged",
                };
                outcome.lines.push(format!(
                    "{verb} {name} ({}{}; namespaces {}) from {from}",
                    spec.server,
                    spec.username
                        .as_deref()
                        .map(|u| format!(" as {u}"))
                        .unwrap_or_default(),
                    spec.namespaces.join(", "),
                ));
            }
            Err(error) => {
                let message = match error {
                    WriteError::CheckFailed(e) => {
                        format!("the registry check failed ({}): {e}", e.code())
                    }
                    other => other.to_string(),
                };
                outcome
                    .lines
                    .push(format!("error {name} from {from}: {message}"));
                outcome.failed += 1;
            }
        }
    }
    outcome
}

async fn import_one(
    input: RegistryInput,
    service: &RegistryService,
    options: ImportOptions,
) -> Result<(Action, RegistrySpec), WriteError> {
    let store = service.store();
    let name = input.name.clone().unwrap_or_default();
    let existing = store.get(&name).await?;
    let mode = match existing {
        Some(_) => WriteMode::Replace,
        None => WriteMode::Create,
    };
    let spec = input.clone().validate(mode, Some(&name))?;
    let stored = match &existing {
        Some(_) => store.credentials(&name).await?,
        None => None,
    };
    let action = match &existing {
        None => Action::Create,
        Some(current) if same(current, &spec, stored.as_ref()) => Action::Unchanged,
        Some(_) => Action::Update,
    };
    match (action, options.dry_run) {
        (Action::Unchanged, _) => {}
        (Action::Create, true) if options.verify => {
            service.check_unsaved(input).await?;
        }
        (Action::Update, true) => {
            // What the write would refuse without a registry round trip.
            if let Some(current) = &existing
                && let (Some(_), PasswordChange::Keep) = (&spec.username, &spec.password)
                && let Some(what) = crate::service::trust_change(&spec, current)
            {
                return Err(WriteError::PasswordRequiredFor { what });
            }
        }
        (_, true) => {}
        (Action::Create, false) => {
            service.create(IMPORT_ACTOR, input, options.verify).await?;
        }
        (Action::Update, false) => {
            service
                .update(IMPORT_ACTOR, &name, None, options.verify, |_| {
                    Ok::<_, WriteError>(input.clone())
                })
                .await?;
        }
    }
    Ok((action, spec))
}

/// Whether writing `spec` would change nothing the record holds.
fn same(current: &Registry, spec: &RegistrySpec, stored: Option<&Credentials>) -> bool {
    let password_same = match &spec.password {
        PasswordChange::Set(password) => {
            stored.is_some_and(|s| s.password.expose() == password.expose())
        }
        PasswordChange::Keep => true,
        PasswordChange::Clear => !current.has_password,
    };
    password_same
        && spec.server.to_string() == current.server
        && spec.username == current.username
        && spec.description == current.description
        && spec.namespaces == current.namespaces
        && spec.default_for == current.default_for
        && spec.tls == current.tls
        && spec.pull_secret_name == current.pull_secret_name
        && spec.pin_digests == current.pin_digests
        && spec.browse == current.browse
}

/// Every record as a file `import --records` reads: without passwords, or
/// with them when `passwords` holds each record's.
pub fn export(records: &[Registry], passwords: &[(String, String)]) -> Value {
    let items: Vec<Value> = records
        .iter()
        .map(|record| {
            let mut item = json!({
                "name": record.name,
                "server": record.server,
                "namespaces": record.namespaces,
                "defaultFor": record.default_for,
                "tls": record.tls,
                "pullSecretName": record.pull_secret_name,
                "pinDigests": record.pin_digests,
                "browse": record.browse,
            });
            let fields = [
                ("username", record.username.as_ref().map(|u| json!(u))),
                ("description", record.description.as_ref().map(|d| json!(d))),
                (
                    "namespaceSelector",
                    record.namespace_selector.as_ref().map(|s| json!(s)),
                ),
                (
                    "defaultForSelector",
                    record.default_for_selector.as_ref().map(|s| json!(s)),
                ),
                (
                    "password",
                    passwords
                        .iter()
                        .find(|(name, _)| *name == record.name)
                        .map(|(_, password)| json!(password)),
                ),
            ];
            for (field, value) in fields {
                if let Some(value) = value {
                    item[field] = value;
                }
            }
            item
        })
        .collect();
    json!({
        "apiVersion": sources::LIST_API_VERSION,
        "kind": sources::LIST_KIND,
        "items": items,
    })
}
