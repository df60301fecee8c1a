//! The real binary: `serve` across restarts and `kill -9`, what it logs,
//! and `resolve` on multi-document streams and as a Helm post-renderer.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{client_trusting, fixture_path};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_registry-resolver");
const TOKEN: &str = "binary-test-token";

struct Served {
    child: Child,
    port: u16,
    admin_port: u16,
    log: std::path::PathBuf,
}

impl Served {
    fn start(dir: &Path) -> Self {
        Self::start_with_token(dir, Some(TOKEN))
    }

    /// Logging only warnings: for runs under load, where tracing every
    /// request would be most of the work.
    fn start_quiet(dir: &Path) -> Self {
        Self::start_logging(dir, Some(TOKEN), "warn", &[])
    }

    /// `token: None` lets the server generate its own.
    fn start_with_token(dir: &Path, token: Option<&str>) -> Self {
        Self::start_logging(dir, token, "trace", &[])
    }

    fn start_logging(dir: &Path, token: Option<&str>, level: &str, env: &[(&str, &str)]) -> Self {
        // A free port can be taken by another test's connection before the
        // server binds it: then the server exits saying so, and we try
        // other ports.
        for _ in 0..5 {
            let (port, admin_port) = (common::free_port(), common::free_port());
            let log = dir.join(format!("serve-{port}.log"));
            let mut command = Command::new(BIN);
            command.envs(env.iter().copied());
            if let Some(token) = token {
                command.env("REGISTRY_RESOLVER_ADMIN_TOKEN", token);
            }
            let child = command
                .arg("serve")
                .env("REGISTRY_RESOLVER_LISTEN", format!("127.0.0.1:{port}"))
                .env(
                    "REGISTRY_RESOLVER_ADMIN_LISTEN",
                    format!("127.0.0.1:{admin_port}"),
                )
                .env("REGISTRY_RESOLVER_DATA_DIR", dir.join("data"))
                .env("REGISTRY_RESOLVER_CERTS_DIR", dir.join("certs"))
                // By default everything we log, at the most verbose level, to
                // search for secrets.
                .env("REGISTRY_RESOLVER_LOG_LEVEL", level)
                .env("REGISTRY_RESOLVER_LOG_FORMAT", "json")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("binary starts");
            let mut served = Self {
                child,
                port,
                admin_port,
                log,
            };
            match served.wait_ready() {
                Ok(()) => return served,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("server not ready; log:\n{log}"),
            }
        }
        panic!("no free ports for the server in five tries");
    }

    /// Ready, or the log when the server exited or never became ready.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ready = std::net::TcpStream::connect(("127.0.0.1", self.admin_port))
                .ok()
                .and_then(|mut s| {
                    s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").ok()?;
                    let mut out = String::new();
                    std::io::Read::read_to_string(&mut s, &mut out).ok()?;
                    Some(out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"))
                })
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        self.child.wait().expect("exits")
    }
}

