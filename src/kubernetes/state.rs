//! The cluster as the webhook and the API read it: watch caches of the
//! ImageRegistry objects and of the credential Secrets, turned into records
//! and published into the same atomic index the embedded store feeds.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::Store;

use super::convert::{BasicAuth, basic_auth, contested_defaults, to_record};
use super::crd::ImageRegistry;
use crate::index::IndexHandle;
use crate::registry::Registry;

/// Records derived from the caches, with what could not be used.
#[derive(Debug, Default)]
pub struct Records {
    pub records: Vec<Registry>,
    /// Credentials by registry name, for pull secrets and registry checks.
    pub credentials: HashMap<String, BasicAuth>,
    /// (registry, problem) for the registry's status: a missing or
    /// malformed credentials Secret, an unparsable server, a lost default.
    pub problems: Vec<(String, String)>,
}

/// Converts the cached objects. `secrets` are those of the install
/// namespace, where `credentialsSecretRef` points.
pub fn records(registries: &[Arc<ImageRegistry>], secrets: &[Arc<Secret>]) -> Records {
    let by_name: HashMap<&str, &Secret> = secrets
        .iter()
        .filter_map(|s| Some((s.metadata.name.as_deref()?, s.as_ref())))
        .collect();
    let mut out = Records::default();
    for object in registries {
        let Some(name) = object.metadata.name.clone() else {
            continue;
        };
        // Being deleted: no longer offered to workloads; its Secrets go.
        if object.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let credentials =
            match &object.spec.credentials_secret_ref {
                None => None,
                Some(reference) => match by_name.get(reference.name.as_str()) {
                    Some(secret) => match basic_auth(secret) {
                        Some(auth) => Some((auth, *secret)),
                        None => {
                            out.problems.push((name.clone(), format!(
                            "credentials Secret {:?} has no non-empty username and password",
                            reference.name
                        )));
                            continue;
                        }
                    },
                    None => {
                        out.problems.push((
                            name.clone(),
                            format!("credentials Secret {:?} not found", reference.name),
                        ));
                        continue;
                    }
                },
            };
        match to_record(
            object,
            credentials.as_ref().map(|(auth, secret)| (auth, *secret)),
        ) {
            Ok(record) => {
                if let Some((auth, _)) = credentials {
                    out.credentials.insert(name, auth);
                }
                out.records.push(record);
            }
            Err(problem) => out.problems.push((name, problem)),
        }
    }
    out.records.sort_by(|a, b| a.name.cmp(&b.name));
    out.problems.extend(contested_defaults(&out.records));
    out
}

/// The watch caches behind the index.
pub struct Caches {
    pub registries: Store<ImageRegistry>,
    pub secrets: Store<Secret>,
    /// Our pull Secrets, when watched: admission warns about missing ones.
    pub pull_secrets: Option<Store<Secret>>,
}

impl Caches {
    /// Rebuilds the records and publishes them; called after every watch
    /// event, off the admission path.
    pub fn publish(&self, index: &IndexHandle) -> Records {
        let converted = records(&self.registries.state(), &self.secrets.state());
        let mut built = crate::index::Index::build(&converted.records);
        if let Some(pull_secrets) = &self.pull_secrets {
            built =
                built.with_present_pull_secrets(pull_secrets.state().iter().filter_map(|s| {
                    Some((s.metadata.namespace.clone()?, s.metadata.name.clone()?))
                }));
        }
        index.publish_index(built);
        converted
    }

    /// Ready once both watches have listed everything at least once.
    pub fn is_synced(&self) -> bool {
        use futures_util::FutureExt;
        let ready = |done: Option<Result<(), _>>| matches!(done, Some(Ok(())));
        ready(self.registries.wait_until_ready().now_or_never())
            && ready(self.secrets.wait_until_ready().now_or_never())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn the_index_follows_watch_events_and_is_ready_after_the_initial_lists() {
        let mut registries = Writer::<ImageRegistry>::default();
        let mut secrets = Writer::<Secret>::default();
        let caches = Caches {
            registries: registries.as_reader(),
            secrets: secrets.as_reader(),
            pull_secrets: None,
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
        assert!(
            !caches.is_synced(),
            "not ready until every watch has listed"
        );
        secrets.apply_watcher_event(&Event::Init);
        secrets.apply_watcher_event(&Event::InitApply(basic_auth_secret("harbor-credentials")));
        secrets.apply_watcher_event(&Event::InitDone);
        assert!(caches.is_synced());

        let converted = caches.publish(&index);
        assert!(converted.problems.is_empty(), "{:?}", converted.problems);
        let snapshot = index.load();
        let harbor = snapshot.registry("harbor").expect("indexed");
        assert_eq!(harbor.pull_secret.as_deref(), Some("harbor"));
        assert_eq!(
            snapshot.default_registry("team-a").as_deref(),
            Some("harbor")
        );
        assert_eq!(converted.credentials["harbor"].username, "robot");

        // A later object claiming the same default; then the credentials go away.
        registries.apply_watcher_event(&Event::Apply(registry(
            "zeta",
            &["team-a"],
            &["team-a"],
            None,
        )));
        let converted = caches.publish(&index);
        assert_eq!(
            index.load().default_registry("team-a").as_deref(),
            Some("harbor")
        );
        assert!(
            converted
                .problems
                .iter()
                .any(|(r, p)| r == "zeta" && p.contains("already has default registry \"harbor\""))
        );

        secrets.apply_watcher_event(&Event::Delete(basic_auth_secret("harbor-credentials")));
        let converted = caches.publish(&index);
        assert!(
            index.load().registry("harbor").is_none(),
            "unusable without its credentials"
        );
        assert!(
            converted
                .problems
                .iter()
                .any(|(r, p)| r == "harbor" && p.contains("not found"))
        );
        assert_eq!(
            index.load().default_registry("team-a").as_deref(),
            Some("zeta")
        );

        registries.apply_watcher_event(&Event::Delete(registry(
            "zeta",
            &["team-a"],
            &["team-a"],
            None,
        )));
        caches.publish(&index);
        assert!(index.load().namespace("team-a").is_none());
    }
}
