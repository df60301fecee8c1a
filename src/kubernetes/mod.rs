//! Kubernetes mode: registry records as `ImageRegistry` objects, pull
//! Secrets replicated into every authorized namespace.

pub mod auth;
pub mod controller;
pub mod convert;
pub mod crd;
pub mod desired;
pub mod lease;
pub mod replicate;
pub mod state;
pub mod status;
pub mod store;
