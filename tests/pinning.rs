//! Tag → digest pinning through the webhook, against the real registry.

mod common;
mod distribution;

use std::time::Duration;

use common::{TestServer, admission_review, apply_patch};
use distribution::{Distribution, Mode, PASSWORD, USER};
use registry_resolver::pinning::PinFailurePolicy;
use reqwest::Method;
use serde_json::{Value, json};

fn deployment(image: &str, annotations: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"selector": {}, "template": {"metadata": {"annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

async fn add_registry(server: &TestServer, registry: &Distribution, pin: bool) {
    let mut body = json!({"name": "reg", "server": registry.server(), "username": USER, "password": PASSWORD,
                      "namespaces": ["team-a"], "defaultFor": ["team-a"], "pinDigests": pin});
    if let Some(ca) = &registry.ca_pem {
        body["tls"] = json!({"caBundle": ca});
    }
    let response = server
        .api(Method::POST, "/registries")
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(
        response.status(),
        201,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

/// A "registry" that accepts connections and never answers: its address,
/// and how many connections it has been sent.
async fn hanging_registry() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, connections)
}

/// A server whose record for team-a pins digests at a hanging registry.
async fn pinning_to_a_hanging_registry() -> (
    TestServer,
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let (addr, connections) = hanging_registry().await;
    let server = TestServer::start_pinning(PinFailurePolicy::Allow).await;
    server
        .create_registry(json!({"name": "hangs", "server": format!("http://{addr}"),
            "namespaces": ["team-a"], "defaultFor": ["team-a"], "pinDigests": true}))
        .await;
    (server, addr, connections)
}

async fn admitted_image(server: &TestServer, object: &Value) -> (String, Value) {
    let response = server
        .review(&admission_review(object, "team-a", "CREATE"))
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    let patched = apply_patch(object, &response).expect("a patch");
    let image = patched["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (image, response)
}

#[tokio::test]
async fn pins_tags_and_multi_arch_indexes_to_the_registry_digest() {
    let registry = Distribution::start(Mode::Basic).await;
    let single = registry.push_image("team/app", "1.0.0").await;
    let index = registry.push_multi_arch("team/multi", "2.0").await;
    let server = TestServer::start().await;
    add_registry(&server, &registry, true).await;

    let (image, response) =
        admitted_image(&server, &deployment("/team/app:1.0.0", json!({}))).await;
    assert_eq!(
        image,
        format!("{}/team/app:1.0.0@{single}", registry.host())
    );
    assert!(
        response["warnings"][0]
            .as_str()
            .unwrap_or("")
            .contains(&single)
    );

    // A multi-arch tag pins to the index, not to one platform's manifest.
    let (image, _) = admitted_image(&server, &deployment("/team/multi:2.0", json!({}))).await;
    assert_eq!(image, format!("{}/team/multi:2.0@{index}", registry.host()));

    // No tag means latest.
    registry.push_image("team/app", "latest").await;
    let (image, _) = admitted_image(&server, &deployment("/team/app", json!({}))).await;
    assert!(
        image.starts_with(&format!("{}/team/app@sha256:", registry.host())),
        "{image}"
    );

    // Idempotent: the pinned image is fully qualified, so a second pass does nothing.
    let pinned = deployment(
        &format!("{}/team/app:1.0.0@{single}", registry.host()),
        json!({}),
    );
    let response = server
        .review(&admission_review(&pinned, "team-a", "CREATE"))
        .await;
    assert!(response.get("patch").is_none());
}

#[tokio::test]
async fn pins_on_request_by_annotation_and_never_looks_up_digests() {
    let registry = Distribution::start(Mode::Open).await;
    let digest = registry.push_image("team/app", "1.0.0").await;
    let server = TestServer::start().await;
    add_registry(&server, &registry, false).await;

    // Without the annotation, the tag stays.
    let (image, _) = admitted_image(&server, &deployment("/team/app:1.0.0", json!({}))).await;
    assert_eq!(image, format!("{}/team/app:1.0.0", registry.host()));
    let (image, _) = admitted_image(
        &server,
        &deployment(
            "/team/app:1.0.0",
            json!({"registry-resolver.io/pin-digest": "true"}),
        ),
    )
    .await;
    assert_eq!(
        image,
        format!("{}/team/app:1.0.0@{digest}", registry.host())
    );

    // An image that names its digest is never looked up.
    let before = registry.requests_matching("HEAD /v2/team/app/manifests/");
    let written = format!("/team/app:9.9@{digest}");
    let (image, _) = admitted_image(
        &server,
        &deployment(&written, json!({"registry-resolver.io/pin-digest": "true"})),
    )
    .await;
    assert_eq!(image, format!("{}/team/app:9.9@{digest}", registry.host()));
    assert_eq!(
        registry.requests_matching("HEAD /v2/team/app/manifests/"),
        before
    );
}

#[tokio::test]
async fn fifty_concurrent_admissions_make_one_registry_request() {
    let registry = Distribution::start(Mode::Token).await;
    let digest = registry.push_image("team/app", "3.1.4").await;
    let server = std::sync::Arc::new(TestServer::start().await);
    add_registry(&server, &registry, true).await;
    let object = deployment("/team/app:3.1.4", json!({}));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (server, object) = (server.clone(), object.clone());
        tasks.push(tokio::spawn(async move {
            admitted_image(&server, &object).await.0
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.expect("join"),
            format!("{}/team/app:3.1.4@{digest}", registry.host())
        );
    }
    // The registry logs the request that was challenged and the one with the token.
    let heads = registry.requests_matching("HEAD /v2/team/app/manifests/3.1.4");
    assert_eq!(
        heads, 2,
        "one lookup (401 challenge + authorized HEAD) for 50 admissions"
    );
    // Cached afterwards.
    admitted_image(&server, &object).await;
    assert_eq!(
        registry.requests_matching("HEAD /v2/team/app/manifests/3.1.4"),
        2
    );
}

#[tokio::test]
async fn registry_down_under_both_policies() {
    let mut registry = Distribution::start(Mode::Basic).await;
    registry.push_image("team/app", "1.0.0").await;
    let object = deployment("/team/app:1.0.0", json!({}));

    let allow = TestServer::start_pinning(PinFailurePolicy::Allow).await;
    add_registry(&allow, &registry, true).await;
    let deny = TestServer::start_pinning(PinFailurePolicy::Deny).await;
    add_registry(&deny, &registry, true).await;
    // A missing tag is a failure too.
    let missing = deployment("/team/app:0.0.0-missing", json!({}));
    let response = deny
        .review(&admission_review(&missing, "team-a", "CREATE"))
        .await;
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("not_found"),
        "{response}"
    );
    // Remembered briefly: the next admission of it does not ask the registry again.
    let asked = registry.requests_matching("HEAD /v2/team/app/manifests/0.0.0-missing");
    assert!(asked >= 1);
    let again = deny
        .review(&admission_review(&missing, "team-a", "CREATE"))
        .await;
    assert_eq!(again["status"]["message"], response["status"]["message"]);
    assert_eq!(
        registry.requests_matching("HEAD /v2/team/app/manifests/0.0.0-missing"),
        asked
    );

    registry.stop();
    let started = std::time::Instant::now();
    let (image, response) = admitted_image(&allow, &object).await;
    assert_eq!(
        image,
        format!("{}/team/app:1.0.0", registry.host()),
        "the tag is kept"
    );
    let warnings = response["warnings"].to_string();
    assert!(
        warnings.contains("cannot pin")
            && warnings.contains("unreachable")
            && warnings.contains("kept the tag"),
        "{warnings}"
    );

    let response = deny
        .review(&admission_review(&object, "team-a", "CREATE"))
        .await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("registry-resolver: container \"app\": cannot pin"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "bounded by the pinning deadline"
    );
}

/// A pinned registry that accepts connections and never answers: the
/// admissions that arrive together share one lookup, those after it are
/// answered from the remembered failure, so a hanging registry costs one
/// deadline, not one per admission — and every admission is still answered.
#[tokio::test]
async fn a_hanging_registry_costs_one_lookup_not_one_per_admission() {
    use std::sync::atomic::Ordering;
    let (server, addr, connections) = pinning_to_a_hanging_registry().await;
    let object = deployment("/team/app:1.0.0", json!({}));

    let together =
        futures_util::future::join_all((0..20).map(|_| admitted_image(&server, &object))).await;
    let after: Vec<_> = {
        let mut out = Vec::new();
        for _ in 0..20 {
            out.push(admitted_image(&server, &object).await);
        }
        out
    };
    for (image, response) in together.iter().chain(&after) {
        assert_eq!(image, &format!("{addr}/team/app:1.0.0"), "the tag is kept");
        let warnings = response["warnings"].to_string();
        assert!(
            warnings.contains("cannot pin") && warnings.contains("kept the tag"),
            "{warnings}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "40 admissions, one lookup"
    );
}

#[tokio::test]
async fn resolve_command_pins_too() {
    use registry_resolver::registry::store::RegistryStore;
    use registry_resolver::registry::{RegistryInput, WriteMode};
    let registry = Distribution::start(Mode::Open).await;
    let digest = registry.push_image("team/app", "1.0.0").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    {
        let store = registry_resolver::app::open_embedded_store(
            &common::store_args(&data),
            registry_resolver::index::IndexHandle::new(),
        )
        .expect("store");
        let input: RegistryInput =
            serde_json::from_value(json!({"name": "reg", "server": registry.server(),
            "namespaces": ["team-a"], "defaultFor": ["team-a"], "pinDigests": true}))
            .expect("input");
        store
            .create(input.validate(WriteMode::Create, None).expect("valid"))
            .await
            .expect("created");
    }
    let manifest = deployment("/team/app:1.0.0", json!({})).to_string();
    let data_dir = data.clone();
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_registry-resolver"))
            .args(["resolve", "-o", "json"])
            .env("REGISTRY_RESOLVER_DATA_DIR", data_dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(manifest.as_bytes())
            .expect("write");
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let resolved: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        resolved["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{}/team/app:1.0.0@{digest}", registry.host())
    );
}

/// An object with as many containers as a caller likes.
fn deployment_with_tags(tags: impl Iterator<Item = String>) -> Value {
    let containers: Vec<Value> = tags
        .enumerate()
        .map(|(i, tag)| json!({"name": format!("c{i}"), "image": format!("/team/app:{tag}")}))
        .collect();
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"selector": {}, "template": {"spec": {"containers": containers}}}})
}

/// One unauthenticated review with 5,000 containers naming 5,000 distinct
/// tags under a pinning record: no registry request at all, and the policy
/// answers with one message saying why.
#[tokio::test]
async fn one_review_cannot_fan_out_into_thousands_of_lookups() {
    let registry = Distribution::start(Mode::Basic).await;
    registry.push_image("team/app", "1.0.0").await;
    let object = deployment_with_tags((0..5000).map(|i| format!("t{i}")));
    for policy in [PinFailurePolicy::Allow, PinFailurePolicy::Deny] {
        let server = TestServer::start_pinning(policy).await;
        add_registry(&server, &registry, true).await;
        let before = registry.requests_matching("/manifests/");
        let response = server
            .review(&admission_review(&object, "team-a", "CREATE"))
            .await;
        assert_eq!(
            registry.requests_matching("/manifests/"),
            before,
            "{policy:?}: no look-up was sent"
        );
        let why = "5000 distinct tags would have to be looked up to pin this object's images, more than the 64 one review may ask for (--pin-max-lookups); none was looked up";
        match policy {
            PinFailurePolicy::Allow => {
                assert_eq!(response["allowed"], true, "{response}");
                let warnings = response["warnings"].to_string();
                assert!(warnings.contains(why), "{warnings}");
                let patched = apply_patch(&object, &response).expect("a patch");
                assert_eq!(
                    patched["spec"]["template"]["spec"]["containers"][4999]["image"],
                    format!("{}/team/app:t4999", registry.host()),
                    "resolved, tag kept"
                );
            }
            PinFailurePolicy::Deny => {
                assert_eq!(response["allowed"], false, "{response}");
                let message = response["status"]["message"].as_str().unwrap_or_default();
                assert!(message.contains(why), "{message}");
            }
        }
    }
    // Under the bound, tags are looked up and pinned as always.
    let server = TestServer::start_pinning(PinFailurePolicy::Deny).await;
    add_registry(&server, &registry, true).await;
    let (image, _) = admitted_image(&server, &deployment("/team/app:1.0.0", json!({}))).await;
    assert!(image.contains("@sha256:"), "{image}");
}

/// Look-ups at one registry are bounded across reviews: 40 distinct tags at
/// a registry that never answers hold 8 connections, not 40.
#[tokio::test]
async fn lookups_in_flight_per_registry_are_bounded() {
    use std::sync::atomic::Ordering;
    let (server, _, connections) = pinning_to_a_hanging_registry().await;
    let first = deployment_with_tags((0..20).map(|i| format!("a{i}")));
    let second = deployment_with_tags((0..20).map(|i| format!("b{i}")));
    let (first, second) = (
        admission_review(&first, "team-a", "CREATE"),
        admission_review(&second, "team-a", "CREATE"),
    );
    let (one, two) = tokio::join!(server.review(&first), server.review(&second));
    for response in [one, two] {
        assert_eq!(response["allowed"], true, "{response}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        8,
        "40 look-ups, at most 8 at the registry at once"
    );
}
