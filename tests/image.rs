//! The image, as a cluster would get and run it: built by
//! `scripts/build-image` (reproducibly), pushed to a real Distribution
//! registry, pulled and run by a real containerd as the image's user 65532
//! with a read-only root, no capabilities and a writable data volume — the
//! chart's security context — and then used: readiness, a record checked
//! against a registry addressed by a name from the container's /etc/hosts,
//! a resolved Deployment, the console, and a clean exit on SIGTERM.
//!
//! The README's test command builds the image once, beside the other tests,
//! and then runs this one (`cargo test --test image -- --ignored`) with its
//! path in `REGISTRY_RESOLVER_IMAGE`; run alone, the test builds it.

mod common;
mod containerd;
mod distribution;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use containerd::Containerd;
use distribution::{Distribution, Mode, PASSWORD, USER};
use serde_json::{Value, json};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/build-image <out>`; returns the digest it printed.
fn build_image(out: &Path) -> String {
    let output = Command::new(repository_root().join("scripts/build-image"))
        .arg(out)
        .current_dir(repository_root())
        .output()
        .expect("scripts/build-image runs");
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        out.to_str(),
        "prints the path first"
    );
    let digest = lines.get(1).expect("then the digest").to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    digest
}

/// The image the test command built, or one built now.
fn image() -> (PathBuf, String) {
    if let Some(path) = std::env::var_os("REGISTRY_RESOLVER_IMAGE") {
        let path = PathBuf::from(path);
        let digest_file = path.with_extension("").with_extension("digest");
        let digest = std::fs::read_to_string(&digest_file)
            .unwrap_or_else(|e| panic!("{}: {e}", digest_file.display()));
        return (path, digest.trim().to_owned());
    }
    let path = repository_root().join("target/image/registry-resolver.oci.tar");
    let digest = build_image(&path);
    (path, digest)
}

/// The OCI archive's manifest, config and every file path its layers hold.
fn contents(archive: &Path) -> (Value, Value, Vec<(String, u32, u64)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir.path())
        .output()
        .expect("tar");
    assert!(out.status.success(), "{}", text(&out));
    let blob = |digest: &str| {
        dir.path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let read_json = |path: PathBuf| -> Value {
        serde_json::from_slice(&std::fs::read(&path).expect("blob")).expect("json")
    };
    let index = read_json(dir.path().join("index.json"));
    let manifest = read_json(blob(
        index["manifests"][0]["digest"].as_str().expect("digest"),
    ));
    let config = read_json(blob(manifest["config"]["digest"].as_str().expect("config")));
    let mut files = Vec::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let listed = Command::new("tar")
            .arg("-tvzf")
            .arg(blob(layer["digest"].as_str().expect("layer digest")))
            .arg("--numeric-owner")
            .output()
            .expect("tar");
        assert!(listed.status.success(), "{}", text(&listed));
        for line in String::from_utf8_lossy(&listed.stdout).lines() {
            // -rwxr-xr-x 0/0 12345 2026-01-01 00:00 usr/local/bin/registry-resolver
            let fields: Vec<&str> = line.split_whitespace().collect();
            let owner: u32 = fields[1]
                .split('/')
                .next()
                .and_then(|u| u.parse().ok())
                .expect("owner");
            let size: u64 = fields[2].parse().expect("size");
            files.push((fields[5..].join(" "), owner, size));
        }
    }
    (manifest, config, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the image: the test command runs it (`-- --ignored`) once scripts/build-image is done"]
async fn the_image_is_built_pushed_pulled_and_run_as_the_chart_runs_it() {
    registry_resolver::server::tls::install_crypto_provider();
    let (archive, digest) = image();

    // Reproducible: the same commit builds to the same digest. The second
    // build runs while the image is pushed, pulled and used (mostly waiting
    // on containerd and the network), and is compared at the end.
    let again = tempfile::tempdir().expect("tempdir");
    let rebuilt = {
        let out = again.path().join("again.oci.tar");
        std::thread::spawn(move || build_image(&out))
    };

    // FROM scratch: the binary, CA certificates, passwd and group, nothing else.
    let (manifest, config, files) = contents(&archive);
    let mut names: Vec<&str> = files
        .iter()
        .map(|(name, _, _)| name.trim_end_matches('/'))
        .filter(|name| !name.is_empty() && *name != ".")
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "data",
            "etc",
            "etc/group",
            "etc/passwd",
            "etc/ssl",
            "etc/ssl/certs",
            "etc/ssl/certs/ca-certificates.crt",
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/registry-resolver",
        ]
    );
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        json!(["/usr/local/bin/registry-resolver"])
    );
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], VERSION);
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    for label in [
        "org.opencontainers.image.source",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.created",
    ] {
        assert!(
            labels[label].as_str().is_some_and(|v| !v.is_empty()),
            "{label}"
        );
    }
    let compressed: u64 = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["size"].as_u64())
        .sum();
    assert!(compressed < 32 << 20, "{compressed} bytes compressed");
    // The SBOM beside it names what the binary links.
    let sbom_path = archive.with_extension("").with_extension("cdx.json");
    let sbom: Value =
        serde_json::from_slice(&std::fs::read(&sbom_path).expect("SBOM beside the image"))
            .expect("json");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["version"], VERSION);
    for linked in ["rustls", "kube-client", "rusqlite", "axum"] {
        assert!(
            sbom["components"]
                .as_array()
                .expect("components")
                .iter()
                .any(|c| c["name"] == linked
                    && c["purl"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("pkg:cargo/"))),
            "{linked} in the SBOM"
        );
    }

    // Pushed to a real registry, by the archive's digest.
    let registry = Distribution::start(Mode::Basic).await;
    let reference = format!("127.0.0.1:{}/registry-resolver:{VERSION}", registry.port);
    let pushed = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo");
    assert!(pushed.status.success(), "{}", text(&pushed));
    let inspected = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo");
    assert!(inspected.status.success(), "{}", text(&inspected));
    let remote: Value = serde_json::from_slice(&inspected.stdout).expect("json");
    assert_eq!(
        remote["Digest"],
        digest.as_str(),
        "the registry serves the same image"
    );

    // A node: containerd pulls it; `registry.test` is the registry in the
    // /etc/hosts containerd and its containers see.
    let work = tempfile::tempdir().expect("tempdir");
    let hosts = work.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.1 registry.test\n").expect("hosts");
    let node = Containerd::start_with_hosts(&hosts);
    let pulled = node.ctr(&[
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        "--user",
        &format!("{USER}:{PASSWORD}"),
        &format!("{reference}@{digest}"),
    ]);
    assert!(pulled.status.success(), "{}", text(&pulled));

    // Run it as the chart does: the image's user, a read-only root, every
    // capability dropped, the default seccomp profile, a data volume.
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::os::unix::fs::chown(&data, Some(65532), Some(65532)).expect("chown");
    let (https, admin) = (common::free_port(), common::free_port());
    // runc keeps its state outside containerd's root: a name of this run's own.
    let id = format!("rr-image-test-{}", std::process::id());
    let mut run: Vec<String> = [
        "run",
        "--detach",
        "--snapshotter",
        "native",
        "--net-host",
        "--read-only",
        "--seccomp",
    ]
    .map(String::from)
    .to_vec();
    for cap in [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ] {
        run.extend(["--cap-drop".into(), cap.into()]);
    }
    run.extend([
        "--mount".into(),
        format!(
            "type=bind,src={},dst=/data,options=rbind:rw",
            data.display()
        ),
        "--env".into(),
        format!("REGISTRY_RESOLVER_LISTEN=127.0.0.1:{https}"),
        "--env".into(),
        format!("REGISTRY_RESOLVER_ADMIN_LISTEN=127.0.0.1:{admin}"),
        "--env".into(),
        "REGISTRY_RESOLVER_ADMIN_TOKEN=image-test-token".into(),
        format!("{reference}@{digest}"),
        id.clone(),
    ]);
    let started = node.ctr(&run.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(started.status.success(), "{}", text(&started));

    let admin_client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = admin_client
            .get(format!("http://127.0.0.1:{admin}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if matches!(ready, Ok(200)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {ready:?}; tasks: {}",
            text(&node.ctr(&["tasks", "ls"]))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Everything it wrote is on the volume, as its own user.
    let written = data.join("data/registries.db");
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(&written).expect("the database on the volume"),
    );
    assert_eq!(owner, 65532, "written as the image's user");
    let client = common::client_trusting(&data.join("certs/ca.crt"));
    let api = |path: &str| format!("https://localhost:{https}/api/v1{path}");

    // A record, checked against the registry by its name from /etc/hosts:
    // the static binary resolves names without NSS modules.
    let server = format!("http://registry.test:{}", registry.port);
    let created = client
        .post(api("/registries"))
        .bearer_auth("image-test-token")
        .json(
            &json!({"name": "lab", "server": server, "username": USER, "password": PASSWORD,
                      "namespaces": ["team-a"], "defaultFor": ["team-a"]}),
        )
        .send()
        .await
        .expect("create");
    let status = created.status();
    let body: Value = created.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["verified"], true, "{body}");

    // The webhook resolves a Deployment.
    let review = common::admission_review(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"},
                "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "app", "image": "/team/app:1.0"}]}}}}),
        "team-a",
        "CREATE",
    );
    let answer: Value = client
        .post(format!("https://localhost:{https}/mutate"))
        .json(&review)
        .send()
        .await
        .expect("mutate")
        .json()
        .await
        .expect("json");
    let patched =
        common::apply_patch(&review["request"]["object"], &answer["response"]).expect("a patch");
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("registry.test:{}/team/app:1.0", registry.port)
    );

    // The console's page.
    let page = client
        .get(format!("https://localhost:{https}/"))
        .send()
        .await
        .expect("console");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("<html"));

    // SIGTERM: it drains and exits 0.
    let killed = node.ctr(&["tasks", "kill", "--signal", "SIGTERM", &id]);
    assert!(killed.status.success(), "{}", text(&killed));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = text(&node.ctr(&["tasks", "ls"]));
        if tasks.contains("STOPPED") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after SIGTERM: {tasks}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deleted = node.ctr(&["tasks", "delete", &id]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    assert!(
        !text(&deleted).contains("exit status") || text(&deleted).contains("exit status 0"),
        "a clean exit: {}",
        text(&deleted)
    );
    let _ = node.ctr(&["containers", "delete", &id]);

    assert_eq!(
        rebuilt.join().expect("the second build ran"),
        digest,
        "two builds of one commit give one digest"
    );
}
