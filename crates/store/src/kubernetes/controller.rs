//! `serve --store kubernetes`: the watches that feed the caches and the
//! index, the controller that keeps each ImageRegistry's pull Secrets
//! replicated, and the re-verification of records.
//!
//! Every replica runs the watches and serves the webhook and the API from
//! its caches; the replica holding the Lease runs the controller and makes
//! its writes.
//!
//! The controller is `kube::runtime::Controller` over the records' own
//! watch cache, with `finalizer()`: one reconcile per ImageRegistry,
//! queued, deduplicated, retried with backoff per record. Its triggers are
//! not watches of its own but the events of the watches above, sent once
//! the caches hold them (`reconcile_on`): a reconcile reads those caches,
//! and a second watch stream could wake it before they had the change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::ListParams;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::finalizer::{self, Event as Finalizing, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::convert::RecordProblem;
use super::crd::ImageRegistry;
use super::pace::{WritePace, paced};
use super::pull_secrets::PullSecrets;
use super::reflect::{keep_all, keeping, without_bookkeeping};
use super::replicate::{Replicator, observed};
use super::state::{Caches, Touched};
use super::status::{ConditionType, Truth, Wanted};
use super::store::KubeStore;
use crate::index::IndexHandle;
use crate::node_trust::report::{NodeReport, NodeTrustStatus, REPORT_KEY, REPORT_LABEL, summarize};
use crate::registry::ReplicationProgress;
use crate::registry::connectivity::Connectivity;
use crate::replication::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, Namespaces, ObservedSecret, REGISTRY_LABEL,
    Registry as Replicated, orphans, plan_for, related_names,
};
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
    /// How fast the leader writes (pull Secrets, statuses, finalizers).
    pub write_pace: WritePace,
    /// How often a long reconcile writes its progress into the status
    /// ([`PROGRESS_INTERVAL`]).
    pub progress_interval: Duration,
}

/// What `serve` needs from the cluster side.
pub struct Cluster {
    pub store: Arc<KubeStore>,
    pub client: kube::Client,
}

