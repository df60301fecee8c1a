//! Kubernetes mode against an in-memory API server speaking the real wire
//! format: the controller's watches, pull-secret replication, the API on
//! the cluster store with cluster RBAC, and the webhook's index.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::TestServer;
use common::fake_apiserver::FakeApiServer;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Waits (up to 5 s) for `check` to hold.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn pull_secret_password(secret: &Value) -> Option<String> {
    let config = STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str()?)
        .ok()?;
    let config: Value = serde_json::from_slice(&config).ok()?;
    config["auths"]["harbor.example.com"]["password"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn pull_secrets_follow_the_registries() {
    let mut cluster = TestServer::start_kubernetes_rbac().await;
    let fake = cluster.fake().clone();
    // Someone else's Secret with the name we would use, in team-c.
    fake.put(
        "secrets",
        "v1",
        "Secret",
        Some("team-c"),
        json!({"metadata": {"name": "harbor"}, "type": "Opaque", "data": {"note": "bWluZQ=="}}),
    );

    let created = cluster
        .api_as(Method::POST, "/registries?verify=false", "admin-token")
        .json(&json!({"name": "harbor", "server": "harbor.example.com", "username": "robot", "password": "pw-1",
                      "namespaces": ["team-a", "team-b", "team-c"], "defaultFor": ["team-a"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(
        created.status(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );
    let body: Value = created.json().await.expect("json");
    assert_eq!(body["hasPassword"], true);

    // The object and its credentials Secret, as the cluster stores them.
    let object = fake
        .get("imageregistries", None, "harbor")
        .expect("ImageRegistry");
    assert_eq!(
        object["spec"]["credentialsSecretRef"]["name"],
        "harbor-credentials"
    );
    assert_eq!(
        object["metadata"]["finalizers"],
        json!(["registry-resolver.io/pull-secrets"])
    );
    assert!(
        !object.to_string().contains("pw-1"),
        "no password in the object"
    );
    let credentials = fake
        .get("secrets", Some("registry-resolver"), "harbor-credentials")
        .expect("credentials");
    assert_eq!(credentials["type"], "kubernetes.io/basic-auth");

    // Replicated into the authorized namespaces that are ours to write.
    for namespace in ["team-a", "team-b"] {
        eventually(&format!("pull secret in {namespace}"), || {
            fake.get("secrets", Some(namespace), "harbor").is_some()
        })
        .await;
        let secret = fake
            .get("secrets", Some(namespace), "harbor")
            .expect("secret");
        assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(
            secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "registry-resolver"
        );
        assert_eq!(
            secret["metadata"]["labels"]["registry-resolver.io/registry"],
            "harbor"
        );
        assert_eq!(pull_secret_password(&secret).as_deref(), Some("pw-1"));
    }
    let foreign = fake
        .get("secrets", Some("team-c"), "harbor")
        .expect("foreign secret");
    assert_eq!(
        foreign["type"], "Opaque",
        "a Secret we do not manage is never overwritten"
    );

    // The status says where the pull secret is, and why not in team-c.
    eventually("Replicated condition", || {
        fake.get("imageregistries", None, "harbor")
            .is_some_and(|o| o["status"]["replicatedNamespaces"] == json!(["team-a", "team-b"]))
    })
    .await;
    let status = fake.get("imageregistries", None, "harbor").expect("object")["status"].clone();
    let condition = |type_: &str| {
        status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
            .unwrap_or_default()
    };
    assert_eq!(condition("Accepted")["status"], "True");
    assert_eq!(condition("Replicated")["status"], "False");
    assert_eq!(condition("Replicated")["reason"], "SecretConflict");
    assert!(
        condition("Replicated")["message"]
            .as_str()
            .unwrap_or("")
            .contains("team-c/harbor")
    );
    assert_eq!(
        condition("Verified")["reason"],
        "NotChecked",
        "saved with verify=false"
    );

    // Admission in team-c (where a foreign Secret blocks ours) warns that the
    // pull secret is missing; in team-a it does not.
    for (namespace, warned) in [("team-c", true), ("team-a", false)] {
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web",
            "annotations": {"registry-resolver.io/registry": "harbor"}},
            "spec": {"selector": {}, "template": {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "/team/app:1"}]}}}});
        let response: Value = cluster
            .client
            .post(format!(
                "https://localhost:{}/mutate",
                cluster.addr().port()
            ))
            .json(&common::admission_review(&object, namespace, "CREATE"))
            .send()
            .await
            .expect("review")
            .json()
            .await
            .expect("json");
        let warnings = response["response"]["warnings"].to_string();
        assert_eq!(
            warnings.contains("is not yet present in namespace"),
            warned,
            "{namespace}: {warnings}"
        );
    }

    // The webhook's index sees the registry.
    let index = cluster.index.load();
    assert_eq!(index.default_registry("team-a").as_deref(), Some("harbor"));
    drop(index);

    // A new password reaches every copy.
    let response = cluster
        .api_as(
            Method::PATCH,
            "/registries/harbor?verify=false",
            "admin-token",
        )
        .header("content-type", "application/merge-patch+json")
        .body(json!({"password": "pw-2", "namespaces": ["team-a", "team-c"]}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    eventually("new password in team-a", || {
        fake.get("secrets", Some("team-a"), "harbor")
            .and_then(|s| pull_secret_password(&s))
            .as_deref()
            == Some("pw-2")
    })
    .await;
    // team-b was removed from the list: its copy goes.
    eventually("pull secret gone from team-b", || {
        fake.get("secrets", Some("team-b"), "harbor").is_none()
    })
    .await;

    // A copy deleted by hand comes back.
    fake.delete("secrets", Some("team-a"), "harbor");
    eventually("pull secret restored in team-a", || {
        fake.get("secrets", Some("team-a"), "harbor").is_some()
    })
    .await;

    // A namespace created later gets its copy.
    let response = cluster
        .api_as(
            Method::PATCH,
            "/registries/harbor?verify=false",
            "admin-token",
        )
        .header("content-type", "application/merge-patch+json")
        .body(json!({"namespaces": ["team-a", "team-c", "team-later"]}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    fake.namespace("team-later");
    eventually("pull secret in a new namespace", || {
        fake.get("secrets", Some("team-later"), "harbor").is_some()
    })
    .await;

    // Deleting the registry removes its Secrets everywhere.
    let response = cluster
        .api_as(Method::DELETE, "/registries/harbor", "admin-token")
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 204);
    for namespace in ["team-a", "team-later"] {
        eventually(&format!("pull secret gone from {namespace}"), || {
            fake.get("secrets", Some(namespace), "harbor").is_none()
        })
        .await;
    }
    // The finalizer held the object until its Secrets were gone.
    eventually("the ImageRegistry released", || {
        fake.get("imageregistries", None, "harbor").is_none()
    })
    .await;
    assert!(
        fake.get("secrets", Some("registry-resolver"), "harbor-credentials")
            .is_none(),
        "owned credentials are collected"
    );
    assert!(
        fake.get("secrets", Some("team-c"), "harbor").is_some(),
        "the foreign Secret stays"
    );
    assert!(
        !fake
            .requests()
            .iter()
            .any(|r| r.starts_with("PATCH /api/v1/namespaces/team-c/secrets/harbor")),
        "never written to"
    );
    cluster.stop().await;
}

/// A pattern reaches namespaces created later (pull Secret, admission) and
/// lets go of those that stop matching when the record changes.
#[tokio::test]
async fn a_pattern_reaches_namespaces_created_later() {
    let mut cluster = TestServer::start_kubernetes_rbac().await;
    let fake = cluster.fake().clone();
    let created = cluster
        .api_as(Method::POST, "/registries?verify=false", "admin-token")
        .json(&json!({"name": "teams", "server": "harbor.example.com", "username": "robot", "password": "pw",
                      "namespaces": ["team-*"], "defaultFor": ["team-*"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(
        created.status(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );

    // A project created after the record: its pull Secret arrives, and a
    // registry-relative image there is expanded with the pattern's default.
    fake.namespace("team-new");
    fake.namespace("prod");
    eventually("pull secret in a namespace created later", || {
        fake.get("secrets", Some("team-new"), "teams").is_some()
    })
    .await;
    assert!(
        fake.get("secrets", Some("prod"), "teams").is_none(),
        "prod is not reached"
    );
    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {}, "template": {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "/team/app:1"}]}}}});
    // The webhook's answer (`response`) for the Deployment in `namespace`.
    let review = |namespace: &str| {
        let body = common::admission_review(&object, namespace, "CREATE");
        let cluster = &cluster;
        async move { cluster.review(&body).await }
    };
    let answer = review("team-new").await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(answer["patch"].is_string(), "expanded: {answer}");
    let answer = review("prod").await;
    assert_eq!(answer["allowed"], false, "{answer}");

    // The record narrows: the namespace it no longer reaches loses its copy.
    let response = cluster
        .api_as(
            Method::PATCH,
            "/registries/teams?verify=false",
            "admin-token",
        )
        .header("content-type", "application/merge-patch+json")
        .body(json!({"namespaces": ["team-a*"], "defaultFor": []}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    eventually(
        "pull secret gone where the pattern no longer reaches",
        || fake.get("secrets", Some("team-new"), "teams").is_none(),
    )
    .await;
    fake.namespace("team-ab");
    eventually("pull secret where the narrower pattern reaches", || {
        fake.get("secrets", Some("team-ab"), "teams").is_some()
    })
    .await;
    cluster.stop().await;
}

/// A pull Secret write the API server refuses is tried again, with no
/// other event to wake the controller, and the status follows: failed
/// first, then in place. The leader's reconciles are counted on `/metrics`.
#[tokio::test]
async fn failed_pull_secret_writes_are_retried_with_backoff() {
    let mut cluster = TestServer::start_kubernetes_rbac().await;
    let fake = cluster.fake().clone();
    // The first three writes into team-b fail, as when etcd is slow.
    fake.fail_writes("secrets", "team-b", 3);
    let created = cluster
        .api_as(Method::POST, "/registries?verify=false", "admin-token")
        .json(&json!({"name": "harbor", "server": "harbor.example.com", "username": "robot", "password": "pw-1",
                      "namespaces": ["team-a", "team-b"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let replicated = |reason: &str| {
        let reason = reason.to_owned();
        let fake = fake.clone();
        move || {
            fake.get("imageregistries", None, "harbor")
                .and_then(|o| {
                    o["status"]["conditions"]
                        .as_array()?
                        .iter()
                        .find(|c| c["type"] == "Replicated")
                        .map(|c| c["reason"] == reason.as_str())
                })
                .unwrap_or(false)
        }
    };
    eventually("the failed write in the status", replicated("WriteFailed")).await;
    assert!(fake.get("secrets", Some("team-a"), "harbor").is_some());
    // The record's reconciles fail (the second, woken by the first's
    // status write, writes nothing new); nothing else changes, and the
    // record's backoff alone (1 s, then 2 s) brings the third failure and
    // the success.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.get("secrets", Some("team-b"), "harbor").is_none() {
        assert!(
            Instant::now() < deadline,
            "the refused write was never tried again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually("the status after the retry", replicated("AllNamespaces")).await;
    let status = fake.get("imageregistries", None, "harbor").expect("object")["status"].clone();
    assert_eq!(status["replicatedNamespaces"], json!(["team-a", "team-b"]));

    let metrics = reqwest::get(cluster.admin_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let count = |series: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        count(r#"registry_resolver_reconciles_total{outcome="error"}"#) >= 1.0,
        "{metrics}"
    );
    assert!(count(r#"registry_resolver_reconciles_total{outcome="ok"}"#) >= 1.0);
    assert!(count(r#"registry_resolver_pull_secret_writes_total{outcome="error"}"#) >= 1.0);
    assert!(count(r#"registry_resolver_pull_secret_writes_total{outcome="ok"}"#) >= 2.0);
    assert!(count("registry_resolver_reconcile_duration_seconds_count") >= 2.0);
    cluster.stop().await;
}

/// `namespaceSelector` and `defaultForSelector`: namespaces created or
/// relabelled later gain the registry, its pull Secret and its default;
/// one relabelled away loses them; the record is never touched.
#[tokio::test]
async fn a_namespace_selector_follows_namespace_labels() {
    let mut cluster = TestServer::start_kubernetes_rbac().await;
    let fake = cluster.fake().clone();
    let labelled = |name: &str, workspace: &str| {
        fake.put(
            "namespaces",
            "v1",
            "Namespace",
            None,
            json!({"metadata": {"name": name, "labels": {"kubesphere.io/workspace": workspace}}}),
        );
    };
    labelled("proj-1", "ws1");
    labelled("proj-2", "ws2");
    let workspace = json!({"matchLabels": {"kubesphere.io/workspace": "ws1"}});
    let created = cluster
        .api_as(Method::POST, "/registries?verify=false", "admin-token")
        .json(&json!({"name": "harbor-ws1", "server": "harbor.example.com", "username": "robot", "password": "pw",
                      "namespaceSelector": workspace, "defaultForSelector": workspace}))
        .send()
        .await
        .expect("create");
    assert_eq!(
        created.status(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );
    eventually("pull secret in the workspace's namespace", || {
        fake.get("secrets", Some("proj-1"), "harbor-ws1").is_some()
    })
    .await;
    assert!(fake.get("secrets", Some("proj-2"), "harbor-ws1").is_none());

    // The picker says which default applies and why.
    let picker = |ns: &str| {
        let request = cluster.api_as(
            Method::GET,
            &format!("/namespaces/{ns}/registries"),
            "admin-token",
        );
        async move {
            request
                .send()
                .await
                .expect("picker")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let answer = picker("proj-1").await;
    assert_eq!(answer["items"][0]["name"], "harbor-ws1", "{answer}");
    assert_eq!(answer["default"]["registry"], "harbor-ws1", "{answer}");
    assert_eq!(answer["default"]["by"], "selector", "{answer}");
    assert_eq!(
        answer["default"]["via"], "kubesphere.io/workspace=ws1",
        "{answer}"
    );
    assert_eq!(picker("proj-2").await["items"], json!([]));

    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {}, "template": {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "/team/app:1"}]}}}});
    // The webhook's answer (`response`) for the Deployment in `namespace`.
    let review = |namespace: &str| {
        let body = common::admission_review(&object, namespace, "CREATE");
        let cluster = &cluster;
        async move { cluster.review(&body).await }
    };
    let answer = review("proj-1").await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(answer["patch"].is_string(), "{answer}");
    assert_eq!(review("proj-2").await["allowed"], false);

    // Relabelled into the workspace, and a project created later: both
    // gain the registry; the one relabelled out loses it.
    labelled("proj-2", "ws1");
    labelled("proj-3", "ws1");
    labelled("proj-1", "ws2");
    eventually("pull secrets follow the labels", || {
        fake.get("secrets", Some("proj-2"), "harbor-ws1").is_some()
            && fake.get("secrets", Some("proj-3"), "harbor-ws1").is_some()
            && fake.get("secrets", Some("proj-1"), "harbor-ws1").is_none()
    })
    .await;
    assert_eq!(review("proj-2").await["allowed"], true);
    assert_eq!(review("proj-1").await["allowed"], false);
    eventually("the status counts the namespaces reached by labels", || {
        fake.get("imageregistries", None, "harbor-ws1")
            .is_some_and(|r| r["status"]["replicatedNamespaces"] == json!(["proj-2", "proj-3"]))
    })
    .await;
    let record = fake
        .get("imageregistries", None, "harbor-ws1")
        .expect("record");
    assert_eq!(record["spec"]["namespaceSelector"], workspace);
    cluster.stop().await;
}

#[tokio::test]
async fn the_api_on_the_cluster_store_uses_cluster_rbac() {
    let mut cluster = TestServer::start_kubernetes_rbac().await;
    let denied = cluster
        .api_as(Method::POST, "/registries?verify=false", "dev-token")
        .json(&json!({"name": "mine", "server": "r.example", "namespaces": ["team-a"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(denied.status(), 403);
    let unknown = cluster
        .api_as(Method::GET, "/registries", "nobody")
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), 401);

    // An object applied with kubectl (GitOps), with its Secret, shows up in the API.
    cluster.fake().put(
        "secrets",
        "v1",
        "Secret",
        Some("registry-resolver"),
        json!({"metadata": {"name": "gitops-credentials"}, "type": "kubernetes.io/basic-auth",
               "data": {"username": STANDARD.encode("robot"), "password": STANDARD.encode("pw")}}),
    );
    cluster.fake().put("imageregistries", "registry-resolver.io/v1alpha1", "ImageRegistry", None,
        json!({"metadata": {"name": "gitops"}, "spec": {"server": "http://10.0.0.5:5000", "namespaces": ["team-b"],
               "defaultFor": ["team-b"], "credentialsSecretRef": {"name": "gitops-credentials"}}}));
    let mut found = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let response = cluster
            .api_as(Method::GET, "/registries/gitops", "admin-token")
            .send()
            .await
            .expect("get");
        if response.status() == 200 {
            found = response.json().await.expect("json");
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(found["server"], "http://10.0.0.5:5000");
    assert_eq!(found["username"], "robot");
    assert_eq!(found["hasPassword"], true);
    // The webhook's index follows the watch as well.
    eventually("the index has the GitOps registry", || {
        cluster.index.load().default_registry("team-b").as_deref() == Some("gitops")
    })
    .await;
    let resolved: Value = cluster
        .api_as(Method::POST, "/namespaces/team-b/resolve", "admin-token")
        .json(&json!({"image": "/library/nginx:1.27"}))
        .send()
        .await
        .expect("resolve")
        .json()
        .await
        .expect("json");
    assert_eq!(
        resolved,
        json!({"image": "10.0.0.5:5000/library/nginx:1.27", "registry": "gitops", "pullSecret": "gitops"})
    );
    eventually("pull secret for the GitOps registry", || {
        cluster
            .fake()
            .get("secrets", Some("team-b"), "gitops")
            .is_some()
    })
    .await;

    // A newer registry claiming the same default: the older keeps it, the
    // newer is told why.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a later creationTimestamp
    cluster.fake().put("imageregistries", "registry-resolver.io/v1alpha1", "ImageRegistry", None,
        json!({"metadata": {"name": "latecomer"}, "spec": {"server": "late.example", "namespaces": ["team-b"], "defaultFor": ["team-b"]}}));
    // Objects applied without the API get the finalizer too.
    eventually("the GitOps registry's finalizer", || {
        cluster
            .fake()
            .get("imageregistries", None, "gitops")
            .is_some_and(|o| {
                o["metadata"]["finalizers"] == json!(["registry-resolver.io/pull-secrets"])
            })
    })
    .await;
    eventually("the newer registry is told", || {
        cluster
            .fake()
            .get("imageregistries", None, "latecomer")
            .is_some_and(|o| {
                o["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "Accepted"
                            && c["status"] == "False"
                            && c["reason"] == "DefaultConflict"
                    })
                })
            })
    })
    .await;
    assert_eq!(
        cluster.index.load().default_registry("team-b").as_deref(),
        Some("gitops")
    );
    cluster.stop().await;
}

#[tokio::test]
async fn one_replica_leads_and_another_takes_over_when_it_stops() {
    use registry_resolver::kubernetes::lease::{LeaseOptions, run, try_acquire};
    let fake = FakeApiServer::new();
    fake.namespace("registry-resolver");
    let options = |identity: &str| LeaseOptions {
        name: "registry-resolver".into(),
        namespace: "registry-resolver".into(),
        identity: identity.into(),
        duration: Duration::from_secs(1),
        renew_every: Duration::from_millis(200),
    };
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(fake.client(), "registry-resolver");
    let now = chrono::Utc::now();
    assert!(
        try_acquire(&api, &options("a"), now).await.expect("first"),
        "a free lease is taken"
    );
    assert!(
        !try_acquire(&api, &options("b"), now).await.expect("second"),
        "a held lease is not"
    );
    assert!(
        try_acquire(&api, &options("a"), now).await.expect("renew"),
        "the holder renews"
    );
    let later = now + chrono::Duration::seconds(5);
    assert!(
        try_acquire(&api, &options("b"), later)
            .await
            .expect("takeover"),
        "an expired lease is taken over"
    );
    let lease = fake
        .get("leases", Some("registry-resolver"), "registry-resolver")
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // The running loops: the first leads; when it stops, the second leads.
    fake.delete("leases", Some("registry-resolver"), "registry-resolver");
    let stop_first = CancellationToken::new();
    let first = run(fake.client(), options("first"), stop_first.clone());
    let mut first_watch = first.clone();
    tokio::time::timeout(
        Duration::from_secs(3),
        first_watch.wait_for(|leading| *leading),
    )
    .await
    .expect("first leads in time")
    .expect("channel");
    let stop_second = CancellationToken::new();
    let mut second = run(fake.client(), options("second"), stop_second.clone());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!*second.borrow(), "only one leader while the first renews");
    stop_first.cancel();
    tokio::time::timeout(Duration::from_secs(5), second.wait_for(|leading| *leading))
        .await
        .expect("second takes over after expiry")
        .expect("channel");
    stop_second.cancel();
}

/// The console's Create: the Deployment goes to the cluster with the
/// caller's own token, and comes back as the API server stored it; a user
/// without the permission is told which one; without a cluster, 501.
#[tokio::test]
async fn workloads_are_created_with_the_callers_own_token() {
    let server = TestServer::start_kubernetes_rbac().await;
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "mysql", "namespace": "team-a"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "mysql"}},
                 "template": {"metadata": {"labels": {"app": "mysql"}},
                              "spec": {"containers": [{"name": "mysql", "image": "/mysql/mysql:5.6"}]}}}
    });
    let created = server
        .api_as(
            Method::POST,
            "/namespaces/team-a/deployments",
            "admin-token",
        )
        .json(&deployment)
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201);
    let stored: Value = created.json().await.expect("json");
    assert_eq!(stored["metadata"]["name"], "mysql");
    assert!(
        stored["metadata"]["resourceVersion"].is_string(),
        "as stored: {stored}"
    );
    assert_eq!(
        server.fake().deployment_tokens(),
        ["admin-token"],
        "sent with the caller's token, not the service's"
    );
    assert!(
        server
            .fake()
            .get("deployments", Some("team-a"), "mysql")
            .is_some()
    );

    // The same name again: the cluster's own answer, passed through.
    let again = server
        .api_as(
            Method::POST,
            "/namespaces/team-a/deployments",
            "admin-token",
        )
        .json(&deployment)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["error"]["code"], "cluster_refused", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("already exists")),
        "{body}"
    );

    // dev may not create pods in team-a: refused before the cluster is asked.
    let refused = server
        .api_as(Method::POST, "/namespaces/team-a/deployments", "dev-token")
        .json(&deployment)
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("pods")),
        "{body}"
    );
    assert_eq!(server.fake().deployment_tokens().len(), 2);

    // Namespace suggestions: the cluster's, for who may create registries.
    let names: Value = server
        .api_as(Method::GET, "/namespaces", "admin-token")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = names["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.contains(&"team-a") && names.contains(&"team-z"),
        "{names:?}"
    );
    let status = server
        .api_as(Method::GET, "/namespaces", "dev-token")
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, 403);

    // No cluster, no creating.
    let embedded = TestServer::start().await;
    let answer = embedded
        .api(Method::POST, "/namespaces/team-a/deployments")
        .json(&deployment)
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 501);
}

