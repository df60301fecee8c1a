//! Carrying out a replication plan against the API server: server-side
//! apply with our field manager, deletes that tolerate "already gone", and
//! a look at Secrets we would create, so a Secret someone else owns is
//! never taken over.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};

use super::pull_secrets::PullSecrets;
use crate::replication::{
    Action, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Namespaces, ObservedSecret, REGISTRY_LABEL,
    Registry,
};
use tokio::sync::watch;

/// The field manager of every write we make.
pub const FIELD_MANAGER: &str = "registry-resolver";

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub applied: Vec<(String, String)>,
    pub deleted: Vec<(String, String)>,
    /// (registry, namespace, secret, reason)
    pub conflicts: Vec<(String, String, String, String)>,
    /// (namespace, secret, error) for writes the API server refused.
    pub failed: Vec<(String, String, String)>,
    /// This replica stopped leading before the pass was done: what is left
    /// is the next leader's, and nothing of this pass is reported.
    pub stopped: bool,
}

impl Outcome {
    /// Namespaces where `registry`'s pull secret is in place after this pass.
    pub fn replicated(
        &self,
        registry: &Registry,
        managed: &[ObservedSecret],
        namespaces: &Namespaces,
    ) -> Vec<String> {
        let mut out: Vec<String> = registry
            .targets(namespaces)
            .into_iter()
            .filter(|ns| {
                !self
                    .conflicts
                    .iter()
                    .any(|(r, n, _, _)| r == &registry.name && n == *ns)
                    && !self
                        .failed
                        .iter()
                        .any(|(n, s, _)| n == *ns && s == &registry.pull_secret_name)
            })
            .filter(|ns| {
                self.applied
                    .iter()
                    .any(|(n, s)| n == *ns && s == &registry.pull_secret_name)
                    || managed
                        .iter()
                        .any(|m| &m.namespace == *ns && m.name == registry.pull_secret_name)
            })
            .cloned()
            .collect();
        out.sort();
        out
    }
}

pub struct Replicator {
    client: kube::Client,
    /// Told of each Secret we apply, as the API server answered: see
    /// [`PullSecrets::wrote`].
    cache: Option<PullSecrets>,
    /// Whether this replica leads: a pass of thousands of writes outlasts
    /// a Lease, and a replica that lost it must not go on writing beside
    /// the new leader.
    leading: Option<watch::Receiver<bool>>,
}

impl Replicator {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: None,
            leading: None,
        }
    }

    /// Stops each pass once `leading` says this replica no longer leads.
    pub fn while_leading(self, leading: watch::Receiver<bool>) -> Self {
        Self {
            leading: Some(leading),
            ..self
        }
    }

    pub fn leads(&self) -> bool {
        self.leading
            .as_ref()
            .is_none_or(|leading| *leading.borrow())
    }

    /// Puts each applied Secret into `cache` as soon as it is written.
    pub fn reading_its_writes(self, cache: PullSecrets) -> Self {
        Self {
            cache: Some(cache),
            ..self
        }
    }

    /// Carries out `plan` (made from what is observed): `managed` are the
    /// Secrets carrying our labels (from the watch cache); Secrets the plan
    /// would create are looked up first, so a foreign one of the same name
    /// becomes a conflict when the plan is made again with it. `applied`
    /// counts the applies that succeeded as they do, for the status to
    /// tell while a long pass runs.
    pub async fn reconcile(
        &self,
        plan: impl Fn(&[ObservedSecret]) -> Vec<Action>,
        managed: &[ObservedSecret],
        applied: &AtomicU32,
    ) -> Outcome {
        let mut observed = managed.to_vec();
        let known: BTreeSet<(String, String)> = managed
            .iter()
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .collect();
        let mut outcome = Outcome::default();
        for action in plan(&observed) {
            if !self.leads() {
                outcome.stopped = true;
                return outcome;
            }
            if let Action::Apply {
                namespace, name, ..
            } = &action
                && !known.contains(&(namespace.clone(), name.clone()))
            {
                match self.secrets(namespace).get_opt(name).await {
                    // Ours after all (written a moment ago, the cache not
                    // there yet): planned again with what it holds, so one
                    // in line is not written again.
                    Ok(Some(existing)) => {
                        observed.push(self::observed(&existing).unwrap_or_else(|| ObservedSecret {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            managed_for: None,
                            dockerconfigjson: None,
                        }))
                    }
                    Ok(None) => {}
                    Err(error) => {
                        outcome
                            .failed
                            .push((namespace.clone(), name.clone(), error.to_string()))
                    }
                }
            }
        }
        for action in plan(&observed) {
            if !self.leads() {
                outcome.stopped = true;
                break;
            }
            self.execute(action, &mut outcome, applied).await;
        }
        outcome
    }

    async fn execute(&self, action: Action, outcome: &mut Outcome, applied: &AtomicU32) {
        match action {
            Action::Apply {
                namespace,
                name,
                registry,
                dockerconfigjson,
            } => {
                if outcome
                    .failed
                    .iter()
                    .any(|(n, s, _)| n == &namespace && s == &name)
                {
                    return;
                }
                let secret = pull_secret(&namespace, &name, &registry, &dockerconfigjson);
                let params = PatchParams::apply(FIELD_MANAGER).force();
                match self
                    .secrets(&namespace)
                    .patch(&name, &params, &Patch::Apply(&secret))
                    .await
                {
                    Ok(written) => {
                        if let Some(cache) = &self.cache {
                            cache.wrote(&written);
                        }
                        applied.fetch_add(1, Ordering::Relaxed);
                        outcome.applied.push((namespace, name));
                    }
                    Err(error) => outcome.failed.push((namespace, name, error.to_string())),
                }
            }
            Action::Delete { namespace, name } => {
                match self
                    .secrets(&namespace)
                    .delete(&name, &DeleteParams::default())
                    .await
                {
                    Ok(_) => outcome.deleted.push((namespace, name)),
                    Err(kube::Error::Api(status)) if status.is_not_found() => {
                        outcome.deleted.push((namespace, name))
                    }
                    Err(error) => outcome.failed.push((namespace, name, error.to_string())),
                }
            }
            Action::Conflict {
                registry,
                namespace,
                name,
                reason,
            } => outcome.conflicts.push((registry, namespace, name, reason)),
        }
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// The Secret we apply: only the fields we own.
pub fn pull_secret(
    namespace: &str,
    name: &str,
    registry: &str,
    dockerconfigjson: &[u8],
) -> serde_json::Value {
    let labels: BTreeMap<&str, &str> = BTreeMap::from([
        (MANAGED_BY_LABEL, MANAGED_BY_VALUE),
        (REGISTRY_LABEL, registry),
    ]);
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": STANDARD.encode(dockerconfigjson)}
    })
}

