//! `serve --store kubernetes`: the watches that feed the caches and the
//! index, and the loop that keeps pull Secrets replicated and records
//! re-verified.
//!
//! Every replica runs the watches and serves the webhook and the API from
//! its caches; the replica holding the Lease makes the loop's writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::convert::RecordProblem;
use super::crd::ImageRegistry;
use super::replicate::{Replicator, observed};
use super::state::{Caches, Touched};
use super::status::{ConditionType, Truth, Wanted};
use super::store::KubeStore;
use crate::index::IndexHandle;
use crate::node_trust::report::{NodeReport, NodeTrustStatus, REPORT_KEY, REPORT_LABEL, summarize};
use crate::registry::connectivity::Connectivity;
use crate::replication::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, Namespaces, Registry as Replicated};
use crate::service::RegistryService;
use crate::telemetry::Metrics;

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where the credential Secrets live (the install namespace).
    pub namespace: String,
    pub reverify_interval: Duration,
    /// This replica's name in leader election.
    pub identity: String,
    pub lease_duration: Duration,
}

/// What `serve` needs from the cluster side.
pub struct Cluster {
    pub store: Arc<KubeStore>,
    pub client: kube::Client,
}

/// Starts the watches and the reconcile loop; returns once every watch has
/// listed, so the index is complete before the server reports ready.
pub async fn start(
    client: kube::Client,
    options: ClusterOptions,
    index: Arc<IndexHandle>,
    connectivity: Arc<Connectivity>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Cluster {
    let changed = Arc::new(Notify::new());
    let (registries, registries_writer) = reflector::store();
    let (credentials, credentials_writer) = reflector::store();
    let (managed, managed_writer) = reflector::store();
    let (namespaces, namespaces_writer) = reflector::store();
    let caches = Arc::new(Caches {
        registries: registries.clone(),
        secrets: credentials.clone(),
        pull_secrets: Some(managed.clone()),
        namespaces: Some(namespaces.clone()),
    });
    let watching = Watching {
        caches: caches.clone(),
        index: index.clone(),
        changed: changed.clone(),
        shutdown: shutdown.clone(),
    };
    watching.watch_records(
        &client,
        &options.namespace,
        registries_writer,
        credentials_writer,
    );
    watching.watch(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
        managed_writer,
        |secret| {
            Some(Touched::PullSecret {
                namespace: secret.namespace().unwrap_or_default(),
                name: secret.name_any(),
            })
        },
    );
    watching.watch(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        namespaces_writer,
        |namespace| Some(Touched::Namespace(namespace.name_any())),
    );
    // The node agents' reports: only the status reads them.
    let (node_reports, node_reports_writer) = reflector::store();
    watching.watch(
        Api::<ConfigMap>::namespaced(client.clone(), &options.namespace),
        watcher::Config::default().labels(&format!("{REPORT_LABEL}=true")),
        node_reports_writer,
        |_| None,
    );
    // Label selectors need the namespaces before the first answer, as
    // records need their credentials.
    let (listed_registries, listed_credentials, listed_namespaces) = tokio::join!(
        registries.wait_until_ready(),
        credentials.wait_until_ready(),
        namespaces.wait_until_ready()
    );
    if listed_registries.is_err() || listed_credentials.is_err() || listed_namespaces.is_err() {
        tracing::error!("a watch stopped before it listed");
    }
    caches.publish(&index);
    let store = Arc::new(KubeStore::new(
        client.clone(),
        options.namespace.clone(),
        Caches::clone(&caches),
        index.clone(),
    ));
    let replicator = Replicator::new(client.clone());
    let leading = super::lease::run(
        client.clone(),
        super::lease::LeaseOptions {
            name: "registry-resolver".into(),
            namespace: options.namespace.clone(),
            identity: options.identity.clone(),
            duration: options.lease_duration,
            renew_every: options.lease_duration / 3,
        },
        shutdown.clone(),
    );
    {
        // Status writes go through the one write path, like the API's.
        let service = Arc::new(RegistryService::new(
            store.clone(),
            index.clone(),
            connectivity,
        ));
        let leading = leading.clone();
        tokio::spawn(every_while_leading(
            options.reverify_interval,
            leading,
            shutdown.clone(),
            move || reverify_all(service.clone()),
        ));
    }
    let statuses = Api::<ImageRegistry>::all(client.clone());
    tokio::spawn(reconcile_loop(
        Reconciler {
            caches,
            managed,
            namespaces,
            node_reports,
            replicator,
            statuses,
            metrics,
            logged: BTreeSet::new(),
        },
        changed,
        leading,
        shutdown,
    ));
    Cluster { store, client }
}

/// `import` and `export` with `--store kubernetes`: the records alone.
/// The ImageRegistries and their credential Secrets are watched, as `serve`
/// watches them, so the store reads its own writes; nothing is replicated
/// and no Lease is taken (a running server's leader replicates what is
/// written). Returns once both watches have listed; they end with
/// `shutdown`.
pub async fn records_store(
    client: kube::Client,
    namespace: &str,
    index: Arc<IndexHandle>,
    shutdown: CancellationToken,
) -> Result<Arc<KubeStore>, kube::runtime::reflector::store::WriterDropped> {
    let (registries, registries_writer) = reflector::store();
    let (credentials, credentials_writer) = reflector::store();
    let caches = Arc::new(Caches {
        registries: registries.clone(),
        secrets: credentials.clone(),
        pull_secrets: None,
        namespaces: None,
    });
    let watching = Watching {
        caches: caches.clone(),
        index: index.clone(),
        changed: Arc::new(Notify::new()),
        shutdown,
    };
    watching.watch_records(&client, namespace, registries_writer, credentials_writer);
    registries.wait_until_ready().await?;
    credentials.wait_until_ready().await?;
    caches.publish(&index);
    Ok(Arc::new(KubeStore::new(
        client,
        namespace.to_owned(),
        Caches::clone(&caches),
        index,
    )))
}

/// What every watch feeds: the caches, the index, and the replication loop.
struct Watching {
    caches: Arc<Caches>,
    index: Arc<IndexHandle>,
    changed: Arc<Notify>,
    shutdown: CancellationToken,
}

impl Watching {
    /// The records: every ImageRegistry, and the credential Secrets of the
    /// install namespace.
    fn watch_records(
        &self,
        client: &kube::Client,
        namespace: &str,
        registries: reflector::store::Writer<ImageRegistry>,
        credentials: reflector::store::Writer<Secret>,
    ) {
        self.watch(
            Api::<ImageRegistry>::all(client.clone()),
            watcher::Config::default(),
            registries,
            |object| Some(Touched::Registry(object.name_any())),
        );
        self.watch(
            Api::<Secret>::namespaced(client.clone(), namespace),
            watcher::Config::default().fields("type=kubernetes.io/basic-auth"),
            credentials,
            |secret| Some(Touched::Credentials(secret.name_any())),
        );
    }

    /// A reflector over `api` into `writer`. Each event changes the index
    /// where it touches it (`touched` says what an object touches), at
    /// once, and wakes the replication loop; a relist rebuilds the index.
    /// Errors are retried with backoff by the watcher; the task ends with
    /// `shutdown`.
    fn watch<K: super::reflect::Watched>(
        &self,
        api: Api<K>,
        config: watcher::Config,
        writer: reflector::store::Writer<K>,
        touched: fn(&K) -> Option<Touched>,
    ) {
        let (caches, index, changed) = (
            self.caches.clone(),
            self.index.clone(),
            self.changed.clone(),
        );
        super::reflect::spawn(api, config, writer, self.shutdown.clone(), move |event| {
            let what = match event {
                watcher::Event::Apply(object) | watcher::Event::Delete(object) => touched(object),
                watcher::Event::InitDone => Some(Touched::Everything),
                watcher::Event::Init | watcher::Event::InitApply(_) => None,
            };
            if let Some(what) = what {
                caches.apply(&index, what);
            }
            changed.notify_one();
        });
    }
}

/// What the node agents report, against what each registry needs now.
struct NodeTrust {
    reports: Vec<NodeReport>,
    /// Registry → the fingerprint of its host's current trust material.
    fingerprints: BTreeMap<String, String>,
}

impl NodeTrust {
    /// The same records and plan the agents use, so both sides agree on
    /// what "current" is.
    fn of(registries: &[Arc<ImageRegistry>], reports: &[Arc<ConfigMap>]) -> Self {
        let records = super::convert::trust_records(registries);
        let (hosts, _) = crate::node_trust::plan::hosts(&records);
        let fingerprints = hosts
            .iter()
            .flat_map(|host| {
                let fingerprint = host.fingerprint();
                host.registries
                    .iter()
                    .map(move |registry| (registry.clone(), fingerprint.clone()))
            })
            .collect();
        Self {
            reports: reports
                .iter()
                .filter_map(|config_map| {
                    let text = config_map.data.as_ref()?.get(REPORT_KEY)?;
                    crate::node_trust::report::parse(&config_map.name_any(), text)
                })
                .collect(),
            fingerprints,
        }
    }

    /// `None` without agents, or for a registry that needs nothing of the
    /// nodes (a record needing trust but not in the plan — refused for a
    /// conflicting host — counts every node's failure).
    fn status(&self, registry: &str) -> Option<NodeTrustStatus> {
        if self.reports.is_empty() {
            return None;
        }
        let fingerprint = self.fingerprints.get(registry);
        let failed_anywhere = self.reports.iter().any(|r| r.failed.contains_key(registry));
        if fingerprint.is_none() && !failed_anywhere {
            return None;
        }
        Some(summarize(
            registry,
            fingerprint.map(String::as_str).unwrap_or_default(),
            &self.reports,
        ))
    }
}

/// Registries re-checked at once: one dead registry waits out its own
/// deadline without holding the others back past the interval.
const REVERIFY_CONCURRENCY: usize = 8;

/// Runs `pass` every `every` while this replica leads: re-verification
/// writes status, and only the leader writes. Apart from replication, so a
/// slow or dead registry never holds pull Secrets back.
async fn every_while_leading<F, Fut>(
    every: Duration,
    leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if *leading.borrow() {
            pass().await;
        }
    }
}

