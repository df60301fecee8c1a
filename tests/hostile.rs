//! Hostile input against the real server over HTTPS: what a client can
//! send must never grow memory, hang a connection, or come back echoed
//! whole. Each test is one row of what must hold.

mod common;

use common::{TOKEN, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

/// An API call; `Value::Null` sends no body.
async fn send(server: &TestServer, method: Method, path: &str, body: Value) -> (u16, Value) {
    server
        .call(method, path, Some(&body).filter(|b| !b.is_null()))
        .await
}

fn metric_series(metrics: &str, prefix: &str) -> usize {
    metrics.lines().filter(|l| l.starts_with(prefix)).count()
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.admin_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn invented_methods_and_paths_do_not_add_metric_series() {
    let server = TestServer::start().await;
    let invented = |i: usize| {
        Method::from_bytes(format!("INVENTED{i}{}", "X".repeat(i * 50)).as_bytes()).expect("method")
    };
    // One of each kind first, so the `other`/`unmatched` series exist.
    for (method, path) in [
        (invented(0), "/api/v1/registries".to_owned()),
        (invented(0), "/nowhere-0".to_owned()),
        (Method::GET, "/nowhere-0".to_owned()),
    ] {
        let _ = server
            .client
            .request(method, server.url(&path))
            .send()
            .await;
    }
    let before = metrics(&server).await;
    let prefix = "registry_resolver_http_requests_total{";
    for i in 1..60 {
        for (method, path) in [
            (invented(i), "/api/v1/registries".to_owned()),
            (invented(i), format!("/nowhere-{i}/{}", "p".repeat(i * 40))),
            (Method::GET, format!("/nowhere-{i}")),
        ] {
            let _ = server
                .client
                .request(method, server.url(&path))
                .send()
                .await;
        }
    }
    let after = metrics(&server).await;
    assert_eq!(
        metric_series(&after, prefix),
        metric_series(&before, prefix),
        "{after}"
    );
    assert!(after.contains(r#"method="other""#), "{after}");
    assert!(after.contains(r#"route="unmatched""#), "{after}");
    assert!(!after.contains("INVENTED") && !after.contains("nowhere"));
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::start().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let status = server
            .client
            .get(server.url("/api/v1/registries"))
            .header("Authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 200, "{scheme}");
    }
    let status = server
        .client
        .get(server.url("/api/v1/registries"))
        .header("Authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn empty_and_invalid_names_are_refused_wherever_a_name_enters() {
    let server = TestServer::start().await;
    let base = json!({"server": "r.example", "namespaces": ["team-a"]});
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        body
    };
    for (body, field) in [
        (with(json!({"name": ""})), "name"),
        (with(json!({"name": "Upper"})), "name"),
        (
            with(json!({"name": "ok", "pullSecretName": ""})),
            "pullSecretName",
        ),
        (
            with(json!({"name": "ok", "pullSecretName": "Bad_Name"})),
            "pullSecretName",
        ),
        (
            with(json!({"name": "ok", "namespaces": [""]})),
            "namespaces[0]",
        ),
    ] {
        for path in ["/registries?verify=false", "/registries:verify"] {
            let (status, answer) = send(&server, Method::POST, path, body.clone()).await;
            assert_eq!(status, 422, "{path} {body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{path} {body}: {answer}");
        }
    }
    let (status, list) = send(&server, Method::GET, "/registries", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"], json!([]), "nothing was saved");

    // Names in a batch delete are names too.
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries:batchDelete",
        json!({"names": ["ok", ""]}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "names[1]");
}

#[tokio::test]
async fn list_sizes_are_bounded_and_checked_in_linear_time() {
    let server = TestServer::start().await;
    // At the limit: accepted; duplicates are dropped.
    let namespaces: Vec<String> = (0..5000).map(|i| format!("ns-{i}")).collect();
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        json!({"name": "wide", "server": "r.example", "namespaces": namespaces, "defaultFor": ["ns-4999", "ns-4999"]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["namespaces"].as_array().map(Vec::len), Some(5000));
    assert_eq!(answer["defaultFor"], json!(["ns-4999"]));

    // Over it: a 422 naming the field and the limit, for both lists.
    for field in ["namespaces", "defaultFor"] {
        let many: Vec<String> = (0..50_000).map(|i| format!("n{i}")).collect();
        let mut body = json!({"name": "too-wide", "server": "r.example", "namespaces": ["a"]});
        body[field] = json!(many);
        let (status, answer) = send(&server, Method::POST, "/registries?verify=false", body).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["field"], field);
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("at most 5000")),
            "{answer}"
        );
    }

    // Thousands of invalid entries: one bounded answer.
    let bad: Vec<String> = (0..4000).map(|i| format!("Bad_{i}")).collect();
    let response = server
        .api(Method::POST, "/registries?verify=false")
        .json(&json!({"name": "bad", "server": "r.example", "namespaces": bad}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 422);
    let text = response.text().await.expect("body");
    assert!(text.len() < 64 * 1024, "answer is {} bytes", text.len());
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        answer["error"]["details"].as_array().map(Vec::len),
        Some(100)
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4000 fields are invalid")),
        "{answer}"
    );
}

#[tokio::test]
async fn batch_delete_has_a_documented_limit_and_counts_each_name_once() {
    let server = TestServer::start().await;
    for name in ["one", "two"] {
        server
            .create_registry(json!({"name": name, "server": "r.example", "namespaces": ["a"]}))
            .await;
    }
    let too_many: Vec<String> = (0..1001).map(|i| format!("r{i}")).collect();
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries:batchDelete",
        json!({"names": too_many}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "names");

    let mut names: Vec<String> = (0..998).map(|i| format!("missing-{}", i % 500)).collect();
    names.extend(["one".into(), "one".into()]);
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries:batchDelete",
        json!({"names": names}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["deleted"], json!(["one"]));
    assert_eq!(answer["notFound"].as_array().map(Vec::len), Some(500));
    let (_, list) = send(&server, Method::GET, "/registries", Value::Null).await;
    assert_eq!(
        list["items"][0]["name"], "two",
        "the other record is untouched"
    );
}

#[tokio::test]
async fn echoed_values_are_truncated() {
    let server = TestServer::start().await;
    let huge = "K".repeat(2 * 1024 * 1024);

    // An AdmissionReview with a 2 MB kind string.
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": huge}});
    let response = server
        .client
        .post(server.url("/mutate"))
        .json(&review)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    assert!(text.len() < 4096, "answer is {} bytes", text.len());
    assert!(text.contains("malformed_review"), "{text}");

    // An unsupported version of 2 MB.
    let review = json!({"apiVersion": huge, "kind": "AdmissionReview", "request": {"uid": "u"}});
    let response = server
        .client
        .post(server.url("/mutate"))
        .json(&review)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    assert!(response.text().await.expect("body").len() < 4096);

    // A registry-relative image of 500 KB in a Pod: the denial stays small.
    let image = format!("/{}", "a".repeat(500_000));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": image}]}});
    let answer = server
        .review(&common::admission_review(&pod, "team-a", "CREATE"))
        .await;
    assert_eq!(answer["allowed"], false);
    let message = answer["status"]["message"].as_str().expect("message");
    assert!(message.len() < 4096, "denial is {} bytes", message.len());

    // API bodies (at most 1 MiB): an unknown field with a huge name, a huge
    // wrong-typed value, a huge name, a huge server.
    let huge = "K".repeat(700_000);
    for body in [
        json!({"name": "a", "server": "r.example", "namespaces": ["a"], huge.clone(): 1}),
        json!({"name": "a", "server": "r.example", "namespaces": huge}),
        json!({"name": huge, "server": "r.example", "namespaces": ["a"]}),
        json!({"name": "a", "server": huge, "namespaces": ["a"]}),
    ] {
        let response = server
            .api(Method::POST, "/registries?verify=false")
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 422);
        let text = response.text().await.expect("body");
        assert!(text.len() < 4096, "answer is {} bytes", text.len());
    }
}

// --- What a registry (or anything posing as one) sends back ---

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use registry_resolver::registry::client::AddressPolicy;

/// Serves `app` on a loopback port, as a registry would.
async fn fake_registry(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A listener that only counts the connections made to it.
async fn counting_listener(ip: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, count)
}

fn v2_ok() -> impl IntoResponse {
    (
        [("docker-distribution-api-version", "registry/2.0")],
        axum::Json(json!({})),
    )
}

async fn browse(server: &TestServer, registry: SocketAddr, path: &str) -> (u16, Value) {
    let (status, answer) = send(
        server,
        Method::PUT,
        "/registries/fake?verify=false",
        json!({"name": "fake", "server": format!("http://{registry}"), "namespaces": ["a"]}),
    )
    .await;
    if status == 404 {
        let (status, answer) = send(
            server,
            Method::POST,
            "/registries?verify=false",
            json!({"name": "fake", "server": format!("http://{registry}"), "namespaces": ["a"]}),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    } else {
        assert_eq!(status, 200, "{answer}");
    }
    send(
        server,
        Method::GET,
        &format!("/registries/fake{path}"),
        Value::Null,
    )
    .await
}

/// How a raw registry double answers one connection, after reading the
/// request's headers: byte-level misbehaviour axum would not produce.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Status line and headers, then the given bytes, then the connection held.
    Stall(&'static str),
    /// A body announced longer than what is sent before closing.
    Truncate,
    /// One byte every 300 ms, forever.
    Trickle,
    /// Accepts and says nothing.
    Silent,
}

/// A loopback registry whose every connection gets `how`.
async fn raw_registry(how: Misbehaviour) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ndocker-distribution-api-version: registry/2.0\r\ncontent-type: application/json\r\n";
                match how {
                    Misbehaviour::Silent => {}
                    Misbehaviour::Stall(sent) => {
                        let _ = socket
                            .write_all(
                                format!("{head}content-length: 4096\r\n\r\n{sent}").as_bytes(),
                            )
                            .await;
                    }
                    Misbehaviour::Truncate => {
                        let _ = socket
                            .write_all(
                                format!(
                                    "{head}content-length: 4096\r\n\r\n{{\"repositories\": [\"a\""
                                )
                                .as_bytes(),
                            )
                            .await;
                        return;
                    }
                    Misbehaviour::Trickle => {
                        let _ = socket
                            .write_all(format!("{head}content-length: 100000\r\n\r\n").as_bytes())
                            .await;
                        loop {
                            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                            if socket.write_all(b" ").await.is_err() {
                                return;
                            }
                        }
                    }
                }
                // Hold the connection open until the client gives up.
                let _ = socket.read(&mut buf).await;
            });
        }
    });
    addr
}

