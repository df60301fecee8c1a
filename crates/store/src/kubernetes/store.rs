//! The registry store on a cluster: every record an `ImageRegistry`, its
//! password in a `kubernetes.io/basic-auth` Secret owned by it (so deleting
//! the record deletes the Secret). Reads come from the watch caches; a
//! write waits (briefly) until the cache shows it, so a client reads what
//! it just wrote.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::crd::{ImageRegistry, ImageRegistrySpec, SecretRef, TlsSpec};
use super::replicate::FIELD_MANAGER;
use super::state::{Caches, Touched};
use crate::index::IndexHandle;
use crate::registry::audit::{AuditEntry, AuditPage, AuditQuery};
use crate::registry::store::AuditLog;
use crate::registry::store::{BatchDeleted, Credentials, RegistryStore, StoreError};
use crate::registry::{Password, PasswordChange, Registry, RegistrySpec, RegistryStatus};

pub struct KubeStore {
    client: kube::Client,
    /// The install namespace, home of the credential Secrets.
    namespace: String,
    caches: Caches,
    index: Arc<IndexHandle>,
    /// How long a write waits to see itself in the cache.
    settle: Duration,
}

/// What a write did to a record's credentials Secret, for `settled` to
/// wait for.
enum SecretWrite {
    Untouched,
    /// Written; the API server's resource version for it.
    Written(String),
    Removed,
}

/// The credentials Secret of a record.
pub fn credentials_secret_name(registry: &str) -> String {
    format!("{registry}-credentials")
}

fn backend(error: kube::Error) -> StoreError {
    StoreError::backend("asking the cluster", error)
}

impl KubeStore {
    pub fn new(
        client: kube::Client,
        namespace: String,
        caches: Caches,
        index: Arc<IndexHandle>,
    ) -> Self {
        Self {
            client,
            namespace,
            caches,
            index,
            settle: Duration::from_secs(5),
        }
    }

