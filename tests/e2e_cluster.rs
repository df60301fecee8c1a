//! End to end against a real cluster (kind, k3d, any): `#[ignore]`d, run with
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test e2e_cluster -- --ignored --test-threads=1
//! ```
//!
//! It applies the CRD, runs `registry-resolver serve --store kubernetes` on
//! this machine against the cluster, creates a registry through the API,
//! waits for the pull Secrets, and deletes it again. With
//! `REGISTRY_RESOLVER_E2E_WEBHOOK_URL` set to an address the API server can
//! reach this process at (e.g. `https://host.docker.internal:18443` for
//! kind with that host mapped), it also registers the webhook and checks
//! that `kubectl create deployment --image=/…` comes back resolved.
//!
//! Needs kubectl, and a user allowed to manage CRDs, namespaces, secrets
//! and webhook configurations.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const NAMESPACES: [&str; 3] = ["rr-e2e-system", "rr-e2e-a", "rr-e2e-b"];

fn kubectl(args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kubectl_json(args: &[&str]) -> Option<Value> {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-o", "json"]);
    let (ok, text) = kubectl(&all);
    if ok {
        serde_json::from_str(&text).ok()
    } else {
        None
    }
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs a Kubernetes cluster (KUBECONFIG)"]
fn registry_to_pull_secrets_to_resolved_deployment() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "set KUBECONFIG to run this suite"
    );
    let crd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/registry-resolver/crds/imageregistries.yaml"
    );
    let (ok, text) = kubectl(&["apply", "-f", crd]);
    assert!(ok, "{text}");
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/imageregistries.registry-resolver.io",
        "--timeout=60s",
    ]);
    for namespace in NAMESPACES {
        kubectl(&["create", "namespace", namespace]);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let status = Command::new(env!("CARGO_BIN_EXE_registry-resolver"))
        .args(["certs", "--out-dir"])
        .arg(&certs)
        .args(["--san", "host.docker.internal"])
        .status()
        .expect("certs");
    assert!(status.success());
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_registry-resolver"))
            .args([
                "serve",
                "--store",
                "kubernetes",
                "--install-namespace",
                NAMESPACES[0],
                "--listen",
                "0.0.0.0:18443",
                "--admin-listen",
                "127.0.0.1:18080",
            ])
            .arg("--certs-dir")
            .arg(&certs)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve"),
    );
    let ca = std::fs::read(certs.join("ca.crt")).expect("ca");
    registry_resolver::server::tls::install_crypto_provider();
    let http = curl::client(&ca);
    wait_for("readiness", || {
        std::net::TcpStream::connect("127.0.0.1:18080").is_ok()
            && Command::new("curl")
                .args(["-sf", "http://127.0.0.1:18080/readyz"])
                .status()
                .is_ok_and(|s| s.success())
    });

    // The API takes the caller's own token: a service account bound to
    // cluster-admin for this run (or REGISTRY_RESOLVER_E2E_TOKEN).
    let token = std::env::var("REGISTRY_RESOLVER_E2E_TOKEN").unwrap_or_else(|_| {
        kubectl(&[
            "create",
            "serviceaccount",
            "rr-e2e-admin",
            "-n",
            NAMESPACES[0],
        ]);
        kubectl(&[
            "create",
            "clusterrolebinding",
            "rr-e2e-admin",
            "--clusterrole=cluster-admin",
            &format!("--serviceaccount={}:rr-e2e-admin", NAMESPACES[0]),
        ]);
        let (_, token) = kubectl(&["create", "token", "rr-e2e-admin", "-n", NAMESPACES[0]]);
        token.trim().to_owned()
    });
    let created = http(
        "POST",
        "https://localhost:18443/api/v1/registries?verify=false",
        &token,
        Some(
            json!({"name": "rr-e2e", "server": "registry.example.com", "username": "robot", "password": "pw",
                    "namespaces": [NAMESPACES[1], NAMESPACES[2]], "defaultFor": [NAMESPACES[1]]}),
        ),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    for namespace in &NAMESPACES[1..] {
        wait_for(&format!("pull secret in {namespace}"), || {
            kubectl_json(&["get", "secret", "rr-e2e", "-n", namespace]).is_some()
        });
    }
    // The status counts what is in line, as the console shows it.
    wait_for("status.replication", || {
        kubectl_json(&["get", "imageregistry", "rr-e2e"]).is_some_and(|o| {
            o["status"]["replication"] == json!({"replicated": 2, "authorized": 2})
        })
    });
    // The audit trail: an Event on the record, which `kubectl describe`
    // shows, and the API's list of it.
    let (described, text) = kubectl(&["describe", "imageregistry", "rr-e2e"]);
    assert!(described && text.contains("Created"), "{text}");
    let trail = http(
        "GET",
        "https://localhost:18443/api/v1/audit?registry=rr-e2e",
        &token,
        None,
    );
    assert_eq!(trail.0, 200, "{}", trail.1);
    assert!(trail.1.contains("\"action\":\"create\""), "{}", trail.1);

    if let Ok(url) = std::env::var("REGISTRY_RESOLVER_E2E_WEBHOOK_URL") {
        use base64::Engine;
        let webhook = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "rr-e2e"},
            "webhooks": [{"name": "resolve.registry-resolver.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "failurePolicy": "Fail", "timeoutSeconds": 5,
                "clientConfig": {"url": format!("{url}/mutate"), "caBundle": base64::engine::general_purpose::STANDARD.encode(&ca)},
                "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [NAMESPACES[1]]}]},
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]}]
        });
        let path = dir.path().join("webhook.json");
        std::fs::write(&path, webhook.to_string()).expect("write");
        let (ok, text) = kubectl(&["apply", "-f", path.to_str().expect("utf-8")]);
        assert!(ok, "{text}");
        let (ok, text) = kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=/library/nginx:1.27",
            "-n",
            NAMESPACES[1],
        ]);
        assert!(ok, "{text}");
        let deployment =
            kubectl_json(&["get", "deployment", "web", "-n", NAMESPACES[1]]).expect("deployment");
        let spec = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["image"],
            "registry.example.com/library/nginx:1.27"
        );
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "rr-e2e"}]));
        kubectl(&["delete", "mutatingwebhookconfiguration", "rr-e2e"]);
    }

    // Namespaces by label: a label added later brings the pull Secret, and
    // taking it away removes it.
    let created = http(
        "POST",
        "https://localhost:18443/api/v1/registries?verify=false",
        &token,
        Some(
            json!({"name": "rr-e2e-labels", "server": "labels.example.com", "username": "robot", "password": "pw",
                    "namespaceSelector": {"matchLabels": {"registry-resolver.io/e2e": "yes"}}}),
        ),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    kubectl(&[
        "label",
        "namespace",
        NAMESPACES[2],
        "registry-resolver.io/e2e=yes",
    ]);
    wait_for("pull secret in the labelled namespace", || {
        kubectl_json(&["get", "secret", "rr-e2e-labels", "-n", NAMESPACES[2]]).is_some()
    });
    assert!(kubectl_json(&["get", "secret", "rr-e2e-labels", "-n", NAMESPACES[1]]).is_none());
    kubectl(&[
        "label",
        "namespace",
        NAMESPACES[2],
        "registry-resolver.io/e2e-",
    ]);
    wait_for("pull secret gone once the label is", || {
        kubectl_json(&["get", "secret", "rr-e2e-labels", "-n", NAMESPACES[2]]).is_none()
    });
    let deleted = http(
        "DELETE",
        "https://localhost:18443/api/v1/registries/rr-e2e-labels",
        &token,
        None,
    );
    assert_eq!(deleted.0, 204, "{}", deleted.1);

    let deleted = http(
        "DELETE",
        "https://localhost:18443/api/v1/registries/rr-e2e",
        &token,
        None,
    );
    assert_eq!(deleted.0, 204, "{}", deleted.1);
    for namespace in &NAMESPACES[1..] {
        wait_for(&format!("pull secret gone from {namespace}"), || {
            kubectl_json(&["get", "secret", "rr-e2e", "-n", namespace]).is_none()
        });
    }
    kubectl(&["delete", "clusterrolebinding", "rr-e2e-admin"]);
    for namespace in NAMESPACES {
        kubectl(&["delete", "namespace", namespace, "--wait=false"]);
    }
}

mod curl {
    //! A blocking HTTPS call through curl, trusting our CA (the suite runs
    //! outside tokio on purpose: it drives external processes).
    use serde_json::Value;
    use std::process::Command;

    pub fn client(ca: &[u8]) -> impl Fn(&str, &str, &str, Option<Value>) -> (u16, String) {
        let dir = std::env::temp_dir().join(format!("rr-e2e-ca-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let ca_path = dir.join("ca.crt");
        let _ = std::fs::write(&ca_path, ca);
        move |method: &str, url: &str, token: &str, body: Option<Value>| {
            let mut command = Command::new("curl");
            command
                .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
                .arg(&ca_path);
            command.args([
                "-X",
                method,
                "-H",
                &format!("Authorization: Bearer {token}"),
            ]);
            if let Some(body) = body {
                command.args([
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    &body.to_string(),
                ]);
            }
            let out = command.arg(url).output().expect("curl");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
            (code.trim().parse().unwrap_or(0), body.to_owned())
        }
    }
}
