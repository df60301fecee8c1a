//! Registry checks and browsing against the real Distribution registry over
//! real HTTP and HTTPS with real auth (htpasswd and token).

mod common;
mod distribution;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::TestServer;
use distribution::{Distribution, Mode, PASSWORD, USER};
use reqwest::Method;
use serde_json::{Value, json};

fn record(name: &str, server: &str, credentials: bool) -> Value {
    let mut body = json!({"name": name, "server": server, "namespaces": ["team-a"]});
    if credentials {
        body["username"] = json!(USER);
        body["password"] = json!(PASSWORD);
    }
    body
}

async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    server.call(Method::POST, path, Some(body)).await
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    server.call(Method::GET, path, None).await
}

/// POST /registries:verify; returns the error code, or "ok".
async fn check(server: &TestServer, body: &Value) -> (String, String) {
    let (status, answer) = post(server, "/registries:verify", body).await;
    if status == 200 {
        assert_eq!(answer["verified"], true);
        return ("ok".into(), String::new());
    }
    assert_eq!(status, 422, "{answer}");
    (
        answer["error"]["code"].as_str().unwrap_or("?").to_owned(),
        answer["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn plain_http_without_auth() {
    let registry = Distribution::start(Mode::Open).await;
    let server = TestServer::start().await;
    assert_eq!(
        check(&server, &record("open", &registry.server(), false))
            .await
            .0,
        "ok"
    );
    // Credentials a registry does not ask for do not fail the login.
    assert_eq!(
        check(&server, &record("open", &registry.server(), true))
            .await
            .0,
        "ok"
    );

    let (status, created) = post(
        &server,
        "/registries",
        &record("open", &registry.server(), false),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"]["verified"], true);
    assert!(created["status"]["lastVerifiedAt"].is_string());

    // https:// against this plain-HTTP port is a protocol mistake.
    let https = format!("https://{}", registry.host());
    let (code, message) = check(&server, &record("x", &https, false)).await;
    assert_eq!(code, "protocol", "{message}");
    assert!(message.contains("http://"), "{message}");
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let registry = Distribution::start(Mode::Basic).await;
    let server = TestServer::start().await;
    assert_eq!(
        check(&server, &record("basic", &registry.server(), true))
            .await
            .0,
        "ok"
    );

    let mut wrong = record("basic", &registry.server(), true);
    wrong["password"] = json!("not-the-password");
    let (code, message) = check(&server, &wrong).await;
    assert_eq!(code, "unauthorized", "{message}");
    assert!(
        !message.contains("not-the-password"),
        "never echo a password"
    );
    let (code, message) = check(&server, &record("basic", &registry.server(), false)).await;
    assert_eq!(code, "unauthorized", "{message}");
    assert!(
        message.contains("requires a username and password"),
        "{message}"
    );

    // Create refuses a record that cannot log in, and saves with verify=false.
    let (status, body) = post(&server, "/registries", &wrong).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unauthorized"))
    );
    let (status, body) = post(&server, "/registries?verify=false", &wrong).await;
    assert_eq!(status, 201);
    assert_eq!(body["status"]["verified"], false);
    assert_eq!(
        body["status"]["message"],
        "not verified: saved with verify=false"
    );

    // Fixing the password through PATCH checks again.
    let response = server
        .api(Method::PATCH, "/registries/basic")
        .header("content-type", "application/merge-patch+json")
        .body(json!({"password": PASSWORD}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"]["verified"], true);

    // Re-check with the stored password.
    let (status, body) = post(&server, "/registries/basic/verify", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["verified"], true);
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let registry = Distribution::start(Mode::TlsBasic).await;
    let server = TestServer::start().await;
    let ca = registry.ca_pem.clone().expect("ca");

    let (code, message) = check(&server, &record("tls", &registry.server(), true)).await;
    assert_eq!(code, "tls", "{message}");
    assert!(
        message.contains("unknown authority") && message.contains("tls.caBundle"),
        "{message}"
    );

    let mut with_ca = record("tls", &registry.server(), true);
    with_ca["tls"] = json!({"caBundle": ca});
    assert_eq!(check(&server, &with_ca).await.0, "ok");

    let mut skip = record("tls", &registry.server(), true);
    skip["tls"] = json!({"insecureSkipVerify": true});
    assert_eq!(check(&server, &skip).await.0, "ok");

    // http:// against the HTTPS port.
    let plain = format!("http://{}", registry.host());
    let (code, message) = check(&server, &record("tls", &plain, true)).await;
    assert_eq!(code, "protocol", "{message}");
    assert!(message.contains("https://"), "{message}");
}

#[tokio::test]
async fn certificate_for_another_name_is_reported_with_its_names() {
    // A registry whose certificate names only `registry.example`.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["registry.example".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
        dir.path().join("storage").display(),
        dir.path().join("tls.crt").display(),
        dir.path().join("tls.key").display()
    );
    std::fs::write(dir.path().join("config.yml"), config).expect("config");
    let mut child = std::process::Command::new("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker-registry");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(30));
    }
    let server = TestServer::start().await;
    let mut body = record("named", &format!("https://127.0.0.1:{port}"), false);
    body["tls"] = json!({"caBundle": cert.pem()});
    let (code, message) = check(&server, &body).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, "tls", "{message}");
    assert!(
        message.contains("not valid for 127.0.0.1") && message.contains("registry.example"),
        "{message}"
    );
}

