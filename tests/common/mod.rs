//! Shared by the integration tests: a real server on loopback ports with a
//! generated CA, a client that trusts only that CA, and AdmissionReview
//! helpers. Each test binary uses a different subset.
#![allow(dead_code)]

pub mod fake_apiserver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use registry_resolver::api::{AppState, Auth, Services};
use registry_resolver::certs::{self, CertPaths, CertSubjects};
use registry_resolver::cli::StoreArgs;
use registry_resolver::index::IndexHandle;
use registry_resolver::pinning::{PinFailurePolicy, PinOptions, Pinner};
use registry_resolver::registry::client::{AddressPolicy, ClientOptions};
use registry_resolver::registry::connectivity::{Connectivity, ConnectivityOptions};
use registry_resolver::registry::store::RegistryStore;
use registry_resolver::server::{self, ConnectionLimits, Running, ServeOptions};
use registry_resolver::telemetry::Metrics;
use serde_json::{Value, json};

pub const TOKEN: &str = "test-admin-token";

pub fn store_args(data_dir: &Path) -> StoreArgs {
    StoreArgs {
        data_dir: data_dir.to_owned(),
        encryption_key: None,
        encryption_key_file: None,
        audit_max_entries: 100_000,
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn generate_certs(dir: &Path) -> CertPaths {
    certs::generate(
        dir,
        &CertSubjects {
            service: "registry-resolver".into(),
            namespace: "registry-resolver".into(),
            extra: vec![],
        },
    )
    .expect("certificates generate")
}

/// Where the server under test keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in a temporary directory.
    Embedded,
    /// ImageRegistry objects in the in-memory API server, with the
    /// controller running.
    Kubernetes,
}

/// How an embedded-store test server is set up; `Setup::default()` is what
/// most tests use.
pub struct Setup {
    pub reload: Duration,
    pub pin_policy: PinFailurePolicy,
    pub auth: Auth,
    pub addresses: AddressPolicy,
    pub limits: ConnectionLimits,
    pub body_read_timeout: Duration,
    pub dockerhub_url: String,
    /// The webhooks answer only clients with a certificate from this CA.
    pub webhook_client_ca: Option<PathBuf>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            reload: Duration::from_secs(10),
            pin_policy: PinFailurePolicy::Allow,
            auth: Auth::admin_token(TOKEN),
            addresses: AddressPolicy::default(),
            limits: ConnectionLimits::default(),
            body_read_timeout: Duration::from_secs(10),
            dockerhub_url: "https://hub.docker.com".into(),
            webhook_client_ca: None,
        }
    }
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    /// The in-memory API server, for the Kubernetes backend.
    pub cluster: Option<fake_apiserver::FakeApiServer>,
    cluster_stop: Option<tokio_util::sync::CancellationToken>,
    pub certs: CertPaths,
    pub running: Option<Running>,
    pub client: reqwest::Client,
    pub index: Arc<IndexHandle>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_pinning(PinFailurePolicy::Allow).await
    }

    /// On the given backend, with the admin-token API auth.
    pub async fn start_on(backend: Backend) -> Self {
        match backend {
            Backend::Embedded => Self::start().await,
            Backend::Kubernetes => Self::start_kubernetes(false).await,
        }
    }

    /// On the Kubernetes store with the cluster's identities and RBAC for
    /// the API: `admin-token` may do anything, `dev-token` nothing.
    pub async fn start_kubernetes_rbac() -> Self {
        Self::start_kubernetes(true).await
    }

    async fn start_kubernetes(cluster_rbac: bool) -> Self {
        use registry_resolver::kubernetes::controller;
        registry_resolver::server::tls::install_crypto_provider();
        let fake = fake_apiserver::FakeApiServer::new();
        for namespace in [
            "registry-resolver",
            "team-a",
            "team-b",
            "team-c",
            "team-z",
            "shared",
            "a",
        ] {
            fake.namespace(namespace);
        }
        fake.add_user("admin-token", "admin", true);
        fake.add_user("dev-token", "dev", false);
        let index = IndexHandle::new();
        let client = ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
            // The test registries listen on loopback.
            addresses: Arc::new(AddressPolicy {
                allow_loopback: true,
                ..AddressPolicy::default()
            }),
        };
        let connectivity = Arc::new(Connectivity::new(ConnectivityOptions {
            client,
            check_timeout: Duration::from_secs(4),
            browse_cache_ttl: Duration::from_secs(2),
            browse_cache_entries: 100,
            ..ConnectivityOptions::default()
        }));
        let stop = tokio_util::sync::CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let cluster = controller::start(
            fake.client(),
            fake.client(),
            cluster_options(),
            index.clone(),
            connectivity.clone(),
            metrics.clone(),
            stop.clone(),
        )
        .await;
        let store: Arc<dyn RegistryStore> = cluster.store;
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = generate_certs(&dir.path().join("certs"));
        let state = AppState::from(Services {
            pinner: Arc::new(Pinner::new(store.clone(), PinOptions::default())),
            store,
            index: index.clone(),
            metrics,
            auth: Arc::new(if cluster_rbac {
                Auth::cluster(registry_resolver::kubernetes::auth::ClusterAuth::new(
                    fake.client(),
                    Duration::from_secs(5),
                ))
            } else {
                Auth::admin_token(TOKEN)
            }),
            connectivity,
            workloads: Some(Arc::new(
                registry_resolver::kubernetes::workloads::UserClients::new(kube::Config::new(
                    fake.serve_http()
                        .await
                        .parse()
                        .expect("the in-memory API server's URL"),
                )),
            )),
            body_read_timeout: Duration::from_secs(10),
        });
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            cert_file: certs.cert.clone(),
            key_file: certs.key.clone(),
            cert_reload_interval: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            limits: Default::default(),
            metrics: None,
            webhook_client_ca: None,
        };
        let running = server::start(state, &options).await.expect("server starts");
        let client = client_trusting(&certs.ca_cert);
        Self {
            dir,
            cluster: Some(fake),
            cluster_stop: Some(stop),
            certs,
            running: Some(running),
            client,
            index,
        }
    }

    /// With this policy for tags that cannot be pinned.
    pub async fn start_pinning(policy: PinFailurePolicy) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = generate_certs(&dir.path().join("certs"));
        Self::start_with(dir, certs, Duration::from_secs(10), policy).await
    }

    /// Starts on `dir` (data in `dir/data`), serving `certs`.
    pub async fn start_in(dir: tempfile::TempDir, certs: CertPaths, reload: Duration) -> Self {
        Self::start_with(dir, certs, reload, PinFailurePolicy::Allow).await
    }

    /// With the given API authentication.
    pub async fn start_with_auth(auth: Auth) -> Self {
        Self::start_setup(Setup {
            auth,
            ..Setup::default()
        })
        .await
    }

    async fn start_with(
        dir: tempfile::TempDir,
        certs: CertPaths,
        reload: Duration,
        pin_policy: PinFailurePolicy,
    ) -> Self {
        let setup = Setup {
            reload,
            pin_policy,
            ..Setup::default()
        };
        Self::start_full(dir, certs, setup).await
    }

    /// With these bounds on connections and headers, and this body deadline.
    pub async fn start_with_limits(limits: ConnectionLimits, body_read_timeout: Duration) -> Self {
        Self::start_setup(Setup {
            limits,
            body_read_timeout,
            ..Setup::default()
        })
        .await
    }

    /// With this policy for where registry requests may go.
    pub async fn start_with_addresses(addresses: AddressPolicy) -> Self {
        Self::start_setup(Setup {
            addresses,
            ..Setup::default()
        })
        .await
    }

    /// In a new temporary directory with new certificates.
    pub async fn start_setup(setup: Setup) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = generate_certs(&dir.path().join("certs"));
        Self::start_full(dir, certs, setup).await
    }

    async fn start_full(dir: tempfile::TempDir, certs: CertPaths, setup: Setup) -> Self {
        let Setup {
            reload,
            pin_policy: policy,
            auth,
            addresses,
            limits,
            body_read_timeout,
            dockerhub_url,
            webhook_client_ca,
        } = setup;
        registry_resolver::server::tls::install_crypto_provider();
        let index = IndexHandle::new();
        let store = registry_resolver::app::open_embedded_store(
            &store_args(&dir.path().join("data")),
            index.clone(),
        )
        .expect("store opens");
        let store: Arc<dyn RegistryStore> = Arc::new(store);
        let client = ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
            addresses: Arc::new(addresses),
        };
        let pinner = Arc::new(Pinner::new(
            store.clone(),
            PinOptions {
                cache_ttl: Duration::from_secs(300),
                cache_entries: 1000,
                deadline: Duration::from_secs(2),
                policy,
                client: client.clone(),
                ..PinOptions::default()
            },
        ));
        let state = AppState::from(Services {
            store,
            pinner,
            index: index.clone(),
            metrics: Arc::new(Metrics::new()),
            auth: Arc::new(auth),
            connectivity: Arc::new(Connectivity::new(ConnectivityOptions {
                client,
                check_timeout: Duration::from_secs(4),
                browse_cache_ttl: Duration::from_secs(2),
                browse_cache_entries: 100,
                dockerhub_url,
            })),
            workloads: None,
            body_read_timeout,
        });
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            cert_file: certs.cert.clone(),
            key_file: certs.key.clone(),
            cert_reload_interval: reload,
            shutdown_timeout: Duration::from_secs(5),
            limits,
            metrics: None,
            webhook_client_ca,
        };
        let running = server::start(state, &options).await.expect("server starts");
        let client = client_trusting(&certs.ca_cert);
        Self {
            dir,
            cluster: None,
            cluster_stop: None,
            certs,
            running: Some(running),
            client,
            index,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.as_ref().expect("running").addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.running.as_ref().expect("running").admin_addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr().port())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr())
    }

    pub async fn stop(&mut self) {
        if let Some(stop) = self.cluster_stop.take() {
            stop.cancel();
        }
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// The in-memory API server of a Kubernetes-backed server.
    pub fn fake(&self) -> &fake_apiserver::FakeApiServer {
        self.cluster
            .as_ref()
            .expect("started on the Kubernetes backend")
    }

    /// An API request with the given bearer token.
    pub fn api_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(token)
    }

    /// An authenticated API request.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(TOKEN)
    }

    /// An authenticated API call: the status, and the body as JSON (`null`
    /// when it is empty or not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.api(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POST /api/v1/registries, asserting 201.
    pub async fn create_registry(&self, body: Value) -> Value {
        let response = self
            .api(reqwest::Method::POST, "/registries?verify=false")
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("json body");
        assert_eq!(status, 201, "create failed: {body}");
        body
    }

    /// POST /mutate with an AdmissionReview, returning the response object.
    pub async fn review(&self, review: &Value) -> Value {
        let response = self
            .client
            .post(self.url("/mutate"))
            .json(review)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(
            body["response"]["uid"], review["request"]["uid"],
            "uid is echoed"
        );
        body["response"].clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The controller's watches end with the test.
        if let Some(stop) = self.cluster_stop.take() {
            stop.cancel();
        }
    }
}

