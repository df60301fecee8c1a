//! Whether containerd reads the `certs.d` we write: its CRI plugin only
//! consults per-host files when `config_path` names their directory
//! (containerd 2 does by default; 1.x only when configured). The node is
//! told the exact lines to add when it does not.

use std::path::Path;

/// The CRI registry section of each config version.
const V2_SECTION: &str = "plugins.\"io.containerd.grpc.v1.cri\".registry";
const V3_SECTION: &str = "plugins.\"io.containerd.cri.v1.images\".registry";

/// `Ok` when containerd's config (its text, `None` when there is no config
/// file) reads `certs_d`; otherwise what to add, word for word.
pub fn check(config: Option<&str>, certs_d: &Path) -> Result<(), String> {
    let wanted = certs_d.display().to_string();
    let advice = |section: &str| {
        format!(
            "containerd does not read {wanted}: add to its config.toml\n[{section}]\n  config_path = \"{wanted}\"\nand restart containerd once"
        )
    };
    let Some(text) = config else {
        // containerd 2 reads /etc/containerd/certs.d without a config; 1.x
        // reads nothing. Only the default directory can be assumed.
        return if wanted == "/etc/containerd/certs.d" {
            Ok(())
        } else {
            Err(advice(V2_SECTION))
        };
    };
    let Ok(document) = text.parse::<toml::Table>() else {
        return Err(format!(
            "containerd's config.toml does not parse as TOML; {}",
            advice(V2_SECTION)
        ));
    };
    let version = document
        .get("version")
        .and_then(toml::Value::as_integer)
        .unwrap_or(1);
    let (plugin, section) = if version >= 3 {
        ("io.containerd.cri.v1.images", V3_SECTION)
    } else {
        ("io.containerd.grpc.v1.cri", V2_SECTION)
    };
    let config_path = document
        .get("plugins")
        .and_then(|p| p.get(plugin))
        .and_then(|p| p.get("registry"))
        .and_then(|r| r.get("config_path"))
        .and_then(toml::Value::as_str);
    match config_path {
        // Several directories may be listed, separated by ':'.
        Some(paths) if paths.split(':').any(|p| Path::new(p) == certs_d) => Ok(()),
        // containerd 2's default when the key is absent.
        None if version >= 3 && wanted == "/etc/containerd/certs.d" => Ok(()),
        _ => Err(advice(section)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERTS_D: &str = "/etc/containerd/certs.d";

    #[test]
    fn config_path_is_found_or_the_exact_lines_are_given() {
        let certs = Path::new(CERTS_D);
        let v2_ok = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n";
        assert_eq!(check(Some(v2_ok), certs), Ok(()));
        let v2_list = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/other:/etc/containerd/certs.d\"\n";
        assert_eq!(check(Some(v2_list), certs), Ok(()));
        let v2_missing = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n";
        let advice = check(Some(v2_missing), certs).expect_err("missing");
        assert!(
            advice.contains("[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\""),
            "{advice}"
        );
        let v3_default = "version = 3\n";
        assert_eq!(check(Some(v3_default), certs), Ok(()));
        let v3_elsewhere = "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/somewhere\"\n";
        assert!(
            check(Some(v3_elsewhere), certs)
                .expect_err("elsewhere")
                .contains("io.containerd.cri.v1.images")
        );
        assert!(check(Some("not = [toml"), certs).is_err());
        assert_eq!(check(None, certs), Ok(()));
        assert!(
            check(
                None,
                Path::new("/var/lib/rancher/k3s/agent/etc/containerd/certs.d")
            )
            .is_err()
        );
    }
}