/// Two writers of one status racing (the controller's conditions and the
/// re-verification's, each from its own stale copy): every write of each
/// survives, none is lost to the other's (resourceVersion preconditions,
/// re-read and recompute on a conflict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_status_writers_racing_lose_nothing() {
    use registry_resolver::kubernetes::crd::ImageRegistry;
    use registry_resolver::kubernetes::status::{
        ConditionType, Truth, Wanted, now, with_wanted, write_status,
    };

    let fake = FakeApiServer::new();
    fake.put(
        "imageregistries",
        "registry-resolver.io/v1alpha1",
        "ImageRegistry",
        None,
        json!({"apiVersion": "registry-resolver.io/v1alpha1", "kind": "ImageRegistry",
               "metadata": {"name": "raced", "generation": 1},
               "spec": {"server": "r.example", "namespaces": ["a"]}}),
    );
    let api = kube::Api::<ImageRegistry>::all(fake.client());
    let stale = api.get("raced").await.expect("object");
    let writer = |type_: ConditionType, rounds: usize| {
        let (api, stale) = (api.clone(), stale.clone());
        tokio::spawn(async move {
            for round in 0..rounds {
                let wanted = [Wanted {
                    type_,
                    status: Truth::True,
                    reason: "Raced".into(),
                    message: format!("{} {round}", type_.as_str()),
                }];
                // Always from the stale copy: every write but the first
                // meets a newer object and must recompute from it.
                write_status(&api, "raced", Some(stale.clone()), |object| {
                    let (conditions, changed) = with_wanted(object, &wanted, &now());
                    changed.then(|| json!({"conditions": conditions}))
                })
                .await
                .expect("written");
            }
        })
    };
    let (a, b) = (
        writer(ConditionType::Replicated, 25),
        writer(ConditionType::Verified, 25),
    );
    a.await.expect("writer a");
    b.await.expect("writer b");
    let status = api
        .get_status("raced")
        .await
        .expect("object")
        .status
        .expect("status");
    let mut messages: Vec<(String, String)> = status
        .conditions
        .iter()
        .map(|c| (c.type_.clone(), c.message.clone()))
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        [
            ("Replicated".to_owned(), "Replicated 24".to_owned()),
            ("Verified".to_owned(), "Verified 24".to_owned())
        ],
        "both writers' last words survive"
    );
}

