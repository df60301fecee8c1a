// Shared by the targets: a small index like a real cluster's.

use registry_resolver::index::Index;
use registry_resolver::registry::Registry;

pub fn index() -> Index {
    let record =
        |name: &str, server: &str, namespaces: &[&str], default_for: &[&str]| -> Registry {
            serde_json::from_value(serde_json::json!({
                "name": name, "server": server, "username": "robot", "hasPassword": true,
                "namespaces": namespaces, "defaultFor": default_for, "tls": {},
                "pullSecretName": name, "pinDigests": false,
                "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
                "status": {"verified": true}
            }))
            .expect("a valid record")
        };
    Index::build(&[
        record(
            "demo",
            "https://dockerhub.qingcloud.com",
            &["team-a", "default"],
            &["team-a", "default"],
        ),
        record(
            "harbor",
            "http://harbor.local:8080/library",
            &["team-a", "team-b"],
            &["team-b"],
        ),
        record(
            "private",
            "https://registry.example.com:5000",
            &["team-c"],
            &[],
        ),
    ])
}
