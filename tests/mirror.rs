//! Mirrors with real parts: a real Distribution registry in proxy mode
//! (`proxy.remoteurl`, a pull-through cache) in front of a second one that
//! plays the upstream (token auth, images pushed by the test, credentials
//! on both), the webhook rewriting images to the cache, and real
//! containerd (`ctr`) pulling what the webhook wrote.

mod common;
mod containerd;
mod distribution;

use std::time::{Duration, Instant};

use common::{TestServer, admission_review, apply_patch};
use containerd::Containerd;
use distribution::{Distribution, Mode, PASSWORD, USER};
use serde_json::{Value, json};

fn deployment(image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}}}})
}

/// The image the webhook admits `image` as in team-a, and its warnings.
async fn admitted(server: &TestServer, image: &str) -> (String, String) {
    let object = deployment(image);
    let response = server
        .review(&admission_review(&object, "team-a", "CREATE"))
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    let patched = apply_patch(&object, &response).unwrap_or(object);
    let image = patched["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (image, response["warnings"].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_pulled_through_a_real_pull_through_cache_and_left_upstream_while_it_is_down() {
    let upstream = Distribution::start(Mode::Token).await;
    for tag in ["1.25", "1.26", "1.27"] {
        upstream.push_runnable_image("library/nginx", tag).await;
    }
    let mut cache = Distribution::start_proxy(&upstream).await;
    let server = TestServer::start().await;
    server
        .create_registry(json!({
            "name": "cache", "server": cache.server(), "username": USER, "password": PASSWORD,
            "namespaces": ["team-a"],
            "mirrorOf": [{"upstream": upstream.host(), "checkUpstream": true}]
        }))
        .await;

    // Rewritten to the cache, which the webhook asked first.
    let written = format!("{}/library/nginx:1.25", upstream.host());
    let (image, warnings) = admitted(&server, &written).await;
    assert_eq!(image, format!("{}/library/nginx:1.25", cache.host()));
    assert!(warnings.contains("its mirror of"), "{warnings}");
    // (Asked twice: first without credentials, as the registry protocol
    // goes, then with them.)
    assert!(
        cache.requests_matching("HEAD /v2/library/nginx/manifests/1.25") >= 1,
        "the check went through the cache"
    );

    // containerd pulls what the webhook wrote, through the cache, with the
    // credentials of the record's pull Secret; the cache then holds the
    // image.
    let before = cache.stored_blobs();
    let node = Containerd::start();
    let credentials = format!("{USER}:{PASSWORD}");
    let pulled = node.ctr(&[
        "images",
        "pull",
        "--plain-http",
        "--user",
        &credentials,
        &image,
    ]);
    assert!(
        pulled.status.success(),
        "ctr pull {image}: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert!(
        cache.stored_blobs() > before,
        "the cache stored the image's blobs"
    );

    // The cache stops: an image it has not been asked for stays upstream,
    // said in a warning, within the check's deadline.
    cache.stop();
    let started = Instant::now();
    let written = format!("{}/library/nginx:1.26", upstream.host());
    let (image, warnings) = admitted(&server, &written).await;
    assert_eq!(image, written, "left upstream");
    assert!(
        warnings.contains("which cannot serve it") && warnings.contains("as written"),
        "{warnings}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within the deadline"
    );

    // Started again, it takes images again.
    cache.start_again();
    let written = format!("{}/library/nginx:1.27", upstream.host());
    let (image, _) = admitted(&server, &written).await;
    assert_eq!(image, format!("{}/library/nginx:1.27", cache.host()));

    // An air-gapped site: refused while the mirror cannot serve.
    let (status, body) = server
        .call(
            reqwest::Method::PATCH,
            "/registries/cache?verify=false",
            Some(&json!({"mirrorOf": [{"upstream": upstream.host(), "checkUpstream": true, "fallback": "deny"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    cache.stop();
    let object = deployment(&format!("{}/library/nginx:1.28", upstream.host()));
    let response = server
        .review(&admission_review(&object, "team-a", "CREATE"))
        .await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fallback: deny")),
        "{response}"
    );
}

/// Node mode: `node-config` writes containerd's `hosts.toml` for the
/// upstream with the cache first, the webhook leaves names as written, and
/// containerd pulls the upstream's name through the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_node_mode_containerd_pulls_the_upstream_name_through_the_cache() {
    let upstream = Distribution::start(Mode::Token).await;
    upstream.push_runnable_image("library/nginx", "1.25").await;
    let cache = Distribution::start_proxy(&upstream).await;
    let server = TestServer::start().await;
    server
        .create_registry(json!({
            "name": "cache", "server": cache.server(), "username": USER, "password": PASSWORD,
            "namespaces": ["team-a"],
            "mirrorOf": [{"upstream": upstream.host(), "mode": "node"}]
        }))
        .await;
    let written = format!("{}/library/nginx:1.25", upstream.host());
    let (image, _) = admitted(&server, &written).await;
    assert_eq!(image, written, "names stay as written in node mode");

    // node-config reads the store beside the running server.
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("node");
    let configured = std::process::Command::new(env!("CARGO_BIN_EXE_registry-resolver"))
        .args(["node-config", "--runtime", "containerd", "--data-dir"])
        .arg(server.dir.path().join("data"))
        .arg("--root")
        .arg(&root)
        .output()
        .expect("node-config runs");
    assert!(
        configured.status.success(),
        "{}",
        String::from_utf8_lossy(&configured.stderr)
    );
    let hosts_dir = root.join("etc/containerd/certs.d");
    let hosts_toml = std::fs::read_to_string(hosts_dir.join(upstream.host()).join("hosts.toml"))
        .expect("hosts.toml for the upstream");
    assert!(
        hosts_toml.contains(&format!("[host.\"{}\"]", cache.server())),
        "{hosts_toml}"
    );

    let node = Containerd::start();
    let credentials = format!("{USER}:{PASSWORD}");
    let pulled = node.ctr(&[
        "images",
        "pull",
        "--snapshotter",
        "native",
        "--hosts-dir",
        &hosts_dir.display().to_string(),
        "--user",
        &credentials,
        &written,
    ]);
    assert!(
        pulled.status.success(),
        "ctr pull {written}: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    // containerd asks a mirror with `?ns=<upstream>`: the cache's log
    // shows the upstream's name was pulled through it.
    let log = std::fs::read_to_string(cache.dir.path().join("access.log")).unwrap_or_default();
    let asked = format!(
        "/v2/library/nginx/manifests/1.25?ns={}",
        upstream.host().replace(':', "%3A")
    );
    assert!(log.contains(&asked), "{asked} in the cache's log:\n{log}");
    assert!(cache.stored_blobs() > 0, "the cache stored the image");
}
