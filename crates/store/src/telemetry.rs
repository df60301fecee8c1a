//! Logs and metrics.
//!
//! The API server's own webhook latency histogram starts at 5 ms, far above
//! what a review costs us, so we export our own with microsecond buckets.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::admission::{DenialReason, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `filter` is an `EnvFilter` directive
/// such as `info` or `registry_resolver=debug`.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests start many servers) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Every value comes from a fixed set, so no client can grow the series
/// count: the route as the router matched it (or `unmatched`), a known
/// method (or `other`), the status we answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    route: String,
    method: &'static str,
    status: u16,
}

/// A method as a label: the standard ones by name, anything invented
/// (HTTP allows any token, of any length) as `other`.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::OPTIONS => "OPTIONS",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => "other",
    }
}

/// The process's metrics, exposed on the admin listener.
pub struct Metrics {
    registry: Mutex<Registry>,
    admission_duration: Family<OutcomeLabels, Histogram>,
    admission_requests: Family<ReasonLabels, Counter>,
    mirror_images: Family<MirrorLabels, Counter>,
    http_requests: Family<ApiLabels, Counter>,
    node_trust_registries: Family<StateLabels, Gauge>,
    node_trust_runtime_config_missing: Gauge,
    node_trust_syncs: Family<OutcomeLabels, Counter>,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_duration: Histogram,
    pull_secret_writes: Family<OutcomeLabels, Counter>,
    cluster_throttled: Counter,
    connections_open: Family<ListenerLabels, Gauge>,
    connections_refused: Family<RefusedLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    outcome: &'static str,
    reason: &'static str,
}

