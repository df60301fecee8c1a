//! What Kubernetes mode costs a large cluster: the release binary
//! (`serve --store kubernetes`) against the in-memory API server over HTTP,
//! as it would run against a real one.
//!
//!   cargo bench --bench cluster              # 5,000 namespaces; ~8 minutes
//!   CLUSTER_NAMESPACES=2000 cargo bench --bench cluster
//!   CLUSTER_ONLY=memory cargo bench --bench cluster     # or =writes
//!
//! - **Writes**: one record for every namespace (`ns-*`) with credentials.
//!   Its pull Secrets are created, then its password is rotated, at the
//!   default pace (`--write-rate 50 --write-burst 100`), against a server
//!   that admits every write and against one that answers 429 with
//!   `Retry-After: 1` past 25 writes a second. For each: the time until
//!   every namespace's Secret holds the current password, the peak write
//!   rate the server saw (any one second), the 429s, the writes per
//!   Secret (1 is no repeat), and the writes in the 5 s after (0: the
//!   state reached, nothing more is written; the Lease aside).
//! - **Memory**: 5,000 namespaces, 1,000 records in 20 namespaces each and
//!   their 20,000 pull Secrets already in line, all in the watch caches:
//!   the process's resident memory once settled, against the same binary
//!   watching an empty cluster.
//!
//! Under `cargo test` (no `--bench`) it runs a few dozen namespaces as a
//! smoke test of itself.

#[path = "../tests/common/fake_apiserver.rs"]
mod fake_apiserver;

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Process, free_port};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_apiserver::FakeApiServer;
use serde_json::{Value, json};

const INSTALL: &str = "registry-resolver";
const HOST: &str = "harbor.example.com";

struct Server {
    process: Process,
    admin: String,
    _dir: tempfile::TempDir,
}

/// The binary, in Kubernetes mode against `fake`; returns once it is ready
/// (every watch listed).
async fn start(fake: &FakeApiServer, extra: &[&str]) -> (Server, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        FakeApiServer::kubeconfig(&fake.serve_http().await),
    )
    .expect("kubeconfig");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_registry-resolver"));
    let certs = dir.path().join("certs");
    let made = Command::new(&bin)
        .args(["certs", "--out-dir"])
        .arg(&certs)
        .stderr(Stdio::null())
        .status()
        .expect("certs runs");
    assert!(made.success());
    let admin = free_port();
    let started = Instant::now();
    let child = Command::new(&bin)
        .args([
            "serve",
            "--store",
            "kubernetes",
            "--install-namespace",
            INSTALL,
        ])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .arg("--certs-dir")
        .arg(&certs)
        .args(["--log-level", "warn"])
        .args(extra)
        .env("KUBECONFIG", &kubeconfig)
        .spawn()
        .expect("serve starts");
    let server = Server {
        process: Process(child),
        admin: format!("http://127.0.0.1:{admin}"),
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = client
            .get(format!("{}/readyz", server.admin))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the server never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, started.elapsed())
}

impl Server {
    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

fn namespaces(fake: &FakeApiServer, count: usize) -> Vec<String> {
    fake.namespace(INSTALL);
    let names: Vec<String> = (0..count).map(|i| format!("ns-{i:05}")).collect();
    for name in &names {
        fake.namespace(name);
    }
    names
}

/// A record as `kubectl apply` leaves it, with its credentials Secret.
fn record(fake: &FakeApiServer, name: &str, namespaces: Value, password: &str) {
    credentials(fake, name, password);
    fake.put(
        "imageregistries",
        "registry-resolver.io/v1alpha1",
        "ImageRegistry",
        None,
        json!({"metadata": {"name": name, "finalizers": ["registry-resolver.io/pull-secrets"]},
               "spec": {"server": HOST, "namespaces": namespaces,
                        "credentialsSecretRef": {"name": format!("{name}-credentials")}}}),
    );
}

fn credentials(fake: &FakeApiServer, name: &str, password: &str) {
    fake.put(
        "secrets",
        "v1",
        "Secret",
        Some(INSTALL),
        json!({"metadata": {"name": format!("{name}-credentials")}, "type": "kubernetes.io/basic-auth",
               "data": {"username": STANDARD.encode("robot"), "password": STANDARD.encode(password)}}),
    );
}

/// A pull Secret in line, as the controller would have written it.
fn pull_secret(fake: &FakeApiServer, record: &str, namespace: &str, password: &str) {
    let config = registry_resolver::replication::dockerconfigjson(HOST, "robot", password);
    fake.put(
        "secrets",
        "v1",
        "Secret",
        Some(namespace),
        json!({"metadata": {"name": record, "namespace": namespace,
                            "labels": {"app.kubernetes.io/managed-by": "registry-resolver",
                                       "registry-resolver.io/registry": record}},
               "type": "kubernetes.io/dockerconfigjson",
               "data": {".dockerconfigjson": STANDARD.encode(config)}}),
    );
}

/// Namespaces whose `record` pull Secret holds `password`.
fn in_line(fake: &FakeApiServer, record: &str, password: &str) -> usize {
    let want = STANDARD.encode(registry_resolver::replication::dockerconfigjson(
        HOST, "robot", password,
    ));
    fake.list("secrets", None)
        .iter()
        .filter(|s| {
            s["metadata"]["name"] == record
                && s["data"][".dockerconfigjson"].as_str() == Some(&want)
        })
        .count()
}

/// What one phase of writes came to.
struct Phase {
    took: Duration,
    secret_writes: usize,
    max_per_secret: usize,
    peak_per_second: usize,
    throttled: usize,
    status_writes: usize,
    writes_after: usize,
}

/// How long the server is watched for writes once the state is reached.
fn quiet_window() -> Duration {
    if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(2)
    }
}

