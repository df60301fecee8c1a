//! registry-resolver's pure core: what a registry-relative image path means
//! and what it resolves to. No I/O, no async runtime, no HTTP or Kubernetes
//! client: every decision of the webhook, the API and the controller is
//! made here, from values, and tested as such.
//!
//! - [`reference`](mod@reference): the image reference grammar and
//!   registry-relative paths.
//! - [`registry`]: the record model, its validation, the audit entry.
//! - [`namespaces`], [`selector`]: which namespaces a record reaches.
//! - [`mirror`]: records as mirrors of public registries.
//! - [`index`]: the immutable snapshot every decision reads.
//! - [`resolve`], [`admission`], [`pod_template`]: an admission's decision
//!   and its RFC 6902 patch; [`yaml_edit`] the same for manifests on disk.
//! - [`replication`], [`node_trust`]: the plans the cluster side carries out.
//! - [`listing`], [`excerpt`]: paged lists, and input quoted safely.
//! - [`json`]: documents read strictly, naming the field at fault.

#![warn(missing_docs)]

pub mod admission;
pub mod excerpt;
pub mod index;
pub mod json;
pub mod listing;
pub mod mirror;
pub mod namespaces;
pub mod node_trust;
pub mod pod_template;
pub mod reference;
pub mod registry;
pub mod replication;
pub mod resolve;
pub mod selector;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod yaml_edit;
