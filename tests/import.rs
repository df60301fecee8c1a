//! `import` and `export` as a user runs them: the release binary, real
//! Distribution registries to check against, a Docker `config.json`,
//! KubeSphere's registry Secrets from a `kubectl get secrets -A -o json`
//! dump and from a (in-memory) cluster, and export files moving records
//! between stores.

mod common;
mod distribution;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use distribution::{Distribution, Mode, PASSWORD, USER};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_registry-resolver");

/// Runs the binary: (exit code, stdout, stderr).
fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn auth(user: &str, password: &str) -> String {
    STANDARD.encode(format!("{user}:{password}"))
}

/// The records of a store, as `export` writes them.
fn exported(data: &Path) -> Vec<Value> {
    let (code, stdout, stderr) = run(
        &["export", "--data-dir", data.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let list: Value = serde_json::from_str(&stdout).expect("export writes JSON");
    assert_eq!(list["kind"], "RegistryList");
    list["items"].as_array().expect("items").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_config_is_checked_imported_and_a_second_run_changes_nothing() {
    let good = Distribution::start(Mode::Basic).await;
    let wrong = Distribution::start(Mode::Basic).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({
            "auths": {
                format!("http://127.0.0.1:{}", good.port): {"auth": auth(USER, PASSWORD)},
                format!("http://127.0.0.1:{}", wrong.port): {"username": USER, "password": "not-it"},
                "gcr.io": {}
            },
            "credHelpers": {"gcr.io": "gcloud"}
        })
        .to_string(),
    )
    .expect("write");
    let data = dir.path().join("data");
    let data_dir = data.to_str().expect("utf-8");
    let args = [
        "import",
        "--docker-config",
        config.to_str().expect("utf-8"),
        "-n",
        "team-a,team-b",
        "--data-dir",
        data_dir,
    ];

    // A dry run says what it would do and writes nothing.
    let (code, stdout, _) = run(&[&args[..], &["--dry-run"]].concat(), &[]);
    assert_eq!(code, 1, "two entries cannot be imported: {stdout}");
    let good_name = format!("127-0-0-1-{}", good.port);
    assert!(
        stdout.contains(&format!(
            "would create {good_name} (http://127.0.0.1:{} as {USER}; namespaces team-a, team-b)",
            good.port
        )),
        "{stdout}"
    );
    assert!(exported(&data).is_empty(), "a dry run writes nothing");

    let (code, stdout, stderr) = run(&args, &[]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("created {good_name} ")),
        "{stdout}"
    );
    // Each failure names its source and the reason; the rest went on.
    assert!(
        stdout.contains(&format!("127.0.0.1:{}", wrong.port)) && stdout.contains("unauthorized"),
        "{stdout}"
    );
    assert!(
        stdout.contains("gcr.io") && stdout.contains("\"gcloud\""),
        "{stdout}"
    );
    let records = exported(&data);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["name"], good_name.as_str());
    assert_eq!(records[0]["namespaces"], json!(["team-a", "team-b"]));
    assert!(
        records[0].get("password").is_none(),
        "export leaves passwords out"
    );

    // Again: nothing changes.
    let (_, stdout, _) = run(&args, &[]);
    assert!(
        stdout.contains(&format!("unchanged {good_name} ")),
        "{stdout}"
    );
    assert!(!stdout.contains("created"), "{stdout}");
    assert_eq!(exported(&data), records, "the record is as it was");
}