/// Every way a registry (or its token service) can misbehave, each answered
/// with its category, in bounded time, without the registry's text: the
/// checks over `POST /registries:verify`, the body cases over browsing.
#[tokio::test]
async fn registry_misbehaviour_matrix() {
    let server = TestServer::start().await;
    const REMOTE: &str = "REMOTE-TEXT-NEVER-QUOTED";
    // Statuses, from an ordinary HTTP server.
    let status_registry = |status: StatusCode, headers: Vec<(&'static str, &'static str)>| {
        fake_registry(axum::Router::new().fallback(move || {
            let headers = headers.clone();
            async move {
                let mut map = HeaderMap::new();
                for (k, v) in headers {
                    map.insert(k, v.parse().expect("header"));
                }
                (status, map, REMOTE)
            }
        }))
    };
    let unavailable = status_registry(StatusCode::SERVICE_UNAVAILABLE, vec![]).await;
    let limited = status_registry(StatusCode::TOO_MANY_REQUESTS, vec![("retry-after", "7")]).await;
    let limited_for_ages = status_registry(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after", "99999999999")],
    )
    .await;
    let html = status_registry(StatusCode::OK, vec![("content-type", "text/html")]).await;
    let silent = raw_registry(Misbehaviour::Silent).await;
    // Token services (on the registry's own origin: a plain-HTTP login goes
    // nowhere else): one that never answers, one that is failing.
    let behind_token = |token_hangs: bool| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route(
                "/token",
                axum::routing::get(move || async move {
                    if token_hangs {
                        std::future::pending::<()>().await;
                    }
                    (StatusCode::BAD_GATEWAY, REMOTE)
                }),
            )
            .fallback(move || async move {
                (
                    StatusCode::UNAUTHORIZED,
                    [
                        ("docker-distribution-api-version", "registry/2.0".to_owned()),
                        (
                            "www-authenticate",
                            format!(r#"Bearer realm="http://{addr}/token",service="fake""#),
                        ),
                    ],
                    REMOTE,
                )
            });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    };
    let hangs_at_token = behind_token(true).await;
    let fails_at_token = behind_token(false).await;

    let verify = |addr: SocketAddr, login: bool| {
        let server = &server;
        async move {
            let mut body =
                json!({"name": "probe", "server": format!("http://{addr}"), "namespaces": ["a"]});
            if login {
                body["username"] = json!("robot");
                body["password"] = json!("pw");
            }
            send(server, Method::POST, "/registries:verify", body).await
        }
    };
    let (a, b, c, d, e, f, g) = tokio::join!(
        verify(unavailable, false),
        verify(limited, false),
        verify(limited_for_ages, false),
        verify(html, false),
        verify(silent, false),
        verify(hangs_at_token, true),
        verify(fails_at_token, true),
    );
    let table = [
        ("503 on /v2/", a, "registry_error", "503"),
        ("429 with Retry-After", b, "rate_limited", "retry after 7 s"),
        (
            "429 with an absurd Retry-After",
            c,
            "rate_limited",
            "retry after 86400 s",
        ),
        (
            "HTML where the API should be",
            d,
            "not_a_registry",
            "not a container registry",
        ),
        ("never answers", e, "timeout", "did not answer in time"),
        ("token service never answers", f, "timeout", ""),
        ("token service failing", g, "registry_error", "502"),
    ];
    for (case, (status, answer), code, says) in table {
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some(code)),
            "{case}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{case}: {message}");
        assert!(
            !answer.to_string().contains(REMOTE),
            "{case}: remote text quoted: {answer}"
        );
    }

    // Bodies, over browsing (verification reads only the headers).
    for (how, code) in [
        (Misbehaviour::Trickle, "timeout"),
        (Misbehaviour::Stall("{\"repositories\": ["), "timeout"),
        (Misbehaviour::Truncate, "registry_error"),
    ] {
        let registry = raw_registry(how).await;
        let (status, answer) = browse(&server, registry, "/repositories").await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (502, Some(code)),
            "{how:?}: {answer}"
        );
    }
    let (status, answer) = browse(&server, limited, "/repositories").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (502, Some("rate_limited")),
        "{answer}"
    );
    let (status, answer) = browse(&server, unavailable, "/repositories").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (502, Some("registry_error")),
        "{answer}"
    );
}

