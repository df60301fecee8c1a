//! Command-line flags. Every flag is also an environment variable
//! `REGISTRY_RESOLVER_<FLAG>`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::pinning::PinFailurePolicy;
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "registry-resolver",
    version,
    about = "Expands registry-relative image paths against authorized registries and injects pull secrets"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format.
    #[arg(
        long,
        global = true,
        env = "REGISTRY_RESOLVER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `registry_resolver=debug`.
    #[arg(
        long,
        global = true,
        env = "REGISTRY_RESOLVER_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook and the API (HTTPS) and the admin endpoints (HTTP).
    Serve(Box<ServeArgs>),
    /// Resolve registry-relative images in manifests (files or stdin) to stdout.
    /// Works as a Helm 3 `--post-renderer`.
    Resolve(ResolveArgs),
    /// Generate a CA and a serving certificate signed by it.
    Certs(CertsArgs),
    /// Print the ImageRegistry CustomResourceDefinition (YAML).
    Crd,
    /// Write this node's container runtime trust configuration (containerd
    /// `hosts.toml`, CRI-O drop-ins, Docker `certs.d`) once, for the
    /// registries in the embedded store that need it.
    NodeConfig(NodeConfigArgs),
    /// Keep this node's container runtime trust configuration in sync with
    /// the cluster's ImageRegistries (runs on every node, as a DaemonSet).
    NodeAgent(NodeAgentArgs),
    /// Bring in registries people already have: a Docker/Podman
    /// `config.json`, KubeSphere's image registry Secrets (a `kubectl get
    /// secrets -A -o json` dump or the live cluster), or an `export` file.
    Import(ImportArgs),
    /// Write every record to a file `import --records` reads (without
    /// passwords unless asked).
    Export(ExportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A Docker/Podman `config.json` (repeatable). Its registries are
    /// authorized in the --namespace given.
    #[arg(long, env = "REGISTRY_RESOLVER_DOCKER_CONFIG", value_delimiter = ',')]
    pub docker_config: Vec<PathBuf>,

    /// A dump of Secrets, `kubectl get secrets -A -o json` (repeatable):
    /// every `kubernetes.io/dockerconfigjson` Secret in it, KubeSphere's
    /// annotations honoured.
    #[arg(long, env = "REGISTRY_RESOLVER_SECRETS", value_delimiter = ',')]
    pub secrets: Vec<PathBuf>,

    /// Read the `kubernetes.io/dockerconfigjson` Secrets of the cluster
    /// (KUBECONFIG, or in-cluster) as --secrets reads a dump.
    #[arg(long, env = "REGISTRY_RESOLVER_FROM_CLUSTER")]
    pub from_cluster: bool,

    /// A file written by `export` (repeatable).
    #[arg(long, env = "REGISTRY_RESOLVER_RECORDS", value_delimiter = ',')]
    pub records: Vec<PathBuf>,

    /// Namespaces the registries of a --docker-config are authorized for
    /// (repeatable or comma-separated; names, `*` or `prefix*`).
    #[arg(
        short = 'n',
        long = "namespace",
        env = "REGISTRY_RESOLVER_IMPORT_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// Print what would be created or updated; write nothing.
    #[arg(long, env = "REGISTRY_RESOLVER_DRY_RUN")]
    pub dry_run: bool,

    /// Log in to each registry before its record is written, like the API
    /// (`--verify=false` for air-gapped imports).
    #[arg(long, env = "REGISTRY_RESOLVER_VERIFY", default_value_t = true, action = clap::ArgAction::Set)]
    pub verify: bool,

    /// Send registry checks to loopback addresses (a laptop lab).
    #[arg(long, env = "REGISTRY_RESOLVER_REGISTRY_ALLOW_LOOPBACK", default_value_t = true, action = clap::ArgAction::Set)]
    pub registry_allow_loopback: bool,

    /// Deadline for one registry check.
    #[arg(long, env = "REGISTRY_RESOLVER_REGISTRY_CHECK_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub registry_check_timeout: Duration,

    #[command(flatten)]
    pub location: StoreLocation,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Where to write; standard output when absent.
    #[arg(short = 'o', long = "output", env = "REGISTRY_RESOLVER_EXPORT_OUTPUT")]
    pub output: Option<PathBuf>,

    /// Include each record's password: only into a file (-o), created 0600.
    #[arg(long, env = "REGISTRY_RESOLVER_INCLUDE_PASSWORDS", requires = "output")]
    pub include_passwords: bool,

    #[command(flatten)]
    pub location: StoreLocation,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// Which runtimes, and where their configuration lives on the node.
#[derive(Debug, Clone, Args)]
pub struct NodeTrustArgs {
    /// Runtimes to configure: containerd, crio, docker (repeat or
    /// comma-separate).
    #[arg(
        long = "runtime",
        env = "REGISTRY_RESOLVER_RUNTIMES",
        value_enum,
        value_delimiter = ',',
        default_value = "containerd"
    )]
    pub runtimes: Vec<crate::node_trust::Runtime>,

    /// Where the node's `/` is: every path below is taken under it.
    #[arg(long, env = "REGISTRY_RESOLVER_NODE_ROOT", default_value = "/")]
    pub root: PathBuf,

    /// containerd's per-host directory (its CRI `config_path`).
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_CONTAINERD_CERTS_DIR",
        default_value = "/etc/containerd/certs.d"
    )]
    pub containerd_certs_dir: PathBuf,

    /// containerd's config, read to tell whether it reads the directory above.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_CONTAINERD_CONFIG",
        default_value = "/etc/containerd/config.toml"
    )]
    pub containerd_config: PathBuf,

    /// CRI-O and Podman drop-ins.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_CONTAINERS_REGISTRIES_DIR",
        default_value = "/etc/containers/registries.conf.d"
    )]
    pub containers_registries_dir: PathBuf,

    /// CRI-O and Podman per-host certificates.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_CONTAINERS_CERTS_DIR",
        default_value = "/etc/containers/certs.d"
    )]
    pub containers_certs_dir: PathBuf,

    /// Docker Engine per-host certificates.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_DOCKER_CERTS_DIR",
        default_value = "/etc/docker/certs.d"
    )]
    pub docker_certs_dir: PathBuf,

    /// Docker's daemon.json, to keep plain-HTTP registries in its
    /// `insecure-registries` (opt-in; Docker must then be reloaded, which
    /// is never done for you). Unset: not touched.
    #[arg(long, env = "REGISTRY_RESOLVER_DOCKER_DAEMON_JSON")]
    pub docker_daemon_json: Option<PathBuf>,
}