/// KubeSphere keeps a registry as a Secret per project: one record per
/// server and user, authorized where the Secrets are, the default where
/// KubeSphere says so, plain HTTP where it forces insecure, and the
/// Secrets' own name kept; from a dump and from the live cluster alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubesphere_registry_secrets_from_a_dump_and_from_the_cluster() {
    let registry = Distribution::start(Mode::Basic).await;
    let secret = |namespace: &str, annotations: Value| {
        let config = json!({"auths": {format!("127.0.0.1:{}", registry.port): {"auth": auth(USER, PASSWORD)}}});
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
               "metadata": {"namespace": namespace, "name": "lab-registry", "annotations": annotations},
               "data": {".dockerconfigjson": STANDARD.encode(config.to_string())}})
    };
    let secrets = [
        secret(
            "proj-a",
            json!({"secret.kubesphere.io/force-insecure": "true", "secret.kubesphere.io/is-default-class": "true"}),
        ),
        secret(
            "proj-b",
            json!({"secret.kubesphere.io/force-insecure": "true"}),
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("secrets.json");
    std::fs::write(
        &dump,
        json!({"apiVersion": "v1", "kind": "List", "items": secrets}).to_string(),
    )
    .expect("write");
    let data = dir.path().join("data");
    let (code, stdout, stderr) = run(
        &[
            "import",
            "--secrets",
            dump.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("secret proj-a/lab-registry, secret proj-b/lab-registry"),
        "{stdout}"
    );
    let records = exported(&data);
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(
        record["server"],
        format!("http://127.0.0.1:{}", registry.port)
    );
    assert_eq!(record["username"], USER);
    assert_eq!(record["namespaces"], json!(["proj-a", "proj-b"]));
    assert_eq!(record["defaultFor"], json!(["proj-a"]));
    assert_eq!(record["pullSecretName"], "lab-registry");

    // The same Secrets in a cluster, read with --from-cluster, into a new store.
    let fake = common::fake_apiserver::FakeApiServer::new();
    for secret in &secrets {
        let namespace = secret["metadata"]["namespace"]
            .as_str()
            .expect("ns")
            .to_owned();
        fake.put("secrets", "v1", "Secret", Some(&namespace), secret.clone());
    }
    let url = fake.serve_http().await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        common::fake_apiserver::FakeApiServer::kubeconfig(&url),
    )
    .expect("write");
    let other = dir.path().join("other");
    let kubeconfig = kubeconfig.to_str().expect("utf-8").to_owned();
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let other = other.clone();
        move || {
            run(
                &[
                    "import",
                    "--from-cluster",
                    "--data-dir",
                    other.to_str().expect("utf-8"),
                ],
                &[("KUBECONFIG", kubeconfig.as_str())],
            )
        }
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{stdout}{stderr}");
    let from_cluster = exported(&other);
    let comparable = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().map(|o| o.remove("status"));
                r
            })
            .collect()
    };
    assert_eq!(comparable(&from_cluster), comparable(&records));
}

