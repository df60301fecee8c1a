//! How the API's costs grow with the record count: the release binary on the
//! embedded store, one client on one keep-alive HTTPS connection, sequential
//! calls (what an import script or a console does).
//!
//!   cargo bench --bench scale                 # 10,000 records, 2,000 namespaces
//!   SCALE_RECORDS=20000 cargo bench --bench scale
//!
//! Records get 5 namespaces each out of 2,000; the first 2,000 are also the
//! default of one namespace each. At 1k, 5k and 10k records it measures the
//! picker, list pages, a filtered list, the resolve preview, updates and
//! deletes, and the process's memory. `GET /api/v1/info` on the same
//! connection is the baseline: what any request costs before the handler.
//! Under `cargo test` (no `--bench`) it runs a few hundred records as a
//! smoke test of itself.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Process, free_port};

use serde_json::{Value, json};

const NAMESPACES: usize = 2000;
const SAMPLES: usize = 200;

struct Server {
    process: Process,
    client: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_registry-resolver"));
    let certs = dir.path().join("certs");
    let status = Command::new(&bin)
        .args(["certs", "--out-dir"])
        .arg(&certs)
        .stderr(Stdio::null())
        .status()
        .expect("certs runs");
    assert!(status.success());
    let (port, admin) = (free_port(), free_port());
    let child = Command::new(&bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--certs-dir")
        .arg(&certs)
        .args(["--admin-token", "bench", "--log-level", "warn"])
        .spawn()
        .expect("serve starts");
    registry_resolver::server::tls::install_crypto_provider();
    let client = client(&certs.join("ca.crt"));
    let base = format!("https://localhost:{port}/api/v1");
    for _ in 0..200 {
        if client.get(format!("{base}/info")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        process: Process(child),
        client,
        base,
        _dir: dir,
    }
}

fn client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("CA readable");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA parses")])
        .pool_max_idle_per_host(1)
        .build()
        .expect("client builds")
}

impl Server {
    /// One call, timed from send to the last body byte.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (Duration, u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth("bench");
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        let took = started.elapsed();
        (
            took,
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn record(i: usize) -> Value {
    let namespaces: Vec<String> = (0..5)
        .map(|k| format!("ns-{}", (i + k * 401) % NAMESPACES))
        .collect();
    // The first 2,000 records are each the default of their first namespace.
    let default_for: Vec<&String> = if i < NAMESPACES {
        namespaces.iter().take(1).collect()
    } else {
        Vec::new()
    };
    json!({
        "name": format!("reg-{i:05}"),
        "server": format!("host-{i}.example.com"),
        "username": "robot",
        "password": "bench-password",
        "namespaces": namespaces,
        "defaultFor": default_for,
    })
}

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn add(&mut self, d: Duration) {
        self.0.push(d);
    }
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        if v.is_empty() {
            return 0.0;
        }
        let at = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[at].as_secs_f64() * 1e3
    }
    fn p50(&self) -> f64 {
        self.percentile(0.5)
    }
    fn p99(&self) -> f64 {
        self.percentile(0.99)
    }
}

async fn repeat(
    server: &Server,
    samples: usize,
    mut call: impl AsyncFnMut(&Server, usize) -> Duration,
) -> Samples {
    let mut out = Samples::default();
    for i in 0..samples {
        out.add(call(server, i).await);
    }
    out
}

struct Row {
    records: usize,
    baseline: Samples,
    picker: Samples,
    first_page: Samples,
    later_page: Samples,
    filtered: Samples,
    resolve: Samples,
    update: Samples,
    delete: Samples,
    rss_kib: u64,
    hwm_kib: u64,
}

async fn measure(server: &Server, records: usize, samples: usize) -> Row {
    use reqwest::Method;
    let ok = |status: u16, what: &str| assert!((200..300).contains(&status), "{what}: {status}");
    let baseline = repeat(server, samples, async |s, _| {
        let (d, status, _) = s.call(Method::GET, "/info", None).await;
        ok(status, "info");
        d
    })
    .await;
    let picker = repeat(server, samples, async |s, i| {
        let (d, status, body) = s
            .call(
                Method::GET,
                // Record j's first namespace is ns-j: always authorized.
                &format!(
                    "/namespaces/ns-{}/registries",
                    (i * 37) % NAMESPACES.min(records)
                ),
                None,
            )
            .await;
        ok(status, "picker");
        assert!(body["items"].as_array().is_some_and(|a| !a.is_empty()));
        d
    })
    .await;
    let first_page = repeat(server, samples, async |s, _| {
        let (d, status, body) = s.call(Method::GET, "/registries?limit=100", None).await;
        ok(status, "list");
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(100.min(records))
        );
        d
    })
    .await;
    // A page from the middle, reached through the pages before it.
    let mut token = String::new();
    let mut walked = 0;
    while walked < records / 2 {
        let step = (records / 2 - walked).min(1000);
        let continued = if token.is_empty() {
            String::new()
        } else {
            format!("&continue={token}")
        };
        let (_, status, page) = server
            .call(
                Method::GET,
                &format!("/registries?limit={step}{continued}"),
                None,
            )
            .await;
        ok(status, "walking to the middle");
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        walked += step;
    }
    let later_page = repeat(server, samples, async |s, _| {
        let (d, status, _) = s
            .call(
                Method::GET,
                &format!("/registries?limit=100&continue={token}"),
                None,
            )
            .await;
        ok(status, "later page");
        d
    })
    .await;
    // A search: every record's server is looked at.
    let filtered = repeat(server, samples, async |s, _| {
        let (d, status, _) = s
            .call(Method::GET, "/registries?limit=100&q=host-77", None)
            .await;
        ok(status, "filtered");
        d
    })
    .await;
    let resolve = repeat(server, samples, async |s, i| {
        let ns = (i * 13) % NAMESPACES.min(records);
        let (d, status, _) = s
            .call(
                Method::POST,
                &format!("/namespaces/ns-{ns}/resolve"),
                Some(&json!({"image": "/mysql/mysql:5.6"})),
            )
            .await;
        ok(status, "resolve");
        d
    })
    .await;
    let update = repeat(server, samples / 2, async |s, i| {
        let n = (i * 97) % records;
        let mut body = record(n);
        body["description"] = json!(format!("edited {i}"));
        let (d, status, _) = s
            .call(
                Method::PUT,
                &format!("/registries/reg-{n:05}?verify=false"),
                Some(&body),
            )
            .await;
        ok(status, "update");
        d
    })
    .await;
    let delete = repeat(server, samples / 2, async |s, i| {
        let n = (i * 89 + 3) % records;
        let (d, status, _) = s
            .call(Method::DELETE, &format!("/registries/reg-{n:05}"), None)
            .await;
        ok(status, "delete");
        let (_, status, _) = s
            .call(Method::POST, "/registries?verify=false", Some(&record(n)))
            .await;
        ok(status, "re-create");
        d
    })
    .await;
    let (rss_kib, hwm_kib) = server.process.memory_kib();
    Row {
        records,
        baseline,
        picker,
        first_page,
        later_page,
        filtered,
        resolve,
        update,
        delete,
        rss_kib,
        hwm_kib,
    }
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let total: usize = match std::env::var("SCALE_RECORDS") {
        Ok(n) => n.parse().expect("SCALE_RECORDS is a number"),
        Err(_) if benchmarking => 10_000,
        Err(_) => 300,
    };
    let checkpoints: Vec<usize> = if benchmarking {
        [1_000, 5_000, 10_000, total]
            .into_iter()
            .filter(|n| *n <= total)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        vec![100, total]
    };
    let samples = if benchmarking { SAMPLES } else { 20 };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let server = start().await;
        let mut creates = Samples::default();
        let mut rows = Vec::new();
        let mut next = 0;
        for &checkpoint in &checkpoints {
            while next < checkpoint {
                let (d, status, body) = server
                    .call(reqwest::Method::POST, "/registries?verify=false", Some(&record(next)))
                    .await;
                assert_eq!(status, 201, "create {next}: {body}");
                creates.add(d);
                next += 1;
            }
            rows.push(measure(&server, checkpoint, samples).await);
        }

