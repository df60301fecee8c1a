//! The cluster as the webhook and the API read it: watch caches of the
//! ImageRegistry objects and of the credential Secrets, turned into records
//! and published into the same atomic index the embedded store feeds.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::reflector::{ObjectRef, Store};

use super::convert::{BasicAuth, RecordProblem, basic_auth, contested_defaults, to_record};
use super::crd::ImageRegistry;
use super::pull_secrets::PullSecrets;
use crate::index::{Change, Index, IndexHandle, Labels};
use crate::registry::Registry;
use crate::replication::ObservedSecret;

/// Records derived from the caches, with what could not be used.
#[derive(Debug, Default)]
pub struct Records {
    pub records: Vec<Registry>,
    /// Credentials by registry name, for pull secrets and registry checks.
    pub credentials: HashMap<String, BasicAuth>,
    /// (registry, problem) for the registry's status: a missing or
    /// malformed credentials Secret, an unparsable server, a lost default.
    pub problems: Vec<(String, RecordProblem)>,
}

/// One object as the index uses it: its record and credentials, or the
/// problem that keeps it out. `None`: nothing to say (being deleted, or
/// without a name).
type Converted = Option<Result<(Registry, Option<BasicAuth>), (String, RecordProblem)>>;

/// Converts one ImageRegistry; `secret` finds a credentials Secret of the
/// install namespace by name.
fn convert(object: &ImageRegistry, secret: impl Fn(&str) -> Option<Arc<Secret>>) -> Converted {
    let name = object.metadata.name.clone()?;
    // Being deleted: no longer offered to workloads; its Secrets go.
    if object.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let credentials = match &object.spec.credentials_secret_ref {
        None => None,
        Some(reference) => match secret(&reference.name) {
            Some(secret) => match basic_auth(&secret) {
                Some(auth) => Some((auth, secret)),
                None => {
                    return Some(Err((
                        name,
                        RecordProblem::CredentialsIncomplete(reference.name.clone()),
                    )));
                }
            },
            None => {
                return Some(Err((
                    name,
                    RecordProblem::CredentialsMissing(reference.name.clone()),
                )));
            }
        },
    };
    Some(
        match to_record(
            object,
            credentials
                .as_ref()
                .map(|(auth, secret)| (auth, secret.as_ref())),
        ) {
            Ok(record) => Ok((record, credentials.map(|(auth, _)| auth))),
            Err(problem) => Err((name, RecordProblem::Invalid(problem))),
        },
    )
}

/// Converts the cached objects. `secrets` are those of the install
/// namespace, where `credentialsSecretRef` points.
pub fn records(registries: &[Arc<ImageRegistry>], secrets: &[Arc<Secret>]) -> Records {
    let by_name: HashMap<&str, &Arc<Secret>> = secrets
        .iter()
        .filter_map(|s| Some((s.metadata.name.as_deref()?, s)))
        .collect();
    let mut out = Records::default();
    for object in registries {
        match convert(object, |name| by_name.get(name).map(|s| Arc::clone(s))) {
            None => {}
            Some(Ok((record, credentials))) => {
                if let Some(auth) = credentials {
                    out.credentials.insert(record.name.clone(), auth);
                }
                out.records.push(record);
            }
            Some(Err(problem)) => out.problems.push(problem),
        }
    }
    out.records.sort_by(|a, b| a.name.cmp(&b.name));
    out.problems.extend(contested_defaults(&out.records));
    out
}

/// What one watch event touched, for [`Caches::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    Registry(String),
    /// A credentials Secret of the install namespace, by name.
    Credentials(String),
    Namespace(String),
    PullSecret {
        namespace: String,
        name: String,
    },
    /// A watch listed everything again (after a restart or a lost watch):
    /// rebuilt from the caches.
    Everything,
    /// A node agent's report: status only, nothing for the index.
    NodeReport,
}

/// The watch caches behind the index.
#[derive(Clone)]
pub struct Caches {
    pub registries: Store<ImageRegistry>,
    pub secrets: Store<Secret>,
    /// Our pull Secrets, when watched: admission warns about missing ones.
    pub pull_secrets: Option<PullSecrets>,
    /// The cluster's namespaces, when watched: label selectors match them.
    pub namespaces: Option<Store<Namespace>>,
}