/// Starts the watches and the reconcile loop; returns once every watch has
/// listed, so the index is complete before the server reports ready.
///
/// `client` reads (the watches), holds the Lease and makes the API's
/// writes. The controller's writes go through `writes`, paced here at
/// `options.write_pace` (see [`super::pace`]): it must not retry 429s
/// itself, so the pacer sees them.
pub async fn start(
    client: kube::Client,
    writes: kube::Client,
    options: ClusterOptions,
    index: Arc<IndexHandle>,
    connectivity: Arc<Connectivity>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Cluster {
    let triggers = Triggers::default();
    let generation = Arc::new(AtomicU64::new(0));
    let (registries, registries_writer) = reflector::store();
    let (credentials, credentials_writer) = reflector::store();
    let managed = PullSecrets::default();
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
        triggers: triggers.clone(),
        generation: generation.clone(),
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
        {
            let managed = managed.clone();
            move |event: &watcher::Event<Secret>| managed.apply(event)
        },
        without_bookkeeping,
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
        keeping(namespaces_writer),
        without_bookkeeping,
        |namespace| Some(Touched::Namespace(namespace.name_any())),
    );
    // The node agents' reports: only the status reads them.
    let (node_reports, node_reports_writer) = reflector::store();
    watching.watch(
        Api::<ConfigMap>::namespaced(client.clone(), &options.namespace),
        watcher::Config::default().labels(&format!("{REPORT_LABEL}=true")),
        keeping(node_reports_writer),
        without_bookkeeping,
        |_| Some(Touched::NodeReport),
    );
    // Label selectors need the namespaces before the first answer, as
    // records need their credentials.
    // The pull Secrets too: admission says when one is missing, and a
    // plan made without them would write them all again.
    // A stop ends the waits: the reflectors' when their watches end, the
    // pull Secrets' here (its cache outlives its watch).
    let pull_secrets_listed = async {
        tokio::select! {
            () = managed.wait_until_listed() => {}
            () = shutdown.cancelled() => {}
        }
    };
    let (listed_registries, listed_credentials, listed_namespaces, ()) = tokio::join!(
        registries.wait_until_ready(),
        credentials.wait_until_ready(),
        namespaces.wait_until_ready(),
        pull_secrets_listed,
    );
    if !shutdown.is_cancelled()
        && (listed_registries.is_err() || listed_credentials.is_err() || listed_namespaces.is_err())
    {
        tracing::error!("a watch stopped before it listed");
    }
    caches.publish(&index);
    let store = Arc::new(KubeStore::new(
        client.clone(),
        options.namespace.clone(),
        Caches::clone(&caches),
        index.clone(),
    ));
    let writes = paced(writes, options.write_pace, metrics.cluster_throttled());
    let replicator = Replicator::new(writes.clone()).reading_its_writes(managed.clone());
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
        // Status writes go through the one write path, like the API's,
        // over the paced client: a thousand records re-checked at once are
        // a thousand writes.
        let paced_store = Arc::new(KubeStore::new(
            writes.clone(),
            options.namespace.clone(),
            Caches::clone(&caches),
            index.clone(),
        ));
        let service = Arc::new(RegistryService::new(
            paced_store,
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
    let replicator = replicator.while_leading(leading.clone());
    let context = Arc::new(Context {
        caches,
        managed,
        namespaces,
        node_reports,
        replicator,
        registries: Api::all(writes.clone()),
        secrets: Api::all(writes),
        metrics,
        triggers,
        progress_interval: options.progress_interval,
        generation,
        snapshot: Mutex::default(),
        failures: Mutex::default(),
        logged: Mutex::default(),
    });
    tokio::spawn(replicate_while_leading(
        context, registries, leading, shutdown,
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
        // Nothing is reconciled here: the running server's leader does it.
        triggers: Triggers::default(),
        generation: Arc::default(),
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

/// What every watch feeds: the caches, the index, and the controller.
struct Watching {
    caches: Arc<Caches>,
    index: Arc<IndexHandle>,
    triggers: Triggers,
    /// Moves on every event, once the cache holds it: what a reconcile's
    /// snapshot of the caches is labelled with.
    generation: Arc<AtomicU64>,
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
            keeping(registries),
            // Its managedFields say when the spec was last written.
            keep_all,
            |object| Some(Touched::Registry(object.name_any())),
        );
        self.watch(
            Api::<Secret>::namespaced(client.clone(), namespace),
            watcher::Config::default().fields("type=kubernetes.io/basic-auth"),
            keeping(credentials),
            without_bookkeeping,
            |secret| Some(Touched::Credentials(secret.name_any())),
        );
    }

    /// A reflector over `api` into `writer`. Each event changes the index
    /// where it touches it (`touched` says what an object touches), at
    /// once, then queues the reconciles of the records it concerns; a
    /// relist rebuilds the index. Errors are retried with backoff by the
    /// watcher; the task ends with `shutdown`.
    fn watch<K: super::reflect::Watched>(
        &self,
        api: Api<K>,
        config: watcher::Config,
        keep: impl FnMut(&watcher::Event<K>) + Send + 'static,
        trim: fn(&mut K),
        touched: fn(&K) -> Option<Touched>,
    ) {
        let (caches, index, triggers, generation) = (
            self.caches.clone(),
            self.index.clone(),
            self.triggers.clone(),
            self.generation.clone(),
        );
        super::reflect::spawn(
            api,
            config,
            keep,
            self.shutdown.clone(),
            trim,
            move |event| {
                let what = match event {
                    watcher::Event::Apply(object) | watcher::Event::Delete(object) => {
                        touched(object)
                    }
                    watcher::Event::InitDone => Some(Touched::Everything),
                    watcher::Event::Init | watcher::Event::InitApply(_) => None,
                };
                if let Some(what) = what {
                    caches.apply(&index, what.clone());
                    // Before the reconciles it queues: theirs must not reuse a
                    // snapshot from before this event.
                    generation.fetch_add(1, Ordering::AcqRel);
                    if triggers.is_open() {
                        triggers.send(caches.affected(&what));
                    }
                }
            },
        );
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

/// Where the watches queue reconciles while this replica runs the
/// controller (it leads); closed otherwise, and events cost nothing more
/// than the index update.
#[derive(Clone, Default)]
struct Triggers(Arc<Mutex<Option<mpsc::UnboundedSender<ObjectRef<ImageRegistry>>>>>);

impl Triggers {
    /// A new queue for a new term; the previous one's receiver is gone.
    fn open(&self) -> mpsc::UnboundedReceiver<ObjectRef<ImageRegistry>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut current) = self.0.lock() {
            *current = Some(tx);
        }
        rx
    }

    fn close(&self) {
        if let Ok(mut current) = self.0.lock() {
            *current = None;
        }
    }

    fn is_open(&self) -> bool {
        self.0.lock().is_ok_and(|current| current.is_some())
    }

    fn send(&self, names: impl IntoIterator<Item = String>) {
        if let Ok(current) = self.0.lock()
            && let Some(tx) = current.as_ref()
        {
            for name in names {
                let _ = tx.send(ObjectRef::new(&name));
            }
        }
    }
}

/// What a reconcile reads and writes.
struct Context {
    caches: Arc<Caches>,
    managed: PullSecrets,
    namespaces: Store<Namespace>,
    node_reports: Store<ConfigMap>,
    replicator: Replicator,
    registries: Api<ImageRegistry>,
    /// Every namespace's: a deleted record's pull Secrets are listed from
    /// the API server by label.
    secrets: Api<Secret>,
    metrics: Arc<Metrics>,
    /// To queue the records a reconcile found work for.
    triggers: Triggers,
    progress_interval: Duration,
    /// The watches' event count, and the whole-world inputs last worked
    /// out from the caches with the count they were read at: reconciles of
    /// many records after one event (a new term, a node report, a relist)
    /// share one conversion instead of each converting every record.
    generation: Arc<AtomicU64>,
    snapshot: Mutex<Option<(u64, Arc<Snapshot>)>>,
    /// Failed reconciles in a row, per record, for its backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Per record, the problems last logged: a record that stays broken is
    /// logged once, not on every reconcile.
    logged: Mutex<HashMap<String, BTreeSet<String>>>,
}

/// What every reconcile reads of the whole world, as the caches held it.
struct Snapshot {
    converted: super::state::Records,
    wanted: Vec<Replicated>,
    node_trust: NodeTrust,
}

/// Why a reconcile is retried.
#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("{count} pull secret write(s) failed, the first in {namespace}: {error}")]
    Writes {
        count: usize,
        namespace: String,
        error: String,
    },
    #[error("writing the status failed")]
    Status(#[source] kube::Error),
    #[error("listing the record's pull secrets failed")]
    List(#[source] kube::Error),
}

/// The first wait after a failed reconcile of a record; it doubles with
/// each failure in a row, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Every record is reconciled even when nothing changed: the watches
/// report every change, so this only repairs what a lost write left behind.
const RESYNC: Duration = Duration::from_secs(600);
/// Reconciles of different records at once (one record's are never
/// concurrent): enough to keep the API server busy, few enough to leave
/// it to other controllers.
const CONCURRENCY: u16 = 4;

/// The wait before retrying a record that failed `failures` times in a
/// row: 1 s, 2 s, 4 s … 5 min.
fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// Runs the controller while this replica leads: a new term starts with
/// every record (and the orphans' sweep), as does every [`RESYNC`]; losing
/// the lease or shutting down lets the reconciles in flight finish, then
/// stops.
async fn replicate_while_leading(
    context: Arc<Context>,
    registries: Store<ImageRegistry>,
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            became = leading.wait_for(|leads| *leads) => if became.is_err() { return },
        }
        let requests = context.triggers.open();
        let requests = futures_util::stream::unfold(requests, |mut rx| async move {
            rx.recv().await.map(|request| (request, rx))
        });
        let resync = {
            let context = context.clone();
            futures_util::stream::unfold(true, move |first| {
                let context = context.clone();
                async move {
                    if !first {
                        tokio::time::sleep(RESYNC).await;
                    }
                    context.sweep_orphans().await;
                    Some(((), false))
                }
            })
        };
        let (over, term_over) = tokio::sync::oneshot::channel::<()>();
        let watcher = {
            let mut leading = leading.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = leading.wait_for(|leads| !*leads) => {}
                }
                let _ = over.send(());
            })
        };
        Controller::for_stream(futures_util::stream::pending(), registries.clone())
            .with_config(ControllerConfig::default().concurrency(CONCURRENCY))
            .reconcile_on(requests)
            .reconcile_all_on(resync)
            .graceful_shutdown_on(async move {
                let _ = term_over.await;
            })
            .run(reconcile, error_policy, context.clone())
            .for_each(|_| std::future::ready(()))
            .await;
        context.triggers.close();
        watcher.abort();
    }
}