/// Re-checks every registry, a bounded number at a time, recording each
/// outcome in its status.
async fn reverify_all(service: Arc<RegistryService>) {
    let Ok(records) = service.store().list().await else {
        return;
    };
    futures_util::stream::iter(records)
        .for_each_concurrent(REVERIFY_CONCURRENCY, |record| {
            let service = service.clone();
            async move {
                if let Err(error) = service.recheck(None, &record).await {
                    tracing::warn!(registry = %record.name, %error, "recording verification failed");
                }
            }
        })
        .await;
}

/// What a replication pass reads and writes.
struct Reconciler {
    caches: Arc<Caches>,
    managed: Store<Secret>,
    namespaces: Store<Namespace>,
    node_reports: Store<ConfigMap>,
    replicator: Replicator,
    statuses: Api<ImageRegistry>,
    metrics: Arc<Metrics>,
    /// The record problems the last pass logged: a pass runs on every
    /// event, and a record that stays broken is logged once, not per pass.
    logged: BTreeSet<(String, String)>,
}

/// The first wait after a pass whose writes failed; it doubles with each
/// failing pass, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// A pass even when nothing changed: the watches report every change, so
/// this only repairs what a lost write left behind.
const RESYNC: Duration = Duration::from_secs(600);

/// The wait before the next pass when nothing changes: after a pass with
/// failed writes, `previous` doubled (the first time [`RETRY_FIRST`]); after
/// a clean one, the resync period.
fn next_wait(failed: bool, previous: Option<Duration>) -> Option<Duration> {
    failed.then(|| previous.map_or(RETRY_FIRST, |wait| (wait * 2).min(RETRY_MAX)))
}

