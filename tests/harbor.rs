//! Browsing a Harbor through its own API. Harbor cannot run here, so these
//! tests run against a small double that answers exactly the calls we make
//! as Harbor's `api/v2.0/swagger.yaml` describes them: `systeminfo` for
//! anyone, repositories of a project or of every project the account sees
//! (`q=name=~…`, `page`, `page_size` up to 100), and a repository's
//! artifacts with tags and push times, the repository name URL-encoded twice
//! when it has a `/`. Robot accounts get 401 on `/v2/_catalog`, as on a real
//! Harbor; a pull-only robot gets 403 on the API.
//!
//! Against a real Harbor: `HARBOR_URL=https://harbor.example.com/library
//! HARBOR_USER='robot$ci' HARBOR_PASSWORD=… cargo test --test harbor -- --ignored`.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

const ROBOT: &str = "robot$ci";
const PULL_ONLY: &str = "robot$pull";
const PASSWORD: &str = "Harbor-Robot-Pw-1";

#[derive(Clone, Default)]
struct Double {
    /// Every request's path and query, as sent.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Double {
    fn saw(&self, needle: &str) -> bool {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .any(|uri| uri.contains(needle))
    }
}

/// Which robot sent the request, if its password is right.
fn robot(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.strip_prefix("Basic ")?)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    [ROBOT, PULL_ONLY]
        .into_iter()
        .find(|user| decoded == format!("{user}:{PASSWORD}"))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"harbor\"")],
        axum::Json(json!({"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized"}]})),
    )
        .into_response()
}

/// Every repository, by project.
fn repositories() -> Vec<String> {
    let mut all: Vec<String> = [
        "library/nginx",
        "library/redis",
        "library/team/app",
        "tools/helm",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend((0..150).map(|i| format!("library/gen-{i:03}")));
    all
}

/// Harbor's paging and fuzzy name filter over `names`.
fn paged(names: Vec<String>, query: &HashMap<String, String>) -> Response {
    let size: usize = query
        .get("page_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let page: usize = query.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    if size > 100 || page == 0 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"errors": []})),
        )
            .into_response();
    }
    let filtered: Vec<String> = match query.get("q") {
        Some(q) => match q.strip_prefix("name=~") {
            Some(fragment) => names.into_iter().filter(|n| n.contains(fragment)).collect(),
            None => {
                return (StatusCode::BAD_REQUEST, axum::Json(json!({"errors": []})))
                    .into_response();
            }
        },
        None => names,
    };
    let total = filtered.len();
    let items: Vec<Value> = filtered
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|name| json!({"name": name, "artifact_count": 1, "project_id": 1}))
        .collect();
    ([("x-total-count", total.to_string())], axum::Json(items)).into_response()
}