/// One ImageRegistry: its pull Secrets made to match, then its status;
/// once it is being deleted, its pull Secrets removed before the finalizer
/// lets it go.
async fn reconcile(
    object: Arc<ImageRegistry>,
    context: Arc<Context>,
) -> Result<Action, finalizer::Error<ReconcileError>> {
    let name = object.name_any();
    let done = finalizer(&context.registries, FINALIZER, object, |event| async {
        match event {
            Finalizing::Apply(object) => context.apply(&object).await,
            Finalizing::Cleanup(object) => context.cleanup(&object).await,
        }
    })
    .await;
    if done.is_ok()
        && let Ok(mut failures) = context.failures.lock()
    {
        failures.remove(&name);
    }
    done
}

/// A failed reconcile is retried with the record's own backoff.
fn error_policy(
    object: Arc<ImageRegistry>,
    error: &finalizer::Error<ReconcileError>,
    context: Arc<Context>,
) -> Action {
    let name = object.name_any();
    let failures = context
        .failures
        .lock()
        .map(|mut failures| {
            let count = failures.entry(name.clone()).or_default();
            *count += 1;
            *count
        })
        .unwrap_or(1);
    let wait = retry_after(failures);
    tracing::info!(registry = %name, %error, failures, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

impl Context {
    fn namespaces(&self) -> Namespaces {
        self.namespaces
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect()
    }

    fn observed(&self) -> Vec<ObservedSecret> {
        self.managed.all()
    }

    /// The managed Secrets the record `name`'s plan is made over (see
    /// [`crate::replication::related_names`]), read out of the cache: a
    /// reconcile copies its own few, not every pull Secret of the cluster.
    fn observed_for(&self, name: &str, wanted: &[Replicated]) -> Vec<ObservedSecret> {
        let names: BTreeSet<String> = self.managed.read(|cached| {
            related_names(
                name,
                wanted,
                cached.map(|secret| (secret.name.as_str(), secret.managed_for.as_deref())),
            )
            .into_iter()
            .map(str::to_owned)
            .collect()
        });
        self.managed.read(|cached| {
            cached
                .filter(|secret| names.contains(&secret.name))
                .cloned()
                .collect()
        })
    }

    /// The whole-world inputs as the caches hold them now: the last ones
    /// when no event has come since. The count is read before the caches,
    /// so a snapshot is never labelled newer than what it holds.
    fn snapshot(&self) -> Arc<Snapshot> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Ok(memo) = self.snapshot.lock()
            && let Some((at, snapshot)) = memo.as_ref()
            && *at == generation
        {
            return snapshot.clone();
        }
        let converted = self.caches.converted();
        let snapshot = Arc::new(Snapshot {
            wanted: Self::wanted(&converted),
            node_trust: NodeTrust::of(&self.caches.registries.state(), &self.node_reports.state()),
            converted,
        });
        if let Ok(mut memo) = self.snapshot.lock() {
            *memo = Some((generation, snapshot.clone()));
        }
        snapshot
    }

    /// Every usable record as replication needs it.
    fn wanted(converted: &super::state::Records) -> Vec<Replicated> {
        converted
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
                })
            })
            .collect()
    }

    /// Carries out `name`'s share of the plan over `observed`, and queues
    /// the records that plan found work for.
    /// `progress`, when given, is told how far the record's Secrets were
    /// in line before the writes, then counts each apply that succeeds.
    async fn replicate(
        &self,
        name: &str,
        wanted: &[Replicated],
        namespaces: &Namespaces,
        observed: &[ObservedSecret],
        progress: Option<&Progress>,
    ) -> super::replicate::Outcome {
        let planned = plan_for(name, wanted, namespaces, observed);
        let uncounted = AtomicU32::new(0);
        let applied = match progress {
            Some(progress) => {
                if let Some(record) = wanted.iter().find(|r| r.name == name) {
                    let before = crate::replication::progress(record, namespaces, &planned.actions);
                    if let Ok(mut start) = progress.before.lock() {
                        *start = Some(before);
                    }
                }
                &progress.applied
            }
            None => &uncounted,
        };
        self.triggers.send(planned.also_due);
        let outcome = self
            .replicator
            .reconcile(
                |seen| plan_for(name, wanted, namespaces, seen).actions,
                observed,
                applied,
            )
            .await;
        for (namespace, secret, error) in &outcome.failed {
            tracing::error!(registry = %name, %namespace, %secret, %error, "pull secret write failed");
        }
        for (_, namespace, secret, reason) in &outcome.conflicts {
            tracing::warn!(registry = %name, %namespace, %secret, %reason, "pull secret conflict");
        }
        outcome
    }

    async fn apply(&self, object: &ImageRegistry) -> Result<Action, ReconcileError> {
        let started = tokio::time::Instant::now();
        let name = object.name_any();
        let snapshot = self.snapshot();
        let (converted, wanted) = (&snapshot.converted, &snapshot.wanted);
        self.log_problems(&name, &converted.problems);
        let namespaces = self.namespaces();
        let observed = self.observed_for(&name, wanted);
        let progress = Progress::default();
        let (outcome, last_written) = {
            let replicating =
                self.replicate(&name, wanted, &namespaces, &observed, Some(&progress));
            self.telling_progress(object, replicating, &progress).await
        };
        if outcome.stopped {
            // No longer leading: the next leader reconciles the record.
            self.finish(&outcome, false, started);
            return Ok(Action::await_change());
        }
        let replicated = wanted.iter().find(|r| r.name == name);
        let conditions = conditions_for(&name, replicated, &outcome, &converted.problems);
        let namespaces_done = replicated
            .map(|r| outcome.replicated(r, &observed, &namespaces))
            .unwrap_or_default();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let done = replicated
            .filter(|r| r.credentials.is_some())
            .map(|r| ReplicationProgress {
                replicated: count(namespaces_done.len()),
                authorized: count(r.targets(&namespaces).len()),
            });
        let trust = snapshot.node_trust.status(&name);
        let status = write_status(
            &self.registries,
            last_written.as_ref().unwrap_or(object),
            &conditions,
            namespaces_done,
            done,
            trust,
        )
        .await
        .map_err(ReconcileError::Status);
        self.finish(&outcome, status.is_err(), started);
        status?;
        Self::written(outcome)
    }

    /// Runs `replicating` and, while it runs past the progress interval,
    /// writes how far it has got into the record's status at that pace:
    /// thousands of namespaces at the paced rate take minutes, and the
    /// console shows the count. A pass that ends sooner writes nothing
    /// until its final status. Returns the object as last written, for the
    /// final status to start from.
    async fn telling_progress(
        &self,
        object: &ImageRegistry,
        replicating: impl std::future::Future<Output = super::replicate::Outcome>,
        progress: &Progress,
    ) -> (super::replicate::Outcome, Option<ImageRegistry>) {
        let mut replicating = std::pin::pin!(replicating);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.progress_interval,
            self.progress_interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut told = None;
        let mut written: Option<ImageRegistry> = None;
        loop {
            tokio::select! {
                outcome = &mut replicating => return (outcome, written),
                _ = tick.tick() => {}
            }
            let Some(now) = progress.now() else { continue };
            if told == Some(now) || now.replicated >= now.authorized || !self.replicator.leads() {
                continue;
            }
            // The status write is the record's own; replication goes on
            // meanwhile, so the write is polled alongside it.
            let from = written.clone().unwrap_or_else(|| object.clone());
            let writing = write_progress(&self.registries, from, now);
            let mut writing = std::pin::pin!(writing);
            let result = tokio::select! {
                result = &mut writing => result,
                outcome = &mut replicating => {
                    // Done first: the final status follows at once.
                    return (outcome, written);
                }
            };
            match result {
                Ok(object) => {
                    told = Some(now);
                    written = object.or(written);
                }
                Err(error) => {
                    tracing::debug!(registry = %object.name_any(), %error, "writing replication progress failed")
                }
            }
        }
    }

    /// The record is being deleted: its pull Secrets go, listed from the
    /// API server (a Secret written a moment ago may not be in the cache
    /// yet, and must not be left behind).
    async fn cleanup(&self, object: &ImageRegistry) -> Result<Action, ReconcileError> {
        let started = tokio::time::Instant::now();
        let name = object.name_any();
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{REGISTRY_LABEL}={name}");
        let listed = self
            .secrets
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(ReconcileError::List)?;
        let observed: Vec<ObservedSecret> = listed.items.iter().filter_map(observed).collect();
        let wanted = &self.snapshot().wanted;
        let outcome = self
            .replicate(&name, wanted, &self.namespaces(), &observed, None)
            .await;
        self.finish(&outcome, false, started);
        Self::written(outcome)
    }

    /// Pull Secrets of records that no longer exist.
    async fn sweep_orphans(&self) {
        let objects: BTreeSet<String> = self
            .caches
            .registries
            .state()
            .iter()
            .filter_map(|object| object.metadata.name.clone())
            .collect();
        let outcome = self
            .replicator
            .reconcile(
                |seen| orphans(&objects, seen),
                &self.observed(),
                &AtomicU32::new(0),
            )
            .await;
        for (namespace, secret) in &outcome.deleted {
            tracing::info!(%namespace, %secret, "removed a pull secret whose registry is gone");
        }
        for (namespace, secret, error) in &outcome.failed {
            tracing::warn!(%namespace, %secret, %error, "removing an orphaned pull secret failed");
        }
    }

    fn finish(
        &self,
        outcome: &super::replicate::Outcome,
        status_failed: bool,
        started: tokio::time::Instant,
    ) {
        self.metrics.observe_reconcile(
            outcome.applied.len() + outcome.deleted.len(),
            outcome.failed.len(),
            status_failed || !outcome.failed.is_empty(),
            started.elapsed(),
        );
    }

    fn written(outcome: super::replicate::Outcome) -> Result<Action, ReconcileError> {
        let count = outcome.failed.len();
        match outcome.failed.into_iter().next() {
            None => Ok(Action::await_change()),
            Some((namespace, _, error)) => Err(ReconcileError::Writes {
                count,
                namespace,
                error,
            }),
        }
    }

    /// Logs the record's problems that are new since the last reconcile.
    fn log_problems(&self, name: &str, problems: &[(String, RecordProblem)]) {
        let now: BTreeSet<String> = problems
            .iter()
            .filter(|(registry, _)| registry == name)
            .map(|(_, problem)| problem.to_string())
            .collect();
        let Ok(mut logged) = self.logged.lock() else {
            return;
        };
        let before = logged.entry(name.to_owned()).or_default();
        for problem in newly_broken(&now, before) {
            tracing::warn!(registry = %name, %problem, "registry not usable as is");
        }
    }
}

