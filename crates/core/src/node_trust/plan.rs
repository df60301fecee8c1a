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

/// containerd's files for the node mirrors (`mirrorOf` entries with
/// `mode: node`): for each upstream, a `hosts.toml` in its own directory
/// (`certs.d/docker.io/`) that lists the mirrors first, in record order,
/// and the upstream after them, so containerd falls back to it by itself.
/// A mirror under a path (a Harbor proxy-cache project) is named by its
/// `/v2/<path>` URL with `override_path`. Credentials are not written:
/// the pod's pull Secret is sent. An upstream whose directory `hosts`
/// configures already is a problem of the records mirroring it. Only
/// containerd has per-host mirrors of this kind.
pub fn mirror_files(
    records: &[Registry],
    hosts: &[HostTrust],
    runtimes: &[Runtime],
    layout: &Layout,
) -> (Vec<DesiredFile>, Vec<Problem>) {
    use crate::mirror::MirrorMode;
    let mut problems = Vec::new();
    if !runtimes.contains(&Runtime::Containerd) {
        return (Vec::new(), problems);
    }
    let mut ordered: Vec<&Registry> = records.iter().collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name));
    // Upstream → (mirror URL, its record, CA, skip verification, override).
    let mut by_upstream: BTreeMap<&str, Vec<(String, &Registry, bool)>> = BTreeMap::new();
    for record in ordered {
        let entries = record
            .mirror_of
            .iter()
            .filter(|e| e.mode == MirrorMode::Node);
        for entry in entries {
            let problem = |message: String| Problem {
                registry: record.name.clone(),
                message,
            };
            let server = match record.parsed_server() {
                Ok(server) => server,
                Err(error) => {
                    problems.push(problem(error.to_string()));
                    continue;
                }
            };
            if let Err(error) = check_host(&entry.upstream) {
                problems.push(problem(error.to_string()));
                continue;
            }
            if hosts.iter().any(|h| h.host == entry.upstream) {
                problems.push(problem(format!(
                    "{} is configured for a registry of its own, so its mirrors are not written",
                    entry.upstream
                )));
                continue;
            }
            let path = entry.repository_prefix(server.prefix.as_deref());
            let scheme = match server.scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
            };
            let url = match &path {
                None => format!("{scheme}://{}", server.host),
                Some(path) => format!("{scheme}://{}/v2/{path}", server.host),
            };
            by_upstream
                .entry(&entry.upstream)
                .or_default()
                .push((url, record, path.is_some()));
        }
    }
    let mut out = Vec::new();
    for (upstream, mirrors) in by_upstream {
        let names: Vec<&str> = mirrors.iter().map(|(_, r, _)| r.name.as_str()).collect();
        let header = format!(
            "{MARKER} for {upstream} (mirrors: {}). Edits are overwritten: change the registry records instead.\n",
            names.join(", ")
        );
        let dir = layout.containerd_certs_d.join(upstream);
        let mut bundle = String::new();
        let mut server = toml::Table::new();
        server.insert("server".into(), upstream_url(upstream).into());
        let mut text = format!("{header}{}", toml_text(&server));
        // One `[host."…"]` table each, written in record order: containerd
        // tries them in the order of the file, and a table would sort them.
        for (url, record, override_path) in &mirrors {
            let mut host = toml::Table::new();
            host.insert(
                "capabilities".into(),
                toml::Value::Array(vec!["pull".into(), "resolve".into()]),
            );
            if *override_path {
                host.insert("override_path".into(), true.into());
            }
            if let Some(pem) = record.tls.ca_bundle.as_deref().map(str::trim) {
                host.insert("ca".into(), CA_FILE.into());
                if !bundle.contains(pem) {
                    bundle.push_str(pem);
                    bundle.push('\n');
                }
            }
            if record.tls.insecure_skip_verify {
                host.insert("skip_verify".into(), true.into());
            }
            let mut hosts = toml::Table::new();
            hosts.insert(url.clone(), toml::Value::Table(host));
            let mut section = toml::Table::new();
            section.insert("host".into(), toml::Value::Table(hosts));
            text.push('\n');
            text.push_str(&toml_text(&section));
        }
        out.push(DesiredFile {
            path: dir.join("hosts.toml"),
            contents: text,
            host: upstream.to_owned(),
        });
        if !bundle.is_empty() {
            out.push(DesiredFile {
                path: dir.join(CA_FILE),
                contents: format!("{header}{bundle}"),
                host: upstream.to_owned(),
            });
        }
    }
    (out, problems)
}