        let block = 1000.min(total / 3).max(1);
        let first = Samples(creates.0[..block].to_vec());
        let last = Samples(creates.0[total - block..].to_vec());
        println!(
            "{total} records over {NAMESPACES} namespaces (5 each), one client, one keep-alive HTTPS connection; \
             p50 / p99 in ms over {samples} calls ({} for update and delete)\n",
            samples / 2
        );
        println!(
            "create (durable commit included): first {block} p50 {:.2} / p99 {:.2}; last {block} p50 {:.2} / p99 {:.2}; \
             last/first p50 ratio {:.2} (target <= 1.3)\n",
            first.p50(),
            first.p99(),
            last.p50(),
            last.p99(),
            last.p50() / first.p50()
        );
        println!(
            "| records | baseline `GET /info` | picker `GET /namespaces/{{ns}}/registries` | `GET /registries?limit=100` | later page (`continue`) | `?q=` search | resolve preview | update (PUT) | delete | RSS (MiB) | peak RSS (MiB) |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let cell = |s: &Samples| format!("{:.2} / {:.2}", s.p50(), s.p99());
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
                r.records,
                cell(&r.baseline),
                cell(&r.picker),
                cell(&r.first_page),
                cell(&r.later_page),
                cell(&r.filtered),
                cell(&r.resolve),
                cell(&r.update),
                cell(&r.delete),
                r.rss_kib as f64 / 1024.0,
                r.hwm_kib as f64 / 1024.0
            );
        }
    });
}