/// The problems of `now` not already in `logged`, which becomes `now`: a
/// problem is told when it appears, not again while it stays, and again if
/// it goes and comes back.
fn newly_broken(now: &BTreeSet<String>, logged: &mut BTreeSet<String>) -> Vec<String> {
    let new = now.difference(logged).cloned().collect();
    *logged = now.clone();
    new
}

/// Held on every ImageRegistry until its pull Secrets are gone, so a
/// deletion while no replica leads still cleans up afterwards.
use super::crd::FINALIZER;

/// What the status should say after a reconcile.
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

/// How far a reconcile's writes have got, as they go.
#[derive(Default)]
struct Progress {
    /// In line before the writes: set once the plan is made, for a
    /// record that is usable (one without credentials is all in line).
    before: Mutex<Option<ReplicationProgress>>,
    /// Applies that succeeded since.
    applied: AtomicU32,
}

impl Progress {
    fn now(&self) -> Option<ReplicationProgress> {
        let before = (*self.before.lock().ok()?)?;
        let applied = self.applied.load(Ordering::Relaxed);
        Some(ReplicationProgress {
            replicated: before
                .replicated
                .saturating_add(applied)
                .min(before.authorized),
            authorized: before.authorized,
        })
    }
}

/// How often a long reconcile tells how far it has got, unless
/// [`ClusterOptions::progress_interval`] says otherwise. Each is a status
/// write, so a new resourceVersion: an edit of the record opened before it
/// is refused as stale (412) and must be made again, so not too often.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// The `Replicated` condition and the count while replication runs.
async fn write_progress(
    statuses: &Api<ImageRegistry>,
    object: ImageRegistry,
    progress: ReplicationProgress,
) -> Result<Option<ImageRegistry>, kube::Error> {
    let now = super::status::now();
    let wanted = [Wanted {
        type_: ConditionType::Replicated,
        status: Truth::False,
        reason: super::status::IN_PROGRESS.into(),
        message: format!(
            "{} of {} namespaces have the current pull secret",
            progress.replicated, progress.authorized
        ),
    }];
    let name = object.name_any();
    super::status::write_status(statuses, &name, Some(object), |object| {
        let (conditions, _) = super::status::with_wanted(object, &wanted, &now);
        Some(serde_json::json!({"conditions": conditions, "replication": progress}))
    })
    .await
}