fn app(double: Double) -> axum::Router {
    axum::Router::new()
        .route(
            "/v2/",
            get(|headers: HeaderMap| async move {
                match robot(&headers) {
                    Some(_) => ([("docker-distribution-api-version", "registry/2.0")], "{}").into_response(),
                    None => unauthorized(),
                }
            }),
        )
        // Robot accounts may not list the catalog (goharbor/harbor #6784).
        .route("/v2/_catalog", get(|| async { unauthorized() }))
        .route(
            "/v2/{*rest}",
            get(|Path(rest): Path<String>, headers: HeaderMap| async move {
                if robot(&headers).is_none() {
                    return unauthorized();
                }
                match rest.strip_suffix("/tags/list") {
                    Some("library/nginx") => axum::Json(json!({"name": "library/nginx", "tags": ["1.25", "1.27"]})).into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/api/v2.0/systeminfo",
            get(|| async { axum::Json(json!({"auth_mode": "db_auth", "banner_message": "", "current_time": "2026-11-30T00:00:00Z"})) }),
        )
        .route(
            "/api/v2.0/repositories",
            get(|headers: HeaderMap, Query(query): Query<HashMap<String, String>>| async move {
                match robot(&headers) {
                    Some(ROBOT) => paged(repositories(), &query),
                    Some(_) => StatusCode::FORBIDDEN.into_response(),
                    None => unauthorized(),
                }
            }),
        )
        .route(
            "/api/v2.0/projects/{project}/repositories",
            get(|Path(project): Path<String>, headers: HeaderMap, Query(query): Query<HashMap<String, String>>| async move {
                match robot(&headers) {
                    Some(ROBOT) => {
                        let names = repositories()
                            .into_iter()
                            .filter(|n| n.starts_with(&format!("{project}/")))
                            .collect();
                        paged(names, &query)
                    }
                    Some(_) => StatusCode::FORBIDDEN.into_response(),
                    None => unauthorized(),
                }
            }),
        )
        .route(
            "/api/v2.0/projects/{project}/repositories/{repository}/artifacts",
            get(|Path((project, repository)): Path<(String, String)>, headers: HeaderMap| async move {
                match robot(&headers) {
                    Some(ROBOT) => {}
                    Some(_) => return StatusCode::FORBIDDEN.into_response(),
                    None => return unauthorized(),
                }
                // The router decoded once; a name with `/` must still be
                // encoded (`team%2Fapp`), or Harbor finds no such repository.
                if repository.contains('/') {
                    return StatusCode::NOT_FOUND.into_response();
                }
                let name = format!("{project}/{}", repository.replace("%2F", "/"));
                // 1.9.1 is a hotfix pushed after 1.10.0: newest by push time
                // is not newest by version.
                let artifacts = match name.as_str() {
                    "library/team/app" => json!([
                        {"digest": "sha256:aa", "push_time": "2026-03-01T00:00:00Z",
                         "tags": [{"name": "1.9.1", "push_time": "2026-03-01T00:00:00Z"}]},
                        {"digest": "sha256:bb", "push_time": "2026-02-01T00:00:00Z",
                         "tags": [{"name": "1.10.0", "push_time": "2026-02-01T00:00:00Z"},
                                  {"name": "latest", "push_time": "2026-02-01T00:00:00Z"}]},
                        {"digest": "sha256:cc", "push_time": "2026-01-01T00:00:00Z",
                         "tags": [{"name": "1.9.0", "push_time": "2026-01-01T00:00:00Z"}]},
                        {"digest": "sha256:dd", "push_time": "2025-12-01T00:00:00Z", "tags": null}
                    ]),
                    _ => return StatusCode::NOT_FOUND.into_response(),
                };
                axum::Json(artifacts).into_response()
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            double,
            |State(d): State<Double>, request: axum::extract::Request, next: axum::middleware::Next| async move {
                d.seen.lock().expect("lock").push(request.uri().to_string());
                next.run(request).await
            },
        ))
}

async fn start_double() -> (SocketAddr, Double) {
    let double = Double::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = app(double.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, double)
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    server.call(method, path, body.as_ref()).await
}

async fn add(server: &TestServer, name: &str, address: &str, user: &str) {
    let (status, answer) = call(
        server,
        Method::POST,
        "/registries",
        Some(json!({"name": name, "server": address, "username": user, "password": PASSWORD, "namespaces": ["team-a"]})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn a_project_robot_lists_its_project_through_harbors_api() {
    let (harbor, double) = start_double().await;
    let server = TestServer::start().await;
    add(
        &server,
        "harbor",
        &format!("http://{harbor}/library"),
        ROBOT,
    )
    .await;

    // 153 repositories in `library`, over two Harbor pages of 100.
    let (status, first) = call(
        &server,
        Method::GET,
        "/registries/harbor/repositories",
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let items = first["items"].as_array().expect("items");
    assert_eq!(items.len(), 100);
    assert_eq!(
        items[0], "gen-000",
        "relative to the record's project, sorted"
    );
    assert!(double.saw("/api/v2.0/systeminfo"), "Harbor was detected");
    assert_eq!(first["source"], "harbor", "auto found a Harbor");
    assert!(double.saw("/api/v2.0/projects/library/repositories?page=2&page_size=100"));
    let next = first["metadata"]["continue"].as_str().expect("a next page");
    let (_, second) = call(
        &server,
        Method::GET,
        &format!("/registries/harbor/repositories?continue={next}"),
        None,
    )
    .await;
    let rest: Vec<&str> = second["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rest.len(), 53);
    assert!(rest.contains(&"nginx") && rest.contains(&"team/app") && !rest.contains(&"tools/helm"));

    // Harbor filters by name.
    let (status, found) = call(
        &server,
        Method::GET,
        "/registries/harbor/repositories?q=red",
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"], json!(["redis"]));
    assert!(
        double.saw("q=name%3D%7Ered"),
        "{:?}",
        double.seen.lock().expect("lock")
    );

    // Tags by push time, the nested name encoded twice.
    let (status, tags) = call(
        &server,
        Method::GET,
        "/registries/harbor/repositories/team/app/tags",
        None,
    )
    .await;
    assert_eq!(status, 200, "{tags}");
    assert_eq!(tags["items"], json!(["1.9.1", "1.10.0", "latest", "1.9.0"]));
    assert!(double.saw("/api/v2.0/projects/library/repositories/team%252Fapp/artifacts?with_tag=true&page=1&page_size=100"));
    assert!(!double.saw("/v2/_catalog"), "the catalog was never asked");
}

#[tokio::test]
async fn without_a_project_every_visible_repository_is_listed() {
    let (harbor, double) = start_double().await;
    let server = TestServer::start().await;
    add(&server, "harbor", &format!("http://{harbor}"), ROBOT).await;
    let (status, found) = call(
        &server,
        Method::GET,
        "/registries/harbor/repositories?q=l&limit=1000",
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let items: Vec<&str> = found["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        items.contains(&"tools/helm") && items.contains(&"library/nginx"),
        "{items:?}"
    );
    assert!(double.saw("/api/v2.0/repositories?q=name%3D%7El&page=1&page_size=100"));
}

#[tokio::test]
async fn a_pull_only_robot_gets_a_path_field_and_tags_from_the_registry_api() {
    let (harbor, double) = start_double().await;
    let server = TestServer::start().await;
    add(
        &server,
        "pull",
        &format!("http://{harbor}/library"),
        PULL_ONLY,
    )
    .await;
    let (status, answer) = call(&server, Method::GET, "/registries/pull/repositories", None).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "browse_unsupported", "{answer}");
    let (status, tags) = call(
        &server,
        Method::GET,
        "/registries/pull/repositories/nginx/tags",
        None,
    )
    .await;
    assert_eq!(status, 200, "{tags}");
    assert_eq!(tags["items"], json!(["1.27", "1.25"]));
    assert!(
        double.saw("/v2/library/nginx/tags/list"),
        "fell back to the registry API"
    );
}

#[tokio::test]
async fn browse_catalog_skips_harbor_detection() {
    let (harbor, double) = start_double().await;
    let server = TestServer::start().await;
    let (status, answer) = call(
        &server,
        Method::POST,
        "/registries",
        Some(
            json!({"name": "plain", "server": format!("http://{harbor}/library"), "username": ROBOT,
                    "password": PASSWORD, "namespaces": ["team-a"], "browse": "catalog"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let _ = call(&server, Method::GET, "/registries/plain/repositories", None).await;
    assert!(
        !double.saw("/api/v2.0/"),
        "no Harbor API call with browse: catalog"
    );
    assert!(double.saw("/v2/_catalog"));
}

/// A real Harbor, when one is reachable: HARBOR_URL (with the project as
/// path, e.g. https://harbor.example.com/library), HARBOR_USER,
/// HARBOR_PASSWORD, and HARBOR_CA (a PEM file) for a private CA.
#[tokio::test]
#[ignore = "needs a real Harbor: set HARBOR_URL, HARBOR_USER, HARBOR_PASSWORD"]
async fn a_real_harbor() {
    let (Ok(url), Ok(user), Ok(password)) = (
        std::env::var("HARBOR_URL"),
        std::env::var("HARBOR_USER"),
        std::env::var("HARBOR_PASSWORD"),
    ) else {
        panic!("set HARBOR_URL, HARBOR_USER and HARBOR_PASSWORD");
    };
    let server = TestServer::start().await;
    let mut body = json!({"name": "real", "server": url, "username": user, "password": password, "namespaces": ["team-a"]});
    if let Ok(ca) = std::env::var("HARBOR_CA") {
        body["tls"] = json!({"caBundle": std::fs::read_to_string(ca).expect("HARBOR_CA readable")});
    }
    let (status, answer) = call(&server, Method::POST, "/registries", Some(body)).await;
    assert_eq!(status, 201, "the login check: {answer}");
    let (status, listed) = call(&server, Method::GET, "/registries/real/repositories", None).await;
    assert!(
        status == 200 || listed["error"]["code"] == "browse_unsupported",
        "{status} {listed}"
    );
    if let Some(first) = listed["items"].get(0).and_then(Value::as_str) {
        let (status, tags) = call(
            &server,
            Method::GET,
            &format!("/registries/real/repositories/{first}/tags"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{tags}");
    }
}
