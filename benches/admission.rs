//! In-process cost of one admission: decode, resolve, patch, encode.
//! Results and the machine they ran on are in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use registry_resolver::admission;
use registry_resolver::index::{Change, Index};
use registry_resolver::registry::{Registry, RegistryStatus, TlsOptions};

fn record(name: &str, server: &str, namespaces: &[&str], default_for: &[&str]) -> Registry {
    Registry {
        name: name.into(),
        version: "1".into(),
        server: server.into(),
        username: Some("robot".into()),
        has_password: true,
        description: None,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        default_for: default_for.iter().map(|s| s.to_string()).collect(),
        namespace_selector: None,
        default_for_selector: None,
        tls: TlsOptions::default(),
        pull_secret_name: name.into(),
        pin_digests: false,
        browse: Default::default(),
        mirror_of: vec![],
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        status: RegistryStatus::default(),
        pull_secrets: None,
        node_trust: None,
    }
}

/// An index of 200 registries over 500 namespaces, like a busy cluster.
fn index() -> Index {
    let mut records = vec![
        record(
            "demo",
            "https://dockerhub.qingcloud.com",
            &["team-a"],
            &["team-a"],
        ),
        record(
            "harbor",
            "http://harbor.local:8080/library",
            &["team-a"],
            &[],
        ),
    ];
    let namespaces: Vec<String> = (0..500).map(|i| format!("ns-{i}")).collect();
    for i in 0..198 {
        let ns: Vec<&str> = namespaces
            .iter()
            .skip(i)
            .step_by(50)
            .map(String::as_str)
            .collect();
        records.push(record(
            &format!("r{i}"),
            &format!("r{i}.example.com"),
            &ns,
            &[],
        ));
    }
    Index::build(&records)
}

/// A 3-container Deployment with the labels, probes and resources a real
/// workload carries; the same request the load benchmark sends.
const REVIEW: &str = include_str!("review-deployment.json");

fn benches(c: &mut Criterion) {
    let index = index();
    let mutate = REVIEW.as_bytes().to_vec();
    // The same workload with fully qualified images: nothing to do.
    let untouched = REVIEW
        .replace("\"image\":\"/", "\"image\":\"docker.io/")
        .into_bytes();
    // Sanity: the first mutates, the second does not.
    assert_eq!(
        admission::review(&mutate, &index).map(|r| r.outcome).ok(),
        Some(admission::Outcome::Mutated)
    );
    assert_eq!(
        admission::review(&untouched, &index)
            .map(|r| r.outcome)
            .ok(),
        Some(admission::Outcome::Allowed)
    );

    let mut group = c.benchmark_group("admission_review");
    group.bench_function("deployment_3_containers_mutated", |b| {
        b.iter(|| admission::review(black_box(&mutate), black_box(&index)))
    });
    group.bench_function("deployment_3_containers_untouched", |b| {
        b.iter(|| admission::review(black_box(&untouched), black_box(&index)))
    });
    // The same review answered the way it was before the answer was
    // written without a tree (serde values; kept as the reference the
    // written answer must equal): before and after in one run.
    group.bench_function("deployment_3_containers_mutated_reference_answer", |b| {
        b.iter(|| {
            registry_resolver_core::admission::reference::review(
                black_box(&mutate),
                black_box(&index),
            )
        })
    });
    // The mutated review's parts: decoding and deciding, without the
    // answer (the patch and the response); the answer is the difference.
    group.bench_function("deployment_3_containers_mutated_decided_only", |b| {
        b.iter(|| admission::prepare(black_box(&mutate), black_box(&index)).map(|_| ()))
    });
    // Records that mirror upstreams: one of quay.io (not these images'), and
    // one of docker.io (these images', rewritten through it).
    let mirroring = |upstream: &str| {
        let mut mirror = record("mirror", "https://harbor.local", &["team-a"], &[]);
        mirror.mirror_of = vec![registry_resolver::mirror::MirrorEntry {
            upstream: upstream.into(),
            path_prefix: Some("proxy".into()),
            excludes: vec![],
            fallback: Default::default(),
            check_upstream: false,
            mode: Default::default(),
        }];
        index.apply([Change::Upsert(std::sync::Arc::new(mirror))])
    };
    let elsewhere = mirroring("quay.io");
    let hub = mirroring("docker.io");
    assert_eq!(
        admission::review(&untouched, &elsewhere)
            .map(|r| r.outcome)
            .ok(),
        Some(admission::Outcome::Allowed)
    );
    assert_eq!(
        admission::review(&untouched, &hub).map(|r| r.outcome).ok(),
        Some(admission::Outcome::Mutated)
    );
    group.bench_function("deployment_3_containers_untouched_mirrors_elsewhere", |b| {
        b.iter(|| admission::review(black_box(&untouched), black_box(&elsewhere)))
    });
    group.bench_function("deployment_3_containers_mirrored", |b| {
        b.iter(|| admission::review(black_box(&untouched), black_box(&hub)))
    });
    group.finish();

    c.bench_function("index_build_200_registries", |b| {
        let records: Vec<Registry> = (0..200)
            .map(|i| {
                record(
                    &format!("r{i}"),
                    &format!("r{i}.example.com"),
                    &["a", "b", "c"],
                    &[],
                )
            })
            .collect();
        b.iter(|| Index::build(black_box(&records)))
    });

    // What one committed write costs the index at 10,000 records over 2,000
    // namespaces, every record also in one namespace they all share (the
    // worst case for copy-on-write of a namespace's entry).
    let records: Vec<Registry> = (0..10_000)
        .map(|i| {
            let spread: Vec<String> = (0..5)
                .map(|k| format!("ns-{}", (i + k * 401) % 2000))
                .collect();
            let mut namespaces: Vec<&str> = spread.iter().map(String::as_str).collect();
            namespaces.push("shared");
            record(
                &format!("r{i:05}"),
                &format!("r{i}.example.com"),
                &namespaces,
                &[],
            )
        })
        .collect();
    let big = Index::build(&records);
    let changed = std::sync::Arc::new(record(
        "r05000",
        "elsewhere.example.com",
        &["ns-7", "ns-8", "shared"],
        &["ns-7"],
    ));
    c.bench_function("index_apply_one_change_10000_registries", |b| {
        b.iter(|| big.apply([Change::Upsert(black_box(changed.clone()))]))
    });
}