    fn registries(&self) -> Api<ImageRegistry> {
        Api::all(self.client.clone())
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn cached(&self, name: &str) -> Option<Arc<ImageRegistry>> {
        self.caches.registries.get(&ObjectRef::new(name))
    }

    /// The record as last published: `settled` republishes after each of
    /// our writes, the watch loop after everyone else's.
    fn record(&self, name: &str) -> Option<Registry> {
        self.index
            .load()
            .record(name)
            .map(|record| Registry::clone(record))
    }

    /// Waits until the caches show a write (the record at `registry`'s
    /// resource version, or gone with `None`; its credentials Secret as
    /// `credentials` says), then applies it to the index (the watch does
    /// too; whichever comes first, the client reads its own write). The
    /// two watches are separate streams: a record read before its Secret
    /// arrived would convert without credentials, and look unwritten.
    async fn settled(&self, name: &str, registry: Option<&str>, credentials: &SecretWrite) {
        let deadline = Instant::now() + self.settle;
        loop {
            let record_done = match (registry, self.cached(name)) {
                (Some(wanted), Some(object)) => object
                    .resource_version()
                    .is_some_and(|seen| at_least(&seen, wanted)),
                (None, None) => true,
                _ => false,
            };
            let secret = self.caches.secret(&credentials_secret_name(name));
            let credentials_done = match (credentials, secret) {
                (SecretWrite::Untouched, _) | (SecretWrite::Removed, None) => true,
                (SecretWrite::Written(wanted), Some(secret)) => secret
                    .resource_version()
                    .is_some_and(|seen| at_least(&seen, wanted)),
                _ => false,
            };
            let done = record_done && credentials_done;
            if done || Instant::now() >= deadline {
                if !done {
                    tracing::warn!(
                        registry = name,
                        "the watch cache did not show a write in time"
                    );
                }
                self.caches
                    .apply(&self.index, Touched::Registry(name.to_owned()));
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The answer to a write the API server refused as out of date, once
    /// the cache has caught up with the newer object: the caller retries
    /// from what it reads next, and a cache still behind the server would
    /// send it the same stale version again (the watch lags the write by
    /// a few milliseconds on any real cluster, enough for every retry of a
    /// quick loop to be refused).
    async fn modified(&self, name: &str) -> StoreError {
        match self.registries().get_opt(name).await {
            Ok(now) => {
                let version = now.as_ref().and_then(|object| object.resource_version());
                // Absent, `None` waits for the cache to drop it.
                self.settled(name, version.as_deref(), &SecretWrite::Untouched)
                    .await;
            }
            Err(error) => {
                tracing::debug!(registry = name, %error, "reading a record after a conflict failed");
            }
        }
        StoreError::Modified(name.to_owned())
    }

    fn check_defaults(&self, spec: &RegistrySpec) -> Result<(), StoreError> {
        crate::registry::store::check_default_conflict(spec, &self.index.load())
    }

    /// Deletes a record whose create could not be completed, with the
    /// credentials Secret it owns (the garbage collector would too).
    async fn roll_back_create(&self, created: &ImageRegistry) {
        let name = created.name_any();
        let params = DeleteParams {
            preconditions: created.uid().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.registries().delete(&name, &params).await {
            // The next request must not find it in the cache.
            Ok(_) => self.settled(&name, None, &SecretWrite::Untouched).await,
            Err(error) => {
                tracing::error!(registry = %name, %error, "removing a half-created registry failed");
            }
        }
        let secret = credentials_secret_name(&name);
        match self
            .secrets()
            .delete(&secret, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => {
                tracing::warn!(registry = %name, %error, "removing a half-created credentials Secret failed");
            }
        }
    }

    /// Writes (or removes) the credentials Secret, owned by the record.
    async fn write_credentials(
        &self,
        owner: &ImageRegistry,
        credentials: Option<(&str, &Password)>,
    ) -> Result<SecretWrite, StoreError> {
        let name = credentials_secret_name(&owner.name_any());
        let Some((username, password)) = credentials else {
            return match self.secrets().delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(SecretWrite::Removed),
                Err(kube::Error::Api(status)) if status.is_not_found() => Ok(SecretWrite::Removed),
                Err(error) => Err(backend(error)),
            };
        };
        let owner_reference = owner
            .controller_owner_ref(&())
            .map(|r| vec![r])
            .unwrap_or_default();
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": name, "namespace": self.namespace, "ownerReferences": owner_reference,
                         "labels": {crate::replication::MANAGED_BY_LABEL: crate::replication::MANAGED_BY_VALUE}},
            "stringData": {"username": username, "password": password.expose()}
        });
        self.secrets()
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .map(|written| {
                written
                    .resource_version()
                    .map_or(SecretWrite::Untouched, SecretWrite::Written)
            })
            .map_err(backend)
    }

    async fn write_status(
        &self,
        name: &str,
        status: &RegistryStatus,
        // The object as last seen (the cache's, or the one just written).
        seen: Option<ImageRegistry>,
    ) -> Result<ImageRegistry, StoreError> {
        use super::status::{ConditionType, Truth, Wanted};
        let now = super::status::now();
        let (state, reason) = if status.verified {
            (Truth::True, "LoginSucceeded")
        } else if status.last_verified_at.is_some() {
            (Truth::False, "CheckFailed")
        } else {
            (Truth::Unknown, "NotChecked")
        };
        let wanted = [Wanted {
            type_: ConditionType::Verified,
            status: state,
            reason: reason.into(),
            message: status.message.clone().unwrap_or_default(),
        }];
        let last_verified_at = status
            .last_verified_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let written = super::status::write_status(&self.registries(), name, seen, |object| {
            let (conditions, _) = super::status::with_wanted(object, &wanted, &now);
            Some(json!({"conditions": conditions, "lastVerifiedAt": last_verified_at}))
        })
        .await
        .map_err(backend)?;
        written.ok_or_else(|| StoreError::NotFound(name.to_owned()))
    }
}

fn crd_spec(spec: &RegistrySpec, has_credentials: bool) -> ImageRegistrySpec {
    ImageRegistrySpec {
        server: spec.server.to_string(),
        description: spec.description.clone(),
        namespaces: spec.namespaces.clone(),
        default_for: spec.default_for.clone(),
        namespace_selector: spec.namespace_selector.clone(),
        default_for_selector: spec.default_for_selector.clone(),
        tls: (spec.tls.ca_bundle.is_some() || spec.tls.insecure_skip_verify).then(|| TlsSpec {
            ca_bundle: spec.tls.ca_bundle.clone(),
            insecure_skip_verify: spec.tls.insecure_skip_verify,
        }),
        pull_secret_name: Some(spec.pull_secret_name.clone()),
        pin_digests: spec.pin_digests,
        browse: spec.browse,
        mirror_of: spec.mirror_of.clone(),
        credentials_secret_ref: has_credentials.then(|| SecretRef {
            name: credentials_secret_name(&spec.name),
        }),
    }
}

/// Whether the cache's `seen` version includes the write at `wanted`. The
/// controller may write the status right after us, so the cache can skip
/// past our version: an etcd-backed API server's versions are increasing
/// integers, compared as such; anything else must match exactly.
fn at_least(seen: &str, wanted: &str) -> bool {
    match (seen.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(seen), Ok(wanted)) => seen >= wanted,
        _ => seen == wanted,
    }
}

