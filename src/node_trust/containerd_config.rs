//! Whether containerd reads the `certs.d` we write: its CRI plugin only
//! consults per-host files when `config_path` names their directory
//! (containerd 2 does by default; 1.x only when configured). The node is
//! told the exact lines to add when it does not.

use std::path::Path;

/// The CRI registry section of each config version.
const V2_SECTION: &str = "plugins.\"io.containerd.grpc.v1.cri\".registry";
const V3_SECTION: &str = "plugins.\"io.containerd.cri.v1.images\".registry";

/// containerd will not read the `certs.d` written; says the exact lines to
/// add.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}containerd does not read {certs_d}: add to its config.toml\n[{section}]\n  config_path = \"{certs_d}\"\nand restart containerd once",
    if *.unparsable { "containerd's config.toml does not parse as TOML; " } else { "" }
)]
pub struct ConfigPathMissing {
    pub certs_d: String,
    /// The config section for the file's version.
    pub section: &'static str,
    /// The file is not TOML (the lines are those of version 2).
    pub unparsable: bool,
}

/// `Ok` when containerd's config (its text, `None` when there is no config
/// file) reads `certs_d`; otherwise what to add, word for word.
pub fn check(config: Option<&str>, certs_d: &Path) -> Result<(), ConfigPathMissing> {
    let wanted = certs_d.display().to_string();
    let missing = |section: &'static str, unparsable: bool| ConfigPathMissing {
        certs_d: wanted.clone(),
        section,
        unparsable,
    };
    let Some(text) = config else {
        // containerd 2 reads /etc/containerd/certs.d without a config; 1.x
        // reads nothing. Only the default directory can be assumed.
        return if wanted == "/etc/containerd/certs.d" {
            Ok(())
        } else {
            Err(missing(V2_SECTION, false))
        };
    };
    let Ok(document) = text.parse::<toml::Table>() else {
        return Err(missing(V2_SECTION, true));
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
        _ => Err(missing(section, false)),
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
        let advice = check(Some(v2_missing), certs)
            .expect_err("missing")
            .to_string();
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
                .to_string()
                .contains("io.containerd.cri.v1.images")
        );
        let unparsable = check(Some("not = [toml"), certs).expect_err("not TOML");
        assert!(
            unparsable
                .to_string()
                .starts_with("containerd's config.toml does not parse as TOML; containerd does not read /etc/containerd/certs.d"),
            "{unparsable}"
        );
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