/// One review with pinning when the digest is cached: the cost a pinned
/// admission pays after the first lookup of a tag.
fn pinned(c: &mut Criterion) {
    use registry_resolver::pinning::{PinOptions, Pinner};
    use registry_resolver::registry::store::RegistryStore;
    use registry_resolver::registry::{RegistryInput, WriteMode};
    use std::sync::Arc;

    registry_resolver::server::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (pinner, handle) = runtime.block_on(async {
        // A stand-in registry answering manifest HEADs, to warm the cache once.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let app = axum::Router::new().route(
            "/v2/{*path}",
            axum::routing::head(|| async {
                [(
                    "docker-content-digest",
                    "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
                )]
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let handle = registry_resolver::index::IndexHandle::new();
        let args = registry_resolver::cli::StoreArgs {
            data_dir: dir.path().to_owned(),
            encryption_key: None,
            encryption_key_file: None,
            audit_max_entries: 100_000,
        };
        let store: Arc<dyn RegistryStore> = Arc::new(
            registry_resolver::app::open_embedded_store(&args, handle.clone())
                .unwrap_or_else(|e| panic!("store: {e}")),
        );
        let input: RegistryInput = serde_json::from_value(serde_json::json!({
            "name": "demo", "server": format!("http://127.0.0.1:{port}"), "namespaces": ["team-a"],
            "defaultFor": ["team-a"], "pinDigests": true
        }))
        .unwrap_or_else(|e| panic!("input: {e}"));
        let spec = input
            .validate(WriteMode::Create, None)
            .unwrap_or_else(|e| panic!("spec: {e}"));
        store
            .create(spec)
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
        (Pinner::new(store, PinOptions::default()), handle)
    });
    let body = REVIEW.as_bytes().to_vec();
    let review = || async {
        let index = handle.load_full();
        let mut prepared =
            admission::prepare(&body, &index).unwrap_or_else(|e| panic!("prepare: {e}"));
        if let Some(plan) = prepared.plan_mut() {
            let _ = pinner.look_up(plan).await;
        }
        prepared.finish().map(|r| r.body.len()).unwrap_or_default()
    };
    let warmed = runtime.block_on(async {
        let index = handle.load_full();
        let mut prepared =
            admission::prepare(&body, &index).unwrap_or_else(|e| panic!("prepare: {e}"));
        let plan = prepared.plan_mut().unwrap_or_else(|| panic!("a plan"));
        assert!(plan.needs_lookups());
        pinner.look_up(plan).await
    });
    assert_eq!(warmed, Ok(()), "the cache is warm");
    c.bench_function(
        "admission_review/deployment_3_containers_pinned_cache_hit",
        |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(review().await) })
        },
    );
}