/// A record's name (bounded by the records there are) and a fixed word.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MirrorLabels {
    registry: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("registry_resolver");
        // 5 µs … ~2.6 s in factor-2 steps.
        let admission_duration = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_005, 2.0, 20))
        });
        let admission_requests = Family::<ReasonLabels, Counter>::default();
        let mirror_images = Family::<MirrorLabels, Counter>::default();
        registry.register(
            "mirror_images",
            "Images of admitted or refused objects a mirror takes, by record and outcome (rewritten, fallback: left upstream while the mirror is unhealthy, denied)",
            mirror_images.clone(),
        );
        let http_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "admission_duration_seconds",
            "Time to review one AdmissionReview in process (decode, resolve, patch, encode)",
            admission_duration.clone(),
        );
        registry.register(
            "admission_requests",
            "AdmissionReviews by outcome (mutated, allowed, denied, error) and, for a denial, reason (no_registry, not_authorized, invalid_reference, pull_secret_missing, pin_failed, mirror_unavailable; else none)",
            admission_requests.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            http_requests.clone(),
        );
        let node_trust_registries = Family::<StateLabels, Gauge>::default();
        let node_trust_runtime_config_missing = Gauge::default();
        let node_trust_syncs = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "node_trust_registries",
            "Node agent: registries whose trust is configured on this node, or failed",
            node_trust_registries.clone(),
        );
        registry.register(
            "node_trust_runtime_config_missing",
            "Node agent: 1 when containerd's config does not read the certs.d written (see the node's Events)",
            node_trust_runtime_config_missing.clone(),
        );
        registry.register(
            "node_trust_syncs",
            "Node agent: syncs of the node's trust files by outcome: ok, error",
            node_trust_syncs.clone(),
        );
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        // 100 µs … ~52 s in factor-2 steps: a reconcile plans in
        // microseconds and waits on the API server for its writes.
        let reconcile_duration = Histogram::new(exponential_buckets(0.000_1, 2.0, 20));
        let pull_secret_writes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Kubernetes mode, the leader: reconciles of one ImageRegistry (its pull Secrets, then its status) by outcome: ok, error (a write failed; retried with backoff)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Kubernetes mode, the leader: one reconcile of an ImageRegistry, planning and writes",
            reconcile_duration.clone(),
        );
        registry.register(
            "pull_secret_writes",
            "Kubernetes mode, the leader: pull Secret applies and deletes by outcome: ok, error",
            pull_secret_writes.clone(),
        );
        let cluster_throttled = Counter::default();
        registry.register(
            "cluster_throttled",
            "Kubernetes mode: answers of the API server asking our paced client to slow down (429, 503, 504), each waited out (Retry-After, or a jittered backoff) before the request is sent again",
            cluster_throttled.clone(),
        );
        let connections_open = Family::<ListenerLabels, Gauge>::default();
        let connections_refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "connections_open",
            "Connections open now, by listener (https, admin)",
            connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept by listener and reason: total_limit (--max-connections), peer_limit (--max-connections-per-peer)",
            connections_refused.clone(),
        );
        Self {
            connections_open,
            connections_refused,
            reconciles,
            reconcile_duration,
            pull_secret_writes,
            cluster_throttled,
            registry: Mutex::new(registry),
            admission_duration,
            admission_requests,
            mirror_images,
            http_requests,
            node_trust_registries,
            node_trust_runtime_config_missing,
            node_trust_syncs,
        }
    }

    /// The connections a listener holds now.
    pub fn set_connections_open(&self, listener: &'static str, open: usize) {
        self.connections_open
            .get_or_create(&ListenerLabels { listener })
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// A connection closed at accept, over a cap.
    pub fn connection_refused(&self, listener: &'static str, reason: &'static str) {
        self.connections_refused
            .get_or_create(&RefusedLabels { listener, reason })
            .inc();
    }

    /// After one node-trust sync.
    pub fn observe_node_sync(
        &self,
        ok: bool,
        configured: usize,
        failed: usize,
        config_missing: bool,
    ) {
        self.node_trust_syncs
            .get_or_create(&OutcomeLabels {
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
        let set = |state, count: usize| {
            self.node_trust_registries
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        };
        set("configured", configured);
        set("failed", failed);
        self.node_trust_runtime_config_missing
            .set(i64::from(config_missing));
    }

    /// After one reconcile of an ImageRegistry: its pull Secret writes
    /// that succeeded and failed, and whether any of its writes failed (a
    /// status as well).
    pub fn observe_reconcile(
        &self,
        written: usize,
        failed: usize,
        any_failed: bool,
        elapsed: Duration,
    ) {
        let outcome = |outcome| OutcomeLabels { outcome };
        self.reconciles
            .get_or_create(&outcome(if any_failed { "error" } else { "ok" }))
            .inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.pull_secret_writes
            .get_or_create(&outcome("ok"))
            .inc_by(count(written));
        self.pull_secret_writes
            .get_or_create(&outcome("error"))
            .inc_by(count(failed));
    }

    /// The counter of the API server's answers that asked us to slow
    /// down, for the paced client to count them in.
    pub fn cluster_throttled(&self) -> Counter {
        self.cluster_throttled.clone()
    }

    /// One review: its outcome (`None`: not a review we could answer),
    /// and for a denial, why.
    pub fn observe_admission(
        &self,
        outcome: Option<Outcome>,
        reason: Option<DenialReason>,
        elapsed: Duration,
    ) {
        let outcome = OutcomeLabels {
            outcome: outcome.map_or("error", Outcome::as_str),
        };
        self.admission_duration
            .get_or_create(&outcome)
            .observe(elapsed.as_secs_f64());
        self.admission_requests
            .get_or_create(&ReasonLabels {
                outcome: outcome.outcome,
                reason: reason.map_or("none", DenialReason::as_str),
            })
            .inc();
    }

    /// What mirrors did with one review's images.
    pub fn observe_mirror_uses(&self, uses: &[crate::resolve::MirrorUse]) {
        for used in uses {
            self.mirror_images
                .get_or_create(&MirrorLabels {
                    registry: used.registry.clone(),
                    outcome: used.outcome.as_str(),
                })
                .inc();
        }
    }

    /// `route` is the router's matched pattern or `None`; never the raw path.
    pub fn observe_http(&self, route: Option<&str>, method: &http::Method, status: u16) {
        self.http_requests
            .get_or_create(&ApiLabels {
                route: route.unwrap_or("unmatched").to_owned(),
                method: method_label(method),
                status,
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_and_paths_share_one_series() {
        let metrics = Metrics::new();
        let series = |m: &Metrics| {
            m.encode()
                .lines()
                .filter(|l| l.starts_with("registry_resolver_http_requests_total{"))
                .count()
        };
        metrics.observe_http(None, &http::Method::GET, 404);
        let invented =
            |i: usize| http::Method::from_bytes(format!("X{i}{}", "Y".repeat(i)).as_bytes());
        metrics.observe_http(None, &invented(0).expect("a valid token"), 404);
        let before = series(&metrics);
        for i in 1..200 {
            metrics.observe_http(None, &invented(i).expect("a valid token"), 404);
        }
        assert_eq!(series(&metrics), before);
        assert!(
            metrics
                .encode()
                .contains(r#"route="unmatched",method="other",status="404"} 200"#)
        );
    }
}