pub fn client_trusting(ca: &Path) -> reqwest::Client {
    registry_resolver::server::tls::install_crypto_provider();
    let pem = std::fs::read(ca).expect("CA readable");
    let cert = reqwest::Certificate::from_pem(&pem).expect("CA parses");
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client builds")
}

/// Wraps an object in an AdmissionReview the way the API server does.
pub fn admission_review(object: &Value, namespace: &str, operation: &str) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().expect("object has kind");
    let resource = format!("{}s", kind.to_lowercase());
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{kind}-{operation}"),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"],
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": if operation == "UPDATE" { object.clone() } else { Value::Null },
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// Decodes the response's base64 JSON patch and applies it with an RFC 6902
/// implementation; `None` when the response carries no patch.
pub fn apply_patch(object: &Value, response: &Value) -> Option<Value> {
    let patch = response.get("patch")?.as_str()?;
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("patch is base64");
    let patch: json_patch::Patch =
        serde_json::from_slice(&bytes).expect("patch is an RFC 6902 document");
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("patch applies");
    Some(patched)
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Every document of a YAML fixture, as JSON values.
pub fn fixture_yaml_documents(name: &str) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture readable");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("fixture is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The controller's options in the tests: one replica, progress written
/// often so the tests' short passes show it.
pub fn cluster_options() -> registry_resolver::kubernetes::controller::ClusterOptions {
    registry_resolver::kubernetes::controller::ClusterOptions {
        namespace: "registry-resolver".into(),
        reverify_interval: Duration::from_secs(3600),
        identity: "test-replica".into(),
        lease_duration: Duration::from_secs(3),
        write_pace: Default::default(),
        progress_interval: Duration::from_secs(1),
    }
}