/// Passes take at most `1 / DUTY` of the loop's time under a stream of
/// events: after a pass that took `d`, the next starts no sooner than
/// `d × (DUTY − 1)` later (at most [`REST_MAX`]). A quiet cluster's first
/// event is handled at once; a storm of namespace creations costs at most
/// a tenth of a core, at any record count.
const DUTY: u32 = 10;
const REST_MAX: Duration = Duration::from_secs(1);

/// How long to rest after a pass that took `elapsed`.
fn rest_after(elapsed: Duration) -> Duration {
    elapsed.saturating_mul(DUTY - 1).min(REST_MAX)
}

/// Runs a pass on every change (the watches notify), on a new lease, after
/// a failed pass with backoff, and every [`RESYNC`]. Events arriving while
/// a pass runs or rests leave one wake-up behind (`Notify` keeps a single
/// permit), so a burst costs at most one pass more, whatever its size.
async fn reconcile_loop(
    mut reconciler: Reconciler,
    changed: Arc<Notify>,
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let mut retry: Option<Duration> = None;
    let mut rest = Duration::ZERO;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(rest) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changed.notified() => {}
            // A new leader makes a full pass at once.
            Ok(()) = leading.changed() => {}
            _ = tokio::time::sleep(retry.unwrap_or(RESYNC)) => {}
        }
        // Every replica serves from its caches; only the leader writes.
        if !*leading.borrow() {
            retry = None;
            continue;
        }
        let started = tokio::time::Instant::now();
        let done = reconciler.pass().await;
        let elapsed = started.elapsed();
        let failed = done.secrets_failed + done.objects_failed;
        reconciler.metrics.observe_replication_pass(
            done.secrets_written,
            done.secrets_failed,
            failed > 0,
            elapsed,
        );
        rest = rest_after(elapsed);
        retry = next_wait(failed > 0, retry);
        if let Some(wait) = retry {
            tracing::info!(failed, retry_in = ?wait, "replication pass left failed writes");
        }
    }
}