/// What the watch cache holds of a managed Secret, for planning.
pub fn observed(secret: &Secret) -> Option<ObservedSecret> {
    let labels = secret.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return None;
    }
    // Our credentials Secrets carry the managed-by label too, but no
    // registry label: they are not pull Secrets.
    let registry = labels.get(REGISTRY_LABEL)?;
    Some(ObservedSecret {
        namespace: secret.metadata.namespace.clone()?,
        name: secret.metadata.name.clone()?,
        managed_for: Some(registry.clone()),
        dockerconfigjson: secret
            .data
            .as_ref()
            .and_then(|d| d.get(".dockerconfigjson"))
            .map(|b| b.0.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::mock::{body, respond};
    use crate::replication::dockerconfigjson;
    use crate::replication::plan;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    fn registry(namespaces: &[&str]) -> Registry {
        Registry {
            name: "harbor".into(),
            pull_secret_name: "harbor-pull".into(),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            selector: None,
            auths_key: "harbor.example.com".into(),
            credentials: Some(("robot".into(), "pw".into())),
        }
    }

    /// A Status body as the API server sends it for a 404.
    fn not_found(name: &str) -> Response<Body> {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("secrets \"{name}\" not found"), "reason": "NotFound",
            "details": {"name": name, "kind": "secrets"}, "code": 404});
        respond(404, &status)
    }

    #[tokio::test]
    async fn applies_with_our_field_manager_and_never_takes_over_foreign_secrets() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let server = tokio::spawn(async move {
            // a: nothing there yet → GET 404, then server-side apply.
            let (request, send) = handle.next_request().await.expect("GET a");
            assert_eq!(request.method(), http::Method::GET);
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/a/secrets/harbor-pull"
            );
            send.send_response(not_found("harbor-pull"));
            // b: a Secret of that name that is not ours → left alone.
            let (request, send) = handle.next_request().await.expect("GET b");
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/b/secrets/harbor-pull"
            );
            send.send_response(respond(
                200,
                &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "harbor-pull", "namespace": "b", "labels": {"team": "b"}},
                "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}}),
            ));
            let (request, send) = handle.next_request().await.expect("PATCH a");
            assert_eq!(request.method(), http::Method::PATCH);
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/a/secrets/harbor-pull"
            );
            let query = request.uri().query().unwrap_or_default().to_owned();
            assert!(
                query.contains("fieldManager=registry-resolver") && query.contains("force=true"),
                "{query}"
            );
            assert_eq!(
                request
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/apply-patch+yaml")
            );
            let body = body(request).await;
            assert_eq!(body["type"], "kubernetes.io/dockerconfigjson");
            assert_eq!(
                body["metadata"]["labels"][MANAGED_BY_LABEL],
                MANAGED_BY_VALUE
            );
            assert_eq!(body["metadata"]["labels"][REGISTRY_LABEL], "harbor");
            let config = STANDARD
                .decode(body["data"][".dockerconfigjson"].as_str().expect("data"))
                .expect("base64");
            assert_eq!(
                config,
                dockerconfigjson("harbor.example.com", "robot", "pw")
            );
            send.send_response(respond(200, &body));
            // An orphan in c → DELETE, already gone is fine.
            let (request, send) = handle.next_request().await.expect("DELETE c");
            assert_eq!(request.method(), http::Method::DELETE);
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/c/secrets/old-pull"
            );
            send.send_response(not_found("old-pull"));
        });
        let namespaces: Namespaces = ["a", "b", "c"]
            .iter()
            .map(|s| (s.to_string(), Default::default()))
            .collect();
        let orphan = ObservedSecret {
            namespace: "c".into(),
            name: "old-pull".into(),
            managed_for: Some("gone".into()),
            dockerconfigjson: None,
        };
        let outcome = Replicator::new(client)
            .reconcile(
                |observed| plan(&[registry(&["a", "b"])], &namespaces, observed),
                std::slice::from_ref(&orphan),
                &AtomicU32::new(0),
            )
            .await;
        server.await.expect("mock server");
        assert_eq!(
            outcome.applied,
            [("a".to_string(), "harbor-pull".to_string())]
        );
        assert_eq!(outcome.deleted, [("c".to_string(), "old-pull".to_string())]);
        assert_eq!(outcome.conflicts.len(), 1);
        assert_eq!(outcome.conflicts[0].1, "b");
        assert!(outcome.failed.is_empty());
        assert_eq!(
            outcome.replicated(&registry(&["a", "b"]), &[], &namespaces),
            ["a"]
        );
    }

    #[tokio::test]
    async fn a_refused_write_is_reported_not_fatal() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("GET");
            send.send_response(not_found("harbor-pull"));
            let (_, send) = handle.next_request().await.expect("PATCH");
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "secrets \"harbor-pull\" is forbidden: User \"system:serviceaccount:rr:rr\" cannot patch resource \"secrets\"",
                "reason": "Forbidden", "code": 403});
            send.send_response(respond(403, &status));
        });
        let namespaces: Namespaces = [("a".to_string(), Default::default())].into();
        let outcome = Replicator::new(client)
            .reconcile(
                |observed| plan(&[registry(&["a"])], &namespaces, observed),
                &[],
                &AtomicU32::new(0),
            )
            .await;
        server.await.expect("mock server");
        assert!(outcome.applied.is_empty());
        assert_eq!(outcome.failed.len(), 1);
        assert!(
            outcome.failed[0].2.contains("forbidden"),
            "{:?}",
            outcome.failed
        );
    }

    /// A replica that no longer leads stops its pass before the next
    /// request: the new leader does the rest.
    #[tokio::test]
    async fn a_pass_stops_when_the_lease_is_lost() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let (lead, leading) = watch::channel(true);
        let replicator = Replicator::new(client).while_leading(leading);
        let namespaces: Namespaces = ["a", "b"]
            .iter()
            .map(|s| (s.to_string(), Default::default()))
            .collect();
        // Both Secrets exist with an old password: two applies, no lookups.
        let old = |ns: &str| ObservedSecret {
            namespace: ns.into(),
            name: "harbor-pull".into(),
            managed_for: Some("harbor".into()),
            dockerconfigjson: Some(dockerconfigjson("harbor.example.com", "robot", "old")),
        };
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("the first apply");
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/a/secrets/harbor-pull"
            );
            // The Lease is lost while the first write is in flight.
            lead.send(false).expect("send");
            let secret = body(request).await;
            send.send_response(respond(200, &secret));
            handle.next_request().await.is_none()
        });
        let applied = AtomicU32::new(0);
        let outcome = replicator
            .reconcile(
                |observed| plan(&[registry(&["a", "b"])], &namespaces, observed),
                &[old("a"), old("b")],
                &applied,
            )
            .await;
        drop(replicator);
        assert!(
            server.await.expect("mock server"),
            "no request after the lease was lost"
        );
        assert!(outcome.stopped);
        assert_eq!(outcome.applied.len(), 1);
        assert_eq!(applied.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn reads_managed_secrets_from_the_cache() {
        let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "p", "namespace": "a", "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REGISTRY_LABEL: "harbor"}},
            "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}}))
        .expect("secret");
        let seen = observed(&secret).expect("ours");
        assert_eq!(seen.managed_for.as_deref(), Some("harbor"));
        assert_eq!(seen.dockerconfigjson.as_deref(), Some(&b"{}"[..]));
        let mut foreign = secret.clone();
        foreign.metadata.labels = None;
        assert!(observed(&foreign).is_none());
    }
}