#[tokio::test]
async fn registry_answers_are_read_only_up_to_a_cap() {
    let produced = Arc::new(AtomicUsize::new(0));
    let app = {
        let produced = produced.clone();
        axum::Router::new()
            .route("/v2/", axum::routing::get(|| async { v2_ok() }))
            // 200 MiB of catalog, made as it is read, with no length announced.
            .route(
                "/v2/_catalog",
                axum::routing::get(move || {
                    let produced = produced.clone();
                    async move {
                        let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
                        let first = bytes::Bytes::from_static(b"{\"repositories\": [");
                        let stream = futures_util::stream::unfold(0usize, move |sent| {
                            let (produced, chunk, first) =
                                (produced.clone(), chunk.clone(), first.clone());
                            async move {
                                if sent >= 200 * 1024 * 1024 {
                                    return None;
                                }
                                let next = if sent == 0 { first } else { chunk };
                                produced.fetch_add(next.len(), Ordering::SeqCst);
                                Some((Ok::<_, std::io::Error>(next.clone()), sent + next.len()))
                            }
                        });
                        axum::body::Body::from_stream(stream)
                    }
                }),
            )
    };
    let registry = fake_registry(app).await;
    let server = TestServer::start().await;

    let (status, answer) = browse(&server, registry, "/repositories").await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "response_too_large", "{answer}");
    let sent = produced.load(Ordering::SeqCst);
    assert!(
        sent < 32 * 1024 * 1024,
        "the registry got to send {} MiB before we stopped reading",
        sent / 1024 / 1024
    );

    // An answer that announces 100 MB is refused on its headers.
    let announcer = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let announcing = announcer.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = announcer.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{\"tags\": [";
                let _ = stream.write_all(head.as_bytes()).await;
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            });
        }
    });
    let (status, answer) = browse(&server, announcing, "/repositories/big/tags").await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "response_too_large", "{answer}");
}

