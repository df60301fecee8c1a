//! Certificate reload in the Kubernetes Secret-volume layout, bad pairs,
//! and graceful shutdown with a request in flight.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestServer, admission_review, client_trusting, fixture_json, generate_certs};
use registry_resolver::certs::CertPaths;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Lays out `dir` the way the kubelet mounts a Secret: the files are
/// symlinks through `..data`, itself a symlink to a timestamped directory.
fn secret_volume(dir: &Path, generation: &str, pair: &CertPaths) {
    let versioned = dir.join(format!("..{generation}"));
    std::fs::create_dir_all(&versioned).expect("mkdir");
    std::fs::copy(&pair.cert, versioned.join("tls.crt")).expect("copy cert");
    std::fs::copy(&pair.key, versioned.join("tls.key")).expect("copy key");
    // Atomic swap, as the kubelet does: a new link renamed over `..data`.
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).expect("file link");
        }
    }
}

async fn eventually_ok(client: &reqwest::Client, url: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 401)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn reloads_certificates_swapped_through_the_data_symlink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = generate_certs(&dir.path().join("gen1"));
    let second = generate_certs(&dir.path().join("gen2"));
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(&volume).expect("mkdir");
    secret_volume(&volume, "2026_11_29_01", &first);
    let served = CertPaths {
        cert: volume.join("tls.crt"),
        key: volume.join("tls.key"),
        ..first.clone()
    };
    let server = TestServer::start_in(dir, served, Duration::from_millis(100)).await;
    let url = server.url("/api/v1/registries");

    let old_client = client_trusting(&first.ca_cert);
    let new_client = client_trusting(&second.ca_cert);
    assert_eq!(
        old_client
            .get(&url)
            .send()
            .await
            .expect("old cert served")
            .status(),
        401
    );
    assert!(
        new_client.get(&url).send().await.is_err(),
        "new CA not yet trusted"
    );

    secret_volume(&volume, "2026_11_29_02", &second);
    assert!(
        eventually_ok(&new_client, &url).await,
        "new certificate served after the swap"
    );
    // The connection opened before the swap keeps working.
    assert_eq!(
        old_client
            .get(&url)
            .send()
            .await
            .expect("kept-alive connection")
            .status(),
        401
    );

    // A broken pair (the key of another certificate) is refused; the
    // current certificate keeps serving.
    let third = generate_certs(&server.dir.path().join("gen3"));
    let mismatched = CertPaths {
        key: first.key.clone(),
        ..third.clone()
    };
    secret_volume(&volume, "2026_11_29_03", &mismatched);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fresh = client_trusting(&second.ca_cert);
    assert_eq!(
        fresh
            .get(&url)
            .send()
            .await
            .expect("still serving the good pair")
            .status(),
        401
    );
    // Garbage is refused too.
    let versioned = volume.join("..2026_11_29_04");
    std::fs::create_dir_all(&versioned).expect("mkdir");
    std::fs::write(versioned.join("tls.crt"), "not a certificate").expect("write");
    std::fs::write(versioned.join("tls.key"), "not a key").expect("write");
    let tmp = volume.join("..data_tmp");
    std::os::unix::fs::symlink("..2026_11_29_04", &tmp).expect("symlink");
    std::fs::rename(&tmp, volume.join("..data")).expect("swap");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fresh = client_trusting(&second.ca_cert);
    assert_eq!(
        fresh
            .get(&url)
            .send()
            .await
            .expect("still serving")
            .status(),
        401
    );

    // And a good pair after the bad ones is picked up.
    secret_volume(&volume, "2026_11_29_05", &third);
    assert!(eventually_ok(&client_trusting(&third.ca_cert), &url).await);
}