/// What one pass wrote, and what it failed to.
struct PassDone {
    /// Pull Secrets applied or deleted.
    secrets_written: usize,
    secrets_failed: usize,
    /// Finalizer and status writes on ImageRegistries.
    objects_failed: usize,
}

impl Reconciler {
    /// One pass over every registry: pull Secrets made to match, then each
    /// registry's status.
    async fn pass(&mut self) -> PassDone {
        let converted = self.caches.converted();
        for (registry, problem) in newly_broken(&converted.problems, &mut self.logged) {
            tracing::warn!(registry = %registry, %problem, "registry not usable as is");
        }
        let existing: Namespaces = self
            .namespaces
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect();
        let observed: Vec<_> = self
            .managed
            .state()
            .iter()
            .filter_map(|s| observed(s))
            .collect();
        // One snapshot of the records for the whole pass.
        let objects = self.caches.registries.state();
        let deleting: BTreeSet<String> = objects
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_some())
            .map(|r| r.name_any())
            .collect();
        let wanted: Vec<Replicated> = converted
            .records
            .iter()
            .filter_map(|record| {
                let server = record.parsed_server().ok()?;
                Some(Replicated {
                    name: record.name.clone(),
                    pull_secret_name: record.pull_secret_name.clone(),
                    namespaces: record.namespaces.clone(),
                    selector: record
                        .namespace_selector
                        .as_ref()
                        .and_then(crate::selector::NamespaceSelector::compile),
                    auths_key: server.host.clone(),
                    credentials: converted
                        .credentials
                        .get(&record.name)
                        .map(|c| (c.username.clone(), c.password.clone())),
                    deleting: deleting.contains(&record.name),
                })
            })
            .collect();
        let outcome = self
            .replicator
            .reconcile(&wanted, &existing, &observed)
            .await;
        for (namespace, name, error) in &outcome.failed {
            tracing::error!(%namespace, secret = %name, %error, "pull secret write failed");
        }
        for (registry, namespace, name, reason) in &outcome.conflicts {
            tracing::warn!(%registry, %namespace, secret = %name, %reason, "pull secret conflict");
        }
        let node_trust = NodeTrust::of(&objects, &self.node_reports.state());
        let mut objects_failed = 0;
        for object in &objects {
            let name = object.name_any();
            if object.metadata.deletion_timestamp.is_some() {
                if !release_when_clean(&self.statuses, object, &self.managed).await {
                    objects_failed += 1;
                }
                continue;
            }
            if !object.finalizers().iter().any(|f| f == FINALIZER)
                && !add_finalizer(&self.statuses, object).await
            {
                objects_failed += 1;
            }
            let replicated = wanted.iter().find(|r| r.name == name);
            let conditions = conditions_for(&name, replicated, &outcome, &converted.problems);
            let namespaces_done = replicated
                .map(|r| outcome.replicated(r, &observed, &existing))
                .unwrap_or_default();
            let trust = node_trust.status(&name);
            if !write_status(&self.statuses, object, &conditions, namespaces_done, trust).await {
                objects_failed += 1;
            }
        }
        PassDone {
            secrets_written: outcome.applied.len() + outcome.deleted.len(),
            secrets_failed: outcome.failed.len(),
            objects_failed,
        }
    }
}

