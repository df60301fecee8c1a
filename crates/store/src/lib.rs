//! registry-resolver's stores and the write path over them: the embedded
//! SQLite store and Kubernetes mode (records as ImageRegistry objects, pull
//! Secrets replicated by the controller), the [`service`] every change goes
//! through, digest pinning, and the process's metrics.
//!
//! The lower crates' modules are re-exported so the crates above see one
//! tree.

pub use registry_resolver_client::{
    admission, crypto, excerpt, index, json, listing, mirror, namespaces, node_trust, pod_template,
    reference, replication, resolve, selector, yaml_edit,
};

pub mod kubernetes;
pub mod manifests;
pub mod pinning;
pub mod registry;
pub mod service;
pub mod telemetry;