fn registry(name: &str, password: &str) -> Value {
    json!({"name": name, "server": "dockerhub.qingcloud.com", "username": "robot", "password": password,
           "namespaces": ["team-a"], "defaultFor": if name == "demo" { json!(["team-a"]) } else { json!([]) }})
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(dir.path());
    let client = client_trusting(&dir.path().join("certs/ca.crt"));
    let mut names = vec!["demo".to_owned()];
    names.extend((0..19).map(|i| format!("r{i}")));
    for name in &names {
        let response = client
            .post(served.url("/api/v1/registries?verify=false"))
            .bearer_auth(TOKEN)
            .json(&registry(name, "pw-never-logged-1"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201);
    }
    // SIGKILL right after the last acknowledgement: no chance to flush anything.
    served.kill9();

    let served = Served::start(dir.path());
    let list: Value = client
        .get(served.url("/api/v1/registries"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let mut got: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("").to_owned())
        .collect();
    got.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|r| r["hasPassword"] == true)
    );

    // The restarted webhook resolves with the restored records.
    let resolved: Value = client
        .post(served.url("/api/v1/namespaces/team-a/resolve"))
        .bearer_auth(TOKEN)
        .json(&json!({"image": "/mysql/mysql:5.6"}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(resolved["image"], "dockerhub.qingcloud.com/mysql/mysql:5.6");
    let status = served.sigterm();
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
}

/// 20 rounds of: 200 writers creating records at once, `kill -9` in the
/// middle of it, restart. Every write that was acknowledged (201) is there
/// after the restart, nothing half-written is, and SQLite's integrity check
/// passes on the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_amid_200_concurrent_writers_loses_no_acknowledged_write() {
    use std::sync::{Arc, Mutex};
    const ROUNDS: usize = 20;
    const WRITERS: usize = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let client = {
        // The CA is written by the first start.
        let served = Served::start_quiet(dir.path());
        served.kill9();
        client_trusting(&dir.path().join("certs/ca.crt"))
    };
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..ROUNDS {
        let served = Served::start_quiet(dir.path());
        let url = served.url("/api/v1/registries?verify=false");
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (client, url, acknowledged) =
                    (client.clone(), url.clone(), acknowledged.clone());
                tokio::spawn(async move {
                    for k in 0.. {
                        let name = format!("r{round}-w{writer}-{k}");
                        let sent = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .json(&registry(&name, "pw-1"))
                            .send()
                            .await;
                        match sent {
                            Ok(response) if response.status() == 201 => {
                                acknowledged.lock().expect("lock").push(name);
                            }
                            Ok(response) => panic!("{name}: {}", response.status()),
                            // The server is gone: this writer is done.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        // Somewhere between 150 and 650 ms into the writes.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(150 + (seed >> 33) % 500)).await;
        served.kill9();
        for writer in writers {
            writer.await.expect("writer");
        }
    }

    let served = Served::start_quiet(dir.path());
    let list: Value = client
        .get(served.url("/api/v1/registries"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let stored: std::collections::HashSet<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > ROUNDS * 10,
        "writes happened: {}",
        acknowledged.len()
    );
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Whatever else is there (written, not yet acknowledged) is whole.
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|r| r["hasPassword"] == true)
    );
    assert!(served.sigterm().success());

    let db = rusqlite::Connection::open(dir.path().join("data/registries.db")).expect("open");
    let verdict: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(verdict, "ok");
}

/// SIGTERM while 32 clients send admissions and API reads, the way a
/// cluster sees it: readiness drops at once, the server keeps serving for
/// `--shutdown-delay` while clients notice (polled every 500 ms, as
/// endpoints take a moment to update), then drains. No request fails —
/// neither those sent after SIGTERM nor those in flight — and the process
/// exits cleanly. Each request is on its own connection, so no keep-alive
/// race can be blamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start_logging(
        dir.path(),
        Some(TOKEN),
        "warn",
        &[("REGISTRY_RESOLVER_SHUTDOWN_DELAY", "2s")],
    );
    let ca = dir.path().join("certs/ca.crt");
    let client = client_trusting(&ca);
    let response = client
        .post(served.url("/api/v1/registries?verify=false"))
        .bearer_auth(TOKEN)
        .json(&registry("demo", "pw-1"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    // The load benchmark's review: a Deployment in team-a with relative images.
    let review = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/review-deployment.json"
    ))
    .expect("review");
    let answered = Arc::new(AtomicUsize::new(0));
    let routed_away = Arc::new(AtomicBool::new(false));
    let fresh = {
        let pem = std::fs::read(&ca).expect("CA");
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA parses")])
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    };
    let clients: Vec<_> = (0..32)
        .map(|i| {
            let (client, answered, review) = (fresh.clone(), answered.clone(), review.clone());
            let routed_away = routed_away.clone();
            let (mutate, list) = (served.url("/mutate"), served.url("/api/v1/registries"));
            tokio::spawn(async move {
                while !routed_away.load(Ordering::Acquire) {
                    let request = if i % 2 == 0 {
                        client
                            .post(&mutate)
                            .header("content-type", "application/json")
                            .body(review.clone())
                    } else {
                        client.get(&list).bearer_auth(TOKEN)
                    };
                    let response = request.send().await.expect("no request fails");
                    let status = response.status();
                    let body = response.bytes().await;
                    assert!(status.is_success(), "answered {status}");
                    assert!(body.is_ok(), "body cut off: {body:?}");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = answered.load(Ordering::Relaxed);
    let pid = served.child.id().to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(signalled.success());
    // The "endpoints controller": routes away once readiness says so.
    let readyz = format!("http://127.0.0.1:{}/readyz", served.admin_port);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ready = reqwest::get(&readyz).await.map(|r| r.status().is_success());
        if !matches!(ready, Ok(true)) {
            routed_away.store(true, Ordering::Release);
            break;
        }
    }
    for client in clients {
        client.await.expect("no request failed");
    }
    let after = answered.load(Ordering::Relaxed) - before;
    let status = tokio::task::spawn_blocking(move || {
        let mut served = served;
        served.child.wait().expect("exits")
    })
    .await
    .expect("wait");
    assert!(before > 50, "load was running: {before} answers");
    assert!(
        after > 0,
        "answers after SIGTERM, before clients routed away"
    );
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn passwords_and_tokens_never_reach_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(dir.path());
    let client = client_trusting(&dir.path().join("certs/ca.crt"));
    let password = "Pw-Secret-4-Log-Check";
    let create = client
        .post(served.url("/api/v1/registries?verify=false"))
        .bearer_auth(TOKEN)
        .json(&registry("demo", password))
        .send()
        .await
        .expect("request");
    assert_eq!(create.status(), 201);
    // Failing writes too: errors must not echo the body.
    let mut bad = registry("demo", password);
    bad["server"] = json!("ftp://nope");
    let failed = client
        .put(served.url("/api/v1/registries/demo"))
        .bearer_auth(TOKEN)
        .json(&bad)
        .send()
        .await
        .expect("request");
    assert_eq!(failed.status(), 422);
    let text = failed.text().await.expect("text");
    assert!(!text.contains(password));
    let wrong_token = client
        .get(served.url("/api/v1/registries"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("request");
    assert_eq!(wrong_token.status(), 401);
    // An admission that injects the pull secret, and one denied.
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {}, "template": {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "/team/app:1"}]}}}});
    for namespace in ["team-a", "elsewhere"] {
        let mut review = common::admission_review(&deployment, namespace, "CREATE");
        review["request"]["name"] = json!("web");
        let answer: Value = client
            .post(served.url("/mutate"))
            .json(&review)
            .send()
            .await
            .expect("review")
            .json()
            .await
            .expect("json");
        assert_eq!(
            answer["response"]["allowed"],
            namespace == "team-a",
            "{answer}"
        );
    }

    let log_path = served.log.clone();
    served.sigterm();
    let log = std::fs::read_to_string(log_path).expect("log");
    assert!(
        log.contains("registry created"),
        "the log has content: {log}"
    );
    // The denial: at info, with its reason and the registries allowed,
    // inside the review's span.
    let denied: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "admission denied")
        .unwrap_or_else(|| panic!("no denial logged: {log}"));
    assert_eq!(denied["level"], "INFO", "{denied}");
    assert_eq!(denied["reason"], "no_registry", "{denied}");
    assert!(
        denied["denial"]
            .as_str()
            .is_some_and(|d| d.contains("no registry is authorized in namespace \"elsewhere\"")),
        "{denied}"
    );
    let span = &denied["span"];
    for (field, value) in [
        ("namespace", "elsewhere"),
        ("kind", "Deployment"),
        ("object", "web"),
        ("operation", "CREATE"),
        ("outcome", "denied"),
    ] {
        assert_eq!(span[field], value, "{field}: {denied}");
    }
    assert!(span["uid"].is_string(), "{denied}");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("robot:{password}"));
    for secret in [password, TOKEN, "not-the-token", auth.as_str()] {
        assert!(!log.contains(secret), "log contains {secret:?}");
    }
}

