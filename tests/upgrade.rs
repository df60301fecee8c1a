//! Upgrades keep data: each release's embedded database, written by that
//! release and committed under `tests/fixtures/upgrade/<version>/`, opens
//! with this binary with every record, password and status intact.
//!
//! A release that changes the schema (a new migration) adds its own
//! fixture, written by the release *before* it changes anything:
//!
//! ```sh
//! cargo test --test upgrade -- --ignored write_this_releases_fixture
//! ```
//!
//! Each fixture holds the database, its encryption key, and what the API
//! answered for every record (`records.json`) and the passwords it was
//! given (`passwords.json`), as written.

mod common;

use std::path::{Path, PathBuf};

use registry_resolver::index::IndexHandle;
use registry_resolver::registry::store::RegistryStore;
use registry_resolver::registry::{RegistryInput, RegistryStatus, WriteMode};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade")
}

/// Every field a record can hold on the embedded store, in the shapes
/// users write them.
fn records() -> Vec<(Value, Option<RegistryStatus>)> {
    let ca = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade/ca.pem"),
    )
    .expect("the fixture CA");
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("time")
            .to_utc()
    };
    vec![
        (
            json!({"name": "dockerhub-mirror", "server": "dockerhub.qingcloud.com", "username": "robot",
                   "password": "s3cret: with spaces & ünïcode", "description": "QingCloud mirror",
                   "namespaces": ["team-a", "team-b", "*"], "defaultFor": ["team-a"],
                   "pullSecretName": "qingcloud-pull", "pinDigests": true, "browse": "dockerhub"}),
            Some(RegistryStatus {
                verified: true,
                last_verified_at: Some(at("2026-12-01T10:00:00Z")),
                message: Some("login succeeded".into()),
            }),
        ),
        (
            json!({"name": "harbor", "server": "https://harbor.example.com:8443/library",
                   "username": "robot$project+ci", "password": "Harbor12345",
                   "namespaces": ["team-*", "ci"], "defaultFor": ["team-*"],
                   "tls": {"caBundle": ca, "insecureSkipVerify": false}, "browse": "harbor"}),
            Some(RegistryStatus {
                verified: false,
                last_verified_at: Some(at("2026-12-02T11:30:00Z")),
                message: Some("x509: certificate signed by unknown authority".into()),
            }),
        ),
        (
            json!({"name": "lab", "server": "http://139.198.16.232:5000",
                   "namespaces": ["lab"], "tls": {"insecureSkipVerify": false}, "browse": "catalog"}),
            None,
        ),
        (
            json!({"name": "skip-verify", "server": "https://registry.internal",
                   "username": "u", "password": "p", "namespaces": ["ops"],
                   "tls": {"insecureSkipVerify": true}, "browse": "none"}),
            Some(RegistryStatus {
                verified: true,
                last_verified_at: Some(at("2026-12-03T08:15:00Z")),
                message: None,
            }),
        ),
    ]
}

fn open(
    dir: &Path,
) -> (
    registry_resolver::registry::store::SqliteStore,
    std::sync::Arc<IndexHandle>,
) {
    let index = IndexHandle::new();
    let store =
        registry_resolver::app::open_embedded_store(&common::store_args(dir), index.clone())
            .expect("the store opens");
    (store, index)
}

/// Writes this release's fixture. Run by hand before a schema change.
#[tokio::test]
#[ignore = "writes tests/fixtures/upgrade/<this version>: run by hand, see the module docs"]
async fn write_this_releases_fixture() {
    let dir = fixtures().join(env!("CARGO_PKG_VERSION"));
    assert!(
        !dir.exists(),
        "{} exists: a fixture is written once",
        dir.display()
    );
    let (store, _) = open(&dir);
    let mut passwords = serde_json::Map::new();
    for (body, status) in records() {
        if let Some(password) = body.get("password") {
            passwords.insert(
                body["name"].as_str().expect("name").into(),
                password.clone(),
            );
        }
        let input: RegistryInput = serde_json::from_value(body).expect("input");
        let record = store
            .create(input.validate(WriteMode::Create, None).expect("valid"))
            .await
            .expect("created");
        if let Some(status) = status {
            store
                .set_status(&record.name, status, None)
                .await
                .expect("status");
        }
    }
    let written = serde_json::to_value(store.list().await.expect("list")).expect("json");
    drop(store);
    std::fs::write(
        dir.join("records.json"),
        serde_json::to_string_pretty(&written).expect("json") + "\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("passwords.json"),
        serde_json::to_string_pretty(&passwords).expect("json") + "\n",
    )
    .expect("write");
    std::fs::remove_file(dir.join("admin-token")).ok();
}

