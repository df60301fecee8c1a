//! A record's server, whatever it holds, as node trust turns it into paths:
//! never a panic, and every file lands in its runtime's directory, one
//! level down in a directory named exactly the host (or, for a drop-in,
//! directly in `registries.conf.d`) — never anywhere else.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use registry_resolver::node_trust::plan::{self, Layout, Runtime};
use registry_resolver::registry::Registry;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A server field as a corrupted store or a hand-made object could
    // carry it: not normalized, not validated.
    let (server, skip) = match text.split_once('\0') {
        Some((server, _)) => (server, true),
        None => (text, false),
    };
    let Ok(record) = serde_json::from_value::<Registry>(serde_json::json!({
        "name": "r", "server": server, "hasPassword": false, "namespaces": ["a"], "defaultFor": [],
        "tls": {"caBundle": "CA", "insecureSkipVerify": skip}, "pullSecretName": "r",
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "status": {"verified": false}
    })) else {
        return;
    };
    let layout = Layout::default();
    let (hosts, _) = plan::hosts(&[record]);
    let files = plan::files(&hosts, &[Runtime::Containerd, Runtime::Crio, Runtime::Docker], &layout);
    for file in &files {
        assert!(
            file.path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
            "{:?}",
            file.path
        );
        let parent = file.path.parent().expect("a parent");
        let in_host_dir = |dir: &Path| parent.parent() == Some(dir) && parent.file_name().and_then(|n| n.to_str()) == Some(file.host.as_str());
        assert!(
            in_host_dir(&layout.containerd_certs_d)
                || in_host_dir(&layout.containers_certs_d)
                || in_host_dir(&layout.docker_certs_d)
                || parent == layout.containers_registries_d,
            "{:?} escapes its directory",
            file.path
        );
    }
});
