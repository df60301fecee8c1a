//! The cache of the pull Secrets we manage, kept as replication and
//! admission read them.
//!
//! A record authorized for `*` owns a Secret in every namespace: 1,000
//! records in 20 namespaces each are 20,000 Secrets in the cache. A whole
//! `Secret` object costs about 3 KiB there (its metadata, two maps, every
//! string); what we read of it — namespace, name, the record it is for,
//! its `.dockerconfigjson` to compare — about 400 bytes. So the watch's
//! events are kept as [`ObservedSecret`]s, not as objects.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher::Event;
use tokio::sync::watch;

use super::replicate::observed;
use crate::replication::ObservedSecret;

type Key = (String, String);

/// Shared by the watch that fills it and everything that reads it; the
/// lock is held only while a caller reads or an event is applied, never
/// across an await.
#[derive(Clone)]
pub struct PullSecrets {
    cache: Arc<RwLock<Cache>>,
    /// Set once the watch has listed everything a first time.
    listed: Arc<watch::Sender<bool>>,
}

impl Default for PullSecrets {
    fn default() -> Self {
        Self {
            cache: Arc::default(),
            listed: Arc::new(watch::channel(false).0),
        }
    }
}

#[derive(Default)]
struct Cache {
    current: HashMap<Key, Entry>,
    /// Filled while the watch lists again, then swapped in whole, as
    /// kube's reflector does: a Secret gone meanwhile does not linger.
    relisting: HashMap<Key, Entry>,
}

struct Entry {
    seen: ObservedSecret,
    /// Its resourceVersion, when it reads as a number (as every API
    /// server's does, being etcd's revision).
    version: Option<u64>,
}

fn version_of(secret: &Secret) -> Option<u64> {
    secret.metadata.resource_version.as_deref()?.parse().ok()
}

/// Whether `secret` is older than what the cache holds already: our own
/// write, put in by [`PullSecrets::wrote`], ahead of the watch that is
/// still delivering the changes before it.
fn is_stale(cached: Option<&Entry>, secret: &Secret) -> bool {
    match (cached.and_then(|entry| entry.version), version_of(secret)) {
        (Some(cached), Some(event)) => event < cached,
        _ => false,
    }
}

fn key_of(secret: &Secret) -> Key {
    (
        secret.metadata.namespace.clone().unwrap_or_default(),
        secret.metadata.name.clone().unwrap_or_default(),
    )
}

impl PullSecrets {
    /// One event of the watch of our labelled Secrets. A Secret that is
    /// ours but not a pull Secret (our credentials Secrets carry the
    /// managed-by label too) is not kept.
    pub fn apply(&self, event: &Event<Secret>) {
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        match event {
            Event::Apply(secret) => cache.put(secret),
            Event::Delete(secret) => {
                let key = key_of(secret);
                if !is_stale(cache.current.get(&key), secret) {
                    cache.current.remove(&key);
                }
            }
            Event::Init => cache.relisting = HashMap::new(),
            Event::InitApply(secret) => {
                if let Some(seen) = observed(secret) {
                    let version = version_of(secret);
                    cache
                        .relisting
                        .insert(key_of(secret), Entry { seen, version });
                }
            }
            Event::InitDone => {
                cache.current = std::mem::take(&mut cache.relisting);
                self.listed.send_replace(true);
            }
        }
    }

    /// A pull Secret as the API server answered our write of it: the
    /// cache has it at once, not when the watch brings it, so the next
    /// plan (the record's next reconcile may start first) does not write
    /// it again. The watch's older events for it are then ignored.
    pub fn wrote(&self, secret: &Secret) {
        if let Ok(mut cache) = self.cache.write() {
            cache.put(secret);
        }
    }

    /// Returns once the watch has listed every pull Secret: a plan made
    /// before would write again what is already in place.
    pub async fn wait_until_listed(&self) {
        let mut listed = self.listed.subscribe();
        let _ = listed.wait_for(|listed| *listed).await;
    }

    /// Whether the pull Secret `name` is in `namespace`.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.cache.read().is_ok_and(|cache| {
            cache
                .current
                .contains_key(&(namespace.to_owned(), name.to_owned()))
        })
    }

    /// `read` over every cached pull Secret, under the lock.
    pub fn read<R>(&self, read: impl FnOnce(&mut dyn Iterator<Item = &ObservedSecret>) -> R) -> R {
        match self.cache.read() {
            Ok(cache) => read(&mut cache.current.values().map(|entry| &entry.seen)),
            Err(_) => read(&mut std::iter::empty()),
        }
    }

    /// A copy of every cached pull Secret.
    pub fn all(&self) -> Vec<ObservedSecret> {
        self.read(|secrets| secrets.cloned().collect())
    }
}

