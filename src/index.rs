//! The snapshot the webhook reads: which registries each namespace may use.
//!
//! Built from the full list of records whenever the store changes, then
//! swapped in atomically. The admission path only ever loads the current
//! `Arc<Index>`: no lock, no store query, no network.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::registry::Registry;

/// One registry as resolution needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedRegistry {
    pub name: String,
    /// Changes whenever the record does (its `updatedAt`): keys caches of
    /// clients and digests, so nothing outlives an edit.
    pub version: i64,
    /// `host[:port][/prefix]`, what relative paths are joined onto.
    pub image_prefix: String,
    /// The repository path prefix inside the registry, if any.
    pub path_prefix: Option<String>,
    pub pin_digests: bool,
    /// The pull secret to inject; `None` for a registry without credentials.
    pub pull_secret: Option<String>,
    pub namespaces: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceView {
    /// Registries authorized here: the default first, then by name.
    pub authorized: Vec<String>,
    pub default: Option<String>,
}

#[derive(Debug, Default)]
pub struct Index {
    registries: HashMap<String, IndexedRegistry>,
    namespaces: HashMap<String, NamespaceView>,
    /// Pull Secrets known to exist, by namespace, where the store knows
    /// (the Kubernetes store); `None` where it does not.
    present_pull_secrets: Option<HashMap<String, HashSet<String>>>,
}

impl Index {
    /// Builds the snapshot. Records whose server no longer parses are left
    /// out (and logged): a corrupt record must not take down the webhook.
    pub fn build(records: &[Registry]) -> Self {
        let mut registries = HashMap::with_capacity(records.len());
        let mut namespaces: HashMap<String, NamespaceView> = HashMap::new();
        for record in records {
            let server = match record.parsed_server() {
                Ok(server) => server,
                Err(error) => {
                    tracing::error!(registry = %record.name, %error, "skipping registry with an unparsable server");
                    continue;
                }
            };
            for ns in &record.namespaces {
                let view = namespaces.entry(ns.clone()).or_default();
                view.authorized.push(record.name.clone());
            }
            for ns in &record.default_for {
                let view = namespaces.entry(ns.clone()).or_default();
                // The store refuses a second default; if one slips in anyway
                // (hand-edited data), the lexically first name wins, stably.
                if view.default.as_ref().is_none_or(|d| record.name < *d) {
                    view.default = Some(record.name.clone());
                }
            }
            registries.insert(
                record.name.clone(),
                IndexedRegistry {
                    name: record.name.clone(),
                    version: record.updated_at.timestamp_nanos_opt().unwrap_or_default(),
                    image_prefix: server.image_prefix(),
                    path_prefix: server.prefix.clone(),
                    pin_digests: record.pin_digests,
                    pull_secret: record
                        .has_credentials()
                        .then(|| record.pull_secret_name.clone()),
                    namespaces: record.namespaces.iter().cloned().collect(),
                },
            );
        }
        for view in namespaces.values_mut() {
            view.authorized.sort();
            if let Some(default) = &view.default
                && let Some(pos) = view.authorized.iter().position(|n| n == default)
            {
                let d = view.authorized.remove(pos);
                view.authorized.insert(0, d);
            }
        }
        Self {
            registries,
            namespaces,
            present_pull_secrets: None,
        }
    }

    /// With the pull Secrets that exist in the cluster, so admission can
    /// warn when one it injects is not there yet.
    pub fn with_present_pull_secrets(
        mut self,
        present: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut by_namespace: HashMap<String, HashSet<String>> = HashMap::new();
        for (namespace, name) in present {
            by_namespace.entry(namespace).or_default().insert(name);
        }
        self.present_pull_secrets = Some(by_namespace);
        self
    }

    /// Known to be missing (not merely unknown).
    pub fn pull_secret_missing(&self, namespace: &str, name: &str) -> bool {
        self.present_pull_secrets.as_ref().is_some_and(|present| {
            !present
                .get(namespace)
                .is_some_and(|names| names.contains(name))
        })
    }