#[tokio::test]
async fn catalog_paging_that_loops_is_cut_short() {
    let requests = Arc::new(AtomicUsize::new(0));
    let app = {
        let requests = requests.clone();
        axum::Router::new()
            .route("/v2/", axum::routing::get(|| async { v2_ok() }))
            .route(
                "/v2/_catalog",
                axum::routing::get(move || {
                    let requests = requests.clone();
                    async move {
                        requests.fetch_add(1, Ordering::SeqCst);
                        (
                            [(header::LINK, r#"</v2/_catalog?last=a&n=1000>; rel="next""#)],
                            axum::Json(json!({"repositories": ["a"]})),
                        )
                    }
                }),
            )
    };
    let registry = fake_registry(app).await;
    let server = TestServer::start().await;
    let (status, answer) = browse(&server, registry, "/repositories").await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "paging_loop", "{answer}");
    assert!(
        requests.load(Ordering::SeqCst) <= 3,
        "{} requests",
        requests.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn remote_text_is_never_quoted_in_errors() {
    let app = axum::Router::new()
        .route("/v2/", axum::routing::get(|| async { v2_ok() }))
        .route(
            "/v2/_catalog",
            axum::routing::get(|| async {
                axum::Json(json!({"repositories": "REMOTE-TEXT-IN-BODY"}))
            }),
        )
        .route(
            "/v2/team/app/tags/list",
            axum::routing::get(|| async { "REMOTE-TEXT-NOT-JSON" }),
        );
    let registry = fake_registry(app).await;
    let server = TestServer::start().await;
    for path in ["/repositories", "/repositories/team/app/tags"] {
        let (status, answer) = browse(&server, registry, path).await;
        assert_eq!(status, 502, "{answer}");
        assert_eq!(answer["error"]["code"], "registry_error", "{answer}");
        assert!(!answer.to_string().contains("REMOTE-TEXT"), "{answer}");
    }

    // A realm that is no URL: named as such, not quoted.
    let app = axum::Router::new().route(
        "/v2/",
        axum::routing::get(|| async {
            (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="REMOTE-TEXT-REALM",service="x""#,
                )],
            )
        }),
    );
    let registry = fake_registry(app).await;
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries:verify",
        json!({"server": format!("http://{registry}"), "namespaces": ["a"], "username": "u", "password": "p"}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "not_a_registry", "{answer}");
    assert!(!answer.to_string().contains("REMOTE-TEXT"), "{answer}");
}

#[tokio::test]
async fn credentials_go_to_a_plain_http_token_service_only_at_the_registry_origin() {
    // The token service on another port of the same host, over plain HTTP.
    let (elsewhere, contacted) = counting_listener("127.0.0.1").await;
    let realm = format!("http://{elsewhere}/token");
    let app = axum::Router::new().route(
        "/v2/",
        axum::routing::get(move || {
            let challenge = format!(r#"Bearer realm="{realm}",service="registry""#);
            async move {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, challenge)],
                )
            }
        }),
    );
    let registry = fake_registry(app).await;
    let server = TestServer::start().await;
    let body = json!({"server": format!("http://{registry}"), "namespaces": ["a"],
                      "username": "robot", "password": "Realm-Pw-1"});
    let (status, answer) = send(&server, Method::POST, "/registries:verify", body).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "insecure_token_realm", "{answer}");
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "nothing was sent to the other port"
    );

    // The registry's own origin over plain HTTP is where its logins go.
    let seen_basic = Arc::new(AtomicUsize::new(0));
    let app_origin = {
        let seen_basic = seen_basic.clone();
        move |addr: SocketAddr| {
            let seen_basic = seen_basic.clone();
            let realm = format!("http://{addr}/token");
            axum::Router::new()
                .route(
                    "/v2/",
                    axum::routing::get(move |headers: HeaderMap| {
                        let realm = realm.clone();
                        async move {
                            if headers
                                .get(header::AUTHORIZATION)
                                .and_then(|v| v.to_str().ok())
                                == Some("Bearer the-token")
                            {
                                return v2_ok().into_response();
                            }
                            (
                                StatusCode::UNAUTHORIZED,
                                [(
                                    header::WWW_AUTHENTICATE,
                                    format!(r#"Bearer realm="{realm}""#),
                                )],
                            )
                                .into_response()
                        }
                    }),
                )
                .route(
                    "/token",
                    axum::routing::get(move |headers: HeaderMap| {
                        let seen_basic = seen_basic.clone();
                        async move {
                            if headers
                                .get(header::AUTHORIZATION)
                                .and_then(|v| v.to_str().ok())
                                .is_some_and(|v| v.starts_with("Basic "))
                            {
                                seen_basic.fetch_add(1, Ordering::SeqCst);
                            }
                            axum::Json(json!({"token": "the-token"}))
                        }
                    }),
                )
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = app_origin(addr);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let body = json!({"server": format!("http://{addr}"), "namespaces": ["a"],
                      "username": "robot", "password": "Realm-Pw-1"});
    let (status, answer) = send(&server, Method::POST, "/registries:verify", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        seen_basic.load(Ordering::SeqCst),
        1,
        "the login went to the registry's own token path"
    );
}

#[tokio::test]
async fn link_local_and_refused_addresses_are_never_contacted() {
    // Refused before any connection: link-local literals, whatever the port.
    let server = TestServer::start().await;
    for address in [
        "http://169.254.169.254",
        "http://[fe80::1]:5000",
        "https://[::ffff:169.254.169.254]",
    ] {
        let (status, answer) = send(
            &server,
            Method::POST,
            "/registries:verify",
            json!({"server": address, "namespaces": ["a"]}),
        )
        .await;
        assert_eq!(status, 422, "{address}: {answer}");
        assert_eq!(
            answer["error"]["code"], "address_refused",
            "{address}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("link-local")),
            "{answer}"
        );
    }

    // Loopback refused (as in a cluster), by IP and by a name that resolves
    // to it; a listener there sees no connection at all.
    let (target, contacted) = counting_listener("127.0.0.1").await;
    let server = TestServer::start_with_addresses(AddressPolicy {
        allow_loopback: false,
        allow_link_local: false,
        deny: vec!["127.0.0.2/32".parse().expect("net")],
    })
    .await;
    for address in [
        format!("http://127.0.0.1:{}", target.port()),
        format!("http://localhost:{}", target.port()),
        format!("https://localhost:{}", target.port()),
    ] {
        let (status, answer) = send(
            &server,
            Method::POST,
            "/registries:verify",
            json!({"server": address, "namespaces": ["a"]}),
        )
        .await;
        assert_eq!(status, 422, "{address}: {answer}");
        assert_eq!(
            answer["error"]["code"], "address_refused",
            "{address}: {answer}"
        );
    }
    assert_eq!(contacted.load(Ordering::SeqCst), 0);

    // An operator's own range, with loopback otherwise allowed.
    let (listed, contacted) = counting_listener("127.0.0.2").await;
    let server = TestServer::start_with_addresses(AddressPolicy {
        deny: vec!["127.0.0.2/32".parse().expect("net")],
        ..AddressPolicy::default()
    })
    .await;
    let (status, answer) = send(
        &server,
        Method::POST,
        "/registries:verify",
        json!({"server": format!("http://{listed}"), "namespaces": ["a"]}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "address_refused", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("127.0.0.2/32")),
        "{answer}"
    );
    assert_eq!(contacted.load(Ordering::SeqCst), 0);
}

// --- Connections: slow, unfinished and oversized requests ---

/// A raw TLS connection to the server, trusting the test CA.
async fn tls_connect(
    server: &TestServer,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    try_tls_connect(server).await.expect("TLS handshake")
}

async fn try_tls_connect(
    server: &TestServer,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls_pki_types::CertificateDer::from_pem_file(&server.certs.ca_cert).expect("CA");
    roots.add(ca).expect("root");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server.addr()).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Reads until the connection ends (or `limit` passes), returning what came.
async fn read_until_closed<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    limit: std::time::Duration,
) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (got, closed)
}

