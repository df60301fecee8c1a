//! The real CNCF Distribution registry (Debian package `docker-registry`)
//! for tests: started on a loopback port in one of four modes, with images
//! pushed through the registry API, and a token server for `auth: token`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub const USER: &str = "robot";
pub const PASSWORD: &str = "Registry-Pw-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, no auth.
    Open,
    /// Plain HTTP with htpasswd (bcrypt) basic auth.
    Basic,
    /// HTTPS with a private CA, and htpasswd.
    TlsBasic,
    /// Plain HTTP with `auth: token` and our token server, which serves
    /// HTTPS with a private CA (`ca_pem`): credentials go in clear text
    /// only to a registry's own origin.
    Token,
}

pub struct Distribution {
    child: Child,
    /// How it was started: `start_again` starts it the same way.
    config_path: PathBuf,
    env: Vec<(String, PathBuf)>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub mode: Mode,
    /// The CA that signed the registry's certificate (TlsBasic), or the
    /// token service's (Token): what a record's `tls.caBundle` holds.
    pub ca_pem: Option<String>,
    pub token_server: Option<TokenServer>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Distribution {
    pub async fn start(mode: Mode) -> Self {
        Self::start_with(mode, None).await
    }

    /// A pull-through cache (`proxy.remoteurl`) in front of `upstream`,
    /// which must use token auth (the only kind Distribution's proxy logs
    /// in to); clients log in to the cache with htpasswd (USER, PASSWORD).
    pub async fn start_proxy(upstream: &Distribution) -> Self {
        assert_eq!(
            upstream.mode,
            Mode::Token,
            "the proxy logs in by token only"
        );
        Self::start_with(Mode::Basic, Some(upstream)).await
    }

    async fn start_with(mode: Mode, upstream: Option<&Distribution>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut auth = String::new();
        let mut tls = String::new();
        let mut ca_pem = None;
        let mut token_server = None;
        if matches!(mode, Mode::Basic | Mode::TlsBasic) {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd (apache2-utils) is installed");
            assert!(out.status.success());
            std::fs::write(&htpasswd, out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                htpasswd.display()
            );
        }
        if mode == Mode::TlsBasic {
            let certs = registry_resolver::certs::generate(
                &dir.path().join("certs"),
                &registry_resolver::certs::CertSubjects {
                    service: "registry".into(),
                    namespace: "test".into(),
                    extra: vec![],
                },
            )
            .expect("certs");
            tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certs.cert.display(),
                certs.key.display()
            );
            ca_pem = Some(std::fs::read_to_string(&certs.ca_cert).expect("ca"));
        }
        if mode == Mode::Token {
            let server = TokenServer::start(dir.path()).await;
            auth = format!(
                "auth:\n  token:\n    realm: https://localhost:{}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                server.addr.port(),
                server.cert_path.display()
            );
            ca_pem = Some(server.ca_pem.clone());
            token_server = Some(server);
        }
        // The proxy fetches the upstream's tokens over HTTPS from our token
        // server: Go's TLS trusts the CA named by SSL_CERT_FILE.
        let mut env = Vec::new();
        let proxy = match upstream {
            None => String::new(),
            Some(upstream) => {
                let token = upstream.token_server.as_ref().expect("token server");
                env.push(("SSL_CERT_FILE".to_owned(), token.ca_path.clone()));
                format!(
                    "proxy:\n  remoteurl: http://127.0.0.1:{}\n  username: {USER}\n  password: {PASSWORD}\n",
                    upstream.port
                )
            }
        };
        // A cache's log says what it fetched from the upstream.
        let level = if upstream.is_some() { "info" } else { "error" };
        let config = format!(
            "version: 0.1\nlog:\n  level: {level}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls}{auth}{proxy}",
            dir.path().join("storage").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let child = Self::spawn(&config_path, dir.path(), &env);
        let registry = Self {
            child,
            config_path,
            env,
            port,
            dir,
            mode,
            ca_pem,
            token_server,
        };
        registry.wait_listening();
        registry
    }

    fn spawn(config: &Path, dir: &Path, env: &[(String, PathBuf)]) -> Child {
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .expect("log")
        };
        Command::new("docker-registry")
            .arg("serve")
            .arg(config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            // The access log (stdout) lets tests count the requests we make.
            .stdout(log("access.log"))
            .stderr(log("registry.log"))
            .spawn()
            .expect("docker-registry is installed")
    }

    /// Starts a stopped registry again, as it was, with what it stored.
    pub fn start_again(&mut self) {
        self.stop();
        self.child = Self::spawn(&self.config_path, self.dir.path(), &self.env);
        self.wait_listening();
    }

    /// Bytes of layers and manifests it stores.
    pub fn stored_blobs(&self) -> usize {
        fn walk(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| match e.file_type() {
                            Ok(t) if t.is_dir() => walk(&e.path()),
                            _ => e.metadata().map_or(0, |m| m.len() as usize),
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&self.dir.path().join("storage/docker/registry/v2/blobs"))
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Requests in the access log whose request line starts with `prefix`
    /// (e.g. `HEAD /v2/team/app/manifests/1.0`).
    pub fn requests_matching(&self, prefix: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let needle = format!("\"{prefix} ");
        log.lines().filter(|line| line.contains(&needle)).count()
    }

    pub fn https(&self) -> bool {
        self.mode == Mode::TlsBasic
    }

    /// The `server` of a record for this registry.
    pub fn server(&self) -> String {
        let scheme = if self.https() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn http(&self) -> reqwest::Client {
        registry_resolver::server::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &self.ca_pem {
            builder = builder
                .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca")]);
        }
        builder.build().expect("client")
    }

    /// The Authorization header for pushing to `repository`.
    async fn push_auth(&self, repository: &str) -> Option<String> {
        match self.mode {
            Mode::Open => None,
            Mode::Basic | Mode::TlsBasic => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{USER}:{PASSWORD}"))
            )),
            Mode::Token => {
                let server = self.token_server.as_ref().expect("token server");
                let token = server.issue(&format!("repository:{repository}:pull,push"));
                Some(format!("Bearer {token}"))
            }
        }
    }

    async fn put_blob(
        &self,
        client: &reqwest::Client,
        auth: &Option<String>,
        repository: &str,
        bytes: &[u8],
    ) -> (String, usize) {
        let digest = sha256(bytes);
        let base = self.server();
        let mut start = client.post(format!("{base}/v2/{repository}/blobs/uploads/"));
        if let Some(auth) = auth {
            start = start.header("authorization", auth);
        }
        let response = start.send().await.expect("start upload");
        assert_eq!(
            response.status(),
            202,
            "start upload: {}",
            response.text().await.unwrap_or_default()
        );
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let location = if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let mut put = client
            .put(format!("{location}{separator}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec());
        if let Some(auth) = auth {
            put = put.header("authorization", auth);
        }
        let response = put.send().await.expect("upload");
        assert_eq!(
            response.status(),
            201,
            "upload: {}",
            response.text().await.unwrap_or_default()
        );
        (digest, bytes.len())
    }

    async fn put_manifest(
        &self,
        client: &reqwest::Client,
        auth: &Option<String>,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let mut put = client
            .put(format!(
                "{}/v2/{repository}/manifests/{reference}",
                self.server()
            ))
            .header("content-type", media_type)
            .body(body.to_vec());
        if let Some(auth) = auth {
            put = put.header("authorization", auth);
        }
        let response = put.send().await.expect("put manifest");
        assert_eq!(
            response.status(),
            201,
            "put manifest: {}",
            response.text().await.unwrap_or_default()
        );
        let digest = sha256(body);
        assert_eq!(
            response.headers()["docker-content-digest"].to_str().ok(),
            Some(digest.as_str())
        );
        digest
    }

    /// Pushes a one-layer OCI image (distinct per repository, tag and
    /// platform) and returns its manifest digest.
    pub async fn push_image(&self, repository: &str, tag: &str) -> String {
        self.push_platform_image(repository, tag, "amd64").await
    }

    async fn push_platform_image(&self, repository: &str, reference: &str, arch: &str) -> String {
        let config = json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                            "config": {"Labels": {"test": format!("{repository}:{reference}")}}});
        let layer = format!("layer of {repository}:{reference} for {arch}").into_bytes();
        self.push_one_layer(repository, reference, &config, &layer)
            .await
    }

    /// Pushes `config` and `layer` as blobs and an OCI manifest over them at
    /// `reference`; returns the manifest's digest.
    async fn push_one_layer(
        &self,
        repository: &str,
        reference: &str,
        config: &Value,
        layer: &[u8],
    ) -> String {
        let client = self.http();
        let auth = self.push_auth(repository).await;
        let config = serde_json::to_vec(config).expect("config");
        let (config_digest, config_size) = self.put_blob(&client, &auth, repository, &config).await;
        let (layer_digest, layer_size) = self.put_blob(&client, &auth, repository, layer).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]
        });
        let body = serde_json::to_vec(&manifest).expect("manifest");
        self.put_manifest(
            &client,
            &auth,
            repository,
            reference,
            "application/vnd.oci.image.manifest.v1+json",
            &body,
        )
        .await
    }

    /// Pushes an image a container runtime can unpack: one gzip'd tar layer
    /// (made by `tar` and `gzip`) holding one file. Returns its digest.
    pub async fn push_runnable_image(&self, repository: &str, tag: &str) -> String {
        let work = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            work.path().join("hello.txt"),
            format!("{repository}:{tag}\n"),
        )
        .expect("file");
        let tar = Command::new("tar")
            .args(["--mtime=@0", "--owner=0", "--group=0", "-C"])
            .arg(work.path())
            .args(["-cf", "-", "hello.txt"])
            .output()
            .expect("tar");
        assert!(tar.status.success());
        let mut gzip = Command::new("gzip")
            .args(["-n", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip");
        {
            use std::io::Write;
            gzip.stdin
                .take()
                .expect("stdin")
                .write_all(&tar.stdout)
                .expect("gzip input");
        }
        let layer = gzip.wait_with_output().expect("gzip").stdout;
        let config = json!({"architecture": "amd64", "os": "linux",
                            "rootfs": {"type": "layers", "diff_ids": [sha256(&tar.stdout)]}});
        self.push_one_layer(repository, tag, &config, &layer).await
    }

    /// Pushes amd64 and arm64 images and an OCI index over them at `tag`;
    /// returns the index digest.
    pub async fn push_multi_arch(&self, repository: &str, tag: &str) -> String {
        let amd64 = self
            .push_platform_image(repository, &format!("{tag}-amd64"), "amd64")
            .await;
        let arm64 = self
            .push_platform_image(repository, &format!("{tag}-arm64"), "arm64")
            .await;
        let client = self.http();
        let auth = self.push_auth(repository).await;
        let manifests = [(amd64, "amd64"), (arm64, "arm64")];
        let mut entries = Vec::new();
        for (digest, arch) in manifests {
            let length = self
                .manifest_size(&client, &auth, repository, &digest)
                .await;
            entries.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": length,
                                "platform": {"architecture": arch, "os": "linux"}}));
        }
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        let body = serde_json::to_vec(&index).expect("index");
        self.put_manifest(
            &client,
            &auth,
            repository,
            tag,
            "application/vnd.oci.image.index.v1+json",
            &body,
        )
        .await
    }

    async fn manifest_size(
        &self,
        client: &reqwest::Client,
        auth: &Option<String>,
        repository: &str,
        digest: &str,
    ) -> u64 {
        let mut head = client
            .head(format!(
                "{}/v2/{repository}/manifests/{digest}",
                self.server()
            ))
            .header("accept", "application/vnd.oci.image.manifest.v1+json");
        if let Some(auth) = auth {
            head = head.header("authorization", auth);
        }
        let response = head.send().await.expect("head");
        assert_eq!(response.status(), 200);
        response.headers()["content-length"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("length")
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A token server as Harbor and Docker Hub run one: Basic credentials in,
/// an RS256 JWT with an `x5c` header and `access` claims out.
pub struct TokenServer {
    pub addr: SocketAddr,
    pub cert_path: PathBuf,
    key: Arc<ring::rsa::KeyPair>,
    cert_der: Arc<Vec<u8>>,
    /// Token requests served, to see that tokens are reused.
    pub requests: Arc<AtomicUsize>,
    /// The CA of the token service's HTTPS certificate, and its file.
    pub ca_pem: String,
    pub ca_path: PathBuf,
    /// Issue tokens without `registry:catalog:*` access, as Harbor does for
    /// a project robot account.
    pub refuse_catalog: Arc<std::sync::atomic::AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TokenServer {
    async fn start(dir: &Path) -> Self {
        let key_path = dir.join("token.key");
        let cert_path = dir.join("token.crt");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=test-token-issuer",
                "-keyout",
            ])
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success());
        use rustls_pki_types::pem::PemObject;
        let key_der =
            rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(&key_path).expect("pkcs8 key");
        let key = ring::rsa::KeyPair::from_pkcs8(key_der.secret_pkcs8_der()).expect("rsa key");
        let cert_der = rustls_pki_types::CertificateDer::from_pem_file(&cert_path)
            .expect("cert")
            .to_vec();
        let requests = Arc::new(AtomicUsize::new(0));
        let refuse_catalog = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (key, cert_der) = (Arc::new(key), Arc::new(cert_der));
        let app = {
            let (key, cert_der, requests, refuse) = (
                key.clone(),
                cert_der.clone(),
                requests.clone(),
                refuse_catalog.clone(),
            );
            axum::Router::new().route(
                "/token",
                axum::routing::get(move |headers: axum::http::HeaderMap, query: axum::extract::Query<Vec<(String, String)>>| {
                    let (key, cert_der, requests, refuse) =
                        (key.clone(), cert_der.clone(), requests.clone(), refuse.clone());
                    async move {
                        requests.fetch_add(1, Ordering::SeqCst);
                        let expected = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
                        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
                        if given != Some(expected.as_str()) {
                            return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({"details": "bad credentials"})));
                        }
                        let scopes: Vec<String> = query.0.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone())
                            .filter(|scope| !(refuse.load(Ordering::SeqCst) && scope.starts_with("registry:catalog:")))
                            .collect();
                        let token = sign(&key, &cert_der, &scopes);
                        (axum::http::StatusCode::OK, axum::Json(json!({"token": token, "access_token": token, "expires_in": 300})))
                    }
                }),
            )
        };
        // HTTPS on the project's own serving stack, with a CA of its own.
        let certs = registry_resolver::certs::generate(
            &dir.join("token-certs"),
            &registry_resolver::certs::CertSubjects {
                service: "token".into(),
                namespace: "test".into(),
                extra: vec![],
            },
        )
        .expect("token service certificates");
        let running = registry_resolver::server::start_routers(
            app,
            axum::Router::new(),
            Arc::new(registry_resolver::server::Readiness::default()),
            &registry_resolver::server::ServeOptions {
                listen: "127.0.0.1:0".parse().expect("addr"),
                admin_listen: "127.0.0.1:0".parse().expect("addr"),
                cert_file: certs.cert.clone(),
                key_file: certs.key.clone(),
                cert_reload_interval: Duration::from_secs(60),
                shutdown_timeout: Duration::from_secs(1),
                limits: Default::default(),
                metrics: None,
                webhook_client_ca: None,
            },
        )
        .await
        .expect("token service starts");
        Self {
            addr: running.addr,
            cert_path,
            key,
            cert_der,
            requests,
            ca_pem: std::fs::read_to_string(&certs.ca_cert).expect("token CA"),
            ca_path: certs.ca_cert.clone(),
            refuse_catalog,
            stop: running.shutdown_token(),
        }
    }

    /// A token for `scope` without going through HTTP (the push helper's).
    pub fn issue(&self, scope: &str) -> String {
        sign(&self.key, &self.cert_der, &[scope.to_owned()])
    }
}

fn sign(key: &ring::rsa::KeyPair, cert_der: &[u8], scopes: &[String]) -> String {
    let access: Vec<Value> = scopes
        .iter()
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(cert_der)]});
    let claims = json!({"iss": "test-issuer", "sub": USER, "aud": "test-registry", "exp": now + 300, "nbf": now - 10,
                        "iat": now, "jti": format!("{now}-{}", scopes.join(" ")), "access": access});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims"))
    );
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