/// `export` writes what `import --records` reads: without passwords to
/// standard output, with them only into a file created 0600; records move
/// between stores with their passwords.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_move_records_between_stores() {
    let registry = Distribution::start(Mode::Basic).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first");
    // A store with a record that has a password, and one without.
    {
        use registry_resolver::registry::store::RegistryStore;
        use registry_resolver::registry::{RegistryInput, WriteMode};
        let store = registry_resolver::app::open_embedded_store(
            &common::store_args(&first),
            registry_resolver::index::IndexHandle::new(),
        )
        .expect("store");
        for body in [
            json!({"name": "lab", "server": format!("http://127.0.0.1:{}", registry.port), "username": USER,
                   "password": PASSWORD, "namespaces": ["team-*"], "defaultFor": ["team-a"], "description": "the lab"}),
            json!({"name": "open", "server": "http://10.0.0.7:5000", "namespaces": ["ops"]}),
        ] {
            let input: RegistryInput = serde_json::from_value(body).expect("input");
            store
                .create(input.validate(WriteMode::Create, None).expect("valid"))
                .await
                .expect("created");
        }
    }
    let (code, _, stderr) = run(
        &[
            "export",
            "--include-passwords",
            "--data-dir",
            first.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_ne!(code, 0, "passwords never go to standard output");
    assert!(stderr.contains("--output"), "{stderr}");

    let file = dir.path().join("records.json");
    let (code, _, stderr) = run(
        &[
            "export",
            "--include-passwords",
            "-o",
            file.to_str().expect("utf-8"),
            "--data-dir",
            first.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).expect("file").permissions().mode() & 0o777,
        0o600
    );
    let written: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_eq!(written["items"][0]["password"], PASSWORD);

    let second = dir.path().join("second");
    let (code, stdout, stderr) = run(
        &[
            "import",
            "--records",
            file.to_str().expect("utf-8"),
            "--verify=false",
            "--data-dir",
            second.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(exported(&second), exported(&first), "the same records");
    use registry_resolver::registry::store::RegistryStore;
    let store = registry_resolver::app::open_embedded_store(
        &common::store_args(&second),
        registry_resolver::index::IndexHandle::new(),
    )
    .expect("store");
    let credentials = store
        .credentials("lab")
        .await
        .expect("read")
        .expect("a password");
    assert_eq!(credentials.password.expose(), PASSWORD);
    assert!(store.credentials("open").await.expect("read").is_none());

    // Into a cluster (`--store kubernetes`): ImageRegistry objects and a
    // credentials Secret in the install namespace, as the API writes them;
    // a second run changes nothing; `export` from the cluster gives the
    // records back.
    let fake = common::fake_apiserver::FakeApiServer::new();
    // The credentials Secrets' watch a little behind the records' (a CI
    // machine once showed it): each import still reads its own write.
    fake.delay_watch_events("secrets", std::time::Duration::from_millis(200));
    let url = fake.serve_http().await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        common::fake_apiserver::FakeApiServer::kubeconfig(&url),
    )
    .expect("write");
    let kubeconfig = kubeconfig.to_str().expect("utf-8").to_owned();
    let in_cluster = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args, &[("KUBECONFIG", kubeconfig.as_str())])
        })
    };
    let file_arg = file.to_str().expect("utf-8").to_owned();
    let import_args = vec![
        "import".into(),
        "--records".into(),
        file_arg.clone(),
        "--verify=false".into(),
        "--store".into(),
        "kubernetes".into(),
        "--install-namespace".into(),
        "rr-system".into(),
    ];
    let (code, stdout, stderr) = in_cluster(import_args.clone()).await.expect("join");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("created lab"), "{stdout}");
    let object = fake
        .get("imageregistries", None, "lab")
        .expect("an ImageRegistry");
    assert_eq!(object["spec"]["namespaces"], json!(["team-*"]));
    assert_eq!(object["spec"]["defaultFor"], json!(["team-a"]));
    let secret_name = object["spec"]["credentialsSecretRef"]["name"]
        .as_str()
        .expect("a credentials Secret")
        .to_owned();
    let secret = fake
        .get("secrets", Some("rr-system"), &secret_name)
        .expect("the credentials Secret, in the install namespace");
    let stored = secret["data"]["password"]
        .as_str()
        .map(|p| STANDARD.decode(p).expect("base64"))
        .or_else(|| {
            secret["stringData"]["password"]
                .as_str()
                .map(|p| p.as_bytes().to_vec())
        })
        .expect("a password");
    assert_eq!(stored, PASSWORD.as_bytes());
    assert!(fake.get("imageregistries", None, "open").is_some());

    let (code, stdout, stderr) = in_cluster(import_args).await.expect("join");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("unchanged lab") && stdout.contains("unchanged open"),
        "a second run changes nothing: {stdout}"
    );
    let (code, stdout, stderr) = in_cluster(vec![
        "export".into(),
        "--store".into(),
        "kubernetes".into(),
        "--install-namespace".into(),
        "rr-system".into(),
    ])
    .await
    .expect("join");
    assert_eq!(code, 0, "{stderr}");
    let from_cluster: Value = serde_json::from_str(&stdout).expect("export writes JSON");
    let without_status = |items: &[Value]| -> Vec<Value> {
        items
            .iter()
            .map(|item| {
                let mut item = item.clone();
                item.as_object_mut().map(|o| o.remove("status"));
                item
            })
            .collect()
    };
    assert_eq!(
        without_status(from_cluster["items"].as_array().expect("items")),
        without_status(&exported(&first)),
        "the cluster holds the same records"
    );
}