/// Kubernetes mode: what one watch event costs at 10,000 ImageRegistries
/// over 2,000 labelled namespaces (50 of the records choose namespaces by
/// label), against rebuilding the index from the caches — what every event
/// cost before events were applied piecemeal.
fn cluster_events(c: &mut Criterion) {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use registry_resolver::index::IndexHandle;
    use registry_resolver::kubernetes::crd::ImageRegistry;
    use registry_resolver::kubernetes::state::{Caches, Touched};
    use serde_json::json;

    let object = |i: usize| -> ImageRegistry {
        let namespaces: Vec<String> = (0..5)
            .map(|k| format!("ns-{}", (i + k * 401) % 2000))
            .collect();
        let mut spec = json!({"server": format!("r{i}.example.com"), "namespaces": namespaces});
        if i.is_multiple_of(200) {
            let selector = json!({"matchLabels": {"ws": format!("ws{}", i % 20)}});
            spec["namespaceSelector"] = selector.clone();
            spec["defaultForSelector"] = selector;
        }
        serde_json::from_value(json!({
            "apiVersion": "registry-resolver.io/v1alpha1", "kind": "ImageRegistry",
            "metadata": {"name": format!("r{i:05}"), "resourceVersion": "1", "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": spec
        }))
        .expect("ImageRegistry")
    };
    let namespace = |i: usize, ws: usize| -> Namespace {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": format!("ns-{i}"), "resourceVersion": "1", "labels": {"ws": format!("ws{ws}")}}}))
        .expect("Namespace")
    };
    let mut registries = Writer::<ImageRegistry>::default();
    let mut secrets = Writer::<Secret>::default();
    let mut namespaces = Writer::<Namespace>::default();
    registries.apply_watcher_event(&Event::Init);
    for i in 0..10_000 {
        registries.apply_watcher_event(&Event::InitApply(object(i)));
    }
    registries.apply_watcher_event(&Event::InitDone);
    secrets.apply_watcher_event(&Event::Init);
    secrets.apply_watcher_event(&Event::InitDone);
    namespaces.apply_watcher_event(&Event::Init);
    for i in 0..2000 {
        namespaces.apply_watcher_event(&Event::InitApply(namespace(i, i % 20)));
    }
    namespaces.apply_watcher_event(&Event::InitDone);
    let caches = Caches {
        registries: registries.as_reader(),
        secrets: secrets.as_reader(),
        pull_secrets: None,
        namespaces: Some(namespaces.as_reader()),
    };
    let index = IndexHandle::new();
    caches.publish(&index);

    c.bench_function("kubernetes_event_one_registry_10000_registries", |b| {
        b.iter(|| caches.apply(&index, Touched::Registry(black_box("r05001".into()))))
    });
    let mut flip = 0;
    c.bench_function(
        "kubernetes_event_namespace_relabelled_2000_namespaces",
        |b| {
            b.iter(|| {
                flip = (flip + 1) % 20;
                namespaces.apply_watcher_event(&Event::Apply(namespace(7, flip)));
                caches.apply(&index, Touched::Namespace(black_box("ns-7".into())))
            })
        },
    );
    c.bench_function("kubernetes_event_selector_record_10000_registries", |b| {
        b.iter(|| caches.apply(&index, Touched::Registry(black_box("r00200".into()))))
    });
    // What a reconcile reads before it plans: every record converted,
    // with its credentials.
    c.bench_function("kubernetes_pass_inputs_converted_10000_registries", |b| {
        b.iter(|| black_box(caches.converted()))
    });
    c.bench_function("kubernetes_rebuild_10000_registries", |b| {
        b.iter(|| caches.publish(black_box(&index)))
    });
}

/// Planning pull Secrets: 1,000 registries with credentials, each in 5 of
/// 2,000 namespaces, every pull Secret already in place (the steady state),
/// so nothing is planned. The controller plans one record per reconcile
/// (`plan_for`, from the whole world it is given); the whole-world plan is
/// what the loop before it ran on every burst of events.
fn replication_pass(c: &mut Criterion) {
    use registry_resolver::replication::{
        Namespaces, ObservedSecret, Registry as Replicated, dockerconfigjson, plan, plan_for,
    };
    let namespaces: Namespaces = (0..2000)
        .map(|i| (format!("ns-{i}"), Default::default()))
        .collect();
    let registries: Vec<Replicated> = (0..1000)
        .map(|i| Replicated {
            name: format!("r{i:04}"),
            pull_secret_name: format!("r{i:04}"),
            namespaces: (0..5)
                .map(|k| format!("ns-{}", (i + k * 401) % 2000))
                .collect(),
            selector: None,
            auths_key: format!("r{i}.example.com"),
            credentials: Some(("robot".into(), format!("pw-{i}"))),
        })
        .collect();
    let observed: Vec<ObservedSecret> = registries
        .iter()
        .flat_map(|r| {
            r.namespaces.iter().map(move |ns| ObservedSecret {
                namespace: ns.clone(),
                name: r.pull_secret_name.clone(),
                managed_for: Some(r.name.clone()),
                dockerconfigjson: Some(dockerconfigjson(
                    &r.auths_key,
                    "robot",
                    &r.credentials
                        .as_ref()
                        .map(|(_, p)| p.clone())
                        .unwrap_or_default(),
                )),
            })
        })
        .collect();
    assert!(
        plan(&registries, &namespaces, &observed).is_empty(),
        "the steady state plans nothing"
    );
    // A reconcile of one of those registries, as the controller runs it:
    // the records and Secrets of its name picked out, then planned.
    assert_eq!(
        plan_for("r0500", &registries, &namespaces, &observed),
        Default::default()
    );
    c.bench_function(
        "replication_one_registry_of_1000_2000_namespaces_steady",
        |b| {
            b.iter(|| {
                plan_for(
                    black_box("r0500"),
                    black_box(&registries),
                    black_box(&namespaces),
                    black_box(&observed),
                )
            })
        },
    );
    c.bench_function(
        "replication_pass_1000_registries_2000_namespaces_steady",
        |b| {
            b.iter(|| {
                plan(
                    black_box(&registries),
                    black_box(&namespaces),
                    black_box(&observed),
                )
            })
        },
    );
}

/// `resolve`'s parser on 1 MiB of the worst shapes: flow collections
/// nested to just under the depth limit, over and over (a 64 KiB nest of
/// this shape took 3.5 s before `resolve` edited text), and a long stream of
/// the real-world fixture, parsed and resolved with its edits.
fn resolve_text(c: &mut Criterion) {
    use registry_resolver::yaml_edit;
    let depth = yaml_edit::MAX_DEPTH - 2;
    let nest = format!("- {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let deep = nest.repeat((1 << 20) / nest.len());
    let mappings = format!("- {}x{}\n", "{a: ".repeat(depth), "}".repeat(depth));
    let deep_maps = mappings.repeat((1 << 20) / mappings.len());
    let fixture = include_str!("../tests/fixtures/resolve/as-written.yaml");
    let stream = vec![fixture; (1 << 20) / fixture.len()].join("---\n");
    let index = index();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("resolve_text");
    group.sample_size(10);
    for (name, text) in [
        ("deep_sequences_1mib", &deep),
        ("deep_mappings_1mib", &deep_maps),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let documents = yaml_edit::parse_stream(black_box(text)).expect("parses");
                black_box(documents[0].to_value().expect("value"))
            })
        });
    }
    group.bench_function("fixture_stream_1mib_resolved", |b| {
        b.iter(|| {
            runtime
                .block_on(registry_resolver::manifests::resolve_documents(
                    black_box(&stream),
                    "team-a",
                    &index,
                    registry_resolver::manifests::OutputFormat::Yaml,
                    None,
                ))
                .expect("resolves")
        })
    });
    group.finish();
}

criterion_group!(
    admission_benches,
    benches,
    pinned,
    cluster_events,
    replication_pass,
    resolve_text
);
criterion_main!(admission_benches);