impl Caches {
    /// Rebuilds the whole index from the caches and publishes it: once the
    /// watches have listed, and after a watch lists again.
    pub fn publish(&self, index: &IndexHandle) {
        index.update(|_| self.build());
    }

    fn build(&self) -> Index {
        let converted = records(&self.registries.state(), &self.secrets.state());
        let mut built = Index::build(&converted.records);
        if let Some(namespaces) = &self.namespaces {
            built = built.with_namespaces(
                namespaces
                    .state()
                    .iter()
                    .filter_map(|ns| Some((ns.metadata.name.clone()?, labels(ns)))),
            );
        }
        if let Some(pull_secrets) = &self.pull_secrets {
            built = pull_secrets.read(|secrets| {
                built.with_present_pull_secrets(
                    secrets.map(|s| (s.namespace.clone(), s.name.clone())),
                )
            });
        }
        built
    }

    /// The records, credentials and problems as the caches hold them now:
    /// for replication and status.
    pub fn converted(&self) -> Records {
        records(&self.registries.state(), &self.secrets.state())
    }

    /// Applies what one watch event touched to the index, changing only
    /// the entries it affects. The caches are read under the index's
    /// writer lock, so whichever event is applied last sees every cache as
    /// it is: two events racing (a registry and its credentials) cannot
    /// leave the index with the older state of either.
    pub fn apply(&self, index: &IndexHandle, touched: Touched) {
        // Until the first full publish (once every watch has listed), the
        // caches are read whole then; nothing to apply piecemeal.
        if !index.is_loaded() || touched == Touched::NodeReport {
            return;
        }
        index.update(|current| match &touched {
            Touched::Everything => self.build(),
            Touched::NodeReport => current.clone(),
            Touched::Registry(name) => current.apply([self.registry_change(name)]),
            Touched::Credentials(secret) => current.apply(
                self.registries
                    .state()
                    .iter()
                    .filter(|object| {
                        object
                            .spec
                            .credentials_secret_ref
                            .as_ref()
                            .is_some_and(|r| &r.name == secret)
                    })
                    .filter_map(|object| object.metadata.name.as_deref())
                    .map(|name| self.registry_change(name))
                    .collect::<Vec<_>>(),
            ),
            Touched::Namespace(name) => current.apply([Change::Namespace {
                name: name.clone(),
                labels: self
                    .namespaces
                    .as_ref()
                    .and_then(|store| store.get(&ObjectRef::new(name)))
                    .map(|ns| labels(&ns)),
            }]),
            Touched::PullSecret { namespace, name } => current.apply([Change::PullSecret {
                namespace: namespace.clone(),
                name: name.clone(),
                present: self
                    .pull_secrets
                    .as_ref()
                    .is_some_and(|cache| cache.contains(namespace, name)),
            }]),
        });
    }

    /// The records an event concerns, by name: the reconciles due once the
    /// caches hold it. A namespace concerns the records whose names or
    /// patterns reach it, every record with a selector (its labels may
    /// have started or stopped matching), and the records with a pull
    /// Secret there; a pull Secret, the records of its name and the one
    /// that manages it.
    pub fn affected(&self, touched: &Touched) -> BTreeSet<String> {
        let objects = self.registries.state();
        let named = |keep: &dyn Fn(&ImageRegistry) -> bool| -> BTreeSet<String> {
            objects
                .iter()
                .filter(|object| keep(object))
                .filter_map(|object| object.metadata.name.clone())
                .collect()
        };
        let managers = |keep: &dyn Fn(&ObservedSecret) -> bool| -> Vec<String> {
            self.pull_secrets
                .as_ref()
                .map(|cache| {
                    cache.read(|secrets| {
                        secrets
                            .filter(|secret| keep(secret))
                            .filter_map(|secret| secret.managed_for.clone())
                            .collect()
                    })
                })
                .unwrap_or_default()
        };
        match touched {
            Touched::Everything | Touched::NodeReport => named(&|_| true),
            Touched::Registry(name) => BTreeSet::from([name.clone()]),
            Touched::Credentials(secret) => named(&|object| {
                object
                    .spec
                    .credentials_secret_ref
                    .as_ref()
                    .is_some_and(|r| &r.name == secret)
            }),
            Touched::Namespace(namespace) => {
                let mut due = named(&|object| {
                    object.spec.namespace_selector.is_some()
                        || crate::namespaces::reaches(&object.spec.namespaces, namespace)
                });
                due.extend(managers(&|secret| &secret.namespace == namespace));
                due
            }
            Touched::PullSecret { namespace, name } => {
                let mut due = named(&|object| {
                    object
                        .spec
                        .pull_secret_name
                        .as_deref()
                        .or(object.metadata.name.as_deref())
                        == Some(name)
                });
                due.extend(managers(&|secret| {
                    &secret.namespace == namespace && &secret.name == name
                }));
                due
            }
        }
    }

