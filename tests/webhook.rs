//! `/mutate` over real HTTPS with manifests produced by real tools (see
//! tests/fixtures/README.md), the returned patch applied with an RFC 6902
//! implementation, and the final objects asserted.

mod common;

use common::{TestServer, admission_review, apply_patch, fixture_json, fixture_yaml_documents};
use serde_json::{Value, json};

const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// demo: the default for team-a, with credentials; harbor: plain HTTP with
/// a path prefix; public: no credentials, the default for team-b.
async fn server_with_registries() -> TestServer {
    let server = TestServer::start().await;
    server
        .create_registry(json!({
            "name": "demo", "server": "dockerhub.qingcloud.com", "username": "robot", "password": "pw-demo",
            "namespaces": ["team-a", "team-b"], "defaultFor": ["team-a"]
        }))
        .await;
    server
        .create_registry(json!({
            "name": "harbor", "server": "http://harbor.internal:8080/library", "username": "admin", "password": "pw-harbor",
            "namespaces": ["team-a", "monitoring"], "pullSecretName": "harbor-pull"
        }))
        .await;
    server
        .create_registry(json!({
            "name": "public", "server": "https://public.example", "namespaces": ["team-b"], "defaultFor": ["team-b"]
        }))
        .await;
    server
}

/// Reviews `object`, applies the patch, checks a second review of the result
/// changes nothing, and returns the patched object and the first response.
async fn admit(server: &TestServer, object: &Value, namespace: &str) -> (Value, Value) {
    let response = server
        .review(&admission_review(object, namespace, "CREATE"))
        .await;
    assert_eq!(response["allowed"], true, "denied: {response}");
    let patched = apply_patch(object, &response).unwrap_or_else(|| object.clone());
    let again = server
        .review(&admission_review(&patched, namespace, "CREATE"))
        .await;
    assert_eq!(again["allowed"], true);
    assert!(
        again.get("patch").is_none(),
        "second pass must be a no-op: {again}"
    );
    (patched, response)
}

