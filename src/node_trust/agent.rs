//! `node-agent`: on every node, keeps the container runtime's trust files in
//! step with the cluster's ImageRegistries — at once on a change, and every
//! resync interval to repair hand edits — and reports what it did in a
//! ConfigMap of its own (`node-trust-<node>` in the install namespace),
//! which the controller sums into each registry's status. It reads
//! ImageRegistries and nothing else of the cluster: trust needs no
//! credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Pass;
use super::report::{NodeReport, REPORT_KEY, REPORT_LABEL, report_name};
use super::sync::Node;
use crate::kubernetes::convert::trust_records;
use crate::kubernetes::crd::ImageRegistry;

/// The field manager of the agent's writes.
const FIELD_MANAGER: &str = "registry-resolver-node-agent";

pub struct AgentOptions {
    pub node_name: String,
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// Where reports go.
    pub namespace: String,
    pub node: Node,
    /// containerd's config, by node path.
    pub containerd_config: PathBuf,
    pub resync: Duration,
}

/// `/healthz` and `/metrics` of the agent, on its admin listener.
pub fn admin_router(metrics: Arc<crate::telemetry::Metrics>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
}

/// Runs until `shutdown`.
pub async fn run(client: kube::Client, options: AgentOptions, shutdown: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let registries = watch_registries(&client, &changed, &shutdown);
    if registries.wait_until_ready().await.is_err() {
        tracing::error!("the ImageRegistry watch stopped before it listed");
        return;
    }
    let reports = Api::<ConfigMap>::namespaced(client.clone(), &options.namespace);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(options.node_name.clone()),
        },
    );
    let mut tick = tokio::time::interval(options.resync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported: Option<NodeReport> = None;
    let mut advised: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = changed.notified() => {
                // A burst of edits becomes one pass.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let records = trust_records(&registries.state());
        let node = options.node.clone();
        let config = options.containerd_config.clone();
        let name = options.node_name.clone();
        // File work is blocking; it stays off the runtime's threads.
        let outcome = tokio::task::spawn_blocking(move || {
            let pass = Pass::compute(&records, &node, &config)?;
            let applied = node.apply(&pass.changes);
            let report = pass.report(&name, applied.as_ref().map(|_| ()));
            Ok::<_, super::sync::SyncError>((pass, applied, report))
        })
        .await;
        let (pass, applied, report) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(error)) => {
                tracing::error!(%error, "reading the node's trust files failed");
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "the sync task failed");
                continue;
            }
        };
        for line in pass.changes.describe() {
            tracing::info!(change = %line, "node trust");
        }
        for problem in &pass.problems {
            tracing::warn!(registry = %problem.registry, problem = %problem.message, "node trust not configured");
        }
        if let Err(error) = &applied {
            tracing::error!(%error, "writing the node's trust files failed");
        }
        options.metrics.observe_node_sync(
            applied.is_ok(),
            report.configured.len(),
            report.failed.len(),
            pass.runtime_config.is_some(),
        );
        if pass.runtime_config != advised {
            if let Some(advice) = &pass.runtime_config {
                tracing::warn!(%advice, "containerd does not read the trust files");
                let node_ref = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(options.node_name.clone()),
                    ..ObjectReference::default()
                };
                let event = Event {
                    type_: EventType::Warning,
                    reason: "ContainerdConfigPathMissing".into(),
                    note: Some(advice.chars().take(1000).collect()),
                    action: "ConfigureRegistryTrust".into(),
                    secondary: None,
                };
                if let Err(error) = recorder.publish(&event, &node_ref).await {
                    tracing::warn!(%error, "could not record an Event on the node");
                }
            }
            advised = pass.runtime_config.clone();
        }
        if reported.as_ref() != Some(&report) {
            match write_report(&reports, &report).await {
                Ok(()) => reported = Some(report),
                Err(error) => tracing::warn!(%error, "could not write the node's report"),
            }
        }
    }
}

fn watch_registries(
    client: &kube::Client,
    changed: &Arc<Notify>,
    shutdown: &CancellationToken,
) -> Store<ImageRegistry> {
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    crate::kubernetes::reflect::spawn(
        Api::<ImageRegistry>::all(client.clone()),
        watcher::Config::default(),
        crate::kubernetes::reflect::keeping(writer),
        shutdown.clone(),
        crate::kubernetes::reflect::keep_all,
        move |_| changed.notify_one(),
    );
    reader
}

/// Server-side apply of the node's report ConfigMap.
async fn write_report(api: &Api<ConfigMap>, report: &NodeReport) -> Result<(), kube::Error> {
    let name = report_name(&report.node);
    let body = serde_json::to_string(report).unwrap_or_default();
    let object = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {REPORT_LABEL: "true", "app.kubernetes.io/managed-by": "registry-resolver"},
        },
        "data": BTreeMap::from([(REPORT_KEY, body)]),
    });
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map(|_| ())
}