impl NodeTrustArgs {
    pub fn node(&self) -> crate::node_trust::sync::Node {
        let mut runtimes = self.runtimes.clone();
        runtimes.sort();
        runtimes.dedup();
        crate::node_trust::sync::Node {
            root: self.root.clone(),
            layout: crate::node_trust::Layout {
                containerd_certs_d: self.containerd_certs_dir.clone(),
                containers_registries_d: self.containers_registries_dir.clone(),
                containers_certs_d: self.containers_certs_dir.clone(),
                docker_certs_d: self.docker_certs_dir.clone(),
                docker_daemon_json: self.docker_daemon_json.clone(),
            },
            runtimes,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct NodeConfigArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub trust: NodeTrustArgs,
    /// Print what would change and change nothing; exit status 1 when
    /// something would.
    #[arg(long, env = "REGISTRY_RESOLVER_CHECK")]
    pub check: bool,
}

#[derive(Debug, Clone, Args)]
pub struct NodeAgentArgs {
    #[command(flatten)]
    pub trust: NodeTrustArgs,
    /// This node's name (the Downward API's `spec.nodeName`).
    #[arg(long, env = "REGISTRY_RESOLVER_NODE_NAME")]
    pub node_name: String,
    /// Where the node reports go (the install namespace).
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_NAMESPACE",
        default_value = "registry-resolver"
    )]
    pub namespace: String,
    /// Plain-HTTP address of `/healthz` and `/metrics`.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_listen: SocketAddr,
    /// How often the files are checked even without a change (repairs
    /// hand edits and deletions).
    #[arg(long, env = "REGISTRY_RESOLVER_RESYNC_INTERVAL", value_parser = humantime::parse_duration, default_value = "5m")]
    pub resync_interval: std::time::Duration,
}