/// The problems of `now` not already in `logged`, which becomes `now`: a
/// problem is told when it appears, not again while it stays, and again if
/// it goes and comes back.
fn newly_broken(
    now: &[(String, RecordProblem)],
    logged: &mut BTreeSet<(String, String)>,
) -> Vec<(String, String)> {
    let current: BTreeSet<(String, String)> = now
        .iter()
        .map(|(registry, problem)| (registry.clone(), problem.to_string()))
        .collect();
    let new = current.difference(logged).cloned().collect();
    *logged = current;
    new
}

/// Held on every ImageRegistry until its pull Secrets are gone, so a
/// deletion while no replica leads still cleans up afterwards.
use super::crd::FINALIZER;

/// `false` when the write failed.
async fn add_finalizer(api: &Api<ImageRegistry>, object: &ImageRegistry) -> bool {
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    if let Err(error) = api
        .patch(
            &object.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!(registry = %object.name_any(), %error, "adding the finalizer failed");
        return false;
    }
    true
}

/// Removes our finalizer once no pull Secret of the registry is left;
/// `false` when the write failed.
async fn release_when_clean(
    api: &Api<ImageRegistry>,
    object: &ImageRegistry,
    managed: &Store<Secret>,
) -> bool {
    let name = object.name_any();
    if !object.finalizers().iter().any(|f| f == FINALIZER) {
        return true;
    }
    let remaining = managed
        .state()
        .iter()
        .filter_map(|s| observed(s))
        .any(|s| s.managed_for.as_deref() == Some(name.as_str()));
    if remaining {
        return true;
    }
    let finalizers: Vec<String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    if let Err(error) = api
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!(registry = %name, %error, "releasing the finalizer failed");
        return false;
    }
    true
}

/// What the status should say after a pass, for one registry.
fn conditions_for(
    name: &str,
    replicated: Option<&Replicated>,
    outcome: &super::replicate::Outcome,
    problems: &[(String, RecordProblem)],
) -> Vec<Wanted> {
    let mine: Vec<&RecordProblem> = problems
        .iter()
        .filter(|(r, _)| r == name)
        .map(|(_, p)| p)
        .collect();
    let accepted = if mine.is_empty() {
        Wanted {
            type_: ConditionType::Accepted,
            status: Truth::True,
            reason: "Accepted".into(),
            message: String::new(),
        }
    } else {
        let reason = mine
            .iter()
            .map(|p| p.condition_reason())
            .max()
            .map_or("Invalid", |(_, reason)| reason);
        Wanted {
            type_: ConditionType::Accepted,
            status: Truth::False,
            reason: reason.into(),
            message: mine
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        }
    };
    let conflicts: Vec<String> = outcome
        .conflicts
        .iter()
        .filter(|(r, ..)| r == name)
        .map(|(_, ns, secret, reason)| format!("{ns}/{secret}: {reason}"))
        .collect();
    let failures: Vec<String> = replicated
        .map(|r| {
            outcome
                .failed
                .iter()
                .filter(|(ns, secret, _)| {
                    secret == &r.pull_secret_name && crate::namespaces::reaches(&r.namespaces, ns)
                })
                .map(|(ns, secret, error)| format!("{ns}/{secret}: {error}"))
                .collect()
        })
        .unwrap_or_default();
    let replication = match replicated {
        None => Wanted {
            type_: ConditionType::Replicated,
            status: Truth::False,
            reason: "NotAccepted".into(),
            message: "not replicated until the registry is accepted".into(),
        },
        Some(r) if r.credentials.is_none() => Wanted {
            type_: ConditionType::Replicated,
            status: Truth::True,
            reason: "NoCredentials".into(),
            message: "a public registry needs no pull secret".into(),
        },
        Some(_) if !conflicts.is_empty() => Wanted {
            type_: ConditionType::Replicated,
            status: Truth::False,
            reason: "SecretConflict".into(),
            message: conflicts.join("; "),
        },
        Some(_) if !failures.is_empty() => Wanted {
            type_: ConditionType::Replicated,
            status: Truth::False,
            reason: "WriteFailed".into(),
            message: failures.join("; "),
        },
        Some(_) => Wanted {
            type_: ConditionType::Replicated,
            status: Truth::True,
            reason: "AllNamespaces".into(),
            message: String::new(),
        },
    };
    vec![accepted, replication]
}