/// Sends a request whose body is over the limit, the whole body first and
/// only then reading, as simple clients do; returns what came back.
async fn send_oversized(server: &TestServer, path: &str, auth: &str, body_len: usize) -> String {
    use tokio::io::AsyncWriteExt;
    let mut stream = tls_connect(server).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    );
    let mut result = stream.write_all(head.as_bytes()).await;
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while result.is_ok() && sent < body_len {
        let n = chunk.len().min(body_len - sent);
        result = stream.write_all(&chunk[..n]).await;
        sent += n;
    }
    if let Err(e) = result.and(stream.flush().await) {
        // A client that stops at a failed write never reads the answer.
        return format!("write failed after {sent} bytes: {e}");
    }
    let (answer, _) = read_until_closed(&mut stream, std::time::Duration::from_secs(20)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_413_answer_reaches_a_client_that_is_still_sending() {
    let server = TestServer::start().await;
    let auth = "Authorization: Bearer test-admin-token\r\n";
    for (path, auth, body_len) in [
        ("/mutate", "", 8 * 1024 * 1024),
        ("/api/v1/registries", auth, 4 * 1024 * 1024),
        ("/api/v1/registries:verify", auth, 2 * 1024 * 1024),
    ] {
        for attempt in 0..5 {
            let text = send_oversized(&server, path, auth, body_len).await;
            assert!(
                text.starts_with("HTTP/1.1 413") && text.contains("payload_too_large"),
                "{path} (attempt {attempt}): the client got {:?}",
                text.chars().take(200).collect::<String>()
            );
        }
    }
}

fn short_limits() -> registry_resolver::server::ConnectionLimits {
    registry_resolver::server::ConnectionLimits {
        header_read_timeout: std::time::Duration::from_secs(1),
        max_connections: 64,
        ..registry_resolver::server::ConnectionLimits::default()
    }
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408_and_the_connection_closes() {
    use tokio::io::AsyncWriteExt;
    let server =
        TestServer::start_with_limits(short_limits(), std::time::Duration::from_secs(1)).await;
    let auth = "Authorization: Bearer test-admin-token\r\n";
    for (path, auth) in [("/mutate", ""), ("/api/v1/registries", auth)] {
        let mut stream = tls_connect(&server).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"a\":"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.flush().await.expect("flush");
        // The rest never comes. A bound far above the 1 s deadline.
        let (answer, closed) =
            read_until_closed(&mut stream, std::time::Duration::from_secs(15)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(text.contains("request_timeout"), "{path}: {text}");
        assert!(closed, "{path}: the connection is closed after the answer");
    }
}

#[tokio::test]
async fn the_admin_listener_bounds_headers_and_idle_connections() {
    use tokio::io::AsyncWriteExt;
    let server =
        TestServer::start_with_limits(short_limits(), std::time::Duration::from_secs(1)).await;
    let bound = std::time::Duration::from_secs(15);

    // Headers that never finish.
    let mut partial = tokio::net::TcpStream::connect(server.admin_addr())
        .await
        .expect("connect");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let (_, closed) = read_until_closed(&mut partial, bound).await;
    assert!(closed, "a connection with unfinished headers is closed");

    // A connection that sends nothing at all.
    let mut silent = tokio::net::TcpStream::connect(server.admin_addr())
        .await
        .expect("connect");
    let (answer, closed) = read_until_closed(&mut silent, bound).await;
    assert!(closed && answer.is_empty(), "an idle connection is closed");

    // A keep-alive connection after one request.
    let mut kept = tokio::net::TcpStream::connect(server.admin_addr())
        .await
        .expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (answer, closed) = read_until_closed(&mut kept, bound).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(closed, "an idle keep-alive connection is closed");

    // The HTTPS listener too: a client that connects and never speaks.
    let mut quiet = tls_connect(&server).await;
    let (_, closed) = read_until_closed(&mut quiet, bound).await;
    assert!(closed, "an idle HTTPS connection is closed");
}

/// A TCP connection to the HTTPS listener from `source` (a loopback
/// address of its own, so the server sees another peer).
async fn connect_from(server: &TestServer, source: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("addr"))
        .expect("bind to a loopback address");
    socket.connect(server.addr()).await.expect("connect")
}

/// What an HTTPS `GET /openapi.json` on a fresh connection from 127.0.0.1
/// gets: a status, or none when the connection is refused.
async fn fresh_request(server: &TestServer) -> Option<u16> {
    use tokio::io::AsyncWriteExt;
    // A refused connection fails the handshake.
    let mut stream = try_tls_connect(server).await.ok()?;
    stream
        .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let (answer, _) = read_until_closed(&mut stream, std::time::Duration::from_secs(10)).await;
    String::from_utf8_lossy(&answer)
        .get(9..12)
        .and_then(|s| s.parse().ok())
}

#[tokio::test]
async fn connections_over_a_cap_are_refused_at_once_and_others_still_served() {
    let server = TestServer::start_with_limits(
        registry_resolver::server::ConnectionLimits {
            max_connections: 4,
            max_connections_per_peer: 2,
            ..registry_resolver::server::ConnectionLimits::default()
        },
        std::time::Duration::from_secs(10),
    )
    .await;
    let ready = || async {
        reqwest::get(server.admin_url("/readyz"))
            .await
            .expect("readyz")
    };
    // One address holds its two slots with connections that never even
    // start a handshake.
    let mut held = vec![
        connect_from(&server, "127.0.0.2").await,
        connect_from(&server, "127.0.0.2").await,
    ];
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A third from that address is closed at once, not queued.
    let mut third = connect_from(&server, "127.0.0.2").await;
    let (_, closed) = read_until_closed(&mut third, std::time::Duration::from_secs(2)).await;
    assert!(closed, "over the per-peer cap: closed at once");
    // Everyone else is still served.
    assert_eq!(fresh_request(&server).await, Some(200));
    assert_eq!(ready().await.status(), 200);

    // A second address fills the listener.
    held.push(connect_from(&server, "127.0.0.3").await);
    held.push(connect_from(&server, "127.0.0.3").await);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let answer = ready().await;
    assert_eq!(answer.status(), 503, "not ready while every slot is held");
    assert!(
        answer
            .text()
            .await
            .expect("body")
            .contains("connection limit"),
        "readiness says why"
    );
    assert_eq!(fresh_request(&server).await, None, "over the total cap");
    let text = metrics(&server).await;
    for series in [
        "registry_resolver_connections_refused_total{listener=\"https\",reason=\"peer_limit\"} 1",
        "registry_resolver_connections_refused_total{listener=\"https\",reason=\"total_limit\"} 1",
        "registry_resolver_connections_open{listener=\"https\"} 4",
    ] {
        assert!(text.contains(series), "{series} in\n{text}");
    }

    // Slots free as connections close: served and ready again.
    held.truncate(2);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(ready().await.status(), 200);
    assert_eq!(fresh_request(&server).await, Some(200));
}

#[tokio::test]
async fn a_connection_that_never_handshakes_is_closed_at_the_deadline() {
    let server = TestServer::start_with_limits(
        registry_resolver::server::ConnectionLimits {
            handshake_timeout: std::time::Duration::from_millis(300),
            ..registry_resolver::server::ConnectionLimits::default()
        },
        std::time::Duration::from_secs(10),
    )
    .await;
    let mut silent = connect_from(&server, "127.0.0.2").await;
    let started = std::time::Instant::now();
    let (answer, closed) = read_until_closed(&mut silent, std::time::Duration::from_secs(10)).await;
    assert!(closed && answer.is_empty(), "closed without an answer");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "closed at the handshake deadline, not the header deadline"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_with_the_json_envelope() {
    let server = TestServer::start().await;
    for (method, path, status, code) in [
        (Method::GET, "/nowhere", 404, "not_found"),
        (Method::GET, "/api/v1/nowhere", 404, "not_found"),
        (
            Method::DELETE,
            "/api/v1/registries:verify",
            405,
            "method_not_allowed",
        ),
        (Method::PUT, "/mutate", 405, "method_not_allowed"),
    ] {
        let response = server
            .client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), status, "{method} {path}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
    }
    let admin = reqwest::Client::new()
        .post(server.admin_url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(admin.status(), 405);
    let body: Value = admin.json().await.expect("a JSON body");
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
