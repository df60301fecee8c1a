//! The record model (from the core), and how a registry is reached.

pub use registry_resolver_core::registry::*;

pub mod client;
pub mod connectivity;
