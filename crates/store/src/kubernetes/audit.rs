//! The audit trail in a cluster: one core/v1 Event per change, on the
//! ImageRegistry it changed (so `kubectl describe imageregistry` shows it),
//! in the install namespace. The entry itself rides in an annotation; the
//! Event's reason, type and message say the same for people.
//!
//! Events live as long as the API server keeps them (`--event-ttl`, an
//! hour by default): the log line every entry also gets is the durable
//! copy.

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use super::crd::ImageRegistry;
use crate::registry::audit::{AuditAction, AuditEntry, AuditPage, AuditQuery};
use crate::registry::store::StoreError;

/// Marks our audit Events.
pub const AUDIT_LABEL: &str = "registry-resolver.io/audit";
/// The record an audit Event tells of, for a per-record list.
pub const REGISTRY_LABEL: &str = "registry-resolver.io/registry";
/// The entry, as JSON.
const ENTRY_ANNOTATION: &str = "registry-resolver.io/audit-entry";
const COMPONENT: &str = "registry-resolver";

/// The Event that keeps `entry`; `uid` is the record's, when it exists.
pub fn event_for(
    entry: &AuditEntry,
    namespace: &str,
    uid: Option<String>,
) -> Result<Event, StoreError> {
    let nanos = entry.time.timestamp_nanos_opt().unwrap_or_default();
    let time = entry.time.to_rfc3339_opts(SecondsFormat::Secs, true);
    let reason = match (entry.action, entry.succeeded) {
        (AuditAction::Create, true) => "Created",
        (AuditAction::Update, true) => "Updated",
        (AuditAction::Delete, true) => "Deleted",
        (AuditAction::Verify, true) => "Verified",
        (AuditAction::Create, false) => "CreateFailed",
        (AuditAction::Update, false) => "UpdateFailed",
        (AuditAction::Delete, false) => "DeleteFailed",
        (AuditAction::Verify, false) => "VerifyFailed",
    };
    let fields = if entry.fields.is_empty() {
        String::new()
    } else {
        format!(" ({})", entry.fields.join(", "))
    };
    let message = match &entry.message {
        None => format!(
            "{} {} the registry{fields}",
            entry.actor,
            entry.action.past_tense()
        ),
        Some(why) => format!(
            "{}'s {}{fields} failed: {why}",
            entry.actor,
            entry.action.as_str()
        ),
    };
    // A label value is at most 63 characters of [-A-Za-z0-9_.]; a record
    // name that is not one (a refused create) is left unlabelled.
    let registry_label = (!entry.registry.is_empty()
        && entry.registry.len() <= 63
        && entry
            .registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then(|| entry.registry.clone());
    let mut labels = json!({ AUDIT_LABEL: "true" });
    if let Some(registry) = registry_label {
        labels[REGISTRY_LABEL] = json!(registry);
    }
    let object = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{nanos:x}", event_name_prefix(&entry.registry)),
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                ENTRY_ANNOTATION: serde_json::to_string(entry)
                    .map_err(|e| StoreError::backend("encoding an audit entry", e))?,
            },
        },
        "involvedObject": {
            "apiVersion": format!("{}/{}", <ImageRegistry as kube::Resource>::group(&()), <ImageRegistry as kube::Resource>::version(&())),
            "kind": "ImageRegistry",
            "name": entry.registry,
            "uid": uid,
        },
        "reason": reason,
        "message": message,
        "type": if entry.succeeded { "Normal" } else { "Warning" },
        "action": entry.action.as_str(),
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": time,
        "lastTimestamp": time,
        "count": 1,
    });
    serde_json::from_value(object).map_err(|e| StoreError::backend("building an audit Event", e))
}

/// An Event name's first part: the record's name when it can be one.
fn event_name_prefix(registry: &str) -> String {
    let cleaned: String = registry
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(200)
        .collect();
    if cleaned.is_empty() {
        "registry".into()
    } else {
        cleaned
    }
}

/// The entry an Event keeps, if it is one of ours.
fn entry_of(event: &Event) -> Option<AuditEntry> {
    let text = event.metadata.annotations.as_ref()?.get(ENTRY_ANNOTATION)?;
    serde_json::from_str(text).ok()
}

/// A position in the trail: newest first by time, then by Event name.
fn position(entry: &AuditEntry, name: &str) -> String {
    format!(
        "{}/{name}",
        entry.time.timestamp_nanos_opt().unwrap_or_default()
    )
}

fn parse_position(text: &str) -> Option<(DateTime<Utc>, String)> {
    let (nanos, name) = text.split_once('/')?;
    Some((
        DateTime::from_timestamp_nanos(nanos.parse().ok()?),
        name.to_owned(),
    ))
}

/// A page of the trail from the Events of `namespace`.
pub async fn entries(
    client: &kube::Client,
    namespace: &str,
    query: &AuditQuery,
) -> Result<AuditPage, StoreError> {
    let mut selector = format!("{AUDIT_LABEL}=true");
    if let Some(registry) = &query.registry {
        selector.push_str(&format!(",{REGISTRY_LABEL}={registry}"));
    }
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| StoreError::backend("listing audit Events", e))?;
    let mut found: Vec<(AuditEntry, String)> = events
        .items
        .iter()
        .filter_map(|event| Some((entry_of(event)?, event.metadata.name.clone()?)))
        .filter(|(entry, _)| {
            query
                .registry
                .as_ref()
                .is_none_or(|registry| &entry.registry == registry)
        })
        .collect();
    found.sort_by(|(a, a_name), (b, b_name)| b.time.cmp(&a.time).then(b_name.cmp(a_name)));
    let before = match &query.before {
        Some(text) => Some(
            parse_position(text)
                .ok_or_else(|| StoreError::corrupt(format!("not an audit position: {text:?}")))?,
        ),
        None => None,
    };
    let mut page = AuditPage::default();
    let mut last_name = String::new();
    for (entry, name) in found {
        if let Some((time, last)) = &before
            && (entry.time, &name) >= (*time, last)
        {
            continue;
        }
        if page.items.len() == query.limit {
            page.next = page.items.last().map(|kept| position(kept, &last_name));
            break;
        }
        page.items.push(entry);
        last_name = name;
    }
    Ok(page)
}
