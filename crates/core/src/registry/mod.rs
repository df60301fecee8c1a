//! Image registry records: the model and its validation, the server
//! address, and the audit entry of a change. Where records are stored and
//! how a registry is reached live in the crates above.

pub mod audit;
mod model;
pub mod server;

pub use model::{
    BrowseMethod, CertificateCheck, Credentials, DNS1123_LABEL_PATTERN, Dns1123Label,
    EntryPlacement, FailedNode, FieldError, Health, NAMESPACES_MAX, NameError, NodeTrustStatus,
    Password, PasswordChange, PullSecretState, Reach, Reason, Registry, RegistryInput,
    RegistrySpec, RegistryStatus, RegistryStatusView, ReplicationProgress, TlsOptions,
    ValidationErrors, WriteMode, check_dns1123_label, check_dns1123_subdomain, dedup,
    namespace_entry_errors, pull_secret_name_problem,
};
pub use server::{Scheme, Server, ServerError};