#[tokio::test]
async fn a_generated_token_stays_out_of_redirected_output_and_data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start_with_token(dir.path(), None);
    let token_file = dir.path().join("data/admin-token");
    let token = std::fs::read_to_string(&token_file).expect("token file written");
    let token = token.trim().to_owned();
    assert!(token.len() >= 32, "a real token: {token:?}");
    // The token from the file works, so it is the one in use.
    let client = client_trusting(&dir.path().join("certs/ca.crt"));
    let create = client
        .post(served.url("/api/v1/registries?verify=false"))
        .bearer_auth(&token)
        .json(&registry("demo", "pw-for-mode-check"))
        .send()
        .await
        .expect("request");
    assert_eq!(create.status(), 201);
    // While the server runs, the WAL and shared-memory files exist too.
    for name in [
        "registries.db",
        "registries.db-wal",
        "registries.db-shm",
        "admin-token",
        "encryption.key",
    ] {
        let mode = std::fs::metadata(dir.path().join("data").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
    let log_path = served.log.clone();
    served.sigterm();
    let log = std::fs::read_to_string(log_path).expect("log");
    assert!(
        !log.contains(&token),
        "stderr is a file here: the token must not be in it"
    );
    assert!(
        log.contains("generated an API admin token")
            && log.contains(&token_file.display().to_string()),
        "the log says where the token is: {log}"
    );
}

#[test]
fn an_older_store_with_open_modes_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    seed_store(&data);
    for name in ["registries.db", "registries.db-wal", "registries.db-shm"] {
        let path = data.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
    let (ok, _, stderr) = run_resolve(&["-n", "team-a"], &data, b"");
    assert!(ok, "{stderr}");
    let mode = std::fs::metadata(data.join("registries.db"))
        .expect("db")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

fn seed_store(data_dir: &Path) {
    seed_records(
        data_dir,
        &[
            json!({"name": "demo", "server": "dockerhub.qingcloud.com", "username": "u", "password": "p",
                   "namespaces": ["team-a", "default"], "defaultFor": ["team-a", "default"]}),
            json!({"name": "harbor", "server": "http://harbor.local/library", "namespaces": ["team-a"]}),
        ],
    );
}

fn seed_records(data_dir: &Path, records: &[Value]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use registry_resolver::registry::RegistryInput;
        use registry_resolver::registry::WriteMode;
        use registry_resolver::registry::store::RegistryStore;
        let store = registry_resolver::app::open_embedded_store(
            &common::store_args(data_dir),
            registry_resolver::index::IndexHandle::new(),
        )
        .expect("store");
        for body in records {
            let input: RegistryInput = serde_json::from_value(body.clone()).expect("input");
            store
                .create(input.validate(WriteMode::Create, None).expect("valid"))
                .await
                .expect("created");
        }
    });
}

