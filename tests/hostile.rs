//! Hostile input against the real server over HTTPS: what a client can
//! send must never grow memory, hang a connection, or come back echoed
//! whole. Each test is one row of what must hold.

mod common;

use common::{TOKEN, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

async fn send(server: &TestServer, method: Method, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .api(method, path)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body)
}

fn metric_series(metrics: &str, prefix: &str) -> usize {
    metrics.lines().filter(|l| l.starts_with(prefix)).count()
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.admin_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn invented_methods_and_paths_do_not_add_metric_series() {
    let server = TestServer::start().await;
    let invented = |i: usize| {
        Method::from_bytes(format!("INVENTED{i}{}", "X".repeat(i * 50)).as_bytes()).expect("method")
    };
    // One of each kind first, so the `other`/`unmatched` series exist.
    for (method, path) in [
        (invented(0), "/api/v1/registries".to_owned()),
        (invented(0), "/nowhere-0".to_owned()),
        (Method::GET, "/nowhere-0".to_owned()),
    ] {
        let _ = server
            .client
            .request(method, server.url(&path))
            .send()
            .await;
    }
    let before = metrics(&server).await;
    let prefix = "registry_resolver_http_requests_total{";
    for i in 1..60 {
        for (method, path) in [
            (invented(i), "/api/v1/registries".to_owned()),
            (invented(i), format!("/nowhere-{i}/{}", "p".repeat(i * 40))),
            (Method::GET, format!("/nowhere-{i}")),
        ] {
            let _ = server
                .client
                .request(method, server.url(&path))
                .send()
                .await;
        }
    }
    let after = metrics(&server).await;
    assert_eq!(
        metric_series(&after, prefix),
        metric_series(&before, prefix),
        "{after}"
    );
    assert!(after.contains(r#"method="other""#), "{after}");
    assert!(after.contains(r#"route="unmatched""#), "{after}");
    assert!(!after.contains("INVENTED") && !after.contains("nowhere"));
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::start().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let status = server
            .client
            .get(server.url("/api/v1/registries"))
            .header("Authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 200, "{scheme}");
    }
    let status = server
        .client
        .get(server.url("/api/v1/registries"))
        .header("Authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn empty_and_invalid_names_are_refused_wherever_a_name_enters() {
    let server = TestServer::start().await;
    let base = json!({"server": "r.example", "namespaces": ["team-a"]});
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        body
    };
    for (body, field) in [
        (with(json!({"name": ""})), "name"),
        (with(json!({"name": "Upper"})), "name"),
        (
            with(json!({"name": "ok", "pullSecretName": ""})),
            "pullSecretName",
        ),
        (
            with(json!({"name": "ok", "pullSecretName": "Bad_Name"})),
            "pullSecretName",
        ),
        (
            with(json!({"name": "ok", "namespaces": [""]})),
            "namespaces[0]",
        ),
    ] {
        for path in ["/registries?verify=false", "/registries:verify"] {
            let (status, answer) = send(&server, Method::POST, path, body.clone()).await;
            assert_eq!(status, 422, "{path} {body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{path} {body}: {answer}");
        }
    }
    let (status, list) = send(&server, Method::GET, "/registries", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"], json!([]), "nothing was saved");

    // Names in a batch delete are names too.
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries:batchDelete",
        json!({"names": ["ok", ""]}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "names[1]");
}

#[tokio::test]
async fn list_sizes_are_bounded_and_checked_in_linear_time() {
    let server = TestServer::start().await;
    // At the limit: accepted; duplicates are dropped.
    let namespaces: Vec<String> = (0..5000).map(|i| format!("ns-{i}")).collect();
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        json!({"name": "wide", "server": "r.example", "namespaces": namespaces, "defaultFor": ["ns-4999", "ns-4999"]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["namespaces"].as_array().map(Vec::len), Some(5000));
    assert_eq!(answer["defaultFor"], json!(["ns-4999"]));

    // Over it: a 422 naming the field and the limit, for both lists.
    for field in ["namespaces", "defaultFor"] {
        let many: Vec<String> = (0..50_000).map(|i| format!("n{i}")).collect();
        let mut body = json!({"name": "too-wide", "server": "r.example", "namespaces": ["a"]});
        body[field] = json!(many);
        let (status, answer) = send(&server, Method::POST, "/registries?verify=false", body).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["field"], field);
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("at most 5000")),
            "{answer}"
        );
    }

    // Thousands of invalid entries: one bounded answer.
    let bad: Vec<String> = (0..4000).map(|i| format!("Bad_{i}")).collect();
    let response = server
        .api(Method::POST, "/registries?verify=false")
        .json(&json!({"name": "bad", "server": "r.example", "namespaces": bad}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 422);
    let text = response.text().await.expect("body");
    assert!(text.len() < 64 * 1024, "answer is {} bytes", text.len());
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        answer["error"]["details"].as_array().map(Vec::len),
        Some(100)
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4000 fields are invalid")),
        "{answer}"
    );
}

#[tokio::test]
async fn batch_delete_has_a_documented_limit_and_counts_each_name_once() {
    let server = TestServer::start().await;
    for name in ["one", "two"] {
        server
            .create_registry(json!({"name": name, "server": "r.example", "namespaces": ["a"]}))
            .await;
    }
    let too_many: Vec<String> = (0..1001).map(|i| format!("r{i}")).collect();
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries:batchDelete",
        json!({"names": too_many}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "names");

    let mut names: Vec<String> = (0..998).map(|i| format!("missing-{}", i % 500)).collect();
    names.extend(["one".into(), "one".into()]);
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries:batchDelete",
        json!({"names": names}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["deleted"], json!(["one"]));
    assert_eq!(answer["notFound"].as_array().map(Vec::len), Some(500));
    let (_, list) = send(&server, Method::GET, "/registries", Value::Null).await;
    assert_eq!(
        list["items"][0]["name"], "two",
        "the other record is untouched"
    );
}

#[tokio::test]
async fn echoed_values_are_truncated() {
    let server = TestServer::start().await;
    let huge = "K".repeat(2 * 1024 * 1024);

    // An AdmissionReview with a 2 MB kind string.
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": huge}});
    let response = server
        .client
        .post(server.url("/mutate"))
        .json(&review)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    assert!(text.len() < 4096, "answer is {} bytes", text.len());
    assert!(text.contains("malformed_review"), "{text}");

    // An unsupported version of 2 MB.
    let review = json!({"apiVersion": huge, "kind": "AdmissionReview", "request": {"uid": "u"}});
    let response = server
        .client
        .post(server.url("/mutate"))
        .json(&review)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    assert!(response.text().await.expect("body").len() < 4096);

    // A registry-relative image of 500 KB in a Pod: the denial stays small.
    let image = format!("/{}", "a".repeat(500_000));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": image}]}});
    let answer = server
        .review(&common::admission_review(&pod, "team-a", "CREATE"))
        .await;
    assert_eq!(answer["allowed"], false);
    let message = answer["status"]["message"].as_str().expect("message");
    assert!(message.len() < 4096, "denial is {} bytes", message.len());

    // API bodies (at most 1 MiB): an unknown field with a huge name, a huge
    // wrong-typed value, a huge name, a huge server.
    let huge = "K".repeat(700_000);
    for body in [
        json!({"name": "a", "server": "r.example", "namespaces": ["a"], huge.clone(): 1}),
        json!({"name": "a", "server": "r.example", "namespaces": huge}),
        json!({"name": huge, "server": "r.example", "namespaces": ["a"]}),
        json!({"name": "a", "server": huge, "namespaces": ["a"]}),
    ] {
        let response = server
            .api(Method::POST, "/registries?verify=false")
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 422);
        let text = response.text().await.expect("body");
        assert!(text.len() < 4096, "answer is {} bytes", text.len());
    }
}
