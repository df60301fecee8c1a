//! What a node's container runtime must be told to pull from each registry
//! that needs it — plain HTTP, a private CA, or skipped verification — as
//! the files each runtime reads. A pure function of the records: the agent
//! and `node-config` write what it returns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::excerpt::excerpt;
use crate::registry::Registry;
use crate::registry::server::Scheme;

/// The first characters of every file we write: how a file is known to be
/// ours, so nothing else is ever changed or removed.
pub const MARKER: &str = "# registry-resolver: managed file";

/// The CA file we place beside a runtime's per-host configuration; a name
/// of our own, so an admin's `ca.crt` is never touched.
pub const CA_FILE: &str = "registry-resolver-ca.crt";

/// Our drop-ins in `registries.conf.d` begin with this.
pub const DROP_IN_PREFIX: &str = "registry-resolver-";

/// A container runtime whose trust configuration is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Runtime {
    /// containerd's `certs.d/<host>/hosts.toml` (read at each pull).
    Containerd,
    /// CRI-O and Podman: a `registries.conf.d` drop-in and `certs.d/<host>/`.
    Crio,
    /// Docker Engine: `certs.d/<host>/` and, opt-in, `insecure-registries`.
    Docker,
}

/// Where each runtime reads its configuration, on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// containerd's per-host directory (its `config_path`), for
    /// `hosts.toml` and our CA file; `/etc/containerd/certs.d` by default.
    pub containerd_certs_d: PathBuf,
    /// Where CRI-O and Podman read `registries.conf` drop-ins;
    /// `/etc/containers/registries.conf.d` by default.
    pub containers_registries_d: PathBuf,
    /// CRI-O's and Podman's per-host certificate directory;
    /// `/etc/containers/certs.d` by default.
    pub containers_certs_d: PathBuf,
    /// Docker Engine's per-host certificate directory;
    /// `/etc/docker/certs.d` by default.
    pub docker_certs_d: PathBuf,
    /// Docker's `daemon.json`, when its `insecure-registries` may be changed
    /// (opt-in: the daemon must then be reloaded).
    pub docker_daemon_json: Option<PathBuf>,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            containerd_certs_d: "/etc/containerd/certs.d".into(),
            containers_registries_d: "/etc/containers/registries.conf.d".into(),
            containers_certs_d: "/etc/containers/certs.d".into(),
            docker_certs_d: "/etc/docker/certs.d".into(),
            docker_daemon_json: None,
        }
    }
}

/// What one registry host needs from the runtimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTrust {
    /// `host[:port]` as image references name it: the per-host directory.
    pub host: String,
    /// The registry speaks plain HTTP (its records' server is `http://`).
    pub plain_http: bool,
    /// PEM certificates to trust for this host (each record's, once).
    pub ca_bundle: Option<String>,
    /// Certificate verification is skipped (the records'
    /// `insecureSkipVerify`).
    pub skip_verify: bool,
    /// The records that use this host, by name.
    pub registries: Vec<String>,
}

impl HostTrust {
    /// Identifies the trust material: a node reporting this fingerprint has
    /// the current CA (a rotation changes it).
    pub fn fingerprint(&self) -> String {
        let material = format!(
            "{}\n{}\n{}",
            self.plain_http,
            self.skip_verify,
            self.ca_bundle.as_deref().unwrap_or_default()
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, material.as_bytes());
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn scheme(&self) -> &'static str {
        if self.plain_http { "http" } else { "https" }
    }
}

/// A record whose trust could not be configured, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The record, by name.
    pub registry: String,
    /// Why, in words: each node reports it as the record's failure.
    pub message: String,
}

/// Does this record need anything of a node beyond public HTTPS?
pub fn needs_trust(record: &Registry) -> bool {
    record.server.starts_with("http://")
        || record.tls.ca_bundle.is_some()
        || record.tls.insecure_skip_verify
}