/// Where an upstream is pulled from when no mirror answers: Docker Hub's
/// registry API lives at `registry-1.docker.io`.
fn upstream_url(upstream: &str) -> String {
    if upstream == crate::reference::DOCKER_HUB {
        "https://registry-1.docker.io".into()
    } else {
        format!("https://{upstream}")
    }
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

    /// Node mirrors: containerd's file for the upstream lists each mirror
    /// first (a Harbor project by its `/v2/<path>` with `override_path`,
    /// a pull-through cache by its root), then the upstream; rewrite-mode
    /// entries are the webhook's, not the nodes'.
    #[test]
    fn node_mirrors_are_hosts_toml_for_the_upstream_with_the_mirrors_first() {
        use crate::mirror::{Fallback, MirrorEntry, MirrorMode};
        let entry = |upstream: &str, prefix: Option<&str>, mode| MirrorEntry {
            upstream: upstream.into(),
            path_prefix: prefix.map(Into::into),
            excludes: vec![],
            fallback: Fallback::Upstream,
            check_upstream: false,
            mode,
        };
        let mut harbor = with(
            "https://harbor.example.com",
            Some("HARBOR-CA"),
            false,
            "harbor",
        );
        harbor.mirror_of = vec![
            entry("docker.io", Some("dockerhub-proxy"), MirrorMode::Node),
            entry("quay.io", Some("quay-proxy"), MirrorMode::Rewrite),
        ];
        let mut cache = with("http://cache.local:5000", None, false, "cache");
        cache.mirror_of = vec![entry("docker.io", None, MirrorMode::Node)];
        let records = [harbor, cache];
        let (hosts, _) = hosts(&records);
        let layout = Layout::default();
        let (files, problems) = mirror_files(&records, &hosts, &[Runtime::Containerd], &layout);
        assert!(problems.is_empty(), "{problems:?}");
        let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/etc/containerd/certs.d/docker.io/hosts.toml",
                "/etc/containerd/certs.d/docker.io/registry-resolver-ca.crt"
            ]
        );
        let hosts_toml = &files[0].contents;
        assert!(hosts_toml.starts_with(MARKER), "{hosts_toml}");
        let body: String = hosts_toml
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            body,
            "server = \"https://registry-1.docker.io\"\n\n\
             [host.\"http://cache.local:5000\"]\n\
             capabilities = [\"pull\", \"resolve\"]\n\n\
             [host.\"https://harbor.example.com/v2/dockerhub-proxy\"]\n\
             ca = \"registry-resolver-ca.crt\"\n\
             capabilities = [\"pull\", \"resolve\"]\n\
             override_path = true\n"
        );
        let parsed: toml::Table = toml::from_str(hosts_toml).expect("valid TOML");
        assert_eq!(parsed["host"].as_table().map(|t| t.len()), Some(2));
        assert!(files[1].contents.contains("HARBOR-CA"));
        // CRI-O and Docker have no such mirrors: nothing is written.
        assert!(
            mirror_files(&records, &hosts, &[Runtime::Crio], &layout)
                .0
                .is_empty()
        );
        // A plain-HTTP registry of its own at the upstream's name wins.
        let own = with("http://docker.io", None, false, "own");
        let records = [records[0].clone(), own];
        let (hosts, _) = super::hosts(&records);
        let (files, problems) = mirror_files(&records, &hosts, &[Runtime::Containerd], &layout);
        assert!(files.is_empty());
        assert_eq!(problems[0].registry, "harbor");
    }
}