    /// A credentials Secret by name (the watch covers the install
    /// namespace only).
    pub(crate) fn secret(&self, name: &str) -> Option<Arc<Secret>> {
        self.secrets
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    /// The index change for the registry `name` as the caches hold it now.
    fn registry_change(&self, name: &str) -> Change {
        let converted = self
            .registries
            .get(&ObjectRef::new(name))
            .and_then(|object| convert(&object, |secret| self.secret(secret)));
        match converted {
            Some(Ok((record, _))) => Change::Upsert(Arc::new(record)),
            _ => Change::Remove(name.to_owned()),
        }
    }

    /// A registry's credentials as the caches hold them now.
    pub fn credentials(&self, name: &str) -> Option<BasicAuth> {
        let object = self.registries.get(&ObjectRef::new(name))?;
        match convert(&object, |secret| self.secret(secret)) {
            Some(Ok((_, credentials))) => credentials,
            _ => None,
        }
    }

    /// Ready once both watches have listed everything at least once.
    pub fn is_synced(&self) -> bool {
        use futures_util::FutureExt;
        let ready = |done: Option<Result<(), _>>| matches!(done, Some(Ok(())));
        ready(self.registries.wait_until_ready().now_or_never())
            && ready(self.secrets.wait_until_ready().now_or_never())
    }
}

/// A namespace's labels.
fn labels(namespace: &Namespace) -> Labels {
    namespace.metadata.labels.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, REGISTRY_LABEL};
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn registry(
        name: &str,
        namespaces: &[&str],
        default_for: &[&str],
        credentials: Option<&str>,
    ) -> ImageRegistry {
        let mut spec = json!({"server": format!("{name}.example.com"), "namespaces": namespaces, "defaultFor": default_for});
        if let Some(secret) = credentials {
            spec["credentialsSecretRef"] = json!({"name": secret});
        }
        serde_json::from_value(json!({
            "apiVersion": "registry-resolver.io/v1alpha1", "kind": "ImageRegistry",
            "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "1",
                         "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": spec
        }))
        .expect("ImageRegistry")
    }

