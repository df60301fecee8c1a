//! Status conditions of an ImageRegistry: `Verified` (the login check),
//! `Replicated` (pull Secrets in place) and `Accepted` (usable as written:
//! credentials found, default not claimed by an older registry).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::crd::ImageRegistry;

/// Tries of one status write against writers racing it (as client-go's
/// `RetryOnConflict`, with a growing pause between tries).
const WRITE_TRIES: u32 = 8;

/// Writes a status computed from the object as last seen, never over a
/// newer one: the patch carries the `resourceVersion` it was computed
/// from, and on a conflict (another writer got there first — the
/// controller and the re-verification write the same conditions list) the
/// object is read again and the status computed again. `compute` returns
/// the `status` to merge, or `None` when nothing needs writing. `seen` is
/// the cached object, if any, to start from.
pub async fn write_status(
    api: &Api<ImageRegistry>,
    name: &str,
    seen: Option<ImageRegistry>,
    compute: impl Fn(&ImageRegistry) -> Option<Value>,
) -> Result<Option<ImageRegistry>, kube::Error> {
    let mut object = match seen {
        Some(object) => object,
        None => api.get_status(name).await?,
    };
    let mut tries = 0;
    loop {
        let Some(status) = compute(&object) else {
            return Ok(None);
        };
        let patch = json!({
            "metadata": {"resourceVersion": object.metadata.resource_version},
            "status": status,
        });
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(written) => return Ok(Some(written)),
            Err(kube::Error::Api(status)) if status.code == 409 && tries + 1 < WRITE_TRIES => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(tries))).await;
                object = api.get_status(name).await?;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The `Replicated` condition's reason while a reconcile's writes go on
/// (`status.replication` has the count).
pub const IN_PROGRESS: &str = "InProgress";

/// The condition types an ImageRegistry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionType {
    /// The registry accepted the login (or needs none).
    Verified,
    /// Pull Secrets are in every namespace the record reaches.
    Replicated,
    /// The record is usable as written.
    Accepted,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "Verified",
            Self::Replicated => "Replicated",
            Self::Accepted => "Accepted",
        }
    }
}

/// A condition's `status`, as Kubernetes spells the three values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// One condition as we mean it, before timestamps and generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub type_: ConditionType,
    pub status: Truth,
    pub reason: String,
    pub message: String,
}

/// The object's conditions with `wanted` set (see [`upsert`]) for the
/// object's generation, and whether that changed anything. Every status
/// writer starts here.
pub fn with_wanted(
    object: &ImageRegistry,
    wanted: &[Wanted],
    now: &Time,
) -> (Vec<Condition>, bool) {
    let current = object
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    match upsert(current, wanted, object.metadata.generation, now) {
        Some(changed) => (changed, true),
        None => (current.to_vec(), false),
    }
}

/// `conditions` with `wanted` set: other types are kept; the transition
/// time moves only when the status does. `None` when nothing changes, so
/// no write (and no watch event) happens.
fn upsert(
    conditions: &[Condition],
    wanted: &[Wanted],
    observed_generation: Option<i64>,
    now: &Time,
) -> Option<Vec<Condition>> {
    let mut next = conditions.to_vec();
    let mut changed = false;
    for want in wanted {
        let (type_, status) = (want.type_.as_str(), want.status.as_str());
        let position = next.iter().position(|c| c.type_ == type_);
        let existing = position.map(|i| &next[i]);
        let same = existing.is_some_and(|c| {
            c.status == status && c.reason == want.reason && c.message == want.message
        });
        if same {
            continue;
        }
        let last_transition_time = match existing {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => now.clone(),
        };
        let condition = Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: want.reason.clone(),
            message: want.message.clone(),
            last_transition_time,
            observed_generation,
        };
        match position {
            Some(i) => next[i] = condition,
            None => next.push(condition),
        }
        changed = true;
    }
    changed.then_some(next)
}

/// The condition of `type_` in `conditions`, if set.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Whether `condition` says `True`.
pub fn holds(condition: &Condition) -> bool {
    condition.status == Truth::True.as_str()
}

/// Now, as conditions record it.
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(type_: ConditionType, status: Truth, reason: &str) -> Wanted {
        Wanted {
            type_,
            status,
            reason: reason.into(),
            message: format!("{reason} message"),
        }
    }

    fn at(text: &str) -> Time {
        Time(text.parse().expect("timestamp"))
    }

    #[test]
    fn sets_keeps_and_moves_transition_times() {
        let verified = Condition {
            type_: "Verified".into(),
            status: "True".into(),
            reason: "LoginSucceeded".into(),
            message: "ok".into(),
            last_transition_time: at("2026-11-01T00:00:00Z"),
            observed_generation: None,
        };
        let replicated = wanted(ConditionType::Replicated, Truth::True, "AllNamespaces");
        let first = upsert(
            std::slice::from_ref(&verified),
            std::slice::from_ref(&replicated),
            Some(3),
            &at("2026-11-02T00:00:00Z"),
        )
        .expect("changed");
        assert_eq!(first.len(), 2);
        assert_eq!(first[0], verified, "other conditions are kept");
        assert_eq!(first[1].type_, "Replicated");
        assert_eq!(first[1].last_transition_time, at("2026-11-02T00:00:00Z"));
        assert_eq!(first[1].observed_generation, Some(3));

        assert!(
            upsert(&first, std::slice::from_ref(&replicated), Some(3), &now()).is_none(),
            "no change, no write"
        );

        let message_only = upsert(
            &first,
            &[Wanted {
                message: "other".into(),
                ..replicated.clone()
            }],
            Some(3),
            &at("2026-11-03T00:00:00Z"),
        )
        .expect("changed");
        assert_eq!(
            message_only[1].last_transition_time,
            at("2026-11-02T00:00:00Z"),
            "same status: time stays"
        );
        let flipped = upsert(
            &message_only,
            &[wanted(ConditionType::Replicated, Truth::False, "Conflict")],
            Some(3),
            &at("2026-11-04T00:00:00Z"),
        )
        .expect("changed");
        assert_eq!(flipped[1].status, "False");
        assert_eq!(flipped[1].last_transition_time, at("2026-11-04T00:00:00Z"));
    }

    /// What the API server stores: RFC 3339 to the second, as every
    /// Kubernetes client writes conditions.
    #[test]
    fn conditions_serialize_as_kubernetes_writes_them() {
        let written = upsert(
            &[],
            &[wanted(ConditionType::Accepted, Truth::Unknown, "Pending")],
            None,
            &at("2026-11-30T23:10:05.123Z"),
        )
        .expect("changed");
        let json = serde_json::to_value(&written[0]).expect("serialize");
        assert_eq!(json["lastTransitionTime"], "2026-11-30T23:10:05Z");
        assert_eq!(json["status"], "Unknown");
        assert_eq!(json["type"], "Accepted");
        assert!(json.get("observedGeneration").is_none());
    }
}