impl Cache {
    /// A Secret applied, unless the cache holds a newer state of it; one
    /// that is no longer a pull Secret of ours goes.
    fn put(&mut self, secret: &Secret) {
        let key = key_of(secret);
        if is_stale(self.current.get(&key), secret) {
            return;
        }
        match observed(secret) {
            Some(seen) => {
                let version = version_of(secret);
                self.current.insert(key, Entry { seen, version });
            }
            None => {
                self.current.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, REGISTRY_LABEL};
    use serde_json::json;

    fn secret(namespace: &str, name: &str, registry: Option<&str>) -> Secret {
        let mut labels = json!({MANAGED_BY_LABEL: MANAGED_BY_VALUE});
        if let Some(registry) = registry {
            labels[REGISTRY_LABEL] = json!(registry);
        }
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "managedFields": [{"manager": "registry-resolver", "operation": "Apply"}]},
            "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}}))
        .expect("Secret")
    }

    fn names(cache: &PullSecrets) -> Vec<String> {
        let mut names: Vec<String> = cache.read(|secrets| {
            secrets
                .map(|s| format!("{}/{}", s.namespace, s.name))
                .collect()
        });
        names.sort();
        names
    }

    /// Events keep the cache as the cluster is: applied, deleted, and a
    /// relist replaces it whole (what went meanwhile is gone); only pull
    /// Secrets are kept, with what replication reads of them.
    #[test]
    fn follows_the_watch() {
        let cache = PullSecrets::default();
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(secret("a", "harbor", Some("harbor"))));
        cache.apply(&Event::InitApply(secret("b", "harbor", Some("harbor"))));
        assert!(names(&cache).is_empty(), "not until the list is done");
        assert!(!*cache.listed.borrow());
        cache.apply(&Event::InitDone);
        assert!(*cache.listed.borrow());
        assert_eq!(names(&cache), ["a/harbor", "b/harbor"]);
        cache.apply(&Event::Apply(secret("c", "quay", Some("quay"))));
        cache.apply(&Event::Delete(secret("a", "harbor", Some("harbor"))));
        // Our credentials Secret: ours, not a pull Secret.
        cache.apply(&Event::Apply(secret("c", "quay-credentials", None)));
        assert_eq!(names(&cache), ["b/harbor", "c/quay"]);
        assert!(cache.contains("c", "quay") && !cache.contains("a", "harbor"));
        let quay = cache
            .all()
            .into_iter()
            .find(|s| s.name == "quay")
            .expect("quay");
        assert_eq!(quay.managed_for.as_deref(), Some("quay"));
        assert_eq!(quay.dockerconfigjson.as_deref(), Some(&b"{}"[..]));
        // Our own write is in at once; the watch's older news of the
        // same Secret does not undo it, its own news of it changes nothing.
        let versioned = |version: &str, data: &str| {
            let mut secret = secret("c", "quay", Some("quay"));
            secret.metadata.resource_version = Some(version.into());
            secret.data = Some(
                [(
                    ".dockerconfigjson".to_owned(),
                    k8s_openapi::ByteString(data.as_bytes().to_vec()),
                )]
                .into(),
            );
            secret
        };
        let content = |cache: &PullSecrets| {
            cache
                .all()
                .into_iter()
                .find(|s| s.name == "quay")
                .and_then(|s| s.dockerconfigjson)
        };
        cache.wrote(&versioned("12", "new"));
        cache.apply(&Event::Apply(versioned("11", "old")));
        assert_eq!(content(&cache).as_deref(), Some(&b"new"[..]));
        cache.apply(&Event::Delete(versioned("10", "old")));
        assert_eq!(content(&cache).as_deref(), Some(&b"new"[..]));
        cache.apply(&Event::Apply(versioned("13", "edited by hand")));
        assert_eq!(content(&cache).as_deref(), Some(&b"edited by hand"[..]));
        // Listed again: b went while the watch was down.
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(secret("c", "quay", Some("quay"))));
        cache.apply(&Event::InitDone);
        assert_eq!(names(&cache), ["c/quay"]);
    }
}
