//! registry-resolver's registry client: the Distribution API (and Harbor's
//! and Docker Hub's extras) over reqwest, and the connectivity checks and
//! browsing built on it.
//!
//! Our own client, not oci-client: a record's check must tell apart "no
//! such host", "not a registry", "TLS failed" and "wrong password" (the
//! API and the console name the cause), and browsing needs the catalog,
//! which oci-client does not list.
//!
//! The core's modules are re-exported so the crates above see one tree.

pub use registry_resolver_core::{
    admission, excerpt, index, json, listing, mirror, namespaces, node_trust, pod_template,
    reference, replication, resolve, selector, yaml_edit,
};

pub mod crypto;
pub mod registry;