/// Which store holds the records: `serve`, `import` and `export` share it.
#[derive(Debug, Clone, Args)]
pub struct StoreLocation {
    /// Where records live: `embedded` (SQLite in --data-dir) or `kubernetes`
    /// (ImageRegistry objects; pull Secrets replicated; cluster RBAC for the API).
    #[arg(
        long = "store",
        env = "REGISTRY_RESOLVER_STORE",
        value_enum,
        default_value = "embedded"
    )]
    pub store_kind: StoreKind,

    /// With --store kubernetes: the namespace holding the credential Secrets
    /// (where registry-resolver is installed).
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_INSTALL_NAMESPACE",
        default_value = "registry-resolver"
    )]
    pub install_namespace: String,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the embedded store (database, encryption key, admin token).
    #[arg(long, env = "REGISTRY_RESOLVER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Key encrypting stored passwords: 32 bytes, base64. Default: read from
    /// (or created in) `--encryption-key-file`.
    #[arg(long, env = "REGISTRY_RESOLVER_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// File holding the encryption key. Default: `<data-dir>/encryption.key`.
    #[arg(long, env = "REGISTRY_RESOLVER_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,

    /// Audit entries the embedded store keeps; the oldest go first.
    #[arg(long, env = "REGISTRY_RESOLVER_AUDIT_MAX_ENTRIES", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub audit_max_entries: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTPS address of the webhook (`/mutate`) and the API (`/api/v1`).
    #[arg(long, env = "REGISTRY_RESOLVER_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Plain-HTTP address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_listen: SocketAddr,

    #[command(flatten)]
    pub location: StoreLocation,

    #[command(flatten)]
    pub store: StoreArgs,

    /// With --store kubernetes: how often every registry is checked again.
    #[arg(long, env = "REGISTRY_RESOLVER_REVERIFY_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub reverify_interval: Duration,

    /// With --store kubernetes: how long the leader's Lease holds without renewal.
    #[arg(long, env = "REGISTRY_RESOLVER_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// With --store kubernetes: the leader's writes to the API server a second (pull
    /// Secrets, statuses, finalizers), sustained. A 429 from the API server pauses
    /// them for its Retry-After, with jitter.
    #[arg(long, env = "REGISTRY_RESOLVER_WRITE_RATE", default_value = "50")]
    pub write_rate: NonZeroU32,

    /// With --store kubernetes: the leader's writes at once after a quiet spell.
    #[arg(long, env = "REGISTRY_RESOLVER_WRITE_BURST", default_value = "100")]
    pub write_burst: NonZeroU32,

    /// With --store kubernetes: how long token and access reviews are cached.
    #[arg(long, env = "REGISTRY_RESOLVER_AUTH_CACHE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub auth_cache_ttl: Duration,

    /// Serving certificate (PEM). Reloaded when it changes. Default: `<certs-dir>/tls.crt`,
    /// generated with a CA if missing.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_TLS_CERT_FILE",
        requires = "tls_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,

    /// Serving key (PEM). Default: `<certs-dir>/tls.key`.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_TLS_KEY_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_key_file: Option<PathBuf>,

    /// CA bundle (PEM) for client certificates: when set, `/mutate` and
    /// `/validate/imageregistries` answer only clients presenting a
    /// certificate from it (the API server, through its
    /// `AdmissionConfiguration` kubeconfig); the console and the API still
    /// authenticate by token. Default: any client may call the webhooks.
    #[arg(long, env = "REGISTRY_RESOLVER_WEBHOOK_CLIENT_CA")]
    pub webhook_client_ca: Option<PathBuf>,

    /// Where the development certificates live when no certificate files are given.
    #[arg(long, env = "REGISTRY_RESOLVER_CERTS_DIR", default_value = "./certs")]
    pub certs_dir: PathBuf,

    /// How often the certificate files are checked for changes.
    #[arg(long, env = "REGISTRY_RESOLVER_CERT_RELOAD_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub cert_reload_interval: Duration,

    /// Bearer token for the API. Default: read from (or generated into) `<data-dir>/admin-token`.
    #[arg(long, env = "REGISTRY_RESOLVER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Connect deadline for requests to registries.
    #[arg(long, env = "REGISTRY_RESOLVER_REGISTRY_CONNECT_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub registry_connect_timeout: Duration,

    /// Deadline for one request to a registry.
    #[arg(long, env = "REGISTRY_RESOLVER_REGISTRY_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub registry_request_timeout: Duration,

    /// Send registry requests (checks, browsing, pinning, token services) to
    /// loopback addresses. Default: true with the embedded store (a laptop
    /// lab), false with --store kubernetes (it would reach the pod itself).
    #[arg(long, env = "REGISTRY_RESOLVER_REGISTRY_ALLOW_LOOPBACK")]
    pub registry_allow_loopback: Option<bool>,

    /// Send registry requests to link-local addresses (169.254.0.0/16,
    /// fe80::/10), where cloud metadata services answer. Default: false.
    #[arg(long, env = "REGISTRY_RESOLVER_REGISTRY_ALLOW_LINK_LOCAL", default_value_t = false, action = clap::ArgAction::Set)]
    pub registry_allow_link_local: bool,

    /// More address ranges (CIDR, comma-separated) registry requests may not
    /// go to, e.g. `10.96.0.0/12` for a cluster's Service range.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_REGISTRY_DENY_CIDRS",
        value_delimiter = ','
    )]
    pub registry_deny_cidrs: Vec<ipnet::IpNet>,

    /// Deadline for a whole registry check or listing (challenge, token, retries, pages).
    #[arg(long, env = "REGISTRY_RESOLVER_REGISTRY_CHECK_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub registry_check_timeout: Duration,

    /// Where records with `browse: dockerhub` search for repositories.
    #[arg(long, env = "REGISTRY_RESOLVER_DOCKERHUB_URL", default_value = crate::registry::connectivity::DOCKER_HUB)]
    pub dockerhub_url: String,

    /// How long repository and tag lists are cached for the image picker.
    #[arg(long, env = "REGISTRY_RESOLVER_BROWSE_CACHE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub browse_cache_ttl: Duration,

    /// Most repository and tag lists cached at once.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_BROWSE_CACHE_ENTRIES",
        default_value = "1000"
    )]
    pub browse_cache_entries: u64,

    /// How long a tag's digest is cached for pinning.
    #[arg(long, env = "REGISTRY_RESOLVER_PIN_CACHE_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub pin_cache_ttl: Duration,

    /// Most digests cached for pinning.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_PIN_CACHE_ENTRIES",
        default_value = "10000"
    )]
    pub pin_cache_entries: u64,

    /// Deadline for all digest lookups of one admission (keep it well under the webhook timeout).
    #[arg(long, env = "REGISTRY_RESOLVER_PIN_DEADLINE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub pin_deadline: Duration,

    /// Distinct uncached tags one admission may have looked up; over it,
    /// none is and the pin failure policy answers, saying why.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_PIN_MAX_LOOKUPS",
        default_value = "64",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub pin_max_lookups: u32,

    /// Digest look-ups sent to one registry at once, across all admissions.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_PIN_MAX_IN_FLIGHT",
        default_value = "8",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub pin_max_in_flight: u32,

    /// When a digest cannot be had: deny the request, or allow it with the tag and a warning.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_PIN_FAILURE_POLICY",
        value_enum,
        default_value = "allow"
    )]
    pub pin_failure_policy: PinFailurePolicy,

    /// Deadline for a TLS handshake, from accept.
    #[arg(long, env = "REGISTRY_RESOLVER_TLS_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// Deadline for a request's line and headers, from when the server
    /// starts waiting for them; also how long a keep-alive connection may idle.
    #[arg(long, env = "REGISTRY_RESOLVER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Deadline for a whole request body, from its headers on (408 after it).
    #[arg(long, env = "REGISTRY_RESOLVER_BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// Connections open at once on each listener; more are closed at once
    /// (counted in `registry_resolver_connections_refused_total`), and
    /// `/readyz` fails while the HTTPS listener is full.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_MAX_CONNECTIONS",
        default_value = "4096",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,

    /// Connections open at once from one peer address on each listener;
    /// more from that address are closed at once, so one client cannot
    /// take every slot.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_MAX_CONNECTIONS_PER_PEER",
        default_value = "512",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections_per_peer: u32,

    /// How long in-flight requests may take to finish on SIGTERM.
    #[arg(long, env = "REGISTRY_RESOLVER_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// On SIGTERM, report not ready at once but keep serving this long
    /// before draining, so clients routed by readiness stop first (the
    /// chart's preStop sleep does the same from outside; `0s`: drain at once).
    #[arg(long, env = "REGISTRY_RESOLVER_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Embedded,
    Kubernetes,
}

