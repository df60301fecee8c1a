//! In-process cost of one admission: decode, resolve, patch, encode.
//! Results and the machine they ran on are in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use registry_resolver::admission;
use registry_resolver::index::Index;
use registry_resolver::registry::{Registry, RegistryStatus, TlsOptions};
use serde_json::{Value, json};

fn record(name: &str, server: &str, namespaces: &[&str], default_for: &[&str]) -> Registry {
    Registry {
        name: name.into(),
        server: server.into(),
        username: Some("robot".into()),
        has_password: true,
        description: None,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        default_for: default_for.iter().map(|s| s.to_string()).collect(),
        tls: TlsOptions::default(),
        pull_secret_name: name.into(),
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        status: RegistryStatus::default(),
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

/// A 3-container Deployment as `kubectl create deployment` writes it, plus
/// the labels, probes and resources a real workload carries.
pub fn deployment_review(images: [&str; 3]) -> Vec<u8> {
    let container = |name: &str, image: &str| {
        json!({
            "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "production"}, {"name": "DATA_DIR", "value": "/var/lib/data"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/data"}]
        })
    };
    let object: Value = json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "team-a", "labels": {"app": "web", "tier": "frontend"},
                     "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {"containers": [container("app", images[0]), container("sidecar", images[1]), container("metrics", images[2])],
                         "volumes": [{"name": "data", "emptyDir": {}}],
                         "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst"}}}
    });
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "admin", "uid": "014fbff9a07c", "groups": ["system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    }))
    .unwrap_or_default()
}

fn benches(c: &mut Criterion) {
    let index = index();
    let mutate = deployment_review([
        "/team/app:2.3.1",
        "/observability/fluent-bit:3.0",
        "/prometheus/exporter:v1.8",
    ]);
    let untouched = deployment_review([
        "docker.io/team/app:2.3.1",
        "quay.io/fluent-bit:3.0",
        "ghcr.io/exporter:v1.8",
    ]);
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
}

criterion_group!(admission_benches, benches);
criterion_main!(admission_benches);
