//! The record model and its client (from the crates below), and where
//! records are stored.

pub use registry_resolver_client::registry::*;

pub mod store;