#[tokio::test]
async fn token_auth_like_harbor() {
    let registry = Distribution::start(Mode::Token).await;
    let server = TestServer::start().await;
    // The token service's CA, as a Harbor record carries its private CA.
    let tok = || {
        let mut body = record("tok", &registry.server(), true);
        body["tls"] = json!({"caBundle": registry.ca_pem.clone().expect("token CA")});
        body
    };
    assert_eq!(check(&server, &tok()).await.0, "ok");
    let mut wrong = tok();
    wrong["password"] = json!("wrong");
    let (code, message) = check(&server, &wrong).await;
    assert_eq!(code, "unauthorized", "{message}");
    assert!(message.contains("token service"), "{message}");

    // Browsing through token auth; tokens are reused per scope.
    for repository in ["library/nginx", "library/redis", "team/app"] {
        registry.push_image(repository, "1.0.0").await;
    }
    let (status, _) = post(&server, "/registries", &tok()).await;
    assert_eq!(status, 201);
    let (status, body) = get(&server, "/registries/tok/repositories").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "catalog", "not a Harbor: the catalog");
    assert_eq!(
        body["items"],
        json!(["library/nginx", "library/redis", "team/app"])
    );
    let token_requests = registry
        .token_server
        .as_ref()
        .expect("token server")
        .requests
        .load(Ordering::SeqCst);
    for path in [
        "/registries/tok/repositories/library/nginx/tags",
        "/registries/tok/repositories/library/nginx/tags?q=1",
    ] {
        let (status, body) = get(&server, path).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["items"], json!(["1.0.0"]));
    }
    let after = registry
        .token_server
        .as_ref()
        .expect("token server")
        .requests
        .load(Ordering::SeqCst);
    assert_eq!(
        after,
        token_requests + 1,
        "one token for the repository's pull scope, then reused (and the list cached)"
    );
}

