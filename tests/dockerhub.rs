//! `browse: dockerhub`: repository search through Docker Hub's search API
//! for a record of Docker Hub or a mirror of it (Hub serves no catalog);
//! tags from the record's own server. Docker Hub cannot be reached here:
//! the search runs against a double of `GET /v2/search/repositories/`
//! (`query`, `page`, `page_size`; `count`, `next`, `results[].repo_name`,
//! official images named without `library/`), and the mirror is the real
//! Distribution registry.

mod common;
mod distribution;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::routing::get;
use common::{Setup, TestServer};
use distribution::{Distribution, Mode};
use reqwest::Method;
use serde_json::{Value, json};

async fn hub_double() -> (String, Arc<Mutex<Vec<HashMap<String, String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let app = axum::Router::new().route(
        "/v2/search/repositories/",
        get(move |Query(query): Query<HashMap<String, String>>| {
            let recorded = recorded.clone();
            async move {
                recorded.lock().expect("lock").push(query.clone());
                let all = ["nginx", "bitnami/nginx", "nginxinc/nginx-unprivileged", "redis"];
                let wanted = query.get("query").cloned().unwrap_or_default();
                let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let results: Vec<Value> = all
                    .iter()
                    .filter(|name| name.contains(&wanted))
                    .map(|name| json!({"repo_name": name, "short_description": "", "star_count": 1, "is_official": !name.contains('/')}))
                    .collect();
                // Two pages: the first says there is a next one.
                let (page_results, next) = if page == 1 {
                    (results.iter().take(2).cloned().collect::<Vec<_>>(), Some("https://hub.example/next"))
                } else {
                    (results.iter().skip(2).cloned().collect(), None)
                };
                axum::Json(json!({"count": results.len(), "next": next, "previous": null, "results": page_results}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

async fn get_json(server: &TestServer, path: &str) -> (u16, Value) {
    server.call(Method::GET, path, None).await
}

#[tokio::test]
async fn a_docker_hub_mirror_searches_hub_and_lists_tags_from_the_mirror() {
    let (hub, seen) = hub_double().await;
    let mirror = Distribution::start(Mode::Open).await;
    mirror.push_image("library/nginx", "1.27").await;
    let server = TestServer::start_setup(Setup {
        dockerhub_url: hub,
        ..Setup::default()
    })
    .await;
    let response = server
        .api(Method::POST, "/registries")
        .json(&json!({"name": "hub-mirror", "server": mirror.server(), "namespaces": ["team-a"], "browse": "dockerhub"}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);

    let (status, found) = get_json(&server, "/registries/hub-mirror/repositories?q=nginx").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["items"],
        json!([
            "bitnami/nginx",
            "library/nginx",
            "nginxinc/nginx-unprivileged"
        ]),
        "official images as library/…, both pages read"
    );
    assert_eq!(found["source"], "dockerhub");
    let queries = seen.lock().expect("lock").clone();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert_eq!(queries[0].get("query").map(String::as_str), Some("nginx"));
    assert_eq!(queries[1].get("page").map(String::as_str), Some("2"));
    assert_eq!(queries[0].get("page_size").map(String::as_str), Some("100"));

    // Nothing typed yet: nothing to search, and Hub is not asked.
    let (status, empty) = get_json(&server, "/registries/hub-mirror/repositories").await;
    assert_eq!(status, 200);
    assert_eq!(empty["items"], json!([]));
    assert_eq!(seen.lock().expect("lock").len(), 2);

    // Tags come from the mirror itself.
    let (status, tags) = get_json(
        &server,
        "/registries/hub-mirror/repositories/library/nginx/tags",
    )
    .await;
    assert_eq!(status, 200, "{tags}");
    assert_eq!(tags["items"], json!(["1.27"]));
    assert_eq!(
        mirror.requests_matching("GET /v2/_catalog"),
        0,
        "no catalog asked"
    );
}