fn images(spec: &Value, list: &str) -> Vec<String> {
    spec[list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|c| c["image"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn original_images(template: &Value) -> Value {
    let raw = template["metadata"]["annotations"]["registry-resolver.io/original-images"]
        .as_str()
        .unwrap_or_else(|| panic!("original-images annotation missing: {template}"));
    serde_json::from_str(raw).expect("annotation is JSON")
}

#[tokio::test]
async fn kubectl_create_deployment() {
    let server = server_with_registries().await;
    let deployment = fixture_json("deployment-kubectl.json");
    let (patched, response) = admit(&server, &deployment, "team-a").await;
    let template = &patched["spec"]["template"];
    assert_eq!(
        images(&template["spec"], "containers"),
        [
            "dockerhub.qingcloud.com/mysql/mysql:5.6".to_owned(),
            format!("dockerhub.qingcloud.com/library/nginx:1.27@{DIGEST}"),
            "docker.io/library/busybox:1.36".to_owned(),
        ]
    );
    assert_eq!(
        template["spec"]["imagePullSecrets"],
        json!([{"name": "demo"}])
    );
    assert_eq!(
        original_images(template),
        json!({"mysql": "/mysql/mysql:5.6", "nginx": format!("/library/nginx:1.27@{DIGEST}")})
    );
    // Only the template changed.
    let mut expected = deployment.clone();
    expected["spec"]["template"] = template.clone();
    assert_eq!(patched, expected);

    let warnings = response["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap_or_default()
            .contains("\"dockerhub.qingcloud.com/mysql/mysql:5.6\"")
    );
    assert!(
        warnings[2]
            .as_str()
            .unwrap_or_default()
            .contains("imagePullSecrets demo")
    );
    assert!(
        response["auditAnnotations"]["resolved-images"]
            .as_str()
            .unwrap_or_default()
            .starts_with("mysql=dockerhub.qingcloud.com/mysql/mysql:5.6,nginx=")
    );
}

#[tokio::test]
async fn kubectl_create_job_and_cronjob() {
    let server = server_with_registries().await;
    let (job, _) = admit(&server, &fixture_json("job-kubectl.json"), "team-b").await;
    // team-b's default is the public registry: no pull secret.
    assert_eq!(
        images(&job["spec"]["template"]["spec"], "containers"),
        ["public.example/mysql/mysql:5.6"]
    );
    assert!(
        job["spec"]["template"]["spec"]
            .get("imagePullSecrets")
            .is_none()
    );

    let (cron, _) = admit(&server, &fixture_json("cronjob-kubectl.json"), "team-a").await;
    let template = &cron["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(
        images(&template["spec"], "containers"),
        ["dockerhub.qingcloud.com/tools/backup:2.1"]
    );
    assert_eq!(
        template["spec"]["imagePullSecrets"],
        json!([{"name": "demo"}])
    );
}

#[tokio::test]
async fn helm_template_of_helm_create_chart() {
    let server = server_with_registries().await;
    let documents = fixture_yaml_documents("helm-create-template.yaml");
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["ServiceAccount", "Service", "Deployment", "Pod"]);
    for document in &documents {
        let (patched, response) = admit(&server, document, "team-a").await;
        match document["kind"].as_str() {
            Some("Deployment") => {
                let spec = &patched["spec"]["template"]["spec"];
                assert_eq!(
                    images(spec, "containers"),
                    ["dockerhub.qingcloud.com/library/nginx:1.27"]
                );
                assert_eq!(spec["imagePullSecrets"], json!([{"name": "demo"}]));
            }
            // The chart's test Pod uses a fully qualified image: untouched.
            // ServiceAccount and Service carry no pod template.
            _ => {
                assert!(response.get("patch").is_none(), "{response}");
                assert_eq!(&patched, document);
            }
        }
    }
}

#[tokio::test]
async fn pod_with_init_sidecar_and_ephemeral_containers() {
    let server = server_with_registries().await;
    let pod = fixture_json("pod-init-sidecar-ephemeral.json");
    let (patched, _) = admit(&server, &pod, "team-a").await;
    let spec = &patched["spec"];
    assert_eq!(
        images(spec, "initContainers"),
        [
            "harbor.internal:8080/library/tools/migrate:1.0",
            "dockerhub.qingcloud.com/observability/fluent-bit:3.0"
        ]
    );
    assert_eq!(
        images(spec, "containers"),
        [
            "dockerhub.qingcloud.com/team/app:2.3.1",
            "docker.io/envoyproxy/envoy:v1.30.1"
        ]
    );
    assert_eq!(
        images(spec, "ephemeralContainers"),
        ["dockerhub.qingcloud.com/tools/debug:latest"]
    );
    // The user's secret stays first; ours follow in container order, once each.
    assert_eq!(
        spec["imagePullSecrets"],
        json!([{"name": "existing"}, {"name": "harbor-pull"}, {"name": "demo"}])
    );
    // The existing annotations are kept beside ours.
    assert_eq!(
        patched["metadata"]["annotations"]["registry-resolver.io/registry"],
        "demo"
    );
    assert_eq!(original_images(&patched)["migrate"], "/tools/migrate:1.0");
    assert_eq!(spec["initContainers"][1]["restartPolicy"], "Always");
}

#[tokio::test]
async fn statefulset_keeps_existing_pull_secret_without_duplicates() {
    let server = server_with_registries().await;
    let (patched, response) = admit(&server, &fixture_json("statefulset.json"), "team-a").await;
    let spec = &patched["spec"]["template"]["spec"];
    assert_eq!(
        images(spec, "containers"),
        [format!(
            "harbor.internal:8080/library/mysql/mysql:8.0@sha256:{}",
            "ab".repeat(32)
        )]
    );
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "harbor-pull"}]));
    assert!(
        response["warnings"].as_array().expect("warnings")[0]
            .as_str()
            .unwrap_or_default()
            .contains("workload annotation")
    );
}

#[tokio::test]
async fn long_container_names_use_the_container_registries_annotation() {
    let server = server_with_registries().await;
    let (patched, _) = admit(
        &server,
        &fixture_json("daemonset-long-container-name.json"),
        "monitoring",
    )
    .await;
    let spec = &patched["spec"]["template"]["spec"];
    assert_eq!(
        images(spec, "containers"),
        ["harbor.internal:8080/library/prometheus/node-exporter:v1.8.2"]
    );
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "harbor-pull"}]));
}