/// Every committed fixture opens with every record, password and status as
/// its release wrote them; the fixture itself is never changed (a copy is
/// opened).
#[tokio::test]
async fn every_releases_database_opens_with_all_its_data() {
    let mut versions: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("tests/fixtures/upgrade")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    versions.sort();
    assert!(
        !versions.is_empty(),
        "at least today's release has a fixture"
    );
    for fixture in versions {
        let name = fixture
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let copy = tempfile::tempdir().expect("tempdir");
        for file in ["registries.db", "encryption.key"] {
            std::fs::copy(fixture.join(file), copy.path().join(file))
                .unwrap_or_else(|e| panic!("{name}/{file}: {e}"));
        }
        let (store, index) = open(copy.path());
        let expected: Value = serde_json::from_slice(
            &std::fs::read(fixture.join("records.json")).expect("records.json"),
        )
        .expect("json");
        let mut got = serde_json::to_value(store.list().await.expect("list")).expect("json");
        // Fields born after a release: records it wrote get them on opening.
        for record in got.as_array_mut().expect("array") {
            let record = record.as_object_mut().expect("object");
            if !expected[0]
                .as_object()
                .is_some_and(|e| e.contains_key("version"))
            {
                // Versions came with schema v2; older records start at 0.
                assert_eq!(record.remove("version"), Some(json!("0")), "{name}");
            }
            // The status's one word is said from the status when a record
            // is sent, never stored: whatever a release wrote gets it.
            let status = record
                .get_mut("status")
                .and_then(Value::as_object_mut)
                .expect("a status");
            let health = status.remove("health").expect("the status says its health");
            let expected_health = match (&status["verified"], status.get("lastVerifiedAt")) {
                (Value::Bool(true), _) => "verified",
                (_, Some(_)) => "failed",
                _ => "unchecked",
            };
            assert_eq!(health, json!(expected_health), "{name}: {status:?}");
        }
        assert_eq!(got, expected, "{name}: every record and status as written");
        assert_eq!(
            index.load().len(),
            expected.as_array().expect("array").len(),
            "{name}: published"
        );

        let passwords: Value = serde_json::from_slice(
            &std::fs::read(fixture.join("passwords.json")).expect("passwords.json"),
        )
        .expect("json");
        for (registry, password) in passwords.as_object().expect("object") {
            let credentials = store
                .credentials(registry)
                .await
                .expect("credentials")
                .unwrap_or_else(|| panic!("{name}: {registry} lost its credentials"));
            assert_eq!(
                credentials.password.expose(),
                password.as_str().expect("string"),
                "{name}: {registry}'s password"
            );
        }
        for record in expected.as_array().expect("array") {
            let registry = record["name"].as_str().expect("name");
            if !passwords
                .as_object()
                .expect("object")
                .contains_key(registry)
            {
                assert!(
                    store
                        .credentials(registry)
                        .await
                        .expect("credentials")
                        .is_none(),
                    "{name}: {registry} had no password"
                );
            }
        }
        // The committed fixture is the newest schema or older: the binary
        // migrated (and backed up) what needed it, and writes still work.
        let (_, status) = {
            let record = store.get("lab").await.expect("get").expect("lab");
            (record.clone(), record.status)
        };
        let updated = store
            .set_status(
                "lab",
                RegistryStatus {
                    verified: true,
                    ..status
                },
                None,
            )
            .await
            .expect("a write after the upgrade");
        assert!(updated.status.verified);
    }
}
