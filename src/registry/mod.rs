//! Image registry records: the model, its validation, and where it is stored.

pub mod audit;
pub mod client;
pub mod connectivity;
mod model;
pub mod server;
pub mod store;

pub use model::{
    BrowseMethod, DNS1123_LABEL_PATTERN, Dns1123Label, FailedNode, FieldError, NAMESPACES_MAX,
    NameError, NodeTrustStatus, Password, PasswordChange, PullSecretState, Registry, RegistryInput,
    RegistrySpec, RegistryStatus, TlsOptions, ValidationErrors, WriteMode, check_dns1123_label,
    check_dns1123_subdomain, dedup, namespace_entry_errors,
};
pub use server::{Scheme, Server, ServerError};