#[tokio::test]
async fn every_pod_template_kind() {
    let server = server_with_registries().await;
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "/a/b:1"}]}});
    let objects = [
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "x"}, "spec": {"selector": {}, "template": template}}),
        json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "x"}, "spec": {"template": template}}),
        json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": template}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"}, "spec": {"selector": {}, "template": template}}),
    ];
    for object in objects {
        let (patched, _) = admit(&server, &object, "team-a").await;
        let template = patched
            .get("template")
            .unwrap_or(&patched["spec"]["template"]);
        assert_eq!(
            images(&template["spec"], "containers"),
            ["dockerhub.qingcloud.com/a/b:1"],
            "{}",
            object["kind"]
        );
        assert_eq!(
            template["spec"]["imagePullSecrets"],
            json!([{"name": "demo"}])
        );
    }
    // A template without metadata gets one.
    let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "/a/b:1"}]}}}});
    let (patched, _) = admit(&server, &bare, "team-a").await;
    assert_eq!(
        original_images(&patched["spec"]["template"]),
        json!({"c": "/a/b:1"})
    );
}

#[tokio::test]
async fn pod_updates_rewrite_images_but_not_pull_secrets() {
    let server = server_with_registries().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"},
        "spec": {"containers": [{"name": "c", "image": "/a/b:2"}]}});
    let response = server
        .review(&admission_review(&pod, "team-a", "UPDATE"))
        .await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("needs pull secret \"demo\"") && message.contains("Pod update"),
        "{message}"
    );

    let mut with_secret = pod.clone();
    with_secret["spec"]["imagePullSecrets"] = json!([{"name": "demo"}]);
    let response = server
        .review(&admission_review(&with_secret, "team-a", "UPDATE"))
        .await;
    assert_eq!(response["allowed"], true);
    let patched = apply_patch(&with_secret, &response).expect("patch");
    assert_eq!(
        patched["spec"]["containers"][0]["image"],
        "dockerhub.qingcloud.com/a/b:2"
    );
    assert_eq!(
        patched["spec"]["imagePullSecrets"],
        json!([{"name": "demo"}])
    );

    // `kubectl debug`: the ephemeralcontainers subresource.
    let mut debug = with_secret.clone();
    debug["spec"]["containers"][0]["image"] = json!("dockerhub.qingcloud.com/a/b:2");
    debug["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger-x", "image": "/tools/debug:1"}]);
    let mut review = admission_review(&debug, "team-a", "UPDATE");
    review["request"]["subResource"] = json!("ephemeralcontainers");
    let response = server.review(&review).await;
    assert_eq!(response["allowed"], true, "{response}");
    let patched = apply_patch(&debug, &response).expect("patch");
    assert_eq!(
        patched["spec"]["ephemeralContainers"][0]["image"],
        "dockerhub.qingcloud.com/tools/debug:1"
    );
    assert!(
        patched["metadata"].get("annotations").is_none(),
        "the subresource applies only ephemeral containers"
    );

    // Other subresources are not ours.
    let mut status = admission_review(&pod, "team-a", "UPDATE");
    status["request"]["subResource"] = json!("status");
    let response = server.review(&status).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
}

