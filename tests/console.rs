//! The console in a real browser: the release-built server binary, the real
//! Distribution registry with images pushed to it, and Debian's Chromium
//! driven by Playwright (`tests/console/console_test.py`), which clicks
//! through every flow, runs an accessibility scan on each page, and takes
//! the screenshots the README shows.

mod common;
mod distribution;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use distribution::{Distribution, Mode, PASSWORD, USER};

const BIN: &str = env!("CARGO_BIN_EXE_registry-resolver");

/// One browser at a time: two Chromiums on two cores make each flow's
/// waits a matter of luck.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const TOKEN: &str = "console-test-token";

/// Where the browser tests put their screenshots: `target/screenshots`, or
/// the README's `docs/screenshots` when `UPDATE_SCREENSHOTS=1` asks for it.
/// A test run must not change tracked files: the image test builds the
/// image twice and a tree that changed in between labels the second build
/// `-dirty`, another digest.
fn screenshot_dir() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        root.join("docs/screenshots")
    } else {
        root.join("target/screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

fn wait_ready(admin_port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let ready = std::net::TcpStream::connect(("127.0.0.1", admin_port))
            .ok()
            .and_then(|mut s| {
                s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").ok()?;
                let mut out = String::new();
                std::io::Read::read_to_string(&mut s, &mut out).ok()?;
                Some(out.contains(" 200 "))
            })
            .unwrap_or(false);
        if ready {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "server not ready: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test]
async fn every_console_flow_in_a_real_browser() {
    let _browser = BROWSER.lock().await;
    let registry = Distribution::start(Mode::Basic).await;
    for (repository, tag) in [
        ("library/nginx", "1.25.5"),
        ("library/nginx", "1.27.0"),
        ("library/nginx", "latest"),
        ("library/redis", "7.2"),
        ("mysql/mysql", "5.6"),
        ("team/app", "1.0.0"),
    ] {
        registry.push_image(repository, tag).await;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin_port) = (common::free_port(), common::free_port());
    let log = dir.path().join("serve.log");
    let mut server = Command::new(BIN)
        .arg("serve")
        .env("REGISTRY_RESOLVER_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "REGISTRY_RESOLVER_ADMIN_LISTEN",
            format!("127.0.0.1:{admin_port}"),
        )
        .env("REGISTRY_RESOLVER_DATA_DIR", dir.path().join("data"))
        .env("REGISTRY_RESOLVER_CERTS_DIR", dir.path().join("certs"))
        .env("REGISTRY_RESOLVER_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("server starts");
    wait_ready(admin_port, &log);

    // kubectl checks the manifest the workload page hands over as it
    // would on a cluster: against the in-memory API server's discovery.
    let cluster = common::fake_apiserver::FakeApiServer::new();
    cluster.namespace("team-a");
    // The kubeconfig's token: a user who may create Deployments.
    cluster.add_user("fake-token", "developer", true);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        common::fake_apiserver::FakeApiServer::kubeconfig(&cluster.serve_http().await),
    )
    .expect("kubeconfig");

    let screenshots = screenshot_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console_test.py");
    // Not a blocking wait: the in-memory API server answers kubectl from
    // this runtime meanwhile.
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .env("KUBECONFIG", &kubeconfig)
        .env("CONSOLE_URL", format!("https://localhost:{port}"))
        .env("CONSOLE_CA", dir.path().join("certs/ca.crt"))
        .env("CONSOLE_TOKEN", TOKEN)
        .env("REGISTRY_HOST", registry.host())
        .env("REGISTRY_USER", USER)
        .env("REGISTRY_PASSWORD", PASSWORD)
        .env("SCREENSHOT_DIR", &screenshots)
        .env(
            "AXE_JS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/axe/axe.min.js"),
        )
        .output()
        .await
        .expect("python3 runs");
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(stdout.contains("all console flows passed"), "{stdout}");
}

/// Kubernetes mode, with the in-memory API server behind the server: sign in
/// with Kubernetes tokens, a 403 that names the missing permission, and
/// Create sending the Deployment with the signed-in user's own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_kubernetes_mode() {
    const FLEET: usize = 400;
    let _browser = BROWSER.lock().await;
    let server = common::TestServer::start_kubernetes_rbac().await;
    let created = server
        .api_as(
            reqwest::Method::POST,
            "/registries?verify=false",
            "admin-token",
        )
        .json(&serde_json::json!({"name": "harbor", "server": "harbor.example.com", "username": "robot",
                                  "password": "Harbor-Pw-1", "namespaces": ["team-a", "team-b"], "defaultFor": ["team-a"],
                                  // Nothing listens at that name: the page must not try to list it.
                                  "browse": "none"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    // A plain-HTTP registry and a node agent's report that it is in place:
    // the registry's page shows the count.
    let plain = server
        .api_as(
            reqwest::Method::POST,
            "/registries?verify=false",
            "admin-token",
        )
        .json(&serde_json::json!({"name": "lab", "server": "http://10.0.0.9:5000", "namespaces": ["team-a"], "browse": "none"}))
        .send()
        .await
        .expect("create");
    assert_eq!(plain.status(), 201);
    let record: registry_resolver::registry::Registry = plain.json().await.expect("record");
    let (hosts, _) = registry_resolver::node_trust::plan::hosts(&[record]);
    let report = serde_json::json!({"node": "node-1", "configured": {"lab": hosts[0].fingerprint()}, "failed": {}});
    server.fake().put(
        "configmaps",
        "v1",
        "ConfigMap",
        Some("registry-resolver"),
        serde_json::json!({"metadata": {"name": "node-trust-node-1", "namespace": "registry-resolver",
                                        "labels": {"registry-resolver.io/node-trust": "true"}},
                           "data": {"report.json": report.to_string()}}),
    );
    // A project of workspace ws1, for a registry chosen by labels.
    server.fake().put(
        "namespaces",
        "v1",
        "Namespace",
        None,
        serde_json::json!({"metadata": {"name": "proj-1", "labels": {"kubesphere.io/workspace": "ws1"}}}),
    );
    // The controller places the pull Secrets and says so in the status.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let replicated = server
            .fake()
            .get("imageregistries", None, "harbor")
            .map(|o| o["status"]["replicatedNamespaces"].clone());
        if replicated == Some(serde_json::json!(["team-a", "team-b"])) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pull Secrets not replicated: {replicated:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A record for 400 projects whose pull Secrets are slow to write: the
    // page shows how far replication has got, and follows it.
    for i in 0..FLEET {
        server.fake().namespace(&format!("fleet-{i:03}"));
    }
    server
        .fake()
        .slow_writes("secrets", "fleet-", Duration::from_millis(60));
    let fleet = server
        .api_as(
            reqwest::Method::POST,
            "/registries?verify=false",
            "admin-token",
        )
        .json(&serde_json::json!({"name": "fleet", "server": "fleet.example.com", "username": "robot",
                                  "password": "Fleet-Pw-1", "namespaces": ["fleet-*"], "browse": "none"}))
        .send()
        .await
        .expect("create");
    assert_eq!(fleet.status(), 201);
    // Generous: on a loaded CI machine the Lease, the first lists and the
    // first paced writes all come before the first progress write.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server
        .fake()
        .get("imageregistries", None, "fleet")
        .is_none_or(|o| o["status"]["replication"]["authorized"] != FLEET)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the progress of fleet's replication was never written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("https://localhost:{}", server.addr().port());
    let screenshots = screenshot_dir();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console_kubernetes_test.py");
    let axe = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/axe/axe.min.js");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .env("CONSOLE_URL", url)
            .env("ADMIN_TOKEN", "admin-token")
            .env("DEV_TOKEN", "dev-token")
            .env("SCREENSHOT_DIR", &screenshots)
            .env("AXE_JS", axe)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("the browser test ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("kubernetes console flows passed"),
        "{stdout}"
    );
    assert_eq!(
        server.fake().deployment_tokens(),
        ["admin-token", "admin-token"],
        "Create used the signed-in user's token"
    );
}