/// The certificate rotated every second for six seconds (the kubelet's
/// `..data` swap) while 16 clients open a fresh TLS connection per request:
/// no handshake and no request fails, and the last pair is what is served
/// at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_every_second_under_load_fails_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const GENERATIONS: usize = 7;
    let dir = tempfile::tempdir().expect("tempdir");
    let pairs: Vec<CertPaths> = (0..GENERATIONS)
        .map(|g| generate_certs(&dir.path().join(format!("gen{g}"))))
        .collect();
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(&volume).expect("mkdir");
    secret_volume(&volume, "gen0", &pairs[0]);
    let served = CertPaths {
        cert: volume.join("tls.crt"),
        key: volume.join("tls.key"),
        ..pairs[0].clone()
    };
    let server = TestServer::start_in(dir, served, Duration::from_millis(100)).await;
    let url = server.url("/api/v1/registries");
    // Clients trust every generation's CA, as they would trust one CA that
    // signs each new leaf; a fresh connection per request makes every
    // request a handshake against whatever is loaded at that moment.
    let trusting_all = {
        let certificates: Vec<reqwest::Certificate> = pairs
            .iter()
            .map(|p| {
                reqwest::Certificate::from_pem(&std::fs::read(&p.ca_cert).expect("CA"))
                    .expect("CA parses")
            })
            .collect();
        reqwest::Client::builder()
            .tls_certs_only(certificates)
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    };
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, done, answered) = (
                trusting_all.clone(),
                url.clone(),
                done.clone(),
                answered.clone(),
            );
            tokio::spawn(async move {
                while !done.load(Ordering::Acquire) {
                    let response = client
                        .get(&url)
                        .send()
                        .await
                        .expect("no handshake or request fails");
                    assert_eq!(response.status(), 401, "answered");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for (g, pair) in pairs.iter().enumerate().skip(1) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        secret_volume(&volume, &format!("gen{g}"), pair);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::Release);
    for client in clients {
        client.await.expect("no request failed");
    }
    assert!(answered.load(Ordering::Relaxed) > 100, "load was running");
    let last = client_trusting(&pairs[GENERATIONS - 1].ca_cert);
    assert!(eventually_ok(&last, &url).await, "the last pair is served");
}

#[tokio::test]
async fn tls_1_2_and_1_3_only_and_http_1_1_alpn() {
    let server = TestServer::start().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let (mut stream, _) =
            connect(&server.certs.ca_cert, server.addr().port(), &[version]).await;
        stream
            .write_all(
                b"GET /openapi.json HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
            )
            .await
            .expect("write");
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.expect("read");
        assert!(
            out.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

async fn connect(
    ca: &Path,
    port: u16,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Option<Vec<u8>>,
) {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("CA") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(registry_resolver::server::tls::provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("tcp");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let stream = connector.connect(name, tcp).await.expect("handshake");
    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "we speak HTTP/1.1");
    (stream, alpn)
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_reports_not_ready() {
    let mut server = TestServer::start().await;
    server
        .create_registry(serde_json::json!({"name": "demo", "server": "r.example", "namespaces": ["team-a"], "defaultFor": ["team-a"]}))
        .await;
    let body = admission_review(&fixture_json("job-kubectl.json"), "team-a", "CREATE").to_string();
    let (mut stream, _) = connect(
        &server.certs.ca_cert,
        server.addr().port(),
        &[&rustls::version::TLS13],
    )
    .await;
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    // Half the body: the request is in flight when shutdown begins.
    let (first_half, second_half) = body.as_bytes().split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(first_half).await.expect("first half");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let readyz = server.admin_url("/readyz");
    let addr = server.addr();
    let running = server.running.take().expect("running");
    let stopped = tokio::spawn(running.shutdown());

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut saw_not_ready = false;
    while Instant::now() < deadline {
        if let Ok(response) = http.get(&readyz).send().await
            && response.status() == 503
        {
            assert_eq!(response.text().await.expect("text"), "shutting down");
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_not_ready, "readiness goes false while draining");
    // No new connections once draining.
    // The listener closes while the in-flight request is still open.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener is closed while draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !stopped.is_finished(),
        "shutdown waits for the in-flight request"
    );

    stream.write_all(second_half).await.expect("second half");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("response");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\"patch\""),
        "the in-flight admission completed: {text}"
    );
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("stops after the in-flight request")
        .expect("join");
}

/// A CA and a client certificate it signed (PEM: CA, certificate + key).
fn client_ca_and_identity(name: &str) -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} client CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
    client.distinguished_name.push(DnType::CommonName, name);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = client
        .signed_by(&key, &Issuer::new(ca, ca_key))
        .expect("client certificate");
    (
        ca_cert.pem(),
        format!("{}{}", cert.pem(), key.serialize_pem()),
    )
}

/// With --webhook-client-ca, only a client holding a certificate from that
/// CA (the API server) gets an answer from the webhooks; the API and the
/// console still take a bearer token without one.
#[tokio::test]
async fn webhooks_can_require_the_api_servers_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, apiserver) = client_ca_and_identity("kube-apiserver");
    let (_, stranger) = client_ca_and_identity("someone else");
    let ca_path = dir.path().join("client-ca.crt");
    std::fs::write(&ca_path, ca).expect("write CA");
    let server = TestServer::start_setup(common::Setup {
        webhook_client_ca: Some(ca_path),
        ..common::Setup::default()
    })
    .await;
    server
        .create_registry(serde_json::json!({"name": "demo", "server": "r.example", "namespaces": ["team-a"], "defaultFor": ["team-a"]}))
        .await;
    let review = common::admission_review(
        &common::fixture_json("deployment-kubectl.json"),
        "team-a",
        "CREATE",
    );
    let with_identity = |pem: &str| {
        let ca = std::fs::read(&server.certs.ca_cert).expect("CA");
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA")])
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"))
            .build()
            .expect("client")
    };

    // No certificate: refused, with the reason.
    for path in ["/mutate", "/validate/imageregistries"] {
        let response = server
            .client
            .post(server.url(path))
            .json(&review)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401, "{path}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(
            body["error"]["code"], "client_certificate_required",
            "{body}"
        );
    }
    // The API server's certificate: answered.
    let response = with_identity(&apiserver)
        .post(server.url("/mutate"))
        .json(&review)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["response"]["allowed"], true, "{body}");
    // A certificate from another CA does not get through the handshake.
    assert!(
        with_identity(&stranger)
            .post(server.url("/mutate"))
            .json(&review)
            .send()
            .await
            .is_err()
    );
    // The API still takes a token alone.
    let (status, _) = server.call(reqwest::Method::GET, "/registries", None).await;
    assert_eq!(status, 200);
}