/// Mirrors in a cluster: an ImageRegistry applied with kubectl names Docker
/// Hub by another of its names and is read canonical; images are pulled
/// through it in the namespaces it reaches, and a namespace labelled
/// `registry-resolver.io/mirrors: off` keeps its images as written.
#[tokio::test]
async fn a_mirror_applied_to_the_cluster_is_used_where_namespaces_allow() {
    let mut cluster = TestServer::start_kubernetes_rbac().await;
    let fake = cluster.fake().clone();
    let mirrors_off = |name: &str| {
        fake.put(
            "namespaces",
            "v1",
            "Namespace",
            None,
            json!({"metadata": {"name": name, "labels": {"registry-resolver.io/mirrors": "off"}}}),
        );
    };
    fake.namespace("team-a");
    mirrors_off("team-quiet");
    fake.put(
        "imageregistries",
        "registry-resolver.io/v1alpha1",
        "ImageRegistry",
        None,
        json!({"metadata": {"name": "hub-proxy"},
               "spec": {"server": "harbor.example.com", "namespaces": ["team-*"],
                        "mirrorOf": [{"upstream": "registry-1.docker.io", "pathPrefix": "dockerhub-proxy"}]}}),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let record = loop {
        let response = cluster
            .api_as(Method::GET, "/registries/hub-proxy", "admin-token")
            .send()
            .await
            .expect("get");
        if response.status() == 200 {
            break response.json::<Value>().await.expect("json");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the record never reached the API"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(record["mirrorOf"][0]["upstream"], "docker.io", "{record}");
    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {}, "template": {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}}});
    let review = |namespace: &str| {
        let body = common::admission_review(&object, namespace, "CREATE");
        let cluster = &cluster;
        async move { cluster.review(&body).await }
    };
    let answer = review("team-a").await;
    let patched = common::apply_patch(&object, &answer).expect("rewritten");
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "harbor.example.com/dockerhub-proxy/library/nginx:1.25"
    );
    let answer = review("team-quiet").await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(answer.get("patch").is_none(), "mirrors off here: {answer}");
    cluster.stop().await;
}