fn run_resolve(args: &[&str], data_dir: &Path, stdin: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("resolve")
        .args(args)
        .env("REGISTRY_RESOLVER_DATA_DIR", data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn yaml_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("output is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn resolve_command_on_a_multi_document_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    seed_store(&data);

    let mut input =
        std::fs::read_to_string(fixture_path("helm-create-template.yaml")).expect("fixture");
    input.push_str("\n---\n");
    input
        .push_str(&std::fs::read_to_string(fixture_path("cronjob-kubectl.json")).expect("fixture"));
    let (ok, stdout, stderr) = run_resolve(&["--namespace", "team-a"], &data, input.as_bytes());
    assert!(ok, "{stderr}");
    let docs = yaml_documents(&stdout);
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["ServiceAccount", "Service", "Deployment", "Pod", "CronJob"]
    );
    assert_eq!(
        docs[2]["spec"]["template"]["spec"]["containers"][0]["image"],
        "dockerhub.qingcloud.com/library/nginx:1.27"
    );
    assert_eq!(
        docs[2]["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "demo"}])
    );
    assert_eq!(
        docs[3]["spec"]["containers"][0]["image"], "busybox",
        "qualified images untouched"
    );
    let cron = &docs[4]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        cron["containers"][0]["image"],
        "dockerhub.qingcloud.com/tools/backup:2.1"
    );
    // Field order is kept, so diffs against the input stay readable.
    assert!(stdout.find("apiVersion").unwrap_or(usize::MAX) < stdout.find("kind").unwrap_or(0));

    // Running the output through again changes nothing.
    let (ok, again, _) = run_resolve(&["--namespace", "team-a"], &data, stdout.as_bytes());
    assert!(ok);
    assert_eq!(yaml_documents(&again), docs);

    // JSON output; -f with a file.
    let (ok, json_out, stderr) = run_resolve(
        &[
            "-f",
            fixture_path("job-kubectl.json")
                .to_str()
                .expect("utf-8 path"),
            "-o",
            "json",
            "-n",
            "team-a",
        ],
        &data,
        b"",
    );
    assert!(ok, "{stderr}");
    let job: Value = serde_json::from_str(&json_out).expect("json output");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "dockerhub.qingcloud.com/mysql/mysql:5.6"
    );
}