/// Waits until `want` namespaces are in line with `password`, then
/// [`quiet_window`] more, and tells what the server saw from `since`.
async fn settle(
    fake: &FakeApiServer,
    password: &str,
    want: usize,
    since: Instant,
    throttled_before: usize,
    limit: Duration,
) -> Phase {
    let deadline = since + limit;
    while in_line(fake, "harbor", password) < want {
        assert!(
            Instant::now() < deadline,
            "{} of {want} in line after {limit:?}",
            in_line(fake, "harbor", password)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = since.elapsed();
    let reached = Instant::now();
    tokio::time::sleep(quiet_window()).await;
    let writes: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|w| w.at >= since && w.plural != "leases")
        .collect();
    let mut per_secret = BTreeMap::<&str, usize>::new();
    for write in writes
        .iter()
        .filter(|w| w.plural == "secrets" && w.name == "harbor")
    {
        *per_secret.entry(&write.namespace).or_default() += 1;
    }
    let times: Vec<Instant> = writes.iter().map(|w| w.at).collect();
    let peak_per_second = (0..times.len())
        .map(|i| times[i..].partition_point(|t| *t < times[i] + Duration::from_secs(1)))
        .max()
        .unwrap_or(0);
    Phase {
        took,
        secret_writes: per_secret.values().sum(),
        max_per_secret: per_secret.values().copied().max().unwrap_or(0),
        peak_per_second,
        throttled: fake.throttled() - throttled_before,
        status_writes: writes
            .iter()
            .filter(|w| w.plural == "imageregistries")
            .count(),
        writes_after: writes.iter().filter(|w| w.at > reached).count(),
    }
}

fn row(what: &str, namespaces: usize, phase: &Phase) {
    println!(
        "| {what} | {namespaces} | {:.1} s | {} | {} | {} | {} | {} | {} |",
        phase.took.as_secs_f64(),
        phase.peak_per_second,
        phase.throttled,
        phase.secret_writes,
        phase.max_per_secret,
        phase.status_writes,
        phase.writes_after,
    );
}

/// One record for every namespace: its pull Secrets created (when
/// `create`), then its password rotated.
async fn writes(count: usize, server_limit: Option<f64>, create: bool, label: &str) {
    let fake = FakeApiServer::new();
    let names = namespaces(&fake, count);
    record(&fake, "harbor", json!(["ns-*"]), "pw-1");
    if !create {
        for name in &names {
            pull_secret(&fake, "harbor", name, "pw-1");
        }
    }
    if let Some(rate) = server_limit {
        fake.limit_writes(rate, rate, 1);
    }
    let limit = Duration::from_secs(60 + 4 * count as u64 / 10);
    let since = Instant::now();
    let (server, _) = start(&fake, &[]).await;
    let created = settle(&fake, "pw-1", count, since, 0, limit).await;
    if create {
        row(&format!("{label}: created"), count, &created);
    }
    // The rotation starts once the record's status says all is in line
    // (with the Secrets there from the start, the binary is still
    // starting when they are found in line).
    let deadline = Instant::now() + limit;
    while fake.get("imageregistries", None, "harbor").is_none_or(|o| {
        o["status"]["replication"] != json!({"replicated": count, "authorized": count})
    }) {
        assert!(Instant::now() < deadline, "the final status never came");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let throttled = fake.throttled();
    let since = Instant::now();
    credentials(&fake, "harbor", "pw-2");
    let rotated = settle(&fake, "pw-2", count, since, throttled, limit).await;
    row(&format!("{label}: rotated"), count, &rotated);
    let seen = server
        .metric("registry_resolver_cluster_throttled_total")
        .await;
    // The Lease is renewed by a client of its own, not paced (kube's own
    // retry waits its 429s out).
    assert_eq!(
        seen as usize,
        fake.throttled() - fake.throttled_of("leases"),
        "every 429 the server sent the paced client was seen and waited out"
    );
    assert_eq!(rotated.secret_writes, count, "every Secret rewritten");
    if create {
        assert_eq!(created.secret_writes, count, "every Secret written");
    }
    let measured = if create {
        vec![&created, &rotated]
    } else {
        vec![&rotated]
    };
    for phase in measured {
        assert_eq!(phase.max_per_secret, 1, "a Secret written twice");
        assert_eq!(phase.writes_after, 0, "writes after the state was reached");
    }
}

/// The watch caches' cost: `records` records in `per_record` namespaces
/// each, their pull Secrets in line.
async fn memory(count: usize, records: usize, per_record: usize) {
    let empty = FakeApiServer::new();
    empty.namespace(INSTALL);
    let (server, _) = start(&empty, &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (baseline, _) = server.process.memory_kib();
    drop(server);

    let fake = FakeApiServer::new();
    let names = namespaces(&fake, count);
    for r in 0..records {
        let name = format!("r{r:04}");
        let reached: Vec<&String> = (0..per_record)
            .map(|i| &names[(r * per_record + i) % count])
            .collect();
        record(&fake, &name, json!(reached), "pw");
        for namespace in reached {
            pull_secret(&fake, &name, namespace, "pw");
        }
    }
    let secrets = records * per_record;
    // Fast writes: each record's first status is written once, and memory
    // is measured once that is done.
    let (server, ready_after) =
        start(&fake, &["--write-rate", "1000", "--write-burst", "1000"]).await;
    let (at_ready, _) = server.process.memory_kib();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let before = fake.writes().len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let written = fake.writes();
        let quiet = written[before..].iter().all(|w| w.plural == "leases");
        let statuses = fake
            .list("imageregistries", None)
            .iter()
            .filter(|o| !o["status"]["replication"].is_null())
            .count();
        if quiet && statuses == records {
            break;
        }
        assert!(Instant::now() < deadline, "never settled");
    }
    let pull_secret_writes = fake
        .writes()
        .iter()
        .filter(|w| w.plural == "secrets" && w.namespace != INSTALL)
        .count();
    let (rss, peak) = server.process.memory_kib();
    println!(
        "| {count} namespaces, {records} records, {secrets} pull Secrets | {:.1} s | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {pull_secret_writes} |",
        ready_after.as_secs_f64(),
        at_ready as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        baseline as f64 / 1024.0,
    );
    assert_eq!(
        pull_secret_writes, 0,
        "Secrets in line are not written again"
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let count: usize = std::env::var("CLUSTER_NAMESPACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 5000 } else { 40 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    registry_resolver::server::tls::install_crypto_provider();
    // CLUSTER_ONLY=writes or =memory runs that half alone.
    let only = std::env::var("CLUSTER_ONLY").unwrap_or_default();
    runtime.block_on(async {
        if only != "memory" {
            write_phases(count).await;
        }
        if only != "writes" {
            println!();
            println!("| watched | until ready | RSS when ready | RSS settled | peak RSS | RSS, empty cluster | pull Secret writes |");
            println!("|---|---:|---:|---:|---:|---:|---:|");
            if bench {
                memory(count, 1000, 20).await;
            } else {
                memory(count, 10, 4).await;
            }
        }
    });
}

/// The pull Secrets of one record for every namespace, created and
/// rotated, against a server that admits all and one that throttles.
async fn write_phases(count: usize) {
    println!(
        "| phase | namespaces | until every Secret is in line | peak writes/s at the server | 429s | Secret writes | most writes to one Secret | status writes | writes in the 5 s after |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    writes(count, None, true, "server admits all").await;
    writes(count, Some(25.0), false, "server admits 25/s").await;
}