/// Patches the status when it changed (a write that changes nothing would
/// wake every watcher for nothing); `false` when the write failed.
async fn write_status(
    statuses: &Api<ImageRegistry>,
    object: &ImageRegistry,
    wanted: &[Wanted],
    replicated: Vec<String>,
    node_trust: Option<NodeTrustStatus>,
) -> bool {
    let now = super::status::now();
    let name = object.name_any();
    let written = super::status::write_status(statuses, &name, Some(object.clone()), |object| {
        let generation = object.metadata.generation;
        let status = object.status.clone().unwrap_or_default();
        let (conditions, changed) = super::status::with_wanted(object, wanted, &now);
        if !changed
            && status.replicated_namespaces == replicated
            && status.observed_generation == generation
            && status.node_trust == node_trust
        {
            return None;
        }
        Some(serde_json::json!({
            "conditions": conditions,
            "replicatedNamespaces": replicated,
            "observedGeneration": generation,
            "nodeTrust": node_trust,
        }))
    })
    .await;
    if let Err(error) = written {
        tracing::warn!(registry = %name, %error, "writing status failed");
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// After failed writes the next pass waits 1 s, then twice as long each
    /// failing pass, never more than 5 minutes; a clean pass ends the
    /// backoff (the next waits for an event or the resync).
    #[test]
    fn failed_passes_back_off_and_a_clean_one_resets() {
        let mut wait = None;
        let mut waits = Vec::new();
        for _ in 0..11 {
            wait = next_wait(true, wait);
            waits.push(wait.map(|w| w.as_secs()));
        }
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map(Some),
        );
        assert_eq!(next_wait(false, wait), None);
        assert_eq!(next_wait(true, None), Some(RETRY_FIRST));
    }

    #[test]
    fn a_broken_record_is_logged_when_it_breaks_not_on_every_pass() {
        let missing = || {
            (
                "harbor".to_owned(),
                RecordProblem::CredentialsMissing("harbor-credentials".into()),
            )
        };
        let mut logged = BTreeSet::new();
        assert_eq!(newly_broken(&[missing()], &mut logged).len(), 1);
        assert!(
            newly_broken(&[missing()], &mut logged).is_empty(),
            "still broken"
        );
        assert!(newly_broken(&[], &mut logged).is_empty(), "mended");
        assert_eq!(
            newly_broken(&[missing()], &mut logged).len(),
            1,
            "broken again"
        );
    }

    /// Passes take at most a tenth of the loop's time, and a slow pass
    /// (writes waiting on the API server) delays the next by a second at
    /// most.
    #[test]
    fn passes_rest_in_proportion_to_their_cost() {
        assert_eq!(rest_after(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            rest_after(Duration::from_micros(6_500)),
            Duration::from_micros(58_500)
        );
        assert_eq!(rest_after(Duration::from_secs(3)), REST_MAX);
    }

    /// Re-verification writes status, so it runs only while this replica
    /// leads: no pass as a follower, one per interval as the leader, none
    /// again after losing the lease.
    #[tokio::test(start_paused = true)]
    async fn only_the_leader_reverifies() {
        let (lead, leading) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let passes = Arc::new(AtomicUsize::new(0));
        let counted = passes.clone();
        let task = tokio::spawn(every_while_leading(
            Duration::from_secs(60),
            leading,
            shutdown.clone(),
            move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            },
        ));
        // Ticks at 60, 120 and 180 s as a follower.
        tokio::time::sleep(Duration::from_secs(185)).await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            0,
            "a follower does not re-verify"
        );
        // Leading: the ticks at 240 and 300 s.
        lead.send(true).expect("send");
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            2,
            "the leader re-verifies each interval"
        );
        // The lease lost: no more.
        lead.send(false).expect("send");
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            2,
            "not after losing the lease"
        );
        shutdown.cancel();
        task.await.expect("loop ends");
    }
}
