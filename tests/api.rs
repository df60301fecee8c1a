//! The REST API over real HTTPS: CRUD, every error status, auth, limits.

mod common;
mod distribution;

use common::{Backend, TOKEN, TestServer};

/// The same tests against both stores: the embedded SQLite store and the
/// Kubernetes store (on the in-memory API server, controller running).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test]
            async fn embedded() {
                super::$name(Backend::Embedded).await
            }
            #[tokio::test]
            async fn kubernetes() {
                super::$name(Backend::Kubernetes).await
            }
        }
    )*};
}

on_both_stores!(
    dry_runs_answer_as_the_write_would_and_change_nothing,
    create_get_list_replace_patch_delete,
    conflicts_and_validation_errors,
    stored_password_is_never_sent_to_a_new_address,
    batch_delete_and_namespace_views,
    lists_page_with_limit_and_continue,
    namespace_patterns_and_default_precedence,
    authentication_is_required_and_passwords_never_returned,
    openapi_document_describes_every_endpoint,
    health_readiness_and_metrics,
    writers_of_different_fields_both_win,
    if_match_makes_read_modify_write_safe,
    every_change_is_in_the_audit_trail_once_without_secrets,
);
use reqwest::Method;
use serde_json::{Value, json};

fn demo() -> Value {
    json!({
        "name": "demo",
        "server": "dockerhub.qingcloud.com",
        "username": "robot",
        "password": "s3cret-pw",
        "description": "QingCloud mirror",
        "namespaces": ["team-a", "team-b"],
        "defaultFor": ["team-a"]
    })
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.api(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is JSON: {text}"))
    };
    (status, body)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error body: {body}"))
}

async fn create_get_list_replace_patch_delete(backend: Backend) {
    let server = TestServer::start_on(backend).await;

    let created = server.create_registry(demo()).await;
    assert_eq!(created["name"], "demo");
    assert_eq!(
        created["server"], "https://dockerhub.qingcloud.com",
        "normalized with scheme"
    );
    assert_eq!(created["hasPassword"], true);
    assert_eq!(created["pullSecretName"], "demo", "defaults to the name");
    assert_eq!(created["status"]["verified"], false);
    assert!(created.get("password").is_none(), "password is write-only");
    assert!(
        created["createdAt"]
            .as_str()
            .is_some_and(|t| t.contains('T'))
    );

    let (status, got) = send(&server, Method::GET, "/registries/demo", None).await;
    assert_eq!(status, 200);
    // In Kubernetes mode the controller replicates the pull Secrets on its
    // own meanwhile: that progress may differ (and with its status writes,
    // the version), nothing else.
    let record = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().map(|o| o.remove("pullSecrets"));
        if backend == Backend::Kubernetes {
            v.as_object_mut().map(|o| o.remove("version"));
        }
        v
    };
    assert_eq!(record(&got), record(&created));
    assert_eq!(got["namespaces"], json!(["team-a", "team-b"]));

    server
        .create_registry(
            json!({"name": "public", "server": "http://127.0.0.1:5000", "namespaces": ["team-b"]}),
        )
        .await;
    let (_, list) = send(&server, Method::GET, "/registries", None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["demo", "public"]);
    let (_, filtered) = send(&server, Method::GET, "/registries?namespace=team-a", None).await;
    assert_eq!(filtered["items"].as_array().map(Vec::len), Some(1));

    // PUT without a password keeps the stored one (same server).
    let mut replacement = demo();
    replacement
        .as_object_mut()
        .expect("object")
        .remove("password");
    replacement["description"] = json!("changed");
    let (status, replaced) = send(
        &server,
        Method::PUT,
        "/registries/demo?verify=false",
        Some(replacement),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["description"], "changed");
    assert_eq!(replaced["hasPassword"], true);
    assert_eq!(replaced["createdAt"], created["createdAt"]);

    // A client may PUT back what it read (read-only fields are ignored).
    let (status, _) = send(
        &server,
        Method::PUT,
        "/registries/demo?verify=false",
        Some(replaced.clone()),
    )
    .await;
    assert_eq!(status, 200);

    // Merge patch.
    let response = server
        .api(Method::PATCH, "/registries/demo?verify=false")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"namespaces":["team-a","team-c"],"description":null}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.expect("json");
    assert_eq!(patched["namespaces"], json!(["team-a", "team-c"]));
    assert!(patched.get("description").is_none());
    assert_eq!(patched["hasPassword"], true);

    let (status, _) = send(&server, Method::DELETE, "/registries/demo", None).await;
    assert_eq!(status, 204);
    let (status, body) = send(&server, Method::GET, "/registries/demo", None).await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");
    let (status, _) = send(&server, Method::DELETE, "/registries/demo", None).await;
    assert_eq!(status, 404);
}