    pub fn registry(&self, name: &str) -> Option<&IndexedRegistry> {
        self.registries.get(name)
    }

    pub fn namespace(&self, ns: &str) -> Option<&NamespaceView> {
        self.namespaces.get(ns)
    }

    /// The registry that fills in registry-relative images in `ns`, if any.
    pub fn default_registry(&self, ns: &str) -> Option<&str> {
        self.namespace(ns).and_then(|v| v.default.as_deref())
    }

    pub fn len(&self) -> usize {
        self.registries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.registries.is_empty()
    }
}

/// Where the current snapshot lives. Stores publish into it; readers load it.
#[derive(Debug, Default)]
pub struct IndexHandle {
    current: ArcSwap<Index>,
    loaded: AtomicBool,
}

impl IndexHandle {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn publish(&self, records: &[Registry]) {
        self.publish_index(Index::build(records));
    }

    pub fn publish_index(&self, index: Index) {
        let registries = index.len();
        self.current.store(Arc::new(index));
        self.loaded.store(true, Ordering::Release);
        tracing::debug!(registries, "index published");
    }

    /// The current snapshot; cheap enough for every admission.
    pub fn load(&self) -> arc_swap::Guard<Arc<Index>> {
        self.current.load()
    }

    /// The current snapshot, owned: for holding across an `.await`.
    pub fn load_full(&self) -> Arc<Index> {
        self.current.load_full()
    }

    /// Has any store published yet? Readiness waits for this.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::registry::{RegistryStatus, TlsOptions};

    /// A record as the store would hold it; shared by the resolution tests.
    pub(crate) fn record(
        name: &str,
        server: &str,
        namespaces: &[&str],
        default_for: &[&str],
        credentials: bool,
    ) -> Registry {
        Registry {
            name: name.into(),
            server: server.into(),
            username: credentials.then(|| "robot".into()),
            has_password: credentials,
            description: None,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            default_for: default_for.iter().map(|s| s.to_string()).collect(),
            tls: TlsOptions::default(),
            pull_secret_name: format!("{name}-pull"),
            pin_digests: false,
            browse: Default::default(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            status: RegistryStatus::default(),
            pull_secrets: None,
        }
    }

    #[test]
    fn namespaces_list_default_first_then_by_name() {
        let index = Index::build(&[
            record("zeta", "https://z.example", &["team-a"], &["team-a"], false),
            record(
                "alpha",
                "https://a.example",
                &["team-a", "team-b"],
                &[],
                true,
            ),
            record("mid", "http://10.0.0.1:5000/lib", &["team-a"], &[], true),
        ]);
        let view = index.namespace("team-a").expect("team-a indexed");
        assert_eq!(view.authorized, ["zeta", "alpha", "mid"]);
        assert_eq!(view.default.as_deref(), Some("zeta"));
        assert_eq!(
            index.namespace("team-b").map(|v| v.default.clone()),
            Some(None)
        );
        assert!(index.namespace("team-c").is_none());
        let mid = index.registry("mid").expect("mid indexed");
        assert_eq!(mid.image_prefix, "10.0.0.1:5000/lib");
        assert_eq!(mid.pull_secret.as_deref(), Some("mid-pull"));
        assert_eq!(
            index.registry("zeta").and_then(|r| r.pull_secret.clone()),
            None
        );
    }

    #[test]
    fn unparsable_records_are_skipped_not_fatal() {
        let index = Index::build(&[
            record("bad", "ftp://nope", &["a"], &["a"], false),
            record("good", "https://g.example", &["a"], &[], false),
        ]);
        assert!(index.registry("bad").is_none());
        assert_eq!(
            index.namespace("a").map(|v| v.authorized.clone()),
            Some(vec!["good".to_string()])
        );
    }

    #[test]
    fn handle_reports_loaded_after_first_publish() {
        let handle = IndexHandle::new();
        assert!(!handle.is_loaded());
        handle.publish(&[record("r", "https://r.example", &["a"], &[], false)]);
        assert!(handle.is_loaded());
        assert_eq!(handle.load().len(), 1);
    }
}