/// The hosts that need trust, one entry per host (records of one Harbor's
/// different projects share it), and the records that cannot have it.
/// Records sharing a host must agree on plain HTTP and on skipping
/// verification; their CA bundles are all trusted.
pub fn hosts(records: &[Registry]) -> (Vec<HostTrust>, Vec<Problem>) {
    let mut by_host: BTreeMap<String, HostTrust> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut ordered: Vec<&Registry> = records.iter().filter(|r| needs_trust(r)).collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name));
    for record in ordered {
        let server = match record.parsed_server() {
            Ok(server) => server,
            Err(error) => {
                problems.push(Problem {
                    registry: record.name.clone(),
                    message: error.to_string(),
                });
                continue;
            }
        };
        if let Err(problem) = check_host(&server.host) {
            problems.push(Problem {
                registry: record.name.clone(),
                message: problem.to_string(),
            });
            continue;
        }
        let plain_http = server.scheme == Scheme::Http;
        let ca = record.tls.ca_bundle.as_deref().map(str::trim);
        match by_host.get_mut(&server.host) {
            None => {
                by_host.insert(
                    server.host.clone(),
                    HostTrust {
                        host: server.host.clone(),
                        plain_http,
                        ca_bundle: ca.map(|pem| format!("{pem}\n")),
                        skip_verify: record.tls.insecure_skip_verify,
                        registries: vec![record.name.clone()],
                    },
                );
            }
            Some(trust)
                if trust.plain_http != plain_http
                    || trust.skip_verify != record.tls.insecure_skip_verify =>
            {
                problems.push(Problem {
                    registry: record.name.clone(),
                    message: format!(
                        "{} is also used by {} with {}; one host has one setting, so it is configured as {} says",
                        server.host,
                        trust.registries.join(", "),
                        if trust.plain_http != plain_http {
                            "the other scheme"
                        } else {
                            "the other certificate verification setting"
                        },
                        trust.registries[0]
                    ),
                });
            }
            Some(trust) => {
                if let Some(pem) = ca {
                    let bundle = trust.ca_bundle.get_or_insert_with(String::new);
                    if !bundle.contains(pem) {
                        bundle.push_str(pem);
                        bundle.push('\n');
                    }
                }
                trust.registries.push(record.name.clone());
            }
        }
    }
    (by_host.into_values().collect(), problems)
}

/// Why a record's host cannot name a directory on the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} cannot name a directory: {why}")]
pub struct HostError {
    /// Quoted (see `Excerpt::quoted`).
    pub host: String,
    /// The rule it breaks.
    pub why: HostFault,
}

/// The rule a host breaks, so that it may not name a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostFault {
    /// Something other than `:port` follows the `]` of an IPv6 address.
    #[error("text after the IPv6 address")]
    AfterIpv6,
    /// A `[` with no `]`.
    #[error("an unclosed IPv6 address")]
    UnclosedIpv6,
    /// The port is empty, longer than five characters, or not all digits.
    #[error("the port is not a number")]
    Port,
    /// What stands between `[` and `]` is not an IPv6 address.
    #[error("not an IPv6 address")]
    NotIpv6,
    /// Not a lowercase DNS name or IPv4 address: an empty or over-long
    /// label, a label that starts or ends with `-`, or another character
    /// (`/`, `_`, an uppercase letter).
    #[error("only lowercase letters, digits, '-' and '.' between labels")]
    Name,
}

/// A host may become a directory name only if it is exactly what an image
/// reference names: a DNS name or IP address, lowercase, an optional port.
/// No separators, no `..`, nothing absolute — whatever a record says.
pub fn check_host(host: &str) -> Result<(), HostError> {
    let refuse = |why: HostFault| {
        Err(HostError {
            host: excerpt(host).quoted(),
            why,
        })
    };
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((literal, "")) => (literal, None),
            Some((literal, after)) => match after.strip_prefix(':') {
                Some(port) => (literal, Some(port)),
                None => return refuse(HostFault::AfterIpv6),
            },
            None => return refuse(HostFault::UnclosedIpv6),
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return refuse(HostFault::Port);
    }
    if host.starts_with('[') {
        return match name.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => refuse(HostFault::NotIpv6),
        };
    }
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if labels_ok {
        Ok(())
    } else {
        refuse(HostFault::Name)
    }
}

/// One file a runtime reads, as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredFile {
    /// Where it lives on the node.
    pub path: PathBuf,
    /// The whole file; it begins with [`MARKER`], so it is known as ours.
    pub contents: String,
    /// The host it configures.
    pub host: String,
}