async fn conflicts_and_validation_errors(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server.create_registry(demo()).await;

    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(demo()),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "already_exists"));

    // A second default for team-a names the registry holding it.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "other", "server": "r.example", "namespaces": ["team-a"], "defaultFor": ["team-a"]})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "default_conflict"));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"demo\"") && message.contains("team-a"),
        "{message}"
    );

    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "Bad_Name", "server": "ftp://x", "namespaces": []})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"));
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fields, ["name", "server", "namespaces"]);
    assert_eq!(body["error"]["field"], "name");

    // A label selector: checked as the API server checks one, by field;
    // an empty one (every namespace) is refused.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "sel", "server": "r.example", "namespaceSelector": {},
                    "defaultForSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        fields,
        [
            "namespaceSelector",
            "defaultForSelector.matchExpressions[0].values"
        ]
    );
    // A valid one: namespaces have labels only in a cluster.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "sel", "server": "r.example",
                    "namespaceSelector": {"matchLabels": {"kubesphere.io/workspace": "ws1"}}})),
    )
    .await;
    match backend {
        Backend::Embedded => {
            assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
            assert_eq!(body["error"]["field"], "namespaceSelector");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Kubernetes mode")),
                "{body}"
            );
        }
        Backend::Kubernetes => {
            assert_eq!(status, 201, "{body}");
            assert_eq!(
                body["namespaceSelector"],
                json!({"matchLabels": {"kubesphere.io/workspace": "ws1"}})
            );
            // The answer says it in the short form too.
            assert_eq!(body["namespaceSelectorText"], "kubesphere.io/workspace=ws1");
            assert!(body.get("defaultForSelectorText").is_none(), "{body}");
        }
    }
    // The short form `kubectl -l` takes is read by the server (the one
    // parser), stored structured, and checked as the structured form is.
    let short = "kubesphere.io/workspace in (ws1,ws2),!legacy";
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "sel-short", "server": "r.example",
                    "namespaceSelector": short, "defaultForSelector": "team=a"})),
    )
    .await;
    match backend {
        Backend::Embedded => assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}"),
        Backend::Kubernetes => {
            assert_eq!(status, 201, "{body}");
            assert_eq!(
                body["namespaceSelector"],
                json!({"matchExpressions": [
                    {"key": "kubesphere.io/workspace", "operator": "In", "values": ["ws1", "ws2"]},
                    {"key": "legacy", "operator": "DoesNotExist"}]})
            );
            assert_eq!(
                body["defaultForSelector"],
                json!({"matchLabels": {"team": "a"}})
            );
            assert_eq!(body["namespaceSelectorText"], short);
            assert_eq!(body["defaultForSelectorText"], "team=a");
            // What was read can be sent back as it is.
            let (status, again) = send(
                &server,
                Method::PUT,
                "/registries/sel-short",
                Some(body.clone()),
            )
            .await;
            assert_eq!(status, 200, "{again}");
            assert_eq!(again["namespaceSelector"], body["namespaceSelector"]);
        }
    }
    // Mirror entries: each problem at its entry's field, with its kind.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "mirror", "server": "r.example", "namespaces": ["team-a"],
                    "mirrorOf": [{"upstream": "docker.io"}, {"upstream": "registry-1.docker.io"},
                                 {"upstream": "quay.io/org"},
                                 {"upstream": "ghcr.io", "pathPrefix": "Proxy", "excludes": ["*"]}]})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
    let details: Vec<(&str, &str)> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap_or(""),
                d["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        details,
        [
            ("mirrorOf[1].upstream", "duplicate"),
            ("mirrorOf[2].upstream", "invalid_server"),
            ("mirrorOf[3].pathPrefix", "invalid_path"),
            ("mirrorOf[3].excludes[0]", "invalid_path"),
        ],
        "{body}"
    );
    // A registry cannot mirror its own address.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(
            json!({"name": "mirror", "server": "r.example", "namespaces": ["team-a"],
                    "mirrorOf": [{"upstream": "r.example"}]}),
        ),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
    assert_eq!(body["error"]["field"], "mirrorOf[0].upstream", "{body}");
    for (selector, field, says) in [
        (
            "team in (a",
            "namespaceSelector",
            "expected \",\" or \")\" at character 11",
        ),
        ("Team Name=a", "namespaceSelector", "at character 6"),
        (
            "-team=a",
            "namespaceSelector.matchLabels.-team",
            "label key",
        ),
    ] {
        let (status, body) = send(
            &server,
            Method::POST,
            "/registries?verify=false",
            Some(json!({"name": "sel-bad", "server": "r.example", "namespaceSelector": selector})),
        )
        .await;
        assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
        let detail = &body["error"]["details"][0];
        assert_eq!(detail["field"], field, "{body}");
        assert_eq!(detail["reason"], "invalid_selector", "{body}");
        assert!(
            detail["message"].as_str().is_some_and(|m| m.contains(says)),
            "{selector:?}: {body}"
        );
    }

    // Wrong type names the field.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "x", "server": "r", "namespaces": "team-a"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"));
    assert_eq!(body["error"]["field"], "namespaces");

    // Unknown field (a typo) names the field.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "x", "server": "r", "namespace": ["a"]})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"));
    assert_eq!(body["error"]["field"], "namespace");

    // At any depth, in every body: a misspelt TLS switch is an error, not a
    // record saved without the setting its writer meant.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "x", "server": "r", "namespaces": ["a"],
            "tls": {"insecureSkipVerfy": true}})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
    assert_eq!(body["error"]["field"], "tls.insecureSkipVerfy");
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries:batchDelete",
        Some(json!({"names": ["x"], "force": true})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
    assert_eq!(body["error"]["field"], "force");

    // Not JSON at all.
    let response = server
        .api(Method::POST, "/registries?verify=false")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "bad_request");

    // Wrong content type.
    let response = server
        .api(Method::POST, "/registries?verify=false")
        .header("content-type", "text/plain")
        .body(demo().to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 415);

    // Too large.
    let huge = json!({"name": "big", "server": "r", "namespaces": ["a"], "description": "x".repeat(2 * 1024 * 1024)});
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(huge),
    )
    .await;
    assert_eq!((status, error_code(&body)), (413, "payload_too_large"));

    // PUT that renames, PUT of a missing record.
    let (status, body) = send(
        &server,
        Method::PUT,
        "/registries/demo?verify=false",
        Some(json!({"name": "renamed", "server": "r", "namespaces": ["a"]})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"));
    assert_eq!(body["error"]["field"], "name");
    let (status, _) = send(
        &server,
        Method::PUT,
        "/registries/ghost?verify=false",
        Some(json!({"server": "r", "namespaces": ["a"]})),
    )
    .await;
    assert_eq!(status, 404);
    let response = server
        .api(Method::PATCH, "/registries/ghost?verify=false")
        .header("content-type", "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
}

async fn stored_password_is_never_sent_to_a_new_address(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server.create_registry(demo()).await;
    let mut moved = demo();
    moved.as_object_mut().expect("object").remove("password");
    moved["server"] = json!("https://evil.example.com");
    let (status, body) = send(
        &server,
        Method::PUT,
        "/registries/demo?verify=false",
        Some(moved.clone()),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "password_required"));
    assert_eq!(body["error"]["field"], "password");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("server changed")
    );

    // The same through a merge patch.
    let response = server
        .api(Method::PATCH, "/registries/demo?verify=false")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"server":"https://evil.example.com"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 422);

    // A new trust setting is a new address for the password too.
    for (tls, what) in [
        (
            json!({"insecureSkipVerify": true}),
            "tls.insecureSkipVerify",
        ),
        (
            json!({"caBundle": std::fs::read_to_string(
                common::generate_certs(&server.dir.path().join("other-ca")).ca_cert,
            )
            .expect("a CA")}),
            "tls.caBundle",
        ),
    ] {
        let response = server
            .api(Method::PATCH, "/registries/demo?verify=false")
            .header("content-type", "application/merge-patch+json")
            .body(json!({ "tls": tls }).to_string())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 422, "{what}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["field"], "password", "{what}");
        assert_eq!(error_code(&body), "password_required", "{what}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("{what} changed")),
            "{body}"
        );
    }

    // With the password given again, the move is accepted.
    moved["password"] = json!("new-pw");
    let (status, body) = send(
        &server,
        Method::PUT,
        "/registries/demo?verify=false",
        Some(moved),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["server"], "https://evil.example.com");

    // Dropping the username drops the credentials.
    let (status, body) = send(
        &server,
        Method::PUT,
        "/registries/demo?verify=false",
        Some(json!({"server": "https://evil.example.com", "namespaces": ["team-a"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["hasPassword"], false);
    assert!(body.get("username").is_none());
}

fn item_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|r| r["name"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Follows `metadata.continue` from `first` to the last page.
async fn every_page(server: &TestServer, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut path = first.to_owned();
    loop {
        let (status, list) = send(server, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {list}");
        pages.push(item_names(&list));
        match list["metadata"]["continue"].as_str() {
            Some(token) => path = format!("{first}&continue={token}"),
            None => {
                assert_eq!(list["metadata"]["remainingItemCount"], 0, "{list}");
                return pages;
            }
        }
    }
}

async fn lists_page_with_limit_and_continue(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    for i in 0..7 {
        let namespaces = if i % 2 == 0 {
            json!(["even", "all"])
        } else {
            json!(["all"])
        };
        server
            .create_registry(json!({"name": format!("reg-{i}"), "server": format!("host{}.example", i % 3), "namespaces": namespaces}))
            .await;
    }
    // By name, three at a time: every record once, in order.
    let pages = every_page(&server, "/registries?limit=3").await;
    assert_eq!(
        pages,
        [
            vec!["reg-0", "reg-1", "reg-2"],
            vec!["reg-3", "reg-4", "reg-5"],
            vec!["reg-6"]
        ]
    );
    let (_, first) = send(&server, Method::GET, "/registries?limit=3", None).await;
    assert_eq!(first["metadata"]["remainingItemCount"], 4);

    // Filtered by namespace and by text, ordered by another column, backwards.
    let pages = every_page(&server, "/registries?namespace=even&limit=3").await;
    assert_eq!(pages.concat(), ["reg-0", "reg-2", "reg-4", "reg-6"]);
    let pages = every_page(&server, "/registries?q=HOST1&limit=1").await;
    assert_eq!(pages.concat(), ["reg-1", "reg-4"]);
    let pages = every_page(&server, "/registries?sort=server&order=desc&limit=2").await;
    assert_eq!(
        pages.concat(),
        [
            "reg-5", "reg-2", "reg-4", "reg-1", "reg-6", "reg-3", "reg-0"
        ]
    );

    // A record deleted before the position does not shift the next page.
    let (_, first) = send(&server, Method::GET, "/registries?limit=3", None).await;
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("more")
        .to_owned();
    let (status, _) = send(&server, Method::DELETE, "/registries/reg-1", None).await;
    assert_eq!(status, 204);
    let (_, next) = send(
        &server,
        Method::GET,
        &format!("/registries?limit=3&continue={token}"),
        None,
    )
    .await;
    assert_eq!(item_names(&next), ["reg-3", "reg-4", "reg-5"]);

    // Bad paging input names the parameter.
    for (path, field) in [
        ("/registries?limit=0", "limit"),
        ("/registries?limit=1001", "limit"),
        ("/registries?continue=not-a-token", "continue"),
        (
            &*format!("/registries?sort=server&continue={token}"),
            "continue",
        ),
    ] {
        let (status, body) = send(&server, Method::GET, path, None).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some(field)),
            "{path}: {body}"
        );
    }
    let (status, body) = send(&server, Method::GET, "/registries?sort=color", None).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(&server, Method::GET, "/registries?page=2", None).await;
    assert_eq!(status, 422, "unknown parameters are refused: {body}");
}

async fn namespace_patterns_and_default_precedence(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server
        .create_registry(json!({"name": "everyone", "server": "e.example", "namespaces": ["*"], "defaultFor": ["*"]}))
        .await;
    // A longer pattern overlapping `*`: allowed, and the writer is told who
    // wins where.
    let response = server
        .api(Method::POST, "/registries?verify=false")
        .json(&json!({"name": "teams", "server": "t.example", "namespaces": ["team-*"], "defaultFor": ["team-*"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let warnings: Vec<String> = response
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("299 - \""), "{warnings:?}");
    assert!(
        warnings[0].contains("everyone") && warnings[0].contains("longer pattern team-*"),
        "{warnings:?}"
    );
    // A name within the pattern, claimed by name.
    server
        .create_registry(json!({"name": "named", "server": "n.example", "namespaces": ["team-a"], "defaultFor": ["team-a"]}))
        .await;

    // The picker says which default applies and why.
    let default_in = |ns: &'static str| {
        let server = &server;
        async move {
            let (status, body) = send(
                server,
                Method::GET,
                &format!("/namespaces/{ns}/registries"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let body = default_in("team-a").await;
    assert_eq!(
        body["default"],
        json!({"registry": "named", "by": "name", "via": "team-a", "outranked": ["teams", "everyone"]})
    );
    assert_eq!(item_names(&body), ["named", "everyone", "teams"]);
    let body = default_in("team-b").await;
    assert_eq!(
        body["default"],
        json!({"registry": "teams", "by": "pattern", "via": "team-*", "outranked": ["everyone"]})
    );
    let body = default_in("prod").await;
    assert_eq!(body["default"]["via"], "*");
    assert_eq!(item_names(&body), ["everyone"]);

    // Resolution follows the same rule.
    for (ns, host) in [
        ("team-a", "n.example"),
        ("team-b", "t.example"),
        ("prod", "e.example"),
    ] {
        let (status, body) = send(
            &server,
            Method::POST,
            &format!("/namespaces/{ns}/resolve"),
            Some(json!({"image": "/app:1"})),
        )
        .await;
        assert_eq!(
            (status, body["image"].as_str()),
            (200, Some(&*format!("{host}/app:1"))),
            "{ns}: {body}"
        );
    }

    // Without a cluster, the names the records list are suggested; a
    // pattern is not a namespace.
    if backend == Backend::Embedded {
        let (status, body) = send(&server, Method::GET, "/namespaces", None).await;
        assert_eq!(
            (status, body["items"].clone()),
            (200, json!(["team-a"])),
            "{body}"
        );
    }

    // The same pattern claimed twice is a conflict, like the same name.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(json!({"name": "again", "server": "a.example", "namespaces": ["team-*"], "defaultFor": ["team-*"]})),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (409, "default_conflict"),
        "{body}"
    );
    // Invalid entries and defaults the namespaces do not reach: 422 naming them.
    for (body, field) in [
        (
            json!({"name": "bad", "server": "b.example", "namespaces": ["team-*-x"]}),
            "namespaces[0]",
        ),
        (
            json!({"name": "bad", "server": "b.example", "namespaces": ["Team*"]}),
            "namespaces[0]",
        ),
        (
            json!({"name": "bad", "server": "b.example", "namespaces": ["team-*"], "defaultFor": ["prod"]}),
            "defaultFor[0]",
        ),
        (
            json!({"name": "bad", "server": "b.example", "namespaces": ["team-a*"], "defaultFor": ["team-*"]}),
            "defaultFor[0]",
        ),
    ] {
        let (status, answer) = send(
            &server,
            Method::POST,
            "/registries?verify=false",
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {answer}"
        );
    }
}

async fn batch_delete_and_namespace_views(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server.create_registry(demo()).await;
    server
        .create_registry(json!({"name": "aaa", "server": "a.example", "namespaces": ["team-a"]}))
        .await;
    server
        .create_registry(json!({"name": "zzz", "server": "z.example", "namespaces": ["team-a", "team-z"], "defaultFor": ["team-z"]}))
        .await;

    // The picker view: default first, then by name.
    let (status, body) = send(&server, Method::GET, "/namespaces/team-a/registries", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["demo", "aaa", "zzz"]);
    let (status, body) = send(
        &server,
        Method::GET,
        "/namespaces/Not_A_Namespace/registries",
        None,
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"));

    // Resolve preview: default, explicit, denials with the webhook's message.
    let (status, body) = send(
        &server,
        Method::POST,
        "/namespaces/team-a/resolve",
        Some(json!({"image": "/mysql/mysql:5.6"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"image": "dockerhub.qingcloud.com/mysql/mysql:5.6", "registry": "demo", "pullSecret": "demo"})
    );
    let (_, body) = send(
        &server,
        Method::POST,
        "/namespaces/team-a/resolve",
        Some(json!({"image": "/x:1", "registry": "aaa"})),
    )
    .await;
    assert_eq!(
        body,
        json!({"image": "a.example/x:1", "registry": "aaa", "pullSecret": null})
    );
    let (_, body) = send(
        &server,
        Method::POST,
        "/namespaces/team-a/resolve",
        Some(json!({"image": "nginx:1"})),
    )
    .await;
    assert_eq!(
        body,
        json!({"image": "nginx:1", "registry": null, "pullSecret": null})
    );
    let (status, body) = send(
        &server,
        Method::POST,
        "/namespaces/team-z/resolve",
        Some(json!({"image": "/x", "registry": "demo"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "resolution_denied"));
    // The reason is one stable word a client can translate by.
    assert_eq!(body["error"]["reason"], "not_authorized", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not authorized for namespace \"team-z\"")
    );
    let (status, body) = send(
        &server,
        Method::POST,
        "/namespaces/team-a/resolve",
        Some(json!({"image": "/MySQL/x"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "resolution_denied"));
    assert_eq!(body["error"]["reason"], "invalid_reference", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must be lowercase")
    );

    let (status, body) = send(
        &server,
        Method::POST,
        "/registries:batchDelete",
        Some(json!({"names": ["aaa", "ghost", "zzz"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"deleted": ["aaa", "zzz"], "notFound": ["ghost"]})
    );
    let (_, list) = send(&server, Method::GET, "/registries", None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

async fn authentication_is_required_and_passwords_never_returned(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let unauthenticated = server
        .client
        .get(server.url("/api/v1/registries"))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        unauthenticated
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let body: Value = unauthenticated.json().await.expect("json");
    assert_eq!(error_code(&body), "unauthorized");
    let wrong = server
        .client
        .get(server.url("/api/v1/registries"))
        .bearer_auth(format!("{TOKEN}x"))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 401);

    server.create_registry(demo()).await;
    for path in [
        "/registries",
        "/registries/demo",
        "/namespaces/team-a/registries",
    ] {
        let text = server
            .api(Method::GET, path)
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("text");
        assert!(
            !text.contains("s3cret-pw"),
            "{path} leaks the password: {text}"
        );
        assert!(
            !text.contains("\"password\""),
            "{path} has a password field"
        );
    }

    // The database holds only ciphertext.
    if backend != Backend::Embedded {
        return;
    }
    let db = std::fs::read(server.dir.path().join("data/registries.db")).expect("db");
    let wal = std::fs::read(server.dir.path().join("data/registries.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(9).any(|w| w == b"s3cret-pw"),
            "password stored in plaintext"
        );
    }
}

/// The served document against the live server, by schemathesis with every
/// check (tests/schemathesis.toml says what is relaxed and why), including
/// the stateful phase that follows the document's links from a create to
/// the operations on the record. Every registry address is refused, so
/// nothing beyond this host is asked. `SCHEMATHESIS_SEED` replays a run.
#[tokio::test]
async fn the_api_holds_its_openapi_contract_under_schemathesis() {
    use registry_resolver::registry::client::AddressPolicy;
    let server = TestServer::start_setup(common::Setup {
        addresses: AddressPolicy {
            deny: vec![
                "0.0.0.0/0".parse().expect("cidr"),
                "::/0".parse().expect("cidr"),
            ],
            ..AddressPolicy::default()
        },
        ..common::Setup::default()
    })
    .await;
    // The document's examples name `demo` and `team-a`: make them real.
    server.create_registry(demo()).await;
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261130".into());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let output = tokio::process::Command::new("python3")
        .args([
            "-m",
            "schemathesis.cli",
            "--no-color",
            "--config-file",
            config,
            "run",
        ])
        .arg(server.url("/openapi.json"))
        .arg("--tls-verify")
        .arg(&server.certs.ca_cert)
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "all", "--max-examples", "40", "--workers", "1"])
        .args(["--seed", &seed])
        .output()
        .await
        .expect("schemathesis runs (installed by the README's test command)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems (seed {seed}):\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("✅ Stateful"),
        "the stateful phase ran and passed: {report}"
    );
}

/// A client generated from the served document (openapi-python-client)
/// lists, creates, replaces, patches and deletes a record.
#[tokio::test]
async fn a_client_generated_from_the_document_manages_records() {
    let server = TestServer::start().await;
    let document = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("document");
    let spec = server.dir.path().join("openapi.json");
    std::fs::write(&spec, document).expect("write");
    let package = server.dir.path().join("client");
    let generated = tokio::process::Command::new("python3")
        .args(["-m", "openapi_python_client", "generate", "--meta", "none"])
        .arg("--path")
        .arg(&spec)
        .arg("--output-path")
        .arg(package.join("generated"))
        .output()
        .await
        .expect("openapi-python-client runs (installed by the README's test command)");
    assert!(
        generated.status.success(),
        "generating the client: {}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/client/generated_client_test.py"
    );
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&package)
        .arg(server.url(""))
        .arg(&server.certs.ca_cert)
        .arg(TOKEN)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "the generated client: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

async fn openapi_document_describes_every_endpoint(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let doc: Value = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    // The document is valid OpenAPI, checked by the validator generators use
    // (installed by the README's test command).
    let file = server.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let validated = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        validated.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().unwrap_or_default();
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: path parameter {name} is not in the path"
                    );
                }
            }
        }
    }
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/registries", &["post", "get"][..]),
        (
            "/api/v1/registries/{name}",
            &["get", "put", "patch", "delete"][..],
        ),
        ("/api/v1/registries:batchDelete", &["post"][..]),
        ("/api/v1/namespaces/{namespace}/registries", &["get"][..]),
        ("/api/v1/namespaces/{namespace}/resolve", &["post"][..]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} missing"
            );
        }
    }
    let registry = &doc["components"]["schemas"]["Registry"]["properties"];
    assert!(registry.get("hasPassword").is_some());
    assert!(
        registry.get("password").is_none(),
        "responses have no password"
    );
    assert!(
        doc["components"]["schemas"]["RegistryInput"]["properties"]
            .get("password")
            .is_some()
    );
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
}

async fn health_readiness_and_metrics(backend: Backend) {
    let mut server = TestServer::start_on(backend).await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(server.admin_url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http.get(server.admin_url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    server.create_registry(demo()).await;
    // The admin listener's metrics as they are now.
    let scrape = || {
        let request = http.get(server.admin_url("/metrics"));
        async move {
            request
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text")
        }
    };
    let metrics = scrape().await;
    assert!(
        metrics.contains(r#"registry_resolver_http_requests_total{route="/api/v1/registries",method="POST",status="201"} 1"#),
        "{metrics}"
    );
    let job = common::fixture_json("job-kubectl.json");
    server
        .review(&common::admission_review(&job, "team-a", "CREATE"))
        .await;
    let metrics = scrape().await;
    assert!(
        metrics.contains(
            r#"registry_resolver_admission_requests_total{outcome="mutated",reason="none"} 1"#
        ),
        "{metrics}"
    );
    // A denial says why: here, a namespace with no registry at all.
    server
        .review(&common::admission_review(&job, "nowhere", "CREATE"))
        .await;
    // A registry that exists but is not authorized there.
    let mut annotated = job.clone();
    annotated["spec"]["template"]["metadata"]["annotations"] =
        json!({"registry-resolver.io/registry": "demo"});
    server
        .review(&common::admission_review(&annotated, "elsewhere", "CREATE"))
        .await;
    let metrics = scrape().await;
    for reason in ["no_registry", "not_authorized"] {
        assert!(
            metrics.contains(&format!(
                r#"registry_resolver_admission_requests_total{{outcome="denied",reason="{reason}"}} 1"#
            )),
            "{reason}: {metrics}"
        );
    }
    // Sub-millisecond buckets exist.
    assert!(
        metrics.contains(r#"registry_resolver_admission_duration_seconds_bucket{le="0.00001","#),
        "{metrics}"
    );

    let healthz = server.admin_url("/healthz");
    server.stop().await;
    assert!(
        http.get(healthz).send().await.is_err(),
        "admin listener closed after shutdown"
    );
}

#[tokio::test]
async fn concurrent_writers_are_safe() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"name": format!("r{i}"), "server": format!("r{i}.example"), "namespaces": ["a"],
                              "username": "u", "password": format!("pw{i}")});
            send(&server, Method::POST, "/registries?verify=false", Some(body)).await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join"), 201);
    }
    let (_, list) = send(&server, Method::GET, "/registries", None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(30));

    // Ten writers race for one namespace's default: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"name": format!("d{i}"), "server": "d.example", "namespaces": ["shared"], "defaultFor": ["shared"]});
            send(&server, Method::POST, "/registries?verify=false", Some(body)).await
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        let (status, body) = task.await.expect("join");
        if status == 409 {
            assert_eq!(error_code(&body), "default_conflict");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    let (_, body) = send(
        &server,
        Method::POST,
        "/namespaces/shared/resolve",
        Some(json!({"image": "/x:1"})),
    )
    .await;
    assert_eq!(
        body["image"], "d.example/x:1",
        "the winner is the default the webhook uses"
    );
}

/// In a cluster the API takes the caller's own token: a TokenReview says
/// who it is, a SubjectAccessReview what it may do. The API server here is
/// a mock answering as the real one does.
#[tokio::test]
async fn cluster_identities_and_rbac() {
    use http_body_util::BodyExt;
    use kube::client::Body;
    use registry_resolver::kubernetes::auth::ClusterAuth;

    let (service, mut handle) =
        tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_owned();
            let bytes = request
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let review: Value = serde_json::from_slice(&bytes).expect("json");
            let answer = if path.ends_with("/tokenreviews") {
                let user = match review["spec"]["token"].as_str() {
                    Some("admin-token") => {
                        json!({"authenticated": true, "user": {"username": "admin", "groups": ["system:masters"]}})
                    }
                    Some("dev-token") => {
                        json!({"authenticated": true, "user": {"username": "dev", "groups": ["devs"]}})
                    }
                    _ => json!({"user": {}, "error": "invalid bearer token"}),
                };
                json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {}, "spec": review["spec"], "status": user})
            } else {
                let spec = &review["spec"];
                let attributes = &spec["resourceAttributes"];
                let allowed = spec["user"] == "admin"
                    || (spec["user"] == "dev"
                        && attributes["resource"] == "pods"
                        && attributes["namespace"] == "team-a");
                json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {}, "spec": spec, "status": {"allowed": allowed}})
            };
            send.send_response(
                http::Response::builder()
                    .status(201)
                    .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                    .expect("response"),
            );
        }
    });
    let auth = ClusterAuth::new(
        kube::Client::new(service, "default"),
        std::time::Duration::from_secs(5),
    );
    let server = TestServer::start_with_auth(registry_resolver::api::Auth::cluster(auth)).await;
    let call = |method: Method, path: &str, token: &str| {
        server
            .client
            .request(method, server.url(&format!("/api/v1{path}")))
            .bearer_auth(token)
            .header("content-type", "application/json")
    };
    let created = call(Method::POST, "/registries?verify=false", "admin-token")
        .body(demo().to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201);
    let denied = call(Method::POST, "/registries?verify=false", "dev-token")
        .body(json!({"name": "mine", "server": "r.example", "namespaces": ["team-a"]}).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.expect("json");
    assert_eq!(error_code(&body), "forbidden");
    assert_eq!(
        body["error"]["message"],
        "user \"dev\" may not create imageregistries.registry-resolver.io"
    );
    let picker = call(Method::GET, "/namespaces/team-a/registries", "dev-token")
        .send()
        .await
        .expect("request");
    assert_eq!(picker.status(), 200);
    let other = call(Method::GET, "/namespaces/team-b/registries", "dev-token")
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 403);
    let body: Value = other.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("create pods in namespace \"team-b\"")
    );
    let unknown = call(Method::GET, "/registries", "forged")
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), 401);
}

