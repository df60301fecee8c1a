//! Sample records for tests, in this crate and (feature `testing`) in the
//! crates above.

use crate::registry::{Registry, RegistryStatus, TlsOptions};

/// A record as the store would hold it; shared by the resolution tests.
pub fn record(
    name: &str,
    server: &str,
    namespaces: &[&str],
    default_for: &[&str],
    credentials: bool,
) -> Registry {
    Registry {
        name: name.into(),
        version: "1".into(),
        server: server.into(),
        username: credentials.then(|| "robot".into()),
        has_password: credentials,
        description: None,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        default_for: default_for.iter().map(|s| s.to_string()).collect(),
        namespace_selector: None,
        default_for_selector: None,
        tls: TlsOptions::default(),
        pull_secret_name: format!("{name}-pull"),
        pin_digests: false,
        browse: Default::default(),
        mirror_of: vec![],
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        status: RegistryStatus::default(),
        pull_secrets: None,
        node_trust: None,
    }
}

/// A stored record of `server` with these TLS settings.
pub fn with_tls(server: &str, ca: Option<&str>, skip: bool, name: &str) -> Registry {
    let mut r = record(name, server, &["a"], &[], false);
    r.server = crate::registry::server::Server::parse(server)
        .expect("valid")
        .to_string();
    r.tls.ca_bundle = ca.map(str::to_owned);
    r.tls.insecure_skip_verify = skip;
    r
}

/// A mirror entry for `upstream` at `path_prefix`, rewriting, with `fallback`.
pub fn mirror(
    upstream: &str,
    path_prefix: Option<&str>,
    fallback: crate::mirror::Fallback,
) -> crate::mirror::MirrorEntry {
    crate::mirror::MirrorEntry {
        upstream: upstream.into(),
        path_prefix: path_prefix.map(Into::into),
        excludes: vec![],
        fallback,
        check_upstream: false,
        mode: crate::mirror::MirrorMode::Rewrite,
    }
}

/// The status of a record whose last check failed (a mirror that cannot
/// serve).
pub fn failed_status() -> RegistryStatus {
    RegistryStatus {
        verified: false,
        last_verified_at: Some(chrono::DateTime::UNIX_EPOCH),
        message: Some("connection refused".into()),
    }
}

/// Two records mirroring Docker Hub whose last check failed: `shaky` (in
/// `lab`) falls back to the upstream, `sealed` (in `edge`, its default)
/// denies.
pub fn unhealthy_mirrors() -> [Registry; 2] {
    use crate::mirror::Fallback;
    let mut shaky = record("shaky", "https://shaky.example", &["lab"], &[], false);
    shaky.mirror_of = vec![mirror("docker.io", None, Fallback::Upstream)];
    shaky.status = failed_status();
    let mut sealed = record(
        "sealed",
        "https://sealed.example",
        &["edge"],
        &["edge"],
        true,
    );
    sealed.mirror_of = vec![mirror("docker.io", Some("hub"), Fallback::Deny)];
    sealed.status = failed_status();
    [shaky, sealed]
}