pub use crate::manifests::OutputFormat;

#[derive(Debug, Clone, Args)]
pub struct ResolveArgs {
    /// Manifest files (YAML or JSON, multi-document); `-` or none reads stdin.
    #[arg(
        short = 'f',
        long = "filename",
        env = "REGISTRY_RESOLVER_FILENAME",
        value_delimiter = ','
    )]
    pub files: Vec<PathBuf>,

    /// Namespace for objects that do not name one.
    #[arg(
        short = 'n',
        long,
        env = "REGISTRY_RESOLVER_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,

    /// `yaml`: the input as written, only the resolved edits changed (JSON
    /// input stays JSON, which is YAML too); `json`: every object encoded
    /// again as JSON (several as one `List`).
    #[arg(
        short = 'o',
        long,
        env = "REGISTRY_RESOLVER_OUTPUT",
        value_enum,
        default_value = "yaml"
    )]
    pub output: OutputFormat,

    /// When a tag to pin cannot be looked up: fail, or keep the tag with a warning.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_PIN_FAILURE_POLICY",
        value_enum,
        default_value = "allow"
    )]
    pub pin_failure_policy: PinFailurePolicy,

    /// Deadline for the digest lookups of one object.
    #[arg(long, env = "REGISTRY_RESOLVER_PIN_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub pin_deadline: Duration,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Output directory: ca.crt, ca.key, tls.crt, tls.key.
    #[arg(long, env = "REGISTRY_RESOLVER_CERTS_DIR", default_value = "./certs")]
    pub out_dir: PathBuf,

    /// Service name for `<service>.<namespace>.svc`.
    #[arg(
        long,
        env = "REGISTRY_RESOLVER_SERVICE",
        default_value = "registry-resolver"
    )]
    pub service: String,

    /// Namespace of the Service.
    #[arg(
        long = "service-namespace",
        env = "REGISTRY_RESOLVER_SERVICE_NAMESPACE",
        default_value = "registry-resolver"
    )]
    pub namespace: String,

    /// Additional DNS name or IP address (repeatable).
    #[arg(long = "san", env = "REGISTRY_RESOLVER_SANS", value_delimiter = ',')]
    pub sans: Vec<String>,

    /// Replace existing files.
    #[arg(long, env = "REGISTRY_RESOLVER_FORCE")]
    pub force: bool,
}
