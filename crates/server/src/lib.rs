//! registry-resolver's server: the records API, the admission webhook and
//! the console, served over HTTPS by one listener stack.
//!
//! The flow of one admission: [`server`] (HTTPS) → [`admission`] (decode,
//! find the pod template) → [`resolve`] (pure: template + index → edits or
//! denial) → [`admission::patch`] (RFC 6902) → response.
//!
//! The lower crates' modules are re-exported so the binary sees one tree.

pub use registry_resolver_store::{
    admission, crypto, excerpt, index, json, kubernetes, listing, manifests, mirror, namespaces,
    node_trust, pinning, pod_template, reference, registry, replication, resolve, selector,
    service, telemetry, yaml_edit,
};

pub mod api;
pub mod console;
pub mod server;