/// Waits (up to `limit`) for `check` to hold.
async fn within(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A record for hundreds of namespaces against an API server that admits
/// fewer writes a second than we would send: its 429s are waited out
/// (`Retry-After`), every namespace gets its pull Secret, each written
/// once, and a password rotation writes each once more and then nothing.
/// While the writes go on, the status says how far they have got.
#[tokio::test]
async fn writes_past_the_servers_rate_are_paced_and_never_repeated() {
    const TENANTS: usize = 160;
    let cluster = TestServer::start_kubernetes_rbac().await;
    let fake = cluster.fake().clone();
    let tenants: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i:03}")).collect();
    for tenant in &tenants {
        fake.namespace(tenant);
    }
    // Fewer than our default pace (50 a second, 100 at once).
    fake.limit_writes(40.0, 40.0, 1);
    let created = cluster
        .api_as(Method::POST, "/registries?verify=false", "admin-token")
        .json(
            &json!({"name": "harbor", "server": "harbor.example.com", "username": "robot",
                      "password": "pw-1", "namespaces": ["tenant-*"]}),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);

    let password_everywhere = |password: &'static str| {
        let fake = fake.clone();
        let tenants = tenants.clone();
        move || {
            tenants.iter().all(|ns| {
                fake.get("secrets", Some(ns), "harbor")
                    .and_then(|s| pull_secret_password(&s))
                    .as_deref()
                    == Some(password)
            })
        }
    };
    // Meanwhile the status counts what is in place.
    let mut progress_seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !password_everywhere("pw-1")() {
        assert!(Instant::now() < deadline, "pull secrets in every tenant");
        let status = fake
            .get("imageregistries", None, "harbor")
            .map(|o| o["status"].clone())
            .unwrap_or_default();
        if status["replication"]["authorized"] == json!(TENANTS)
            && status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Replicated" && c["reason"] == "InProgress")
        {
            progress_seen.push(status["replication"]["replicated"].as_u64().unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fake.throttled() > 0, "the server refused some writes");
    assert!(
        progress_seen.iter().any(|n| *n > 0 && *n < TENANTS as u64),
        "the status told the progress while the writes went on: {progress_seen:?}"
    );
    within(Duration::from_secs(10), "the final count", || {
        fake.get("imageregistries", None, "harbor")
            .is_some_and(|o| {
                o["status"]["replication"] == json!({"replicated": TENANTS, "authorized": TENANTS})
            })
    })
    .await;

    // A rotation: every copy once more.
    let rotated = cluster
        .api_as(
            Method::PATCH,
            "/registries/harbor?verify=false",
            "admin-token",
        )
        .header("content-type", "application/merge-patch+json")
        .body(json!({"password": "pw-2"}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(rotated.status(), 200);
    within(
        Duration::from_secs(60),
        "the new password everywhere",
        password_everywhere("pw-2"),
    )
    .await;
    // Settled: nothing more is written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = fake.writes();
    let mut per_secret = std::collections::BTreeMap::<&str, usize>::new();
    for write in writes.iter().filter(|w| {
        w.plural == "secrets" && w.name == "harbor" && w.namespace.starts_with("tenant-")
    }) {
        *per_secret.entry(write.namespace.as_str()).or_default() += 1;
    }
    assert_eq!(per_secret.len(), TENANTS);
    let repeated: Vec<_> = per_secret.iter().filter(|(_, n)| **n != 2).collect();
    assert!(
        repeated.is_empty(),
        "each copy written once at creation and once at rotation: {repeated:?}"
    );
    // The Lease is renewed every second here; nothing else is written.
    let before = fake.writes().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let since: Vec<String> = fake.writes()[before..]
        .iter()
        .filter(|w| w.plural != "leases")
        .map(|w| format!("{} {}/{}/{}", w.method, w.plural, w.namespace, w.name))
        .collect();
    assert!(
        since.is_empty(),
        "no write once the state is reached: {since:?}"
    );
}

/// A stop asked for while the controller waits for its first lists ends
/// the wait: a controller whose API server never answers the pull Secrets'
/// list still returns when told to stop (it used to wait forever). Every
/// Secret list stalls here, the records' credentials too; theirs ends
/// with its watch, the pull Secrets' did not.
#[tokio::test]
async fn a_stop_during_startup_is_not_held_by_an_unanswered_list() {
    use registry_resolver::index::IndexHandle;
    use registry_resolver::kubernetes::controller;
    use registry_resolver::registry::connectivity::{Connectivity, ConnectivityOptions};
    use registry_resolver::telemetry::Metrics;
    use std::sync::Arc;
    let fake = FakeApiServer::new();
    fake.namespace("registry-resolver");
    fake.stall_lists("secrets");
    let stop = CancellationToken::new();
    let starting = tokio::spawn(controller::start(
        fake.client(),
        fake.client(),
        common::cluster_options(),
        IndexHandle::new(),
        Arc::new(Connectivity::new(ConnectivityOptions::default())),
        Arc::new(Metrics::new()),
        stop.clone(),
    ));
    eventually("the Secret lists are stalled", || fake.lists_stalled() >= 2).await;
    assert!(
        !starting.is_finished(),
        "startup waits for the Secrets' first lists"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), starting)
        .await
        .expect("the stop ends the startup")
        .expect("the startup did not panic");
}