#[test]
fn resolve_command_denies_with_the_webhook_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    seed_store(&data);
    let input = std::fs::read_to_string(fixture_path("deployment-kubectl.json")).expect("fixture");
    // team-b has no registry at all.
    let (ok, stdout, stderr) = run_resolve(&["-n", "team-b"], &data, input.as_bytes());
    assert!(!ok);
    assert!(stdout.is_empty(), "nothing half-written to stdout");
    assert!(
        stderr.contains(
            "Deployment/web: container \"mysql\": image \"/mysql/mysql:5.6\" names no registry"
        ),
        "{stderr}"
    );
    let (ok, _, stderr) = run_resolve(&[], &data, b"kind: [unclosed");
    assert!(!ok);
    assert!(
        stderr.contains("not valid YAML or JSON: line 2 column 1: while parsing a flow sequence"),
        "{stderr}"
    );
    let (ok, _, stderr) = run_resolve(&[], &dir.path().join("missing"), b"");
    assert!(!ok);
    assert!(stderr.contains("no registry store"), "{stderr}");
}

/// `resolve` sends Docker Hub images through the namespace's mirror as the
/// webhook does, changing only what it edits (the image as written is
/// kept in the original-images annotation).
#[test]
fn resolve_command_pulls_through_the_namespaces_mirror() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    seed_records(
        &data,
        &[
            json!({"name": "hub", "server": "harbor.example.com", "username": "robot", "password": "p",
                 "namespaces": ["team-a"],
                 "mirrorOf": [{"upstream": "docker.io", "pathPrefix": "dockerhub-proxy"}]}),
        ],
    );
    let input = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx:1.25 # pinned by the team\n  - name: agent\n    image: quay.io/org/agent:1\n";
    let (ok, stdout, stderr) = run_resolve(&["-n", "team-a"], &data, input.as_bytes());
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("    image: harbor.example.com/dockerhub-proxy/library/nginx:1.25 # pinned by the team\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    image: quay.io/org/agent:1\n"),
        "{stdout}"
    );
    assert!(stdout.contains("imagePullSecrets"), "{stdout}");
    assert!(
        stdout.contains("registry-resolver.io/original-images"),
        "{stdout}"
    );
    // Elsewhere, nothing changes.
    let (ok, stdout, _) = run_resolve(&["-n", "team-b"], &data, input.as_bytes());
    assert!(ok);
    assert_eq!(stdout, input);
}

/// Helm 3 runs the binary as `--post-renderer` (the README's test command
/// installs helm).
#[test]
fn resolve_command_as_helm_post_renderer() {
    let helm = which("helm").expect("helm on PATH: ./scripts/test installs it");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    seed_store(&data);
    let chart = dir.path().join("demo");
    let created = Command::new(&helm)
        .args(["create"])
        .arg(&chart)
        .output()
        .expect("helm create");
    assert!(created.status.success());
    let out = Command::new(&helm)
        .args(["template", "web"])
        .arg(&chart)
        .args([
            "--namespace",
            "team-a",
            "--set",
            "image.repository=/library/nginx",
            "--set",
            "image.tag=1.27",
        ])
        .args([
            "--post-renderer",
            BIN,
            "--post-renderer-args",
            "resolve",
            "--post-renderer-args",
            "--namespace=team-a",
        ])
        .env("REGISTRY_RESOLVER_DATA_DIR", &data)
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .env("HELM_DATA_HOME", dir.path().join("helmdata"))
        .output()
        .expect("helm template");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployment = yaml_documents(&stdout)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "dockerhub.qingcloud.com/library/nginx:1.27"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "demo"}])
    );
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