#[tokio::test]
async fn browse_catalog_and_tags_with_pagination() {
    let registry = Distribution::start(Mode::Basic).await;
    for repository in [
        "alpha",
        "library/nginx",
        "library/redis",
        "team/app",
        "team/db",
    ] {
        registry.push_image(repository, "1.0.0").await;
    }
    for tag in [
        "1.9.0",
        "1.10.0",
        "latest",
        "2.0.0-rc.1",
        "v0.1.0",
        "nightly-2024-05-01",
    ] {
        registry.push_image("team/app", tag).await;
    }
    let server = TestServer::start().await;
    let (status, _) = post(
        &server,
        "/registries",
        &record("b", &registry.server(), true),
    )
    .await;
    assert_eq!(status, 201);

    // Pages of 2, following `metadata.continue`.
    let mut seen = Vec::new();
    let mut path = "/registries/b/repositories?limit=2".to_owned();
    loop {
        let (status, body) = get(&server, &path).await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i.as_str().unwrap_or("").to_owned()));
        match body["metadata"]["continue"].as_str() {
            Some(next) => path = format!("/registries/b/repositories?limit=2&continue={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "alpha",
            "library/nginx",
            "library/redis",
            "team/app",
            "team/db"
        ]
    );

    let (_, body) = get(&server, "/registries/b/repositories?q=team").await;
    assert_eq!(body["items"], json!(["team/app", "team/db"]));

    let (_, body) = get(&server, "/registries/b/repositories/team/app/tags").await;
    assert_eq!(
        body["items"],
        json!([
            "latest",
            "2.0.0-rc.1",
            "1.10.0",
            "1.9.0",
            "1.0.0",
            "v0.1.0",
            "nightly-2024-05-01"
        ])
    );
    let (_, body) = get(&server, "/registries/b/repositories/team/app/tags?limit=3").await;
    assert_eq!(body["items"], json!(["latest", "2.0.0-rc.1", "1.10.0"]));
    let next = body["metadata"]["continue"].as_str().expect("more tags");
    let (_, body) = get(
        &server,
        &format!("/registries/b/repositories/team/app/tags?limit=3&continue={next}"),
    )
    .await;
    assert_eq!(body["items"], json!(["1.9.0", "1.0.0", "v0.1.0"]));

    let (status, body) = get(&server, "/registries/b/repositories/team/missing/tags").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = get(&server, "/registries/b/repositories/Team/App/tags").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("repository"))
    );
    let (status, body) = get(&server, "/registries/b/repositories?limit=0").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("limit"))
    );
    // The old parameters are refused by name, not silently ignored.
    let (status, body) = get(&server, "/registries/b/repositories?n=2").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains('n')
    );
    let (status, body) = get(&server, "/registries/b/repositories?continue=bogus").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("continue"))
    );

    // A record whose server has a path prefix lists only what is under it.
    let (status, _) = post(
        &server,
        "/registries",
        &record("prefixed", &format!("{}/library", registry.server()), true),
    )
    .await;
    assert_eq!(status, 201);
    let (_, body) = get(&server, "/registries/prefixed/repositories").await;
    assert_eq!(body["items"], json!(["nginx", "redis"]));
    let (_, body) = get(&server, "/registries/prefixed/repositories/nginx/tags").await;
    assert_eq!(body["items"], json!(["1.0.0"]));
}

#[tokio::test]
async fn registry_down_not_a_registry_and_timeouts() {
    let mut registry = Distribution::start(Mode::Basic).await;
    let server = TestServer::start().await;
    let (status, _) = post(
        &server,
        "/registries",
        &record("down", &registry.server(), true),
    )
    .await;
    assert_eq!(status, 201);
    registry.stop();
    let (code, message) = check(&server, &record("down", &registry.server(), true)).await;
    assert_eq!(code, "unreachable", "{message}");
    // A name that resolves nowhere says so (told apart by its type).
    let (code, message) = check(
        &server,
        &record("nowhere", "http://nothing-here.invalid", false),
    )
    .await;
    assert_eq!(code, "unreachable", "{message}");
    assert!(
        message.contains("cannot resolve nothing-here.invalid"),
        "{message}"
    );
    // The saved record's re-check fails, and its status says why.
    let (status, body) = post(&server, "/registries/down/verify", &json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unreachable"))
    );
    let (_, saved) = get(&server, "/registries/down").await;
    assert_eq!(saved["status"]["verified"], false);
    assert!(
        saved["status"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("unreachable:")
    );
    let (status, body) = get(&server, "/registries/down/repositories").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("unreachable"))
    );

    // A web server that is not a registry.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let web = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(|| async { "<html>welcome</html>" });
        let _ = axum::serve(listener, app).await;
    });
    let (code, message) = check(&server, &record("web", &format!("http://{web}"), true)).await;
    assert_eq!(code, "not_a_registry", "{message}");

    // A server that accepts connections and never answers: timeout, in time.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let (code, message) = check(
        &server,
        &record("silent", &format!("http://{silent_addr}"), true),
    )
    .await;
    assert_eq!(code, "timeout", "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered within the deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stored_password_never_goes_to_a_new_address() {
    let registry = Distribution::start(Mode::Basic).await;
    let server = TestServer::start().await;
    let (status, _) = post(
        &server,
        "/registries",
        &record("r", &registry.server(), true),
    )
    .await;
    assert_eq!(status, 201);

    // A server that records every Authorization header it is sent.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let trap = listener.local_addr().expect("addr");
    {
        let seen = seen.clone();
        tokio::spawn(async move {
            let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    seen.lock().expect("lock").push(
                        headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned(),
                    );
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        [
                            ("www-authenticate", "Basic realm=\"trap\""),
                            ("docker-distribution-api-version", "registry/2.0"),
                        ],
                    )
                }
            });
            let _ = axum::serve(listener, app).await;
        });
    }
    let moved =
        json!({"server": format!("http://{trap}"), "username": USER, "namespaces": ["team-a"]});
    let response = server
        .api(Method::PUT, "/registries/r")
        .json(&moved)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["field"], "password");
    let response = server
        .api(Method::PATCH, "/registries/r")
        .header("content-type", "application/merge-patch+json")
        .body(json!({"server": format!("http://{trap}")}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 422);
    assert!(
        seen.lock().expect("lock").is_empty(),
        "nothing was sent to the new address"
    );
    // Re-checking the saved record still goes to its own address.
    let (status, _) = post(&server, "/registries/r/verify", &json!({})).await;
    assert_eq!(status, 200);
    assert!(seen.lock().expect("lock").is_empty());
}