/// Every documented operation refuses a query parameter it does not
/// declare, naming it, before it does anything: a typo of `verify` on a
/// write never runs (or skips) the registry check silently. And every
/// parameter the document declares is accepted.
#[tokio::test]
async fn every_operation_refuses_unknown_query_parameters() {
    let server = TestServer::start().await;
    server
        .create_registry(json!({"name": "x", "server": "r.example", "namespaces": ["ns"]}))
        .await;
    let document: Value = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{name}", "x")
            .replace("{namespace}", "ns")
            .replace("{repository}", "app");
        let concrete = concrete.strip_prefix("/api/v1").expect("under /api/v1");
        for (method, operation) in item.as_object().expect("operations") {
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let (status, body) = server
                .call(
                    method.clone(),
                    &format!("{concrete}?verfy=false"),
                    Some(&json!({})),
                )
                .await;
            assert_eq!(status, 422, "{method} {path}: {body}");
            assert_eq!(body["error"]["field"], "verfy", "{method} {path}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("unknown query parameter \"verfy\"")),
                "{method} {path}: {body}"
            );
            // What the document declares is taken (whatever the call then answers).
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] != "query" {
                    continue;
                }
                let name = parameter["name"].as_str().expect("name");
                let value = match name {
                    "verify" => "false",
                    "limit" => "1",
                    "sort" => "name",
                    "order" => "asc",
                    "registry" => "demo",
                    _ => "",
                };
                let (status, body) = server
                    .call(
                        method.clone(),
                        &format!("{concrete}?{name}={value}"),
                        Some(&json!({})),
                    )
                    .await;
                assert!(
                    body["error"]["field"] != name || status != 422,
                    "{method} {path}?{name}: declared, yet refused: {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "every operation was tried ({checked})");
    // The record was not touched by any of it.
    let (status, record) = server
        .call(reqwest::Method::GET, "/registries/x", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["server"], "https://r.example");
}