/// The edited output is the input, byte for byte, but for the images, the
/// added pull Secret and the original-images annotation: YAML 1.1 scalars,
/// comments, quoting, key order, block scalars, documents not touched,
/// JSON input; with CRLF line ends and a byte order mark too.
#[test]
fn resolve_changes_only_what_it_owns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    seed_store(&data);
    let input = std::fs::read_to_string(fixture_path("resolve/as-written.yaml")).expect("fixture");
    let expected =
        std::fs::read_to_string(fixture_path("resolve/as-written.resolved.yaml")).expect("fixture");
    for (variant, input, expected) in [
        ("LF", input.clone(), expected.clone()),
        (
            "CRLF",
            input.replace('\n', "\r\n"),
            expected.replace('\n', "\r\n"),
        ),
        (
            "BOM",
            format!("\u{feff}{input}"),
            format!("\u{feff}{expected}"),
        ),
    ] {
        let (ok, stdout, stderr) = run_resolve(&["-n", "team-a"], &data, input.as_bytes());
        assert!(ok, "{variant}: {stderr}");
        assert_eq!(stdout, expected, "{variant}");
        // A second pass changes nothing at all.
        let (ok, again, stderr) = run_resolve(&["-n", "team-a"], &data, stdout.as_bytes());
        assert!(ok, "{variant}: {stderr}");
        assert_eq!(again, stdout, "{variant}: idempotent");
    }
    // A stream with nothing to resolve comes out as it went in.
    let (ok, stdout, _) = run_resolve(
        &["-n", "team-a"],
        &data,
        b"# only\nkind: ConfigMap\ndata: {a: 0644, b: yes}\n---\n---\n",
    );
    assert!(ok);
    assert_eq!(
        stdout,
        "# only\nkind: ConfigMap\ndata: {a: 0644, b: yes}\n---\n---\n"
    );
}

/// What differs between `before` and `after`, line by line: lines that
/// only one side has, in order: (removed, added).
fn changed_lines<'a>(before: &'a str, after: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    // Longest common subsequence of lines: the charts render ~1,000 lines.
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let mut table = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            table[i][j] = if a[i] == b[j] {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut removed, mut added) = (0, 0, Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || table[i][j + 1] >= table[i + 1][j]) {
            added.push(b[j]);
            j += 1;
        } else {
            removed.push(a[i]);
            i += 1;
        }
    }
    (removed, added)
}

/// Real third-party charts (tests/fixtures/charts, Apache-2.0) rendered by
/// helm with an empty registry value, through `resolve`: a diff of input
/// and output shows only image lines, the added pull Secret and the
/// annotation.
#[test]
fn resolve_on_real_charts_changes_only_image_lines() {
    let helm = which("helm").expect("helm on PATH: ./scripts/test installs it");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    seed_store(&data);
    for (chart, sets) in [
        (
            "prometheus-node-exporter",
            &[
                "image.registry=",
                "kubeRBACProxy.enabled=true",
                "kubeRBACProxy.image.registry=",
            ][..],
        ),
        (
            "kube-state-metrics",
            &["image.registry=", "customResourceState.enabled=true"][..],
        ),
    ] {
        let mut command = Command::new(&helm);
        command
            .args(["template", "monitoring"])
            .arg(fixture_path(&format!("charts/{chart}")))
            .args(["--namespace", "team-a"])
            .env("HELM_CACHE_HOME", dir.path().join("cache"))
            .env("HELM_CONFIG_HOME", dir.path().join("config"))
            .env("HELM_DATA_HOME", dir.path().join("helmdata"));
        for set in sets {
            command.args(["--set", set]);
        }
        let rendered = command.output().expect("helm template");
        assert!(
            rendered.status.success(),
            "{chart}: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        let input = String::from_utf8(rendered.stdout).expect("utf-8");
        assert!(
            input.contains("image: /"),
            "{chart}: renders registry-relative images"
        );
        let (ok, output, stderr) = run_resolve(&["-n", "team-a"], &data, input.as_bytes());
        assert!(ok, "{chart}: {stderr}");
        let (removed, added) = changed_lines(&input, &output);
        assert!(!removed.is_empty(), "{chart}: something was resolved");
        // `image: /x`, `- image: "/x"`: the value after `image: `, unquoted.
        let image = |line: &str| {
            let line = line.trim_start();
            let line = line.strip_prefix("- ").unwrap_or(line);
            line.strip_prefix("image: ")
                .map(|value| value.trim_matches('"').to_owned())
        };
        for line in &removed {
            assert!(
                image(line).is_some_and(|value| value.starts_with('/')),
                "{chart}: only image lines change, not {line:?}"
            );
        }
        for line in &added {
            let resolved =
                image(line).is_some_and(|value| value.starts_with("dockerhub.qingcloud.com/"));
            let line = line.trim_start();
            assert!(
                resolved
                    || line == "imagePullSecrets:"
                    || line == "- name: demo"
                    || line == "annotations:"
                    || line.starts_with("registry-resolver.io/original-images: "),
                "{chart}: only the resolved edits are added, not {line:?}"
            );
        }
    }
}