/// Harbor gives a project robot account a token without catalog access; the
/// picker then gets `browse_unsupported` (remembered, not asked again) and
/// tags still list. `browse: none` never asks.
#[tokio::test]
async fn a_registry_that_refuses_the_catalog_still_lists_tags() {
    let registry = Distribution::start(Mode::Token).await;
    registry.push_image("team/app", "1.0.0").await;
    registry.push_image("team/app", "1.1.0").await;
    registry
        .token_server
        .as_ref()
        .expect("token server")
        .refuse_catalog
        .store(true, Ordering::SeqCst);
    let server = TestServer::start().await;
    let mut body = record("robot", &registry.server(), true);
    body["tls"] = json!({"caBundle": registry.ca_pem.clone().expect("token CA")});
    let (status, answer) = post(&server, "/registries", &body).await;
    assert_eq!(status, 201, "the login check passes: {answer}");

    let (status, answer) = get(&server, "/registries/robot/repositories").await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "browse_unsupported", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("type the path")),
        "{answer}"
    );
    let asked = registry.requests_matching("GET /v2/_catalog");
    for q in ["t", "te", "tea"] {
        let (status, answer) = get(&server, &format!("/registries/robot/repositories?q={q}")).await;
        assert_eq!(
            answer["error"]["code"], "browse_unsupported",
            "{status} {answer}"
        );
    }
    assert_eq!(
        registry.requests_matching("GET /v2/_catalog"),
        asked,
        "the refusal is remembered"
    );
    let (status, answer) = get(&server, "/registries/robot/repositories/team/app/tags").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["items"], json!(["1.1.0", "1.0.0"]));

    // browse: none never lists; the record says so.
    body["name"] = json!("quiet");
    body["browse"] = json!("none");
    let (status, answer) = post(&server, "/registries", &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["browse"], "none");
    let asked = registry.requests_matching("GET /v2/_catalog");
    let (_, answer) = get(&server, "/registries/quiet/repositories").await;
    assert_eq!(answer["error"]["code"], "browse_unsupported", "{answer}");
    assert_eq!(registry.requests_matching("GET /v2/_catalog"), asked);

    // A rejected Basic login is still a rejected login, not "unsupported".
    let basic = Distribution::start(Mode::Basic).await;
    let mut wrong = record("wrong", &basic.server(), true);
    wrong["password"] = json!("not-the-password");
    let (status, _) = post(&server, "/registries?verify=false", &wrong).await;
    assert_eq!(status, 201);
    let (status, answer) = get(&server, "/registries/wrong/repositories").await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "unauthorized", "{answer}");
}