/// Two writers of different fields at once, 500 times: one changes the
/// password (its registry check is the slow part), one changes the
/// namespaces. Each wins every time: the slower write is applied to the
/// record as it is when it commits, so a removed namespace never comes
/// back with it.
async fn writers_of_different_fields_both_win(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    race_writers_of_different_fields(server, 500).await;
}

/// The same race where the record's watch lags its writes, as on any real
/// cluster: a write the API server refused as out of date is retried from
/// the newer record, not from the cache's stale one (with a 1 ms lag, every
/// retry of the loop used to be refused again, and the write answered 409).
#[tokio::test]
async fn writers_of_different_fields_both_win_when_the_watch_lags() {
    let server = TestServer::start_on(Backend::Kubernetes).await;
    server
        .fake()
        .delay_watch_events("imageregistries", std::time::Duration::from_millis(15));
    race_writers_of_different_fields(server, 40).await;
}

async fn race_writers_of_different_fields(server: TestServer, rounds: usize) {
    let registry = distribution::Distribution::start(distribution::Mode::Basic).await;
    let server = std::sync::Arc::new(server);
    let all = json!(["team-a", "ns-y"]);
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries",
        Some(
            json!({"name": "lab", "server": registry.server(), "username": distribution::USER,
                    "password": distribution::PASSWORD, "namespaces": all}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let patch = |body: Value| {
        let server = server.clone();
        async move {
            let response = server
                .api(Method::PATCH, "/registries/lab")
                .header("content-type", "application/merge-patch+json")
                .body(body.to_string())
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    for round in 0..rounds {
        // Revoke ns-y in even rounds, grant it back in odd ones.
        let namespaces = if round % 2 == 0 {
            json!(["team-a"])
        } else {
            all.clone()
        };
        let before = chrono::Utc::now();
        let (password, revocation) = tokio::join!(
            patch(json!({"password": distribution::PASSWORD})),
            patch(json!({ "namespaces": namespaces })),
        );
        assert_eq!(password.0, 200, "round {round}: {}", password.1);
        assert_eq!(revocation.0, 200, "round {round}: {}", revocation.1);
        let (_, record) = send(&server, Method::GET, "/registries/lab", None).await;
        assert_eq!(
            record["namespaces"], namespaces,
            "round {round}: the namespaces as the second writer left them"
        );
        let checked: chrono::DateTime<chrono::Utc> = record["status"]["lastVerifiedAt"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("verified");
        assert!(
            record["status"]["verified"] == true
                && checked >= before - chrono::Duration::seconds(1),
            "round {round}: the first writer's check is the record's status: {record}"
        );
    }
}

/// The record's ETag once nothing writes it any more: in Kubernetes mode
/// the controller writes a new record's finalizer and status on its own
/// just after it is created, each a new version. Checks the ETag is the
/// body's version.
async fn settled_etag(server: &TestServer, name: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last = String::new();
    loop {
        let response = server
            .api(Method::GET, &format!("/registries/{name}"))
            .send()
            .await
            .expect("get");
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .expect("an ETag")
            .to_owned();
        let record: Value = response.json().await.expect("json");
        assert_eq!(
            etag,
            format!("\"{}\"", record["version"].as_str().expect("version"))
        );
        if etag == last {
            return etag;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} keeps changing"
        );
        last = etag;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
}

/// A client's own read-modify-write: `GET` gives the version as the ETag,
/// and `PUT`, `PATCH` and `DELETE` with a stale `If-Match` change nothing
/// (412, naming the current version). A version is never reused, not even
/// by a record deleted and created again.
async fn if_match_makes_read_modify_write_safe(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server.create_registry(demo()).await;
    let first = settled_etag(&server, "demo").await;

    let patch = |etag: &str, body: Value| {
        server
            .api(Method::PATCH, "/registries/demo?verify=false")
            .header("content-type", "application/merge-patch+json")
            .header("if-match", etag)
            .body(body.to_string())
            .send()
    };
    let response = patch(&first, json!({"description": "one"}))
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let second = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_owned();
    assert_ne!(second, first, "every write is a new version");

    let stale = patch(&first, json!({"description": "two"}))
        .await
        .expect("patch");
    assert_eq!(stale.status(), 412);
    let body: Value = stale.json().await.expect("json");
    assert_eq!(error_code(&body), "precondition_failed");
    // It names the version the record is at: the PATCH's own in the
    // embedded store; in a cluster the controller may have written the
    // status since, a later one.
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let named: u64 = message
        .split("is at version ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("names the current version: {body}"));
    let after_patch: u64 = second.trim_matches('"').parse().expect("a number");
    match backend {
        Backend::Embedded => assert_eq!(named, after_patch, "{body}"),
        Backend::Kubernetes => assert!(named >= after_patch, "{body}"),
    }
    assert!(
        message.contains(&format!("not {}", first.trim_matches('"'))),
        "{body}"
    );
    let mut replacement = demo();
    replacement["description"] = json!("three");
    let response = server
        .api(Method::PUT, "/registries/demo?verify=false")
        .header("if-match", &first)
        .json(&replacement)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 412);
    let response = server
        .api(Method::DELETE, "/registries/demo")
        .header("if-match", &first)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 412);
    let (_, record) = send(&server, Method::GET, "/registries/demo", None).await;
    assert_eq!(record["description"], "one", "no stale write landed");

    let response = server
        .api(Method::DELETE, "/registries/demo")
        .header("if-match", "\"a\", \"b\"")
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 422, "one version, not a list");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["field"], "If-Match");

    // The controller may have written the status since (Kubernetes mode):
    // the version to delete at is the one read now.
    let current = settled_etag(&server, "demo").await;
    let response = server
        .api(Method::DELETE, "/registries/demo")
        .header("if-match", &current)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 204);
    let again = server.create_registry(demo()).await;
    assert_ne!(
        format!("\"{}\"", again["version"].as_str().expect("version")),
        second,
        "a new record never takes an old version"
    );
    let response = patch(&second, json!({"description": "late"}))
        .await
        .expect("patch");
    assert_eq!(
        response.status(),
        412,
        "the deleted record's version does not fit the new one"
    );
}

/// In Kubernetes mode a create is several writes (the ImageRegistry, its
/// credentials Secret, its status). When a later one fails, the earlier
/// ones are undone: nothing is left half there, and the same request
/// succeeds when repeated.
#[tokio::test]
async fn a_create_that_fails_part_way_leaves_nothing_and_can_be_repeated() {
    let server = TestServer::start_on(Backend::Kubernetes).await;
    let fake = server.fake();
    let leftovers = |name: &str| {
        (
            fake.get("imageregistries", None, name).is_some(),
            fake.get(
                "secrets",
                Some("registry-resolver"),
                &format!("{name}-credentials"),
            )
            .is_some(),
        )
    };
    for (step, fail) in [
        (
            "the credentials Secret",
            ("secrets", "registry-resolver", ""),
        ),
        // The API's status write (the controller writes other conditions).
        (
            "the status",
            ("imageregistries", "", r#""type":"Verified""#),
        ),
    ] {
        let create = || {
            send(
                &server,
                Method::POST,
                "/registries?verify=false",
                Some(demo()),
            )
        };
        fake.fail_writes_containing(fail.0, fail.1, fail.2, 1);
        let (status, body) = create().await;
        assert_eq!(status, 500, "{step}: {body}");
        assert_eq!(leftovers("demo"), (false, false), "{step}: nothing is left");
        let (status, body) = create().await;
        assert_eq!(status, 201, "{step}: the same request again: {body}");
        assert_eq!(leftovers("demo"), (true, true), "{step}: the whole record");
        let (status, _) = send(&server, Method::DELETE, "/registries/demo", None).await;
        assert_eq!(status, 204);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fake.get("imageregistries", None, "demo").is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the controller releases it"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// `?dryRun=All` (the Kubernetes convention): every write answers as it
/// would (the record, its warnings, or the error) and nothing changes: no
/// record, no new version, no audit entry. The registry is checked only
/// when `verify=true` is asked for. The console validates as people type
/// with it.
async fn dry_runs_answer_as_the_write_would_and_change_nothing(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let audited = || async {
        let (_, trail) = send(&server, Method::GET, "/audit", None).await;
        trail["items"].as_array().map_or(0, Vec::len)
    };
    // A create: the record as it would be, no version, nothing saved.
    let unreachable = json!({"name": "demo", "server": "http://127.0.0.1:1", "username": "robot",
                             "password": "pw", "namespaces": ["team-a"], "defaultFor": ["team-a"]});
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?dryRun=All",
        Some(unreachable.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["server"], "http://127.0.0.1:1", "{body}");
    assert_eq!(body["hasPassword"], true, "{body}");
    assert_eq!(body["version"], "", "not saved, no version: {body}");
    assert_eq!(
        body["needsNodeTrust"], true,
        "a plain-HTTP registry needs the nodes configured: {body}"
    );
    assert_eq!(body["status"]["verified"], false, "not checked: {body}");
    let (status, _) = send(&server, Method::GET, "/registries/demo", None).await;
    assert_eq!(status, 404, "nothing saved");
    // The registry check when asked for, with the error the write would get.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?dryRun=All&verify=true",
        Some(unreachable),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("unreachable")),
        "{body}"
    );
    // Each field's problem, as the write would answer it.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?dryRun=All",
        Some(json!({"name": "Bad_Name", "server": "", "namespaces": ["team-a"]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        fields.contains(&"name") && fields.contains(&"server"),
        "{body}"
    );
    // Each with the kind of problem, a stable code a client can say in
    // its own language.
    let reason = |field: &str| {
        body["error"]["details"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e["field"] == field))
            .map(|e| e["reason"].clone())
    };
    assert_eq!(reason("name"), Some(json!("not_dns1123_label")), "{body}");
    assert_eq!(reason("server"), Some(json!("empty")), "{body}");
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?dryRun=Some",
        Some(demo()),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("dryRun"),
        "{body}"
    );

    // Over a saved record: an update answers with the record as it would
    // be, at the version it has; the record stays as it was.
    let saved = server.create_registry(demo()).await;
    assert_eq!(
        saved["needsNodeTrust"], false,
        "a public-CA HTTPS registry needs nothing of the nodes: {saved}"
    );
    assert_eq!(saved["certificateCheck"], "system_roots", "{saved}");
    let entries = audited().await;
    let (status, body) = send(
        &server,
        Method::PATCH,
        "/registries/demo?dryRun=All",
        Some(json!({"namespaces": ["team-a", "team-c"], "description": "would be"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["namespaces"], json!(["team-a", "team-c"]), "{body}");
    assert_eq!(body["version"], saved["version"], "{body}");
    assert_eq!(
        body["hasPassword"], true,
        "the stored password is kept: {body}"
    );
    let (status, body) = send(
        &server,
        Method::PUT,
        "/registries/demo?dryRun=All",
        Some(json!({"server": "dockerhub.qingcloud.com", "namespaces": ["ops"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["namespaces"], json!(["ops"]), "{body}");
    // What the write would refuse: a new trust setting without the password.
    let (status, body) = send(
        &server,
        Method::PATCH,
        "/registries/demo?dryRun=All",
        Some(json!({"tls": {"insecureSkipVerify": true}})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "password", "{body}");
    // A default another record claims.
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?dryRun=All",
        Some(json!({"name": "other", "server": "quay.example.com", "namespaces": ["team-a"], "defaultFor": ["team-a"]})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (_, after) = send(&server, Method::GET, "/registries/demo", None).await;
    assert_eq!(
        after["version"], saved["version"],
        "nothing written: {after}"
    );
    assert_eq!(after["namespaces"], saved["namespaces"]);
    assert_eq!(after["description"], saved["description"]);
    assert_eq!(audited().await, entries, "dry runs are not changes");
}

/// The record and its credentials Secret arrive by two watch streams, and
/// one can lag: a write answers with what it wrote all the same (it used
/// to answer 500 "written but is not readable" when the Secret's watch
/// was the slower one, and the record then existed: the retry got 409).
#[tokio::test]
async fn a_write_answers_with_itself_when_the_secrets_watch_lags() {
    let server = TestServer::start_on(Backend::Kubernetes).await;
    server
        .fake()
        .delay_watch_events("secrets", std::time::Duration::from_millis(700));
    let (status, body) = send(
        &server,
        Method::POST,
        "/registries?verify=false",
        Some(demo()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["username"], "robot", "{body}");
    let (status, body) = send(
        &server,
        Method::PATCH,
        "/registries/demo?verify=false",
        Some(json!({"username": "robot-2", "password": "n3w-pw"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "robot-2", "the new username: {body}");
    let (status, body) = send(&server, Method::GET, "/registries/demo", None).await;
    assert_eq!(
        (status, &body["username"]),
        (200, &json!("robot-2")),
        "{body}"
    );
}

/// Every write through the API appears once in the audit trail, newest
/// first: who, what, which record, the names of the fields it changed
/// (never a password or a CA), and whether it worked. A refused write is
/// there too. In Kubernetes mode each is also an Event on the record.
async fn every_change_is_in_the_audit_trail_once_without_secrets(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let ca = std::fs::read_to_string(&server.certs.ca_cert).expect("a CA");
    server.create_registry(demo()).await;
    let patch = |body: Value| {
        server
            .api(Method::PATCH, "/registries/demo?verify=false")
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
    };
    let response =
        patch(json!({"namespaces": ["team-a", "team-b", "team-c"], "password": "rotated-pw-9"}))
            .await
            .expect("patch");
    assert_eq!(response.status(), 200);
    // Refused: a new trust setting without the password.
    let response = patch(json!({"tls": {"caBundle": ca}}))
        .await
        .expect("patch");
    assert_eq!(response.status(), 422);
    server
        .create_registry(json!({"name": "other", "server": "o.example", "namespaces": ["team-a"]}))
        .await;
    let (status, _) = send(&server, Method::DELETE, "/registries/demo", None).await;
    assert_eq!(status, 204);

    let (status, trail) = send(&server, Method::GET, "/audit", None).await;
    assert_eq!(status, 200, "{trail}");
    let items = trail["items"].as_array().expect("items");
    let summary: Vec<(String, String, bool, Vec<String>)> = items
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["registry"].as_str().unwrap_or_default().to_owned(),
                e["succeeded"] == true,
                e["fields"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    let owned = |a: &str, r: &str, ok: bool, f: &[&str]| {
        (
            a.to_owned(),
            r.to_owned(),
            ok,
            f.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        summary,
        vec![
            owned("delete", "demo", true, &[]),
            owned("create", "other", true, &["server", "namespaces"]),
            owned("update", "demo", false, &["tls.caBundle"]),
            owned("update", "demo", true, &["password", "namespaces"]),
            owned(
                "create",
                "demo",
                true,
                &[
                    "server",
                    "username",
                    "password",
                    "description",
                    "namespaces",
                    "defaultFor"
                ]
            ),
        ],
        "newest first, each write once: {trail}"
    );
    assert!(items.iter().all(|e| e["actor"] == "admin"), "{trail}");
    assert!(
        items[2]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("password is required"),
        "a refused write says why: {trail}"
    );
    assert_eq!(
        items[2]["code"], "password_required",
        "with the API's code, for a reader to say in its language: {trail}"
    );
    assert!(
        items
            .iter()
            .filter(|e| e["succeeded"] == true)
            .all(|e| e.get("code").is_none()),
        "{trail}"
    );
    let text = trail.to_string();
    for secret in ["s3cret-pw", "rotated-pw-9", "BEGIN CERTIFICATE"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the trail: {text}"
        );
    }

    // One record's entries, a page at a time.
    let mut seen = Vec::new();
    let mut path = "/audit?registry=demo&limit=1".to_owned();
    loop {
        let (status, page) = send(&server, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page["items"].as_array().is_some_and(|i| i.len() <= 1),
            "{page}"
        );
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["action"].clone()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(token) => path = format!("/audit?registry=demo&limit=1&continue={token}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            json!("delete"),
            json!("update"),
            json!("update"),
            json!("create")
        ]
    );
    let (status, body) = send(&server, Method::GET, "/audit?registry=Not_A_Name", None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("registry"))
    );
    let (status, body) = send(&server, Method::GET, "/audit?continue=garbage", None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("continue"))
    );

    if backend == Backend::Kubernetes {
        // `kubectl describe imageregistry demo` shows them: Events on the record.
        let events: Vec<Value> = server
            .fake()
            .list("events", Some("registry-resolver"))
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == "demo")
            .collect();
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(
            events
                .iter()
                .all(|e| e["involvedObject"]["kind"] == "ImageRegistry")
        );
        assert!(
            events
                .iter()
                .any(|e| e["reason"] == "UpdateFailed" && e["type"] == "Warning"),
            "{events:?}"
        );
    }
}

/// In Kubernetes mode the trail names the user the cluster authenticated.
#[tokio::test]
async fn the_audit_trail_names_the_cluster_user() {
    let server = TestServer::start_kubernetes_rbac().await;
    server.fake().add_user("alice-token", "alice", true);
    let response = server
        .api_as(Method::POST, "/registries?verify=false", "alice-token")
        .json(&demo())
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let response = server
        .api_as(Method::GET, "/audit", "alice-token")
        .send()
        .await
        .expect("audit");
    assert_eq!(response.status(), 200);
    let trail: Value = response.json().await.expect("json");
    assert_eq!(trail["items"][0]["actor"], "alice", "{trail}");
    // Reading the trail needs what listing the records needs.
    let response = server
        .api_as(Method::GET, "/audit", "dev-token")
        .send()
        .await
        .expect("audit");
    assert_eq!(response.status(), 403);
}

/// `workloads:resolve`: a Deployment comes back as the webhook would admit
/// it, with what `kubectl create secret docker-registry` needs for its pull
/// Secret (but the password); another kind passes as it is, as the webhook
/// lets it through; another namespace and a denial are refused by name.
#[tokio::test]
async fn a_workload_resolves_as_the_webhook_would_with_its_pull_secret() {
    let server = TestServer::start().await;
    server.create_registry(demo()).await;
    let deployment = |namespace: Option<&str>| {
        let mut metadata = json!({"name": "db"});
        if let Some(namespace) = namespace {
            metadata["namespace"] = json!(namespace);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [
                    {"name": "db", "image": "/mysql/mysql:5.6"},
                    {"name": "sidecar", "image": "docker.io/library/busybox:1.36"}]}}}})
    };
    let path = "/namespaces/team-a/workloads:resolve";
    let (status, body) = send(&server, Method::POST, path, Some(deployment(None))).await;
    assert_eq!(status, 200, "{body}");
    let pod = &body["object"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "dockerhub.qingcloud.com/mysql/mysql:5.6"
    );
    assert_eq!(
        pod["containers"][1]["image"], "docker.io/library/busybox:1.36",
        "a fully qualified image is left as written"
    );
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "demo"}]));
    assert_eq!(
        body["pullSecrets"],
        json!([{"name": "demo", "registry": "demo", "server": "dockerhub.qingcloud.com", "username": "robot"}])
    );
    assert!(
        !body.to_string().contains("s3cret-pw"),
        "no password: {body}"
    );

    let (status, _) = send(
        &server,
        Method::POST,
        path,
        Some(deployment(Some("team-a"))),
    )
    .await;
    assert_eq!(status, 200, "its own namespace may be named");
    let (status, body) = send(
        &server,
        Method::POST,
        path,
        Some(deployment(Some("team-b"))),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
    assert_eq!(body["error"]["field"], "metadata.namespace");
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"image": "/mysql/mysql:5.6"}});
    let (status, body) = send(&server, Method::POST, path, Some(config_map.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], config_map);
    assert_eq!(body["pullSecrets"], json!([]));
    let (status, body) = send(
        &server,
        Method::POST,
        "/namespaces/team-z/workloads:resolve",
        Some(deployment(None)),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "resolution_denied"),
        "{body}"
    );
    assert_eq!(body["error"]["reason"], "no_registry", "{body}");
    // Other errors carry no reason.
    let (status, body) = send(
        &server,
        Method::POST,
        path,
        Some(deployment(Some("team-b"))),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["error"].get("reason").is_none(), "{body}");
}
