//! Node trust against the real consumers of the files: a real containerd
//! (private root, state and socket in a temporary directory) pulling with
//! `ctr images pull --hosts-dir`, and skopeo reading `registries.conf.d`
//! and `certs.d`, from the real Distribution registry over plain HTTP and
//! over HTTPS with a private CA. Each pull fails before `node-config`
//! writes the files and succeeds after, with no `--plain-http` or
//! `--skip-verify`.
//!
//! The registries listen on 127.0.0.1. Images are named `registry.test:<port>`
//! (a reserved name), mapped to 127.0.0.1 by a private `/etc/hosts` that
//! only the pulling processes see (`unshare --mount`): containerd treats
//! `localhost` and loopback addresses as plain HTTP on its own, which would
//! hide what the files do.

mod common;
mod containerd;
mod distribution;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use containerd::Containerd;
use distribution::{Distribution, Mode, PASSWORD, USER};
use reqwest::Method;
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-resolver");

/// Runs `program args` in a private mount namespace where `registry.test`
/// is 127.0.0.1 and each (source, target) directory is bind-mounted.
fn isolated(hosts: &Path, mounts: &[(&Path, &str)], program: &str, args: &[String]) -> Output {
    let mut script = format!("set -e; mount --bind {} /etc/hosts; ", quote(hosts));
    for (source, target) in mounts {
        script.push_str(&format!(
            "mount --bind {} {}; ",
            quote(source),
            quote(Path::new(target))
        ));
    }
    script.push_str(&format!(
        "exec {program} {}",
        args.iter()
            .map(|a| quote(Path::new(a)))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .expect("unshare")
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn node_config(data: &Path, root: &Path, extra: &[&str]) -> Output {
    Command::new(BINARY)
        .args([
            "node-config",
            "--runtime",
            "containerd,crio,docker",
            "--data-dir",
        ])
        .arg(data)
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .expect("node-config runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtimes_pull_once_node_config_has_written_their_files() {
    let plain = Distribution::start(Mode::Open).await;
    let private = Distribution::start(Mode::TlsBasic).await;
    plain.push_runnable_image("team/app", "1").await;
    private.push_runnable_image("team/app", "1").await;
    let plain_image = format!("registry.test:{}/team/app:1", plain.port);
    let private_image = format!("registry.test:{}/team/app:1", private.port);

    // The records, as a user saves them (no check: this service resolves
    // registry.test nowhere).
    let server = common::TestServer::start().await;
    for body in [
        json!({"name": "plain", "server": format!("http://registry.test:{}", plain.port), "namespaces": ["a"]}),
        json!({"name": "private", "server": format!("https://registry.test:{}", private.port),
               "username": USER, "password": PASSWORD, "namespaces": ["a"],
               "tls": {"caBundle": private.ca_pem.clone().expect("ca")}}),
    ] {
        let (status, answer) = server
            .call(Method::POST, "/registries?verify=false", Some(&body))
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    // node-config reads the same store beside the running server.
    let data = server.dir.path().join("data");

    let work = tempfile::tempdir().expect("tempdir");
    let hosts = work.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.1 registry.test\n").expect("hosts");
    let root = work.path().join("node");
    let containerd = Containerd::start();
    let hosts_dir = root.join("etc/containerd/certs.d");
    let pull = |image: &str, credentials: bool| {
        let mut args = vec![
            "--address".to_owned(),
            containerd.socket.display().to_string(),
            "images".into(),
            "pull".into(),
            "--snapshotter".into(),
            "native".into(),
            "--hosts-dir".into(),
            hosts_dir.display().to_string(),
        ];
        if credentials {
            args.extend(["--user".into(), format!("{USER}:{PASSWORD}")]);
        }
        args.push(image.to_owned());
        isolated(&hosts, &[], "ctr", &args)
    };
    let inspect = |image: &str, credentials: bool, docker_certs: Option<&Path>| {
        let mut args = vec!["inspect".to_owned()];
        if credentials {
            args.extend(["--creds".into(), format!("{USER}:{PASSWORD}")]);
        }
        if let Some(dir) = docker_certs {
            args.extend(["--cert-dir".into(), dir.display().to_string()]);
        }
        args.push(format!("docker://{image}"));
        isolated(
            &hosts,
            &[(&root.join("etc/containers"), "/etc/containers")],
            "skopeo",
            &args,
        )
    };
    std::fs::create_dir_all(root.join("etc/containers")).expect("mkdir");

    // Before: each runtime refuses, for the reason a node would.
    let refused = pull(&plain_image, false);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("HTTP response to HTTPS client"),
        "{}",
        text(&refused)
    );
    let refused = pull(&private_image, true);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("certificate signed by unknown authority"),
        "{}",
        text(&refused)
    );
    let refused = inspect(&plain_image, false, None);
    assert!(!refused.status.success(), "{}", text(&refused));
    let refused = inspect(&private_image, true, None);
    assert!(
        text(&refused).contains("unknown authority"),
        "{}",
        text(&refused)
    );

    // `--check` says what it would write, writes nothing, and exits 1.
    let check = node_config(&data, &root, &["--check"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check).contains(&format!(
            "write  /etc/containerd/certs.d/registry.test:{}/hosts.toml",
            plain.port
        )),
        "{}",
        text(&check)
    );
    assert!(!hosts_dir.exists());

    let written = node_config(&data, &root, &[]);
    assert!(written.status.success(), "{}", text(&written));
    let again = node_config(&data, &root, &["--check"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "nothing left to do: {}",
        text(&again)
    );
    assert!(text(&again).trim().is_empty(), "{}", text(&again));

    // After: containerd pulls both, with no --plain-http or --skip-verify.
    let pulled = pull(&plain_image, false);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let pulled = pull(&private_image, true);
    assert!(pulled.status.success(), "{}", text(&pulled));
    // The containers side through its default paths, and Docker's CA file
    // as the containers library reads a certs.d directory.
    let inspected = inspect(&plain_image, false, None);
    assert!(inspected.status.success(), "{}", text(&inspected));
    let inspected = inspect(&private_image, true, None);
    assert!(inspected.status.success(), "{}", text(&inspected));
    let docker_dir = root.join(format!("etc/docker/certs.d/registry.test:{}", private.port));
    let inspected = inspect(&private_image, true, Some(&docker_dir));
    assert!(inspected.status.success(), "{}", text(&inspected));

    // The records go: so do the files, and the pulls fail again.
    for name in ["plain", "private"] {
        let (status, _) = server
            .call(Method::DELETE, &format!("/registries/{name}"), None)
            .await;
        assert_eq!(status, 204);
    }
    let removed = node_config(&data, &root, &[]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert!(
        text(&removed).contains("remove /etc/containerd/certs.d"),
        "{}",
        text(&removed)
    );
    assert_eq!(
        std::fs::read_dir(&hosts_dir)
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    let refused = pull(&plain_image, false);
    assert!(!refused.status.success(), "{}", text(&refused));
}

/// The agent in Kubernetes mode, through the in-memory API server with the
/// controller running: ImageRegistries appearing, changing CA and going
/// drive two nodes' files; their reports become the registry's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_agents_follow_the_records_and_the_status_counts_nodes() {
    use registry_resolver::node_trust::agent::{AgentOptions, run};
    use registry_resolver::node_trust::sync::Node;
    use registry_resolver::node_trust::{Layout, Runtime};

    let ca = |dir: &Path| {
        let paths = registry_resolver::certs::generate(
            dir,
            &registry_resolver::certs::CertSubjects {
                service: "registry".into(),
                namespace: "test".into(),
                extra: vec![],
            },
        )
        .expect("certs");
        std::fs::read_to_string(paths.ca_cert).expect("ca")
    };
    let pems = tempfile::tempdir().expect("tmp");
    let (ca_1, ca_2) = (ca(&pems.path().join("1")), ca(&pems.path().join("2")));
    let mut cluster = common::TestServer::start_kubernetes_rbac().await;
    let fake = cluster.fake().clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let nodes = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    // node-3's containerd does not read certs.d (1.x without config_path).
    let config = nodes[2].path().join("etc/containerd/config.toml");
    std::fs::create_dir_all(config.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &config,
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n",
    )
    .expect("write");
    // node-2 already has an admin's own hosts.toml for that host.
    let theirs = nodes[1]
        .path()
        .join("etc/containerd/certs.d/registry.test:5443/hosts.toml");
    std::fs::create_dir_all(theirs.parent().expect("dir")).expect("mkdir");
    std::fs::write(&theirs, "server = \"https://registry.test:5443\"\n").expect("write");
    let metrics: Vec<_> = (0..3)
        .map(|_| std::sync::Arc::new(registry_resolver::telemetry::Metrics::new()))
        .collect();
    for (i, root) in nodes.iter().enumerate() {
        let options = AgentOptions {
            metrics: metrics[i].clone(),
            node_name: format!("node-{}", i + 1),
            namespace: "registry-resolver".into(),
            node: Node {
                root: root.path().to_owned(),
                layout: Layout::default(),
                runtimes: vec![Runtime::Containerd],
            },
            containerd_config: "/etc/containerd/config.toml".into(),
            resync: Duration::from_secs(2),
        };
        tokio::spawn(run(fake.client(), options, shutdown.clone()));
    }
    let eventually = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}; the status: {}",
                fake.get("imageregistries", None, "private")
                    .map(|r| r["status"].to_string())
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let ca_file = nodes[0]
        .path()
        .join("etc/containerd/certs.d/registry.test:5443/registry-resolver-ca.crt");
    let node_trust = |fake: &common::fake_apiserver::FakeApiServer| {
        fake.get("imageregistries", None, "private")
            .map(|r| r["status"]["nodeTrust"].clone())
            .unwrap_or_default()
    };

    let call = |method: Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = cluster.api_as(method, path, "admin-token");
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (
                status,
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    let (status, body) = call(
        Method::POST,
        "/registries?verify=false",
        Some(
            json!({"name": "private", "server": "https://registry.test:5443", "namespaces": ["a"],
                         "tls": {"caBundle": ca_1}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A public registry needs nothing of the nodes: no files, no count.
    let (status, _) = call(
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "public", "server": "public.example.com", "namespaces": ["a"]})),
    )
    .await;
    assert_eq!(status, 201);

    tokio::task::block_in_place(|| {
        eventually("node-1 trusts the private CA", &|| {
            std::fs::read_to_string(&ca_file).is_ok_and(|t| t.contains(ca_1.trim()))
        });
        eventually(
            "the status counts node-1 in, node-2 and node-3 failed",
            &|| {
                let trust = node_trust(&fake);
                trust["nodes"] == 3 && trust["configured"] == 1 && trust["failed"] == 2
            },
        );
    });
    let trust = node_trust(&fake);
    assert_eq!(trust["failedNodes"][0]["node"], "node-2", "{trust}");
    assert!(
        trust["failedNodes"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not written by registry-resolver")),
        "{trust}"
    );
    assert_eq!(trust["failedNodes"][1]["node"], "node-3", "{trust}");
    assert!(
        trust["failedNodes"][1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("config_path = \"/etc/containerd/certs.d\"")),
        "node-3 is told the exact line: {trust}"
    );
    assert!(
        metrics[2]
            .encode()
            .contains("registry_resolver_node_trust_runtime_config_missing 1")
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.starts_with("POST /apis/events.k8s.io/v1/namespaces/default/events")),
        "an Event on node-3: {:?}",
        fake.requests()
    );
    assert_eq!(
        std::fs::read_to_string(&theirs).expect("theirs"),
        "server = \"https://registry.test:5443\"\n",
        "an admin's file is never changed"
    );
    // Each node's metrics say the same.
    let node_2 = metrics[1].encode();
    assert!(
        node_2.contains("registry_resolver_node_trust_registries{state=\"failed\"} 1"),
        "{node_2}"
    );
    assert!(
        metrics[0]
            .encode()
            .contains("registry_resolver_node_trust_registries{state=\"configured\"} 1")
    );
    assert!(
        fake.get("imageregistries", None, "public")
            .is_some_and(|r| r["status"]["nodeTrust"].is_null()),
        "a public registry has no node trust to report"
    );

    // The CA rotates: every node has the new one within a resync, and the
    // count is of nodes with the new one.
    let response = cluster
        .api_as(
            Method::PATCH,
            "/registries/private?verify=false",
            "admin-token",
        )
        .header("content-type", "application/merge-patch+json")
        .body(json!({"tls": {"caBundle": ca_2}}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    // The fingerprint of the rotated material, as the plan computes it.
    let (_, record) = call(Method::GET, "/registries/private", None).await;
    let record: registry_resolver::registry::Registry =
        serde_json::from_value(record).expect("a record");
    let (hosts, _) = registry_resolver::node_trust::plan::hosts(&[record]);
    let rotated = hosts[0].fingerprint();
    tokio::task::block_in_place(|| {
        eventually("node-1 has the rotated CA", &|| {
            std::fs::read_to_string(&ca_file)
                .is_ok_and(|t| t.contains(ca_2.trim()) && !t.contains(ca_1.trim()))
        });
        eventually(
            "node-1 reports the rotated CA, and the status counts it",
            &|| {
                let report = fake.get("configmaps", Some("registry-resolver"), "node-trust-node-1");
                report.is_some_and(|r| {
                    r["data"]["report.json"]
                        .as_str()
                        .is_some_and(|t| t.contains(&format!("\"private\":\"{rotated}\"")))
                }) && node_trust(&fake)["configured"] == 1
            },
        );
    });

    // The record goes: its files go from every node that has them.
    let (status, _) = call(Method::DELETE, "/registries/private", None).await;
    assert_eq!(status, 204);
    tokio::task::block_in_place(|| {
        eventually("node-1's files are gone", &|| {
            !nodes[0]
                .path()
                .join("etc/containerd/certs.d/registry.test:5443")
                .exists()
        });
    });
    assert!(theirs.exists(), "node-2's own file stays");
    shutdown.cancel();
    cluster.stop().await;
}
