//! The Helm chart: lint and render in every certificate mode, validate the
//! rendered objects against Kubernetes' schemas, check the webhook rules
//! against the kinds the server handles, and evaluate the CEL
//! matchConditions on samples against the server's own decision.

mod common;
mod distribution;

use std::path::{Path, PathBuf};
use std::process::Command;

use registry_resolver::admission::HANDLED_KINDS;
use serde::Deserialize;
use serde_json::{Value, json};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/registry-resolver")
}

/// `helm args…` with its own empty home directories.
fn helm_output(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    Command::new("helm")
        .args(args)
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .env("HELM_DATA_HOME", dir.path().join("data"))
        .output()
        .expect("helm on PATH: ./scripts/test installs it")
}

/// Whether `helm args…` succeeded, and all it printed.
fn helm(args: &[&str]) -> (bool, String) {
    let out = helm_output(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Renders the chart with `--set` values; returns every document.
fn render(sets: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "rr",
        chart.to_str().expect("utf-8"),
        "--namespace",
        "registry-resolver",
        "--include-crds",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, text) = helm(&args);
    assert!(ok, "helm template {sets:?}: {text}");
    documents(&text)
}

/// Every document of a rendered stream.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// A rendered container's `args`, as strings.
fn container_args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap_or("").to_owned())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// Every mode and the non-default values, as `--set` lists.
fn variants() -> Vec<(&'static str, Vec<String>)> {
    let dir = std::env::temp_dir().join(format!("rr-chart-ca-{}", std::process::id()));
    let certs = common::generate_certs(&dir);
    let ca_pem = std::fs::read_to_string(&certs.ca_cert).expect("ca");
    vec![
        ("self-signed", vec![]),
        (
            "cert-manager",
            vec!["certificates.mode=cert-manager".into()],
        ),
        (
            "cert-manager with an issuer",
            vec![
                "certificates.mode=cert-manager".into(),
                "certificates.certManager.issuerRef.name=corp-ca".into(),
                "certificates.certManager.issuerRef.kind=ClusterIssuer".into(),
            ],
        ),
        (
            "existing",
            vec![
                "certificates.mode=existing".into(),
                "certificates.existing.secretName=my-tls".into(),
                format!(
                    "certificates.existing.caBundle={}",
                    ca_pem.replace(',', "\\,")
                ),
            ],
        ),
        (
            "non-default values",
            vec![
                "replicaCount=3".into(),
                "networkPolicy.enabled=true".into(),
                "serviceMonitor.enabled=true".into(),
                "podDisruptionBudget.minAvailable=2".into(),
                "webhook.failurePolicy=Ignore".into(),
                "webhook.excludeNamespaces={monitoring,ci}".into(),
                "server.logFormat=text".into(),
                "server.pinFailurePolicy=deny".into(),
                "server.registryDenyCidrs={10.96.0.0/12,fd00::/8}".into(),
                "server.webhookClientCASecret=apiserver-client-ca".into(),
                "server.connections.maxPerPeer=128".into(),
                "priorityClassName=system-cluster-critical".into(),
            ],
        ),
        (
            "node agent, every runtime",
            vec![
                "nodeAgent.enabled=true".into(),
                "nodeAgent.runtimes={containerd,crio,docker}".into(),
                "nodeAgent.docker.daemonJson=/etc/docker/daemon.json".into(),
                "nodeAgent.containerd.certsDir=/var/lib/rancher/k3s/agent/etc/containerd/certs.d"
                    .into(),
            ],
        ),
    ]
}

