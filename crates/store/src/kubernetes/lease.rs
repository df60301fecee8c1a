//! Leader election on a `coordination.k8s.io/v1` Lease: one replica writes
//! (pull Secrets, status), every replica serves. Optimistic concurrency on
//! the Lease's resourceVersion decides races; a holder that stops renewing
//! loses the Lease once it expires.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub name: String,
    pub namespace: String,
    /// Unique per replica (pod name plus a random suffix).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// How often the holder renews (and others try).
    pub renew_every: Duration,
}

fn micro_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One attempt: take the Lease if free or expired, renew it if ours.
/// Returns whether we hold it afterwards.
pub async fn try_acquire(
    api: &Api<Lease>,
    options: &LeaseOptions,
    now: DateTime<Utc>,
) -> Result<bool, kube::Error> {
    let duration_seconds = i64::try_from(options.duration.as_secs())
        .unwrap_or(15)
        .max(1);
    let existing = api.get_opt(&options.name).await?;
    let Some(existing) = existing else {
        let lease: Lease = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": options.name, "namespace": options.namespace},
            "spec": {"holderIdentity": options.identity, "leaseDurationSeconds": duration_seconds,
                     "acquireTime": micro_time(now), "renewTime": micro_time(now), "leaseTransitions": 0}
        }))
        .map_err(kube::Error::SerdeError)?;
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        };
    };
    let value = serde_json::to_value(&existing).map_err(kube::Error::SerdeError)?;
    let spec = &value["spec"];
    let holder = spec["holderIdentity"].as_str().unwrap_or_default();
    let renewed = spec["renewTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let held_for = spec["leaseDurationSeconds"]
        .as_i64()
        .unwrap_or(duration_seconds);
    let expired = renewed.is_none_or(|t| t + chrono::Duration::seconds(held_for) < now);
    let ours = holder == options.identity;
    if !ours && !holder.is_empty() && !expired {
        return Ok(false);
    }
    let transitions = spec["leaseTransitions"].as_i64().unwrap_or(0) + i64::from(!ours);
    let mut next = value.clone();
    next["spec"]["holderIdentity"] = json!(options.identity);
    next["spec"]["leaseDurationSeconds"] = json!(duration_seconds);
    next["spec"]["renewTime"] = json!(micro_time(now));
    next["spec"]["leaseTransitions"] = json!(transitions);
    if !ours {
        next["spec"]["acquireTime"] = json!(micro_time(now));
    }
    let next: Lease = serde_json::from_value(next).map_err(kube::Error::SerdeError)?;
    // The resourceVersion we read makes this a compare-and-swap.
    match api
        .replace(&options.name, &PostParams::default(), &next)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Keeps trying and renewing until `shutdown`; the receiver says whether
/// this replica leads right now. Errors count as "not leading".
pub fn run(
    client: kube::Client,
    options: LeaseOptions,
    shutdown: CancellationToken,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let api: Api<Lease> = Api::namespaced(client, &options.namespace);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(options.renew_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tx.send(false);
                    return;
                }
                _ = tick.tick() => {}
            }
            let leading = match try_acquire(&api, &options, Utc::now()).await {
                Ok(leading) => leading,
                Err(error) => {
                    tracing::warn!(%error, "leader election: lease update failed");
                    false
                }
            };
            if *tx.borrow() != leading {
                tracing::info!(identity = %options.identity, leading, "leadership changed");
                let _ = tx.send(leading);
            }
        }
    });
    rx
}
