//! registry-resolver: expands registry-relative image paths such as
//! `/mysql/mysql:5.6` against the registries a namespace is authorized for,
//! and injects the matching `imagePullSecrets`.
//!
//! The flow of one admission:
//! [`server`] (HTTPS) → [`admission`] (decode, find the pod template) →
//! [`resolve`] (pure: template + [`index::Index`] → edits or denial) →
//! [`admission::patch`] (RFC 6902) → response.
//!
//! Records live in a [`registry::store`]; every change is published into
//! the [`index`] snapshot the webhook reads, so admission does no I/O; API
//! lists page through the same snapshot ([`listing`]).

pub mod admission;
pub mod api;
pub mod app;
pub mod certs;
pub mod cli;
pub mod console;
pub mod crypto;
pub mod excerpt;
pub mod import;
pub mod index;
pub mod kubernetes;
pub mod listing;
pub mod manifests;
pub mod namespaces;
pub mod node_trust;
pub mod pinning;
pub mod pod_template;
pub mod reference;
pub mod registry;
pub mod resolve;
pub mod selector;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod yaml_edit;