#[async_trait]
impl AuditLog for KubeStore {
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let uid = self.cached(&entry.registry).and_then(|object| object.uid());
        let event = super::audit::event_for(entry, &self.namespace, uid)?;
        Api::<k8s_openapi::api::core::v1::Event>::namespaced(self.client.clone(), &self.namespace)
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn entries(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        super::audit::entries(&self.client, &self.namespace, query).await
    }
}

#[async_trait]
impl RegistryStore for KubeStore {
    fn namespaces_have_labels(&self) -> bool {
        true
    }

    /// Atomic: the ImageRegistry is created without our finalizer (the
    /// controller adds it), so when its credentials Secret or its status
    /// cannot be written it is deleted again at once, its owned Secret with
    /// it, and the same request can simply be repeated.
    async fn create(&self, spec: RegistrySpec) -> Result<Registry, StoreError> {
        if self.cached(&spec.name).is_some() {
            return Err(StoreError::AlreadyExists(spec.name));
        }
        self.check_defaults(&spec)?;
        let credentials = match (&spec.username, &spec.password) {
            (Some(username), PasswordChange::Set(password)) => Some((username.as_str(), password)),
            _ => None,
        };
        let object = ImageRegistry::new(&spec.name, crd_spec(&spec, credentials.is_some()));
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let created = match self.registries().create(&params, &object).await {
            Ok(created) => created,
            Err(kube::Error::Api(status)) if status.code == 409 => {
                return Err(StoreError::AlreadyExists(spec.name));
            }
            Err(error) => return Err(backend(error)),
        };
        let completed = async {
            let secret = self.write_credentials(&created, credentials).await?;
            let record = match &spec.status {
                Some(status) => {
                    self.write_status(&spec.name, status, Some(created.clone()))
                        .await?
                }
                None => created.clone(),
            };
            Ok::<_, StoreError>((record, secret))
        }
        .await;
        let (written, secret) = match completed {
            Ok(written) => written,
            Err(error) => {
                self.roll_back_create(&created).await;
                return Err(error);
            }
        };
        self.settled(&spec.name, written.resource_version().as_deref(), &secret)
            .await;
        self.record(&spec.name).ok_or_else(|| {
            StoreError::corrupt(format!(
                "registry {:?} was written but is not readable",
                spec.name
            ))
        })
    }