#[test]
fn lints_and_renders_in_every_mode() {
    for (name, sets) in variants() {
        let chart = chart();
        let mut args = vec!["lint".to_owned(), chart.to_str().expect("utf-8").to_owned()];
        for set in &sets {
            args.extend(["--set".to_owned(), set.clone()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = helm(&refs);
        assert!(ok, "helm lint ({name}): {text}");
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let docs = render(&sets);
        let webhook = find(&docs, "MutatingWebhookConfiguration");
        let hook = &webhook["webhooks"][0];
        match name {
            "self-signed" => {
                let secret = find(&docs, "Secret");
                assert_eq!(secret["type"], "kubernetes.io/tls");
                assert_eq!(
                    hook["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
                    "the caBundle is the generated CA"
                );
            }
            "cert-manager" | "cert-manager with an issuer" => {
                assert_eq!(
                    webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                    "registry-resolver/rr-registry-resolver"
                );
                assert!(
                    hook["clientConfig"].get("caBundle").is_none(),
                    "cainjector fills it"
                );
                let certificate = docs.iter().find(|d| {
                    d["kind"] == "Certificate"
                        && d["spec"]["secretName"] == "rr-registry-resolver-tls"
                });
                assert!(certificate.is_some(), "{name}: serving Certificate");
            }
            "existing" => {
                assert!(
                    hook["clientConfig"]["caBundle"]
                        .as_str()
                        .is_some_and(|b| !b.is_empty())
                );
                let deployment = find(&docs, "Deployment");
                assert_eq!(
                    deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
                    "my-tls"
                );
            }
            "node agent, every runtime" => {
                let pod = &find(&docs, "DaemonSet")["spec"]["template"]["spec"];
                let paths: Vec<&str> = pod["volumes"]
                    .as_array()
                    .expect("volumes")
                    .iter()
                    .filter_map(|v| v["hostPath"]["path"].as_str())
                    .collect();
                assert_eq!(
                    paths,
                    [
                        "/var/lib/rancher/k3s/agent/etc/containerd/certs.d",
                        "/etc/containerd",
                        "/etc/containers/registries.conf.d",
                        "/etc/containers/certs.d",
                        "/etc/docker/certs.d",
                        "/etc/docker",
                    ]
                );
            }
            _ => {
                assert_eq!(hook["failurePolicy"], "Ignore");
                assert_eq!(find(&docs, "Deployment")["spec"]["replicas"], 3);
                find(&docs, "NetworkPolicy");
                find(&docs, "ServiceMonitor");
                let args =
                    &find(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"];
                assert!(
                    args.as_array().is_some_and(
                        |a| a.contains(&json!("--registry-deny-cidrs=10.96.0.0/12,fd00::/8"))
                    ),
                    "{args}"
                );
                let excluded = &hook["namespaceSelector"]["matchExpressions"][0]["values"];
                assert_eq!(
                    excluded,
                    &json!(["registry-resolver", "kube-system", "monitoring", "ci"])
                );
            }
        }
    }
    // Values outside the schema are refused with a message.
    let chart = chart();
    let (ok, text) = helm(&[
        "template",
        "rr",
        chart.to_str().expect("utf-8"),
        "--set",
        "webhook.failurePolicy=Maybe",
    ]);
    assert!(!ok && text.contains("webhook.failurePolicy"), "{text}");
    let (ok, text) = helm(&[
        "template",
        "rr",
        chart.to_str().expect("utf-8"),
        "--set",
        "certificates.mode=existing",
    ]);
    assert!(
        !ok && text.contains("certificates.existing.secretName"),
        "{text}"
    );
}

#[test]
fn the_deployment_is_safe_by_default() {
    let docs = render(&[]);
    let deployment = find(&docs, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert!(
        container["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_i64()
            .is_some_and(|s| s > 0)
    );
    assert!(
        container["resources"]["requests"].is_object()
            && container["resources"]["limits"].is_object()
    );
    assert_eq!(
        find(&docs, "PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
    let hook = &find(&docs, "MutatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["timeoutSeconds"], 5);
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["matchPolicy"], "Equivalent");
    assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    // ImageRegistries are checked by the API's validation; that webhook
    // sees nothing else, through the same Service and CA.
    let validating = &find(&docs, "ValidatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(validating["failurePolicy"], "Fail");
    assert_eq!(validating["sideEffects"], "None");
    assert_eq!(
        validating["clientConfig"]["service"]["path"],
        "/validate/imageregistries"
    );
    assert_eq!(
        validating["clientConfig"]["caBundle"],
        hook["clientConfig"]["caBundle"]
    );
    assert_eq!(
        validating["rules"],
        json!([{"apiGroups": ["registry-resolver.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                "resources": ["imageregistries"], "scope": "Cluster"}])
    );
    // The CRD in crds/ is the generated one.
    let crd = find(&docs, "CustomResourceDefinition");
    let generated: Value =
        serde_yaml::from_str(&registry_resolver::kubernetes::crd::crd_yaml().expect("crd"))
            .expect("yaml");
    assert_eq!(crd, &generated);
}

/// The server's rendered arguments are flags the real binary takes; the
/// connection limits and the webhook client CA reach it as set.
#[test]
fn the_servers_rendered_args_are_taken_by_the_binary() {
    for sets in [
        &[][..],
        &[
            "server.webhookClientCASecret=apiserver-client-ca",
            "server.connections.max=100",
            "server.connections.maxPerPeer=10",
            "server.pinMaxLookups=5",
        ][..],
    ] {
        let docs = render(sets);
        let pod = &find(&docs, "Deployment")["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let args = container_args(container);
        let out = Command::new(env!("CARGO_BIN_EXE_registry-resolver"))
            .args(&args)
            .arg("--help")
            .output()
            .expect("binary runs");
        assert!(
            out.status.success(),
            "{sets:?}: the args must parse: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client_ca = args
            .iter()
            .any(|a| a == "--webhook-client-ca=/etc/registry-resolver/client-ca/ca.crt");
        let mounted = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["secret"]["secretName"] == "apiserver-client-ca");
        assert_eq!(client_ca, !sets.is_empty(), "{sets:?}: {args:?}");
        assert_eq!(mounted, !sets.is_empty(), "{sets:?}");
        if !sets.is_empty() {
            for flag in [
                "--max-connections=100",
                "--max-connections-per-peer=10",
                "--pin-max-lookups=5",
            ] {
                assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
            }
        }
    }
}

/// The node agent: absent unless enabled; when enabled, fenced — only the
/// directories it manages mounted, no privilege, read-only root, RBAC
/// read-only on ImageRegistries — and its rendered args accepted by the
/// real binary.
#[test]
fn the_node_agent_is_off_by_default_and_fenced_when_on() {
    let docs = render(&[]);
    assert!(
        !docs.iter().any(|d| d["kind"] == "DaemonSet"),
        "off by default"
    );

    let docs = render(&["nodeAgent.enabled=true"]);
    let agent = find(&docs, "DaemonSet");
    let pod = &agent["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["privileged"], false);
    assert_eq!(
        security["capabilities"],
        json!({"drop": ["ALL"]}),
        "no capability added"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());
    // The default touches containerd only: its certs.d (written) and its
    // config's directory (read-only).
    let volumes: Vec<(&str, &str)> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or(""),
                v["hostPath"]["path"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        volumes,
        [
            ("containerd-certs", "/etc/containerd/certs.d"),
            ("containerd-config", "/etc/containerd")
        ]
    );
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    assert_eq!(
        mounts[1]["readOnly"], true,
        "containerd's config is only read"
    );
    assert_eq!(
        container["env"][0],
        json!({"name": "REGISTRY_RESOLVER_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    );
    // Its pods are never behind the webhook's Service.
    let service = find(&docs, "Service");
    let labels = &agent["spec"]["template"]["metadata"]["labels"];
    assert!(
        service["spec"]["selector"]
            .as_object()
            .expect("selector")
            .iter()
            .any(|(k, v)| labels[k] != *v),
        "the Service must not select node-agent pods"
    );
    // RBAC: read ImageRegistries, write its own report, record Events.
    let role = docs
        .iter()
        .find(|d| {
            d["kind"] == "ClusterRole"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-node-agent"))
        })
        .expect("the agent's ClusterRole");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["registry-resolver.io"], "resources": ["imageregistries"], "verbs": ["get", "list", "watch"]}])
    );

    // The real binary takes the rendered arguments (it then fails to
    // reach a cluster, which is all this machine has to offer).
    let args = container_args(container);
    let out = Command::new(env!("CARGO_BIN_EXE_registry-resolver"))
        .args(&args)
        .env("REGISTRY_RESOLVER_NODE_NAME", "node-1")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "the args must parse: {stderr}");
    assert!(stderr.contains("connecting to the cluster"), "{stderr}");
}

#[test]
fn webhook_rules_cover_exactly_the_kinds_the_server_handles() {
    let docs = render(&[]);
    let hook = &find(&docs, "MutatingWebhookConfiguration")["webhooks"][0];
    let mut rendered: Vec<(String, String)> = Vec::new();
    for rule in hook["rules"].as_array().expect("rules") {
        assert_eq!(rule["operations"], json!(["CREATE", "UPDATE"]));
        for group in rule["apiGroups"].as_array().expect("groups") {
            for resource in rule["resources"].as_array().expect("resources") {
                rendered.push((
                    group.as_str().unwrap_or("").to_owned(),
                    resource.as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }
    let mut handled: Vec<(String, String)> = HANDLED_KINDS
        .iter()
        .map(|k| (k.group.to_owned(), k.resource.to_owned()))
        .collect();
    // kubectl debug: the Pod's ephemeral containers subresource.
    handled.push((String::new(), "pods/ephemeralcontainers".into()));
    rendered.sort();
    handled.sort();
    assert_eq!(rendered, handled);
}

/// Whether the server would rewrite anything in `object`: a pod template
/// with at least one registry-relative image.
fn server_would_look(object: &Value) -> bool {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let Some(kind) =
        registry_resolver::admission::kinds::lookup(group, object["kind"].as_str().unwrap_or(""))
    else {
        return false;
    };
    let text = object.to_string();
    let Ok(Some(located)) = registry_resolver::pod_template::locate(&text, kind.template_path)
    else {
        return false;
    };
    registry_resolver::admission::kinds::resolution_input(&located)
        .containers
        .iter()
        .any(|c| registry_resolver::reference::is_registry_relative(c.image))
}

#[test]
fn match_conditions_select_exactly_what_the_server_rewrites() {
    let docs = render(&[]);
    let hook = &find(&docs, "MutatingWebhookConfiguration")["webhooks"][0];
    let expression = hook["matchConditions"][0]["expression"]
        .as_str()
        .expect("expression");
    let program =
        cel::Program::compile(expression).unwrap_or_else(|e| panic!("CEL does not compile: {e:?}"));
    let pod = |spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
    let mut samples: Vec<Value> = vec![
        common::fixture_json("deployment-kubectl.json"),
        common::fixture_json("job-kubectl.json"),
        common::fixture_json("cronjob-kubectl.json"),
        common::fixture_json("pod-init-sidecar-ephemeral.json"),
        common::fixture_json("statefulset.json"),
        common::fixture_json("daemonset-long-container-name.json"),
        pod(json!({"containers": [{"name": "a", "image": "nginx:1"}]})),
        pod(
            json!({"containers": [{"name": "a", "image": "docker.io/library/nginx"}], "initContainers": [{"name": "i", "image": "/tools/init:1"}]}),
        ),
        pod(
            json!({"containers": [{"name": "a", "image": "nginx"}], "ephemeralContainers": [{"name": "d", "image": "/tools/debug:1"}]}),
        ),
        pod(json!({"containers": [{"name": "a"}]})),
        pod(json!({})),
        json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": {"spec": {"containers": [{"name": "a", "image": "/x:1"}]}}}),
        json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": {"metadata": {}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {"schedule": "* * * * *"}}),
    ];
    samples.extend(
        common::fixture_yaml_documents("helm-create-template.yaml")
            .into_iter()
            .filter(|d| d["kind"] != "Service" && d["kind"] != "ServiceAccount"),
    );
    let mut selected = 0;
    for object in &samples {
        let mut context = cel::Context::default();
        context
            .add_variable("object", object.clone())
            .expect("object as a CEL value");
        let result = program
            .execute(&context)
            .unwrap_or_else(|e| panic!("CEL on {}: {e:?}", object["kind"]));
        let want = server_would_look(object);
        assert_eq!(
            result,
            cel::Value::Bool(want),
            "{} {}",
            object["kind"],
            object["metadata"]["name"]
        );
        selected += usize::from(want);
    }
    assert!(
        selected >= 8 && selected < samples.len(),
        "the samples exercise both answers"
    );
}

/// Every rendered object is valid for Kubernetes 1.30 and the newest
/// version the validator knows (kubernetes-validate, installed by
/// ./scripts/test); custom resources of other projects are skipped.
#[test]
fn rendered_objects_validate_against_kubernetes_schemas() {
    // Through the interpreter, so a fresh install needs no PATH or shim refresh.
    let validator = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--version"])
        .output();
    assert!(
        validator.is_ok_and(|o| o.status.success()),
        "kubernetes-validate for python3: ./scripts/test installs it"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, sets) in variants() {
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let docs = render(&sets);
        let mut files = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            let api_version = doc["apiVersion"].as_str().unwrap_or("");
            if api_version.starts_with("cert-manager.io/")
                || api_version.starts_with("monitoring.coreos.com/")
            {
                continue;
            }
            let path = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&path, serde_yaml::to_string(doc).expect("yaml")).expect("write");
            files.push(path);
        }
        for version in ["1.30.0", "latest"] {
            let mut command = Command::new("python3");
            command.args(["-m", "kubernetes_validate", "--strict"]);
            if version != "latest" {
                command.args(["-k", version]);
            }
            let out = command.args(&files).output().expect("kubernetes-validate");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{name}, Kubernetes {version}: {text}");
        }
    }
}

/// The rendered Deployment runs: the real binary with the rendered args
/// (listen addresses moved to loopback ports, the mount path to a folder
/// holding the rendered Secret), against an API server, becomes ready on
/// the probe paths and serves the mounted certificate.
#[tokio::test]
async fn the_rendered_deployment_starts_with_its_args_and_mounted_certificate() {
    use common::fake_apiserver::FakeApiServer;
    registry_resolver::server::tls::install_crypto_provider();
    let docs = render(&[]);
    let deployment = find(&docs, "Deployment");
    let secret = find(&docs, "Secret");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mount = container["volumeMounts"][0]["mountPath"]
        .as_str()
        .expect("mount path");
    assert_eq!(
        container["volumeMounts"][0]["name"],
        pod["volumes"][0]["name"]
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        secret["metadata"]["name"]
    );

    // The Secret as the kubelet would mount it.
    let dir = tempfile::tempdir().expect("tempdir");
    let mounted = dir.path().join("tls");
    std::fs::create_dir_all(&mounted).expect("mkdir");
    use base64::Engine;
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        let data = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().expect("data"))
            .expect("base64");
        std::fs::write(mounted.join(key), data).expect("write");
    }

    // Ports by name, from the container spec.
    let port = |name: &str| {
        container["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == name))
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("container port {name}"))
    };
    let (https, admin) = (common::free_port(), common::free_port());
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_default()
                .replace(mount, mounted.to_str().expect("utf-8"))
                .replace(
                    &format!("0.0.0.0:{}", port("https")),
                    &format!("127.0.0.1:{https}"),
                )
                .replace(
                    &format!("0.0.0.0:{}", port("admin")),
                    &format!("127.0.0.1:{admin}"),
                )
        })
        .collect();
    assert!(
        args.iter()
            .any(|a| a.contains(&format!("127.0.0.1:{https}"))),
        "the listen flag uses the https port: {args:?}"
    );
    assert!(
        args.iter()
            .any(|a| a.contains(&format!("127.0.0.1:{admin}"))),
        "the admin flag uses the admin port: {args:?}"
    );

    let fake = FakeApiServer::new();
    fake.namespace("registry-resolver");
    let url = fake.serve_http().await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, FakeApiServer::kubeconfig(&url)).expect("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_registry-resolver"))
        .args(&args)
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "rr-0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");

    // The probes, as the kubelet calls them.
    let probe = |name: &str| {
        container[name]["httpGet"]["path"]
            .as_str()
            .expect("probe path")
            .to_owned()
    };
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "admin");
    let http = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{admin}{}", probe("readinessProbe"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if http
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = err.read_to_string(&mut stderr).await;
            }
            panic!("the server exited ({status}): {stderr}");
        }
        assert!(std::time::Instant::now() < deadline, "not ready in time");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let live = format!("http://127.0.0.1:{admin}{}", probe("livenessProbe"));
    assert_eq!(
        http.get(&live).send().await.expect("liveness").status(),
        200
    );

    // HTTPS serves the mounted certificate: a client trusting only the
    // rendered CA, for the Service's name, gets through.
    let https_client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(
            &std::fs::read(mounted.join("ca.crt")).expect("ca"),
        )
        .expect("pem")])
        .resolve(
            "rr-registry-resolver.registry-resolver.svc",
            std::net::SocketAddr::from(([127, 0, 0, 1], https)),
        )
        .build()
        .expect("client");
    let response = https_client
        .get(format!(
            "https://rr-registry-resolver.registry-resolver.svc:{https}/openapi.json"
        ))
        .send()
        .await
        .expect("TLS with the mounted certificate");
    assert_eq!(response.status(), 200);
    let _ = child.kill().await;
}

/// The chart as a cluster admin installs it: packaged, pushed to a real
/// registry as an OCI artifact, and rendered from `oci://` with the image
/// pinned by digest (overriding the tag, for the server and the node
/// agent); the pulled chart passes `helm lint --strict`, its objects the
/// Kubernetes schemas. The chart's version and appVersion are the binary's.
#[tokio::test]
async fn the_chart_installs_from_a_registry_with_the_image_by_digest() {
    let version = env!("CARGO_PKG_VERSION");
    let chart_yaml: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("yaml");
    assert_eq!(
        chart_yaml["version"], version,
        "the chart's version is the binary's"
    );
    assert_eq!(
        chart_yaml["appVersion"], version,
        "the chart's appVersion is the binary's"
    );
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
            .expect("Dockerfile");
    assert!(
        dockerfile.contains(&format!("ARG VERSION={version}\n")),
        "the Dockerfile labels the image with the binary's version"
    );
    let printed = Command::new(env!("CARGO_BIN_EXE_registry-resolver"))
        .arg("--version")
        .output()
        .expect("binary");
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim(),
        format!("registry-resolver {version}")
    );

    let registry = distribution::Distribution::start(distribution::Mode::Open).await;
    let host = format!("127.0.0.1:{}", registry.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("utf-8");
    let (ok, text) = helm(&["package", chart().to_str().expect("utf-8"), "-d", out]);
    assert!(ok, "{text}");
    let package = dir.path().join(format!("registry-resolver-{version}.tgz"));
    let (ok, text) = helm(&[
        "push",
        package.to_str().expect("utf-8"),
        &format!("oci://{host}/charts"),
        "--plain-http",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("Digest: sha256:"), "{text}");

    let digest = format!("sha256:{}", "5b0bcabd".repeat(8));
    let reference = format!("oci://{host}/charts/registry-resolver");
    // Only standard output: helm says what it pulled on standard error.
    let rendered = helm_output(&[
        "template",
        "rr",
        &reference,
        "--version",
        version,
        "--plain-http",
        "--namespace",
        "registry-resolver",
        "--set",
        &format!("image.repository={host}/registry-resolver"),
        "--set",
        "image.tag=not-this-one",
        "--set",
        &format!("image.digest={digest}"),
        "--set",
        "nodeAgent.enabled=true",
    ]);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let docs = documents(&String::from_utf8(rendered.stdout).expect("utf-8"));
    let pinned = format!("{host}/registry-resolver@{digest}");
    for kind in ["Deployment", "DaemonSet"] {
        assert_eq!(
            find(&docs, kind)["spec"]["template"]["spec"]["containers"][0]["image"],
            pinned.as_str(),
            "{kind}"
        );
    }
    // A digest that is not one is refused by the schema.
    let (ok, text) = helm(&[
        "template",
        "rr",
        &reference,
        "--version",
        version,
        "--plain-http",
        "--set",
        "image.digest=latest",
    ]);
    assert!(!ok, "a malformed digest renders: {text}");

    // The pulled chart lints strictly; its objects validate.
    let (ok, text) = helm(&[
        "pull",
        &reference,
        "--version",
        version,
        "--plain-http",
        "--untar",
        "-d",
        out,
    ]);
    assert!(ok, "{text}");
    let (ok, text) = helm(&[
        "lint",
        "--strict",
        dir.path()
            .join("registry-resolver")
            .to_str()
            .expect("utf-8"),
        "--set",
        &format!("image.digest={digest}"),
    ]);
    assert!(ok, "{text}");
    let mut files = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let path = dir.path().join(format!("{i}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(doc).expect("yaml")).expect("write");
        files.push(path);
    }
    let validated = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "-k", "1.30.0"])
        .args(&files)
        .output()
        .expect("kubernetes-validate");
    assert!(
        validated.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
}