#[tokio::test]
async fn denials_say_what_is_wrong() {
    let server = server_with_registries().await;
    let deployment = |image: &str, annotations: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "annotations": annotations},
            "spec": {"selector": {}, "template": {"metadata": {}, "spec": {"containers": [{"name": "app", "image": image}]}}}})
    };
    let cases = [
        // (namespace, image, annotations, expected fragments)
        (
            "monitoring",
            "/a/b:1",
            json!({}),
            vec![
                "container \"app\"",
                "image \"/a/b:1\" names no registry",
                "namespace \"monitoring\" has no default registry",
                "registry-resolver.io/registry",
                "registries authorized in \"monitoring\": harbor",
            ],
        ),
        (
            "nowhere",
            "/a/b:1",
            json!({}),
            vec!["no registry is authorized in namespace \"nowhere\""],
        ),
        (
            "team-a",
            "/a/b:1",
            json!({"registry-resolver.io/registry": "ghost"}),
            vec![
                "registry \"ghost\" (from workload annotation registry-resolver.io/registry) does not exist",
            ],
        ),
        (
            "team-b",
            "/a/b:1",
            json!({"registry-resolver.io/registry": "harbor"}),
            vec![
                "registry \"harbor\"",
                "is not authorized for namespace \"team-b\"",
                "registries authorized in \"team-b\": public, demo",
            ],
        ),
        (
            "team-a",
            "/MySQL/x",
            json!({}),
            vec![
                "image \"/MySQL/x\" is invalid",
                "\"MySQL\" must be lowercase",
            ],
        ),
        (
            "team-a",
            "//x",
            json!({}),
            vec!["image \"//x\" is invalid", "empty component"],
        ),
        (
            "team-a",
            "/a:b:c",
            json!({}),
            vec!["tag \"b:c\" is invalid"],
        ),
        ("team-a", "/", json!({}), vec!["image path is empty"]),
    ];
    for (namespace, image, annotations, fragments) in cases {
        let response = server
            .review(&admission_review(
                &deployment(image, annotations),
                namespace,
                "CREATE",
            ))
            .await;
        assert_eq!(response["allowed"], false, "{image} in {namespace}");
        assert_eq!(response["status"]["code"], 403);
        let message = response["status"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("registry-resolver: "), "{message}");
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{message:?} should contain {fragment:?}"
            );
        }
        assert!(response.get("patch").is_none());
    }

    // Every problem is reported at once.
    let two = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "i", "image": "/Bad"}], "containers": [{"name": "c", "image": "//x"}]}});
    let response = server
        .review(&admission_review(&two, "team-a", "CREATE"))
        .await;
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("init container \"i\"") && message.contains("container \"c\""),
        "{message}"
    );
}

#[tokio::test]
async fn what_is_not_ours_is_allowed_untouched() {
    let server = server_with_registries().await;
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
    let response = server
        .review(&admission_review(&service, "team-a", "CREATE"))
        .await;
    assert_eq!(
        response,
        json!({"uid": "uid-Service-CREATE", "allowed": true})
    );

    let deployment = fixture_json("deployment-kubectl.json");
    let mut delete = admission_review(&deployment, "team-a", "DELETE");
    delete["request"]["object"] = Value::Null;
    let response = server.review(&delete).await;
    assert_eq!(
        response,
        json!({"uid": "uid-Deployment-DELETE", "allowed": true})
    );

    // dryRun behaves exactly like a real request (we have no side effects).
    let mut dry = admission_review(&deployment, "team-a", "CREATE");
    dry["request"]["dryRun"] = json!(true);
    let response = server.review(&dry).await;
    assert!(response.get("patch").is_some());
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let server = server_with_registries().await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        server
            .client
            .post(server.url("/mutate"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = post(b"{\"not\": \"a review\"".to_vec(), "application/json")
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "malformed_review");

    let v1beta1 =
        json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}});
    let response = post(v1beta1.to_string().into_bytes(), "application/json")
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("admission.k8s.io/v1beta1")
    );

    let no_request = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    let response = post(no_request.to_string().into_bytes(), "application/json")
        .await
        .expect("request");
    assert_eq!(response.status(), 400);

    let response = post(b"{}".to_vec(), "text/yaml").await.expect("request");
    assert_eq!(response.status(), 415);

    let huge = vec![b' '; 3 * 1024 * 1024 + 1];
    let response = post(huge, "application/json").await.expect("request");
    assert_eq!(response.status(), 413);

    // The server is still fine.
    let response = server
        .review(&admission_review(
            &fixture_json("job-kubectl.json"),
            "team-a",
            "CREATE",
        ))
        .await;
    assert_eq!(response["allowed"], true);
}

