//! Status conditions of an ImageRegistry: `Verified` (the login check),
//! `Replicated` (pull Secrets in place) and `Accepted` (usable as written:
//! credentials found, default not claimed by an older registry).

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

/// One condition as we mean it, before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

/// The object's conditions as JSON, for merging.
pub fn current(object: &ImageRegistry) -> Vec<Value> {
    object
        .status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `conditions` with `wanted` set: other types are kept; the transition
/// time moves only when the status does. `None` when nothing changes, so
/// no write (and no watch event) happens.
pub fn upsert(
    conditions: &[Value],
    wanted: &[Wanted],
    observed_generation: Option<i64>,
    now: &str,
) -> Option<Vec<Value>> {
    let mut next: Vec<Value> = conditions.to_vec();
    let mut changed = false;
    for want in wanted {
        let position = next.iter().position(|c| c["type"] == want.type_);
        let existing = position.map(|i| next[i].clone());
        let same = existing.as_ref().is_some_and(|c| {
            c["status"] == want.status
                && c["reason"] == want.reason.as_str()
                && c["message"] == want.message.as_str()
        });
        if same {
            continue;
        }
        let transition = match &existing {
            Some(c) if c["status"] == want.status => c["lastTransitionTime"].clone(),
            _ => json!(now),
        };
        let mut condition = json!({"type": want.type_, "status": want.status, "reason": want.reason,
                                   "message": want.message, "lastTransitionTime": transition});
        if let Some(generation) = observed_generation {
            condition["observedGeneration"] = json!(generation);
        }
        match position {
            Some(i) => next[i] = condition,
            None => next.push(condition),
        }
        changed = true;
    }
    changed.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(type_: &'static str, status: &'static str, reason: &str) -> Wanted {
        Wanted {
            type_,
            status,
            reason: reason.into(),
            message: format!("{reason} message"),
        }
    }

    #[test]
    fn sets_keeps_and_moves_transition_times() {
        let verified = json!({"type": "Verified", "status": "True", "reason": "LoginSucceeded", "message": "ok",
                              "lastTransitionTime": "2026-11-01T00:00:00Z"});
        let first = upsert(
            std::slice::from_ref(&verified),
            &[wanted("Replicated", "True", "AllNamespaces")],
            Some(3),
            "2026-11-02T00:00:00Z",
        )
        .expect("changed");
        assert_eq!(first.len(), 2);
        assert_eq!(first[0], verified, "other conditions are kept");
        assert_eq!(first[1]["lastTransitionTime"], "2026-11-02T00:00:00Z");
        assert_eq!(first[1]["observedGeneration"], 3);

        assert!(
            upsert(
                &first,
                &[wanted("Replicated", "True", "AllNamespaces")],
                Some(3),
                "later"
            )
            .is_none(),
            "no change, no write"
        );

        let message_only = upsert(
            &first,
            &[Wanted {
                message: "other".into(),
                ..wanted("Replicated", "True", "AllNamespaces")
            }],
            Some(3),
            "2026-11-03T00:00:00Z",
        )
        .expect("changed");
        assert_eq!(
            message_only[1]["lastTransitionTime"], "2026-11-02T00:00:00Z",
            "same status: time stays"
        );
        let flipped = upsert(
            &message_only,
            &[wanted("Replicated", "False", "Conflict")],
            Some(3),
            "2026-11-04T00:00:00Z",
        )
        .expect("changed");
        assert_eq!(flipped[1]["lastTransitionTime"], "2026-11-04T00:00:00Z");
    }
}