/// Every file `runtimes` need for `hosts`. Docker's `insecure-registries`
/// is not a file of ours: see [`docker_insecure_registries`].
pub fn files(hosts: &[HostTrust], runtimes: &[Runtime], layout: &Layout) -> Vec<DesiredFile> {
    let mut out = Vec::new();
    for trust in hosts {
        let header = header(trust);
        let ca_file = |dir: &Path| {
            trust.ca_bundle.as_ref().map(|pem| DesiredFile {
                path: dir.join(&trust.host).join(CA_FILE),
                contents: format!("{header}{pem}"),
                host: trust.host.clone(),
            })
        };
        for runtime in runtimes {
            match runtime {
                Runtime::Containerd => {
                    out.push(DesiredFile {
                        path: layout
                            .containerd_certs_d
                            .join(&trust.host)
                            .join("hosts.toml"),
                        contents: containerd_hosts_toml(trust, &header),
                        host: trust.host.clone(),
                    });
                    out.extend(ca_file(&layout.containerd_certs_d));
                }
                Runtime::Crio => {
                    if trust.plain_http || trust.skip_verify {
                        out.push(DesiredFile {
                            path: layout
                                .containers_registries_d
                                .join(format!("{DROP_IN_PREFIX}{}.conf", trust.host)),
                            contents: containers_drop_in(trust, &header),
                            host: trust.host.clone(),
                        });
                    }
                    out.extend(ca_file(&layout.containers_certs_d));
                }
                Runtime::Docker => out.extend(ca_file(&layout.docker_certs_d)),
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The hosts Docker must list in `insecure-registries`: plain HTTP, or
/// verification skipped (Docker has no per-host switch for the latter).
pub fn docker_insecure_registries(hosts: &[HostTrust]) -> Vec<String> {
    hosts
        .iter()
        .filter(|t| t.plain_http || t.skip_verify)
        .map(|t| t.host.clone())
        .collect()
}

fn header(trust: &HostTrust) -> String {
    format!(
        "{MARKER} for {} ({}). Edits are overwritten: change the registry record instead.\n",
        trust.host,
        trust.registries.join(", ")
    )
}

/// containerd's per-host file: which URL to use for the host, what it may
/// do, and how to trust it. `ca` is relative: containerd resolves it in the
/// host's own directory, wherever that is mounted.
fn containerd_hosts_toml(trust: &HostTrust, header: &str) -> String {
    let url = format!("{}://{}", trust.scheme(), trust.host);
    let mut host = toml::Table::new();
    host.insert(
        "capabilities".into(),
        toml::Value::Array(vec!["pull".into(), "resolve".into()]),
    );
    if trust.ca_bundle.is_some() {
        host.insert("ca".into(), CA_FILE.into());
    }
    if trust.skip_verify {
        host.insert("skip_verify".into(), true.into());
    }
    let mut hosts = toml::Table::new();
    hosts.insert(url.clone(), toml::Value::Table(host));
    let mut document = toml::Table::new();
    document.insert("server".into(), url.into());
    document.insert("host".into(), toml::Value::Table(hosts));
    format!("{header}{}", toml_text(&document))
}

/// A `registries.conf.d` drop-in: `insecure` allows plain HTTP and skips
/// certificate verification for this location (containers' only switch).
fn containers_drop_in(trust: &HostTrust, header: &str) -> String {
    let mut registry = toml::Table::new();
    registry.insert("location".into(), trust.host.clone().into());
    registry.insert("insecure".into(), true.into());
    let mut document = toml::Table::new();
    document.insert(
        "registry".into(),
        toml::Value::Array(vec![toml::Value::Table(registry)]),
    );
    format!("{header}{}", toml_text(&document))
}

fn toml_text(document: &toml::Table) -> String {
    // A table of strings, booleans and arrays always serializes.
    toml::to_string(document).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_tls as with;

    #[test]
    fn only_records_that_need_it_get_trust_and_a_shared_host_is_one_entry() {
        let (hosts, problems) = hosts(&[
            with("https://public.example.com", None, false, "public"),
            with("http://10.0.0.5:5000", None, false, "plain"),
            with(
                "https://harbor.example.com/library",
                Some("CA-1"),
                false,
                "lib",
            ),
            with(
                "https://harbor.example.com/team",
                Some("CA-2"),
                false,
                "team",
            ),
            with(
                "https://harbor.example.com/again",
                Some("CA-1"),
                false,
                "again",
            ),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            hosts
                .iter()
                .map(|h| (h.host.as_str(), h.plain_http, h.registries.clone()))
                .collect::<Vec<_>>(),
            [
                ("10.0.0.5:5000", true, vec!["plain".to_owned()]),
                (
                    "harbor.example.com",
                    false,
                    vec!["again".into(), "lib".into(), "team".into()]
                ),
            ]
        );
        assert_eq!(hosts[1].ca_bundle.as_deref(), Some("CA-1\nCA-2\n"));
    }

    #[test]
    fn records_disagreeing_about_one_host_are_reported() {
        let (hosts, problems) = hosts(&[
            with("http://r.example.com:5000", None, false, "a"),
            with("https://r.example.com:5000", Some("CA"), false, "b"),
        ]);
        assert_eq!(hosts.len(), 1);
        assert!(hosts[0].plain_http);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].registry, "b");
        assert!(
            problems[0].message.contains("the other scheme"),
            "{problems:?}"
        );
    }

    #[test]
    fn server_forms_become_the_directory_images_name() {
        for (server, host) in [
            ("10.0.0.5", "10.0.0.5"),
            ("http://10.0.0.5:5000", "10.0.0.5:5000"),
            (
                "https://Harbor.Example.COM:8443/library",
                "harbor.example.com:8443",
            ),
            ("http://[::1]:5000", "[::1]:5000"),
            ("http://[fe80::1]", "[fe80::1]"),
            ("https://bücher.example/x", "xn--bcher-kva.example"),
            ("http://r.example.com:80", "r.example.com"),
        ] {
            let (hosts, problems) = hosts(&[with(server, Some("CA"), false, "r")]);
            assert!(problems.is_empty(), "{server}: {problems:?}");
            assert_eq!(hosts[0].host, host, "{server}");
        }
    }

    #[test]
    fn hostile_hosts_never_become_paths() {
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "../etc",
            "/etc",
            "a\\b",
            "a..b",
            ".a",
            "a.",
            "A.example",
            "a b",
            "a:port",
            "a:123456",
            "[zz::1]",
            "[::1",
            "-a.example",
            "a\0b",
            "a:1:2",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?} must be refused");
        }
        for good in [
            "a",
            "a.example",
            "10.0.0.5:5000",
            "[::1]:5000",
            "[::ffff:10.0.0.1]",
            "xn--bcher-kva.example",
        ] {
            assert!(check_host(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn each_runtime_gets_its_own_files() {
        let layout = Layout::default();
        let (hosts, _) = hosts(&[
            with("http://10.0.0.5:5000", None, false, "plain"),
            with(
                "https://harbor.example.com",
                Some("-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----"),
                false,
                "harbor",
            ),
            with("https://skip.example.com", None, true, "skip"),
        ]);
        let all = files(
            &hosts,
            &[Runtime::Containerd, Runtime::Crio, Runtime::Docker],
            &layout,
        );
        let paths: Vec<String> = all.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/etc/containerd/certs.d/10.0.0.5:5000/hosts.toml",
                "/etc/containerd/certs.d/harbor.example.com/hosts.toml",
                "/etc/containerd/certs.d/harbor.example.com/registry-resolver-ca.crt",
                "/etc/containerd/certs.d/skip.example.com/hosts.toml",
                "/etc/containers/certs.d/harbor.example.com/registry-resolver-ca.crt",
                "/etc/containers/registries.conf.d/registry-resolver-10.0.0.5:5000.conf",
                "/etc/containers/registries.conf.d/registry-resolver-skip.example.com.conf",
                "/etc/docker/certs.d/harbor.example.com/registry-resolver-ca.crt",
            ]
        );
        for file in &all {
            assert!(file.contents.starts_with(MARKER), "{}", file.path.display());
        }
        let plain: toml::Table = toml::from_str(&all[0].contents).expect("toml");
        assert_eq!(plain["server"].as_str(), Some("http://10.0.0.5:5000"));
        assert_eq!(
            plain["host"]["http://10.0.0.5:5000"]["capabilities"],
            toml::Value::Array(vec!["pull".into(), "resolve".into()])
        );
        let harbor: toml::Table = toml::from_str(&all[1].contents).expect("toml");
        assert_eq!(
            harbor["host"]["https://harbor.example.com"]["ca"].as_str(),
            Some(CA_FILE)
        );
        let skip: toml::Table = toml::from_str(&all[3].contents).expect("toml");
        assert_eq!(
            skip["host"]["https://skip.example.com"]["skip_verify"].as_bool(),
            Some(true)
        );
        let drop_in: toml::Table = toml::from_str(&all[5].contents).expect("toml");
        assert_eq!(
            drop_in["registry"][0]["location"].as_str(),
            Some("10.0.0.5:5000")
        );
        assert_eq!(drop_in["registry"][0]["insecure"].as_bool(), Some(true));
        assert_eq!(
            docker_insecure_registries(&hosts),
            ["10.0.0.5:5000", "skip.example.com"]
        );
        // The defaults touch containerd only.
        assert!(
            files(&hosts, &[Runtime::Containerd], &layout)
                .iter()
                .all(|f| f.path.starts_with("/etc/containerd/certs.d"))
        );
    }

    #[test]
    fn a_ca_rotation_changes_the_fingerprint() {
        let (one, _) = hosts(&[with("https://h.example", Some("CA-1"), false, "h")]);
        let (two, _) = hosts(&[with("https://h.example", Some("CA-2"), false, "h")]);
        assert_ne!(one[0].fingerprint(), two[0].fingerprint());
        assert_eq!(one[0].fingerprint(), one[0].clone().fingerprint());
    }
}