/// The validating webhook for ImageRegistries, over HTTPS as the API
/// server calls it: a good object passes, a bad one is refused with the
/// API's own field messages, a malformed review is a 400.
#[tokio::test]
async fn image_registries_applied_directly_are_checked_like_the_api_does() {
    let server = server_with_registries().await;
    let review = |object: Value| {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "request": {"uid": "u-7",
                           "kind": {"group": "registry-resolver.io", "version": "v1alpha1", "kind": "ImageRegistry"},
                           "resource": {"group": "registry-resolver.io", "version": "v1alpha1", "resource": "imageregistries"},
                           "operation": "CREATE", "userInfo": {"username": "gitops"}, "object": object}})
    };
    let object = |spec: Value| {
        json!({"apiVersion": "registry-resolver.io/v1alpha1", "kind": "ImageRegistry",
               "metadata": {"name": "applied"}, "spec": spec})
    };
    let post = |body: Value| {
        let request = server
            .client
            .post(server.url("/validate/imageregistries"))
            .json(&body);
        async move { request.send().await.expect("request") }
    };
    let good = post(review(object(
        json!({"server": "harbor.example.com", "namespaces": ["team-c"]}),
    )))
    .await;
    assert_eq!(good.status(), 200);
    let good: Value = good.json().await.expect("json");
    assert_eq!(
        good["response"],
        json!({"uid": "u-7", "allowed": true, "status": {}}),
        "{good}"
    );

    let bad: Value = post(review(object(
        json!({"server": "ftp://harbor.example.com", "namespaces": ["Team_C"]}),
    )))
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(bad["response"]["allowed"], false, "{bad}");
    let message = bad["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("server: unsupported scheme"), "{message}");
    assert!(message.contains("namespaces[0]"), "{message}");

    let malformed =
        post(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})).await;
    assert_eq!(malformed.status(), 400);
}