/// Patches the status when it changed (a write that changes nothing would
/// wake every watcher for nothing).
async fn write_status(
    statuses: &Api<ImageRegistry>,
    object: &ImageRegistry,
    wanted: &[Wanted],
    replicated: Vec<String>,
    progress: Option<ReplicationProgress>,
    node_trust: Option<NodeTrustStatus>,
) -> Result<(), kube::Error> {
    let now = super::status::now();
    let name = object.name_any();
    let written = super::status::write_status(statuses, &name, Some(object.clone()), |object| {
        let generation = object.metadata.generation;
        let status = object.status.clone().unwrap_or_default();
        let (conditions, changed) = super::status::with_wanted(object, wanted, &now);
        if !changed
            && status.replicated_namespaces == replicated
            && status.replication == progress
            && status.observed_generation == generation
            && status.node_trust == node_trust
        {
            return None;
        }
        Some(serde_json::json!({
            "conditions": conditions,
            "replicatedNamespaces": replicated,
            "replication": progress,
            "observedGeneration": generation,
            "nodeTrust": node_trust,
        }))
    })
    .await;
    written.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A record whose reconcile fails is retried after 1 s, then twice as
    /// long each failure in a row, never more than 5 minutes.
    #[test]
    fn failed_reconciles_back_off() {
        let waits: Vec<u64> = (1..=11).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(retry_after(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn a_broken_record_is_logged_when_it_breaks_not_on_every_reconcile() {
        let missing = || BTreeSet::from(["credentials Secret missing".to_owned()]);
        let mut logged = BTreeSet::new();
        assert_eq!(newly_broken(&missing(), &mut logged).len(), 1);
        assert!(
            newly_broken(&missing(), &mut logged).is_empty(),
            "still broken"
        );
        assert!(
            newly_broken(&BTreeSet::new(), &mut logged).is_empty(),
            "mended"
        );
        assert_eq!(
            newly_broken(&missing(), &mut logged).len(),
            1,
            "broken again"
        );
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
