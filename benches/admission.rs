//! In-process cost of one admission: decode, resolve, patch, encode.
//! Results and the machine they ran on are in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use registry_resolver::admission;
use registry_resolver::index::Index;
use registry_resolver::registry::{Registry, RegistryStatus, TlsOptions};

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
        pin_digests: false,
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