/// A record that mirrors Docker Hub (a Harbor proxy-cache project): in the
/// namespaces it is authorized for, Docker Hub images are pulled through it
/// with its pull Secret; while its last check fails they are left upstream
/// with a warning, or refused when its entry says `fallback: deny`; the
/// metrics count each.
#[tokio::test]
async fn docker_hub_images_are_pulled_through_the_namespaces_mirror() {
    let server = TestServer::start().await;
    // Nothing listens on port 1: its check fails when asked for.
    let record = server
        .create_registry(json!({
            "name": "hub-proxy", "server": "127.0.0.1:1", "username": "robot", "password": "pw",
            "namespaces": ["team-a"],
            "mirrorOf": [{"upstream": "index.docker.io", "pathPrefix": "dockerhub-proxy",
                          "excludes": ["library/busybox"]}]
        }))
        .await;
    // Docker Hub's names are one upstream, stored canonical.
    assert_eq!(
        record["mirrorOf"],
        json!([{"upstream": "docker.io", "pathPrefix": "dockerhub-proxy",
                "excludes": ["library/busybox"], "fallback": "upstream", "mode": "rewrite"}])
    );
    let deployment = |annotations: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "team-a", "annotations": annotations},
               "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                   "metadata": {"labels": {"app": "web"}},
                   "spec": {"initContainers": [{"name": "init", "image": "busybox:1.36"}],
                            "containers": [{"name": "web", "image": "nginx:1.25"},
                                           {"name": "cache", "image": "docker.io/bitnami/redis:7.2"},
                                           {"name": "sidecar", "image": "quay.io/org/agent:1"}]}}}})
    };
    let (patched, response) = admit(&server, &deployment(json!({})), "team-a").await;
    let spec = &patched["spec"]["template"]["spec"];
    assert_eq!(
        images(spec, "containers"),
        [
            "127.0.0.1:1/dockerhub-proxy/library/nginx:1.25",
            "127.0.0.1:1/dockerhub-proxy/bitnami/redis:7.2",
            "quay.io/org/agent:1"
        ]
    );
    assert_eq!(images(spec, "initContainers"), ["busybox:1.36"], "excluded");
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "hub-proxy"}]));
    assert_eq!(
        original_images(&patched["spec"]["template"]),
        json!({"web": "nginx:1.25", "cache": "docker.io/bitnami/redis:7.2"})
    );
    let warnings = response["warnings"].to_string();
    assert!(warnings.contains("its mirror of docker.io"), "{warnings}");
    // The API's preview says the same.
    let preview = |image: &str| {
        let image = image.to_owned();
        let server = &server;
        async move {
            server
                .call(
                    reqwest::Method::POST,
                    "/namespaces/team-a/resolve",
                    Some(&json!({"image": image})),
                )
                .await
        }
    };
    assert_eq!(
        preview("nginx:1.25").await,
        (
            200,
            json!({"image": "127.0.0.1:1/dockerhub-proxy/library/nginx:1.25", "registry": "hub-proxy",
                   "pullSecret": "hub-proxy", "mirrorOf": "docker.io"})
        )
    );
    assert_eq!(
        preview("busybox").await,
        (
            200,
            json!({"image": "busybox", "registry": null, "pullSecret": null})
        )
    );

    // What a Deployment's controller makes is left as the Deployment was
    // admitted: a ReplicaSet whose template differed from its Deployment's
    // would make the Deployment create ReplicaSets without end, and a Pod
    // of a workload switched off must stay off. An object some other
    // controller makes (an operator's) is an object of its own.
    let owned_by = |kind: &str, api_version: &str, what: &str| {
        let mut object = if what == "Pod" {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"},
                   "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}})
        } else {
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1"},
                   "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}})
        };
        object["metadata"]["ownerReferences"] = json!([{"apiVersion": api_version, "kind": kind,
            "name": "web", "uid": "u", "controller": true}]);
        object
    };
    for object in [
        owned_by("Deployment", "apps/v1", "ReplicaSet"),
        owned_by("ReplicaSet", "apps/v1", "Pod"),
        owned_by("Job", "batch/v1", "Pod"),
    ] {
        let answer = server
            .review(&admission_review(&object, "team-a", "CREATE"))
            .await;
        assert!(answer.get("patch").is_none(), "{object}: {answer}");
    }
    let answer = server
        .review(&admission_review(
            &owned_by("Database", "example.com/v1", "Pod"),
            "team-a",
            "CREATE",
        ))
        .await;
    assert!(
        answer["patch"].is_string(),
        "an operator's Pod is its own: {answer}"
    );

    // Another namespace, or switched off on the workload: left as written.
    let untouched = server
        .review(&admission_review(
            &deployment(json!({})),
            "team-b",
            "CREATE",
        ))
        .await;
    assert!(untouched.get("patch").is_none(), "{untouched}");
    let off = deployment(json!({"registry-resolver.io/mirrors": "off"}));
    let untouched = server
        .review(&admission_review(&off, "team-a", "CREATE"))
        .await;
    assert!(untouched.get("patch").is_none(), "{untouched}");

    // The mirror's check fails: images stay upstream, and the answer says so.
    let (status, _) = server
        .call(reqwest::Method::POST, "/registries/hub-proxy/verify", None)
        .await;
    assert_eq!(status, 422);
    let fallback = server
        .review(&admission_review(
            &deployment(json!({})),
            "team-a",
            "CREATE",
        ))
        .await;
    assert_eq!(fallback["allowed"], true);
    assert!(fallback.get("patch").is_none(), "{fallback}");
    let warnings = fallback["warnings"].to_string();
    assert!(
        warnings.contains("whose last check failed; pulled from docker.io as written"),
        "{warnings}"
    );
    let (status, body) = preview("nginx:1.25").await;
    assert_eq!((status, &body["image"]), (200, &json!("nginx:1.25")));
    assert!(
        body["warning"]
            .as_str()
            .is_some_and(|w| w.contains("whose last check failed")),
        "{body}"
    );

    // An air-gapped site refuses instead.
    let (status, body) = server
        .call(
            reqwest::Method::PATCH,
            "/registries/hub-proxy?verify=false",
            Some(&json!({"mirrorOf": [{"upstream": "docker.io", "pathPrefix": "dockerhub-proxy", "fallback": "deny"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let denied = server
        .review(&admission_review(
            &deployment(json!({})),
            "team-a",
            "CREATE",
        ))
        .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(
        denied["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fallback: deny")),
        "{denied}"
    );
    let (status, body) = preview("nginx:1.25").await;
    assert_eq!(status, 422);
    assert_eq!(
        (&body["error"]["code"], &body["error"]["reason"]),
        (&json!("resolution_denied"), &json!("mirror_unavailable"))
    );

    let metrics = reqwest::get(server.admin_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // Three images rewritten (the Deployment's two, the operator's Pod's),
    // two left upstream (busybox is excluded), and three refused (the deny
    // entry excludes nothing).
    for (outcome, count) in [("rewritten", 3), ("fallback", 2), ("denied", 3)] {
        let line = format!(
            "registry_resolver_mirror_images_total{{registry=\"hub-proxy\",outcome=\"{outcome}\"}} {count}"
        );
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics.contains("reason=\"mirror_unavailable\""),
        "{metrics}"
    );
}