    fn basic_auth_secret(name: &str) -> Secret {
        serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": name, "namespace": "registry-resolver", "resourceVersion": "1"},
            "data": {"username": "cm9ib3Q=", "password": "czNjcmV0"}}),
        )
        .expect("Secret")
    }

    fn namespace(name: &str, labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "resourceVersion": "1", "labels": labels}
        }))
        .expect("Namespace")
    }

    /// The object an Apply or Delete event carries, by name.
    fn event_name<K: kube::ResourceExt>(event: &Event<K>) -> String {
        match event {
            Event::Apply(object) | Event::Delete(object) => object.name_any(),
            _ => String::new(),
        }
    }

    /// Caches over fresh writers, listed empty, and their index published.
    struct Cluster {
        registries: Writer<ImageRegistry>,
        secrets: Writer<Secret>,
        namespaces: Writer<Namespace>,
        caches: Caches,
        index: Arc<IndexHandle>,
    }

    impl Cluster {
        fn listed() -> Self {
            let mut registries = Writer::<ImageRegistry>::default();
            let mut secrets = Writer::<Secret>::default();
            let mut namespaces = Writer::<Namespace>::default();
            registries.apply_watcher_event(&Event::Init);
            registries.apply_watcher_event(&Event::InitDone);
            secrets.apply_watcher_event(&Event::Init);
            secrets.apply_watcher_event(&Event::InitDone);
            namespaces.apply_watcher_event(&Event::Init);
            namespaces.apply_watcher_event(&Event::InitDone);
            let caches = Caches {
                registries: registries.as_reader(),
                secrets: secrets.as_reader(),
                pull_secrets: None,
                namespaces: Some(namespaces.as_reader()),
            };
            let index = IndexHandle::new();
            caches.publish(&index);
            Self {
                registries,
                secrets,
                namespaces,
                caches,
                index,
            }
        }

        /// A registry event as its watch delivers it: into the cache, then
        /// what it touches into the index.
        fn registry_event(&mut self, event: Event<ImageRegistry>) {
            let name = event_name(&event);
            self.registries.apply_watcher_event(&event);
            self.caches.apply(&self.index, Touched::Registry(name));
        }

        /// A namespace event, the same way.
        fn namespace_event(&mut self, event: Event<Namespace>) {
            let name = event_name(&event);
            self.namespaces.apply_watcher_event(&event);
            self.caches.apply(&self.index, Touched::Namespace(name));
        }

        /// What the webhook would see in `ns`: authorized registries, the
        /// default, and how it is claimed.
        fn sees(&self, ns: &str) -> (Vec<String>, Option<String>) {
            let index = self.index.load();
            match index.namespace(ns) {
                Some(view) => (
                    view.authorized().map(str::to_owned).collect(),
                    view.default_registry().map(str::to_owned),
                ),
                None => (Vec::new(), None),
            }
        }

        /// The index built piecemeal equals one built from the caches whole.
        fn assert_consistent(&self, namespaces: &[&str]) {
            let whole = self.caches.build();
            let piecemeal = self.index.load();
            for ns in namespaces {
                let see = |index: &Index| {
                    index.namespace(ns).map(|view| {
                        (
                            view.authorized().map(str::to_owned).collect::<Vec<_>>(),
                            view.default_registry().map(str::to_owned),
                        )
                    })
                };
                assert_eq!(see(&piecemeal), see(&whole), "namespace {ns}");
            }
            let names = |index: &Index| index.records().map(|r| r.name.clone()).collect::<Vec<_>>();
            assert_eq!(names(&piecemeal), names(&whole));
        }
    }

    #[test]
    fn the_index_follows_watch_events_and_is_ready_after_the_initial_lists() {
        let mut registries = Writer::<ImageRegistry>::default();
        let mut secrets = Writer::<Secret>::default();
        let caches = Caches {
            registries: registries.as_reader(),
            secrets: secrets.as_reader(),
            pull_secrets: None,
            namespaces: None,
        };
        let index = IndexHandle::new();

        // The initial list, as the watcher delivers it.
        registries.apply_watcher_event(&Event::Init);
        registries.apply_watcher_event(&Event::InitApply(registry(
            "harbor",
            &["team-a"],
            &["team-a"],
            Some("harbor-credentials"),
        )));
        registries.apply_watcher_event(&Event::InitDone);
        // Events before the first full publish are left to it.
        caches.apply(&index, Touched::Registry("harbor".into()));
        assert!(!index.is_loaded());
        assert!(
            !caches.is_synced(),
            "not ready until every watch has listed"
        );
        secrets.apply_watcher_event(&Event::Init);
        secrets.apply_watcher_event(&Event::InitApply(basic_auth_secret("harbor-credentials")));
        secrets.apply_watcher_event(&Event::InitDone);
        assert!(caches.is_synced());

        caches.publish(&index);
        let converted = caches.converted();
        assert!(converted.problems.is_empty(), "{:?}", converted.problems);
        let snapshot = index.load();
        let harbor = snapshot.registry("harbor").expect("indexed");
        assert_eq!(harbor.pull_secret.as_deref(), Some("harbor"));
        assert_eq!(
            snapshot.default_registry("team-a").as_deref(),
            Some("harbor")
        );
        assert_eq!(converted.credentials["harbor"].username, "robot");
        assert_eq!(
            caches.credentials("harbor").map(|c| c.password),
            Some("s3cret".to_owned())
        );

        // A later object claiming the same default; then the credentials go away.
        registries.apply_watcher_event(&Event::Apply(registry(
            "zeta",
            &["team-a"],
            &["team-a"],
            None,
        )));
        caches.apply(&index, Touched::Registry("zeta".into()));
        assert_eq!(
            index.load().default_registry("team-a").as_deref(),
            Some("harbor")
        );
        assert!(caches.converted().problems.iter().any(|(r, p)| r == "zeta"
            && matches!(p, RecordProblem::DefaultOutranked { holder, .. } if holder == "harbor")));

        secrets.apply_watcher_event(&Event::Delete(basic_auth_secret("harbor-credentials")));
        caches.apply(&index, Touched::Credentials("harbor-credentials".into()));
        assert!(
            index.load().registry("harbor").is_none(),
            "unusable without its credentials"
        );
        assert!(
            caches
                .converted()
                .problems
                .iter()
                .any(|(r, p)| r == "harbor" && matches!(p, RecordProblem::CredentialsMissing(_)))
        );
        assert_eq!(
            index.load().default_registry("team-a").as_deref(),
            Some("zeta")
        );
        // The credentials come back: the registry does too, touched only
        // through its Secret.
        secrets.apply_watcher_event(&Event::Apply(basic_auth_secret("harbor-credentials")));
        caches.apply(&index, Touched::Credentials("harbor-credentials".into()));
        assert_eq!(
            index.load().default_registry("team-a").as_deref(),
            Some("harbor")
        );

        registries.apply_watcher_event(&Event::Delete(registry(
            "zeta",
            &["team-a"],
            &["team-a"],
            None,
        )));
        caches.apply(&index, Touched::Registry("zeta".into()));
        registries.apply_watcher_event(&Event::Delete(registry(
            "harbor",
            &["team-a"],
            &["team-a"],
            Some("harbor-credentials"),
        )));
        caches.apply(&index, Touched::Registry("harbor".into()));
        assert!(index.load().namespace("team-a").is_none());
    }

    /// `namespaceSelector` and `defaultForSelector` against namespaces
    /// created, relabelled and deleted later, each event applied alone.
    #[test]
    fn label_selectors_follow_namespaces_as_they_come_change_and_go() {
        let mut cluster = Cluster::listed();
        let with_selectors = |name: &str,
                              created: &str,
                              namespaces: &[&str],
                              selector: serde_json::Value,
                              default: Option<serde_json::Value>| {
            let mut object = registry(name, namespaces, &[], None);
            object.metadata.creation_timestamp = serde_json::from_value(json!(created)).ok();
            object.spec.namespace_selector = serde_json::from_value(selector).ok();
            object.spec.default_for_selector = default.and_then(|d| serde_json::from_value(d).ok());
            object
        };
        let ws1 = json!({"matchLabels": {"kubesphere.io/workspace": "ws1"}});
        cluster.registry_event(Event::Apply(with_selectors(
            "harbor-ws1",
            "2026-11-01T00:00:00Z",
            &[],
            ws1.clone(),
            Some(ws1.clone()),
        )));
        assert_eq!(
            cluster.sees("proj-1"),
            (vec![], None),
            "no such namespace yet"
        );

        // A project of the workspace appears: it gets the registry, as default.
        cluster.namespace_event(Event::Apply(namespace(
            "proj-1",
            json!({"kubesphere.io/workspace": "ws1"}),
        )));
        assert_eq!(
            cluster.sees("proj-1"),
            (vec!["harbor-ws1".into()], Some("harbor-ws1".into()))
        );

        // Another registry claims it by name: a name comes before labels.
        cluster.registry_event(Event::Apply(registry(
            "named",
            &["proj-1"],
            &["proj-1"],
            None,
        )));
        assert_eq!(
            cluster.sees("proj-1"),
            (
                vec!["named".into(), "harbor-ws1".into()],
                Some("named".into())
            )
        );
        cluster.assert_consistent(&["proj-1"]);

        // A second selector default, younger: the older record keeps it.
        cluster.registry_event(Event::Apply(with_selectors(
            "younger", "2026-11-20T00:00:00Z", &[], json!({"matchExpressions": [{"key": "kubesphere.io/workspace", "operator": "Exists"}]}), Some(json!({"matchExpressions": [{"key": "kubesphere.io/workspace", "operator": "Exists"}]})),
        )));
        cluster.namespace_event(Event::Apply(namespace(
            "proj-2",
            json!({"kubesphere.io/workspace": "ws1"}),
        )));
        assert_eq!(
            cluster.sees("proj-2"),
            (
                vec!["harbor-ws1".into(), "younger".into()],
                Some("harbor-ws1".into())
            )
        );

        // Relabelled into another workspace: harbor-ws1 is gone from it.
        cluster.namespace_event(Event::Apply(namespace(
            "proj-2",
            json!({"kubesphere.io/workspace": "ws2"}),
        )));
        assert_eq!(
            cluster.sees("proj-2"),
            (vec!["younger".into()], Some("younger".into()))
        );

        // Labels removed: nothing selects it any more.
        cluster.namespace_event(Event::Apply(namespace("proj-2", json!({}))));
        assert_eq!(cluster.sees("proj-2"), (vec![], None));
        cluster.assert_consistent(&["proj-1", "proj-2"]);

        // The record's selector changes: every namespace follows at once.
        cluster.registry_event(Event::Apply(with_selectors(
            "harbor-ws1",
            "2026-11-01T00:00:00Z",
            &[],
            json!({"matchLabels": {"kubesphere.io/workspace": "ws9"}}),
            None,
        )));
        assert_eq!(
            cluster.sees("proj-1"),
            (vec!["named".into(), "younger".into()], Some("named".into()))
        );

        // The namespace goes.
        cluster.namespace_event(Event::Delete(namespace("proj-1", json!({}))));
        assert_eq!(
            cluster.sees("proj-1"),
            (vec!["named".into()], Some("named".into())),
            "named still names it"
        );
        cluster.assert_consistent(&["proj-1", "proj-2"]);
        let _ = &mut cluster.secrets;
    }

    /// An event queues the reconciles of the records it concerns, no more:
    /// a namespace those whose names or patterns reach it, those with a
    /// selector, and those with a pull Secret there.
    #[test]
    fn an_event_concerns_the_records_it_can_change() {
        let mut registries = Writer::<ImageRegistry>::default();
        let pull_secrets = PullSecrets::default();
        registries.apply_watcher_event(&Event::Init);
        for object in [
            registry("teams", &["team-*"], &[], Some("teams-credentials")),
            registry("ops", &["ops"], &[], None),
            registry("left", &["old"], &[], None),
            {
                let mut labelled = registry("labelled", &[], &[], None);
                labelled.spec.namespace_selector =
                    serde_json::from_value(json!({"matchLabels": {"tier": "web"}})).ok();
                labelled
            },
        ] {
            registries.apply_watcher_event(&Event::InitApply(object));
        }
        registries.apply_watcher_event(&Event::InitDone);
        pull_secrets.apply(&Event::Init);
        // `left` no longer reaches team-x, but its Secret is still there.
        pull_secrets.apply(&Event::InitApply(
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "left", "namespace": "team-x", "resourceVersion": "1",
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REGISTRY_LABEL: "left"}}}))
            .expect("Secret"),
        ));
        pull_secrets.apply(&Event::InitDone);
        let caches = Caches {
            registries: registries.as_reader(),
            secrets: Writer::<Secret>::default().as_reader(),
            pull_secrets: Some(pull_secrets),
            namespaces: None,
        };
        let names =
            |touched: Touched| -> Vec<String> { caches.affected(&touched).into_iter().collect() };
        assert_eq!(
            names(Touched::Namespace("team-x".into())),
            ["labelled", "left", "teams"]
        );
        assert_eq!(names(Touched::Namespace("ops".into())), ["labelled", "ops"]);
        assert_eq!(names(Touched::Registry("ops".into())), ["ops"]);
        assert_eq!(
            names(Touched::Credentials("teams-credentials".into())),
            ["teams"]
        );
        // A pull Secret: the records of its name, and the one managing it.
        assert_eq!(
            names(Touched::PullSecret {
                namespace: "team-x".into(),
                name: "left".into()
            }),
            ["left"]
        );
        assert_eq!(
            names(Touched::PullSecret {
                namespace: "team-y".into(),
                name: "teams".into()
            }),
            ["teams"]
        );
        assert_eq!(
            names(Touched::NodeReport).len(),
            4,
            "status of every record"
        );
    }
}
