//! registry-resolver: expands registry-relative image paths such as
//! `/mysql/mysql:5.6` against the registries a namespace is authorized for,
//! and injects the matching `imagePullSecrets`.
//!
//! The workspace's crates, from the bottom; each depends only on those
//! below it, and Cargo enforces that:
//!
//! - `registry-resolver-core`: the pure core (reference grammar, records
//!   and their validation, the [`index`], resolution, replication and node
//!   trust plans). No tokio, reqwest, kube or axum.
//! - `registry-resolver-client`: the registry client and connectivity checks.
//! - `registry-resolver-store`: the stores, the write path ([`service`]),
//!   the cluster side ([`kubernetes`]), pinning, metrics.
//! - `registry-resolver-server`: the API, the webhook, the console.
//! - this crate: the commands ([`app`], [`cli`], [`import`], [`manifests`],
//!   [`certs`], the node agent in [`node_trust`]).
//!
//! Every module of the crates below is re-exported here at the path it
//! has there, so `registry_resolver::index::Index` names one type whichever
//! crate it is used from.

pub use registry_resolver_server::{
    admission, api, console, crypto, excerpt, index, json, kubernetes, listing, manifests, mirror,
    namespaces, pinning, pod_template, reference, registry, replication, resolve, selector, server,
    service, telemetry, yaml_edit,
};

pub mod app;
pub mod certs;
pub mod cli;
pub mod import;
pub mod node_trust;