    async fn replace(&self, spec: RegistrySpec, version: &str) -> Result<Registry, StoreError> {
        // A full replace of the spec (not an apply): fields the new spec
        // leaves out are removed whoever set them, and the version read is
        // the precondition (the API server answers 409 past it).
        let before = self
            .cached(&spec.name)
            .map(|o| (*o).clone())
            .ok_or_else(|| StoreError::NotFound(spec.name.clone()))?;
        if before.resource_version().as_deref() != Some(version) {
            return Err(self.modified(&spec.name).await);
        }
        self.check_defaults(&spec)?;
        let credentials: Option<(String, Password)> = match (&spec.username, &spec.password) {
            (Some(username), PasswordChange::Set(password)) => {
                Some((username.clone(), password.clone()))
            }
            (Some(username), PasswordChange::Keep) => self
                .credentials(&spec.name)
                .await?
                .map(|stored| (username.clone(), stored.password)),
            _ => None,
        };
        let mut object = before.clone();
        object.spec = crd_spec(&spec, credentials.is_some());
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let mut updated = match self
            .registries()
            .replace(&spec.name, &params, &object)
            .await
        {
            Ok(updated) => updated,
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                return Err(StoreError::NotFound(spec.name));
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                return Err(self.modified(&spec.name).await);
            }
            Err(other) => return Err(backend(other)),
        };
        let secret = match self
            .write_credentials(&updated, credentials.as_ref().map(|(u, p)| (u.as_str(), p)))
            .await
        {
            Ok(secret) => secret,
            Err(error) => {
                // The spec without its credentials would send the old password
                // to what the new spec names: put the spec back.
                let mut restore = before;
                restore.metadata.resource_version = updated.resource_version();
                if let Err(undo) = self
                    .registries()
                    .replace(&spec.name, &params, &restore)
                    .await
                {
                    tracing::error!(registry = %spec.name, error = %undo, "restoring the spec after a failed credentials write failed");
                }
                return Err(error);
            }
        };
        if let Some(status) = &spec.status {
            updated = self
                .write_status(&spec.name, status, Some(updated.clone()))
                .await?;
        }
        self.settled(&spec.name, updated.resource_version().as_deref(), &secret)
            .await;
        self.record(&spec.name)
            .ok_or_else(|| StoreError::NotFound(spec.name.clone()))
    }

    async fn set_status(
        &self,
        name: &str,
        status: RegistryStatus,
        version: Option<&str>,
    ) -> Result<Registry, StoreError> {
        let seen = self
            .cached(name)
            .map(|object| ImageRegistry::clone(&object));
        if let Some(expected) = version
            && seen.as_ref().and_then(|o| o.resource_version()).as_deref() != Some(expected)
        {
            return Err(StoreError::Modified(name.to_owned()));
        }
        let updated = self.write_status(name, &status, seen).await?;
        self.settled(
            name,
            updated.resource_version().as_deref(),
            &SecretWrite::Untouched,
        )
        .await;
        self.record(name)
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))
    }

    async fn get(&self, name: &str) -> Result<Option<Registry>, StoreError> {
        Ok(self.record(name))
    }

    async fn list(&self) -> Result<Vec<Registry>, StoreError> {
        Ok(self
            .index
            .load()
            .records()
            .map(|record| Registry::clone(record))
            .collect())
    }

    async fn delete(&self, name: &str, version: Option<&str>) -> Result<bool, StoreError> {
        let params = DeleteParams {
            preconditions: version.map(|v| kube::api::Preconditions {
                resource_version: Some(v.to_owned()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self.registries().delete(name, &params).await {
            Ok(_) => {
                self.settled(name, None, &SecretWrite::Untouched).await;
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(self.modified(name).await),
            Err(error) => Err(backend(error)),
        }
    }

    async fn delete_many(&self, names: Vec<String>) -> Result<BatchDeleted, StoreError> {
        let mut result = BatchDeleted::default();
        for name in names {
            if self.delete(&name, None).await? {
                result.deleted.push(name);
            } else {
                result.not_found.push(name);
            }
        }
        Ok(result)
    }

    async fn namespace_names(&self) -> Result<Vec<String>, StoreError> {
        let Some(namespaces) = &self.caches.namespaces else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = namespaces
            .state()
            .iter()
            .filter_map(|ns| ns.metadata.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn credentials(&self, name: &str) -> Result<Option<Credentials>, StoreError> {
        Ok(self.caches.credentials(name).map(|auth| Credentials {
            username: auth.username,
            password: Password::new(auth.password),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::mock::{body, respond};
    use crate::registry::{RegistryInput, WriteMode};
    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    /// A write is seen once the cache holds it or anything after it.
    #[test]
    fn a_later_version_includes_the_write() {
        assert!(at_least("120", "120"));
        assert!(at_least("121", "120"), "the controller wrote after us");
        assert!(!at_least("119", "120"));
        assert!(at_least("9", "9") && !at_least("10", "9x"));
    }

    #[tokio::test]
    async fn create_writes_the_object_its_owned_secret_and_status_then_reads_it_back() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let mut registries = Writer::<ImageRegistry>::default();
        let mut secrets = Writer::<Secret>::default();
        let caches = Caches {
            registries: registries.as_reader(),
            secrets: secrets.as_reader(),
            pull_secrets: None,
            namespaces: None,
        };
        registries.apply_watcher_event(&Event::Init);
        registries.apply_watcher_event(&Event::InitDone);
        secrets.apply_watcher_event(&Event::Init);
        secrets.apply_watcher_event(&Event::InitDone);
        let index = IndexHandle::new();
        caches.publish(&index);
        let store = KubeStore::new(
            kube::Client::new(service, "default"),
            "registry-resolver".into(),
            caches,
            index.clone(),
        );

        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("create");
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(
                request.uri().path(),
                "/apis/registry-resolver.io/v1alpha1/imageregistries"
            );
            assert!(
                request
                    .uri()
                    .query()
                    .unwrap_or("")
                    .contains("fieldManager=registry-resolver")
            );
            let mut object = body(request).await;
            assert_eq!(object["spec"]["server"], "https://harbor.example.com");
            assert_eq!(
                object["spec"]["credentialsSecretRef"],
                json!({"name": "harbor-credentials"})
            );
            assert!(
                object.to_string().find("s3cret").is_none(),
                "no password in the object"
            );
            object["metadata"]["uid"] = json!("uid-harbor");
            object["metadata"]["resourceVersion"] = json!("10");
            object["metadata"]["creationTimestamp"] = json!("2026-11-29T00:00:00Z");
            send.send_response(respond(201, &object));

            let (request, send) = handle.next_request().await.expect("secret");
            assert_eq!(request.method(), http::Method::PATCH);
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/registry-resolver/secrets/harbor-credentials"
            );
            let secret = body(request).await;
            assert_eq!(secret["type"], "kubernetes.io/basic-auth");
            assert_eq!(
                secret["stringData"],
                json!({"username": "robot", "password": "s3cret"})
            );
            let owner = &secret["metadata"]["ownerReferences"][0];
            assert_eq!(
                (owner["kind"].as_str(), owner["uid"].as_str()),
                (Some("ImageRegistry"), Some("uid-harbor"))
            );
            send.send_response(respond(200, &secret));

            let (request, send) = handle.next_request().await.expect("status");
            assert_eq!(
                request.uri().path(),
                "/apis/registry-resolver.io/v1alpha1/imageregistries/harbor/status"
            );
            let patch = body(request).await;
            assert_eq!(patch["status"]["conditions"][0]["type"], "Verified");
            assert_eq!(patch["status"]["conditions"][0]["status"], "True");
            object["metadata"]["resourceVersion"] = json!("11");
            object["status"] = patch["status"].clone();
            send.send_response(respond(200, &object));

            // The watches deliver what was written.
            let stored: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "harbor-credentials", "namespace": "registry-resolver", "resourceVersion": "12"},
                "type": "kubernetes.io/basic-auth", "data": {"username": "cm9ib3Q=", "password": "czNjcmV0"}}))
            .expect("secret");
            secrets.apply_watcher_event(&Event::Apply(stored));
            let object: ImageRegistry = serde_json::from_value(object).expect("object");
            registries.apply_watcher_event(&Event::Apply(object));
            (registries, secrets)
        });

        let input: RegistryInput = serde_json::from_value(json!({"name": "harbor", "server": "harbor.example.com",
            "username": "robot", "password": "s3cret", "namespaces": ["team-a"], "defaultFor": ["team-a"]}))
        .expect("input");
        let mut spec = input.validate(WriteMode::Create, None).expect("valid");
        spec.status = Some(RegistryStatus {
            verified: true,
            last_verified_at: Some(chrono::Utc::now()),
            message: Some("login succeeded".into()),
        });
        let record = store.create(spec).await.expect("created");
        let _writers = server.await.expect("mock server");
        assert_eq!(record.server, "https://harbor.example.com");
        assert!(record.has_password);
        assert!(record.status.verified);
        assert_eq!(
            index.load().default_registry("team-a").as_deref(),
            Some("harbor")
        );
        let credentials = store
            .credentials("harbor")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(credentials.password.expose(), "s3cret");
        // A second create of the same name is refused from the cache.
        let again: RegistryInput = serde_json::from_value(
            json!({"name": "harbor", "server": "x.example", "namespaces": ["a"]}),
        )
        .expect("input");
        assert!(matches!(
            store
                .create(again.validate(WriteMode::Create, None).expect("valid"))
                .await,
            Err(StoreError::AlreadyExists(_))
        ));
    }
}
