//! The commands, wired from their parts. `main` parses flags and calls these.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::{AppState, Auth, Services};
use crate::certs::{self, CertPaths, CertSubjects};
use crate::cli::{
    CertsArgs, NodeAgentArgs, NodeConfigArgs, ResolveArgs, ServeArgs, StoreArgs, StoreKind,
};
use crate::index::IndexHandle;
use crate::kubernetes::workloads::UserClients;
use crate::pinning::{PinOptions, Pinner};
use crate::registry::client::{AddressPolicy, ClientOptions};
use crate::registry::connectivity::{Connectivity, ConnectivityOptions};
use crate::registry::store::{Cipher, CipherError, RegistryStore, SqliteStore, StoreError};
use crate::server::{self, ConnectionLimits, ServeError, ServeOptions};
use crate::telemetry::Metrics;

pub const DATABASE_FILE: &str = "registries.db";
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
pub const ENCRYPTION_KEY_FILE: &str = "encryption.key";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Certs(#[from] certs::CertsError),
    #[error("admin token file {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("no registry store in {0}: run `registry-resolver serve` first or pass --data-dir")]
    NoStore(String),
    #[error("API routes without an RBAC mapping (a bug: they would refuse every caller): {0}")]
    UnmappedRoutes(String),
    #[error("reading {path}: {source}")]
    Input {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} exists; pass --force to replace it")]
    Exists(String),
    #[error(transparent)]
    Manifest(#[from] crate::manifests::ManifestError),
    #[error("connecting to the cluster: {0}")]
    Cluster(String),
    #[error("runtime or signal handler: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    NodeTrust(#[from] crate::node_trust::sync::SyncError),
}

/// Opens the embedded store in `args.data_dir`, creating it on first use,
/// and publishes its records into `index`.
pub fn open_embedded_store(
    args: &StoreArgs,
    index: Arc<IndexHandle>,
) -> Result<SqliteStore, AppError> {
    create_private_dir(&args.data_dir)?;
    let cipher = match &args.encryption_key {
        Some(key) => Cipher::from_base64(key)?,
        None => {
            let path = args
                .encryption_key_file
                .clone()
                .unwrap_or_else(|| args.data_dir.join(ENCRYPTION_KEY_FILE));
            Cipher::load_or_create(&path)?
        }
    };
    Ok(
        SqliteStore::open(&args.data_dir.join(DATABASE_FILE), cipher, index)?
            .with_audit_max_entries(args.audit_max_entries),
    )
}

/// The store a command that ends (`import`, `export`) reads and writes:
/// the embedded one, or the cluster's records (watched while it lives).
struct CommandStore {
    store: Arc<dyn RegistryStore>,
    index: Arc<IndexHandle>,
    /// Ends the cluster watches when the command is done.
    _watches: Option<tokio_util::sync::DropGuard>,
}

impl CommandStore {
    /// `must_exist`: an embedded store that is not there yet is an error
    /// (export), not a new empty one.
    async fn open(
        location: &crate::cli::StoreLocation,
        args: &StoreArgs,
        must_exist: bool,
    ) -> Result<Self, AppError> {
        let index = IndexHandle::new();
        match location.store_kind {
            StoreKind::Embedded => {
                if must_exist && !args.data_dir.join(DATABASE_FILE).exists() {
                    return Err(AppError::NoStore(args.data_dir.display().to_string()));
                }
                Ok(Self {
                    store: Arc::new(open_embedded_store(args, index.clone())?),
                    index,
                    _watches: None,
                })
            }
            StoreKind::Kubernetes => {
                let client = kube::Client::try_default()
                    .await
                    .map_err(|e| AppError::Cluster(e.to_string()))?;
                let watches = tokio_util::sync::CancellationToken::new();
                let store = crate::kubernetes::controller::records_store(
                    client,
                    &location.install_namespace,
                    index.clone(),
                    watches.clone(),
                )
                .await
                .map_err(|_| AppError::Cluster("a watch stopped before it listed".into()))?;
                Ok(Self {
                    store,
                    index,
                    _watches: Some(watches.drop_guard()),
                })
            }
        }
    }
}

fn create_private_dir(path: &Path) -> Result<(), AppError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| AppError::DataDir {
            path: path.display().to_string(),
            source,
        })
}

/// The admin token: from the flag, else the token file, else a new one
/// written to the token file and printed once.
fn admin_token(args: &ServeArgs) -> Result<String, AppError> {
    if let Some(token) = args.admin_token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = args.store.data_dir.join(ADMIN_TOKEN_FILE);
    let err = |source| AppError::Token {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        Ok(_) => Err(err(std::io::Error::other("file is empty"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| err(std::io::Error::other(e.to_string())))?;
            use base64::Engine;
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            crate::registry::store::write_private_file(&path, token.as_bytes()).map_err(err)?;
            // Shown once, on creation, to a person at a terminal. Output
            // that goes to a file or a log collector would keep it, so
            // there only the file's location is said.
            if std::io::stderr().is_terminal() {
                eprintln!(
                    "registry-resolver: generated an API admin token (saved in {}):\n\n    {token}\n",
                    path.display()
                );
            } else {
                tracing::info!(file = %path.display(), "generated an API admin token; read it from the file");
            }
            Ok(token)
        }
        Err(e) => Err(err(e)),
    }
}

/// The serving certificate: the given files, or the development pair in
/// `--certs-dir`, generated if missing.
fn serving_pair(args: &ServeArgs) -> Result<(PathBuf, PathBuf), AppError> {
    if let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_key_file) {
        return Ok((cert.clone(), key.clone()));
    }
    let paths = CertPaths::in_dir(&args.certs_dir);
    if !paths.serving_pair_exists() {
        certs::generate(&args.certs_dir, &default_subjects())?;
        tracing::info!(
            ca = %paths.ca_cert.display(),
            "generated a development CA and serving certificate; clients should trust the CA file"
        );
    } else {
        tracing::info!(cert = %paths.cert.display(), "using the development serving certificate");
    }
    Ok((paths.cert, paths.key))
}

fn default_subjects() -> CertSubjects {
    CertSubjects {
        service: "registry-resolver".into(),
        namespace: "registry-resolver".into(),
        extra: vec![],
    }
}

/// This replica's name for leader election: the pod name (or host name)
/// and a random suffix, so a restarted pod is a new candidate.
fn replica_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "registry-resolver".into());
    let mut suffix = [0u8; 4];
    let _ = getrandom::fill(&mut suffix);
    format!(
        "{host}-{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// `serve`: runs until SIGTERM or Ctrl-C, then drains and returns.
pub async fn serve(args: ServeArgs) -> Result<(), AppError> {
    crate::server::tls::install_crypto_provider();
    let index = IndexHandle::new();
    let (cert_file, key_file) = serving_pair(&args)?;
    let client_options = ClientOptions {
        connect_timeout: args.registry_connect_timeout,
        request_timeout: args.registry_request_timeout,
        addresses: Arc::new(AddressPolicy {
            allow_loopback: args
                .registry_allow_loopback
                .unwrap_or(args.location.store_kind == StoreKind::Embedded),
            allow_link_local: args.registry_allow_link_local,
            deny: args.registry_deny_cidrs.clone(),
        }),
    };
    let connectivity = Arc::new(Connectivity::new(ConnectivityOptions {
        client: client_options.clone(),
        check_timeout: args.registry_check_timeout,
        browse_cache_ttl: args.browse_cache_ttl,
        browse_cache_entries: args.browse_cache_entries,
        dockerhub_url: args.dockerhub_url.clone(),
    }));
    let metrics = Arc::new(Metrics::new());
    // Stops the cluster watches when the server stops.
    let background = tokio_util::sync::CancellationToken::new();
    let (store, auth, workloads): (Arc<dyn RegistryStore>, Auth, _) = match args.location.store_kind
    {
        StoreKind::Embedded => (
            Arc::new(open_embedded_store(&args.store, index.clone())?),
            Auth::admin_token(admin_token(&args)?),
            None,
        ),
        StoreKind::Kubernetes => {
            let config = kube::Config::infer()
                .await
                .map_err(|e| AppError::Cluster(e.to_string()))?;
            let workloads = Arc::new(UserClients::new(config.clone()));
            let client = kube::Client::try_from(config.clone())
                .map_err(|e| AppError::Cluster(e.to_string()))?;
            // The controller's writes: paced by `controller::start`, which
            // retries what the API server throttles itself.
            let mut unretried = config;
            unretried.default_retry = false;
            let writes =
                kube::Client::try_from(unretried).map_err(|e| AppError::Cluster(e.to_string()))?;
            tracing::info!(namespace = %args.location.install_namespace, "waiting for the cluster's registries to be listed");
            let cluster = crate::kubernetes::controller::start(
                client,
                writes,
                crate::kubernetes::controller::ClusterOptions {
                    namespace: args.location.install_namespace.clone(),
                    reverify_interval: args.reverify_interval,
                    identity: replica_identity(),
                    lease_duration: args.lease_duration,
                    write_pace: crate::kubernetes::pace::WritePace {
                        per_second: args.write_rate,
                        burst: args.write_burst,
                    },
                    progress_interval: crate::kubernetes::controller::PROGRESS_INTERVAL,
                },
                index.clone(),
                connectivity.clone(),
                metrics.clone(),
                background.clone(),
            )
            .await;
            // Cluster RBAC maps each route to a permission; a route without
            // one would answer everyone 401, so it must not start that way.
            let unmapped = crate::api::operations_without_permission();
            if !unmapped.is_empty() {
                return Err(AppError::UnmappedRoutes(unmapped.join(", ")));
            }
            let auth = Auth::cluster(crate::kubernetes::auth::ClusterAuth::new(
                cluster.client,
                args.auth_cache_ttl,
            ));
            (cluster.store, auth, Some(workloads))
        }
    };
    let pinner = Arc::new(Pinner::new(
        store.clone(),
        PinOptions {
            cache_ttl: args.pin_cache_ttl,
            cache_entries: args.pin_cache_entries,
            deadline: args.pin_deadline,
            policy: args.pin_failure_policy,
            client: client_options,
            max_lookups_per_review: args.pin_max_lookups as usize,
            max_in_flight_per_registry: args.pin_max_in_flight as usize,
        },
    ));
    let state = AppState::from(Services {
        store,
        index: index.clone(),
        metrics,
        auth: Arc::new(auth),
        pinner,
        connectivity,
        workloads,
        body_read_timeout: args.body_read_timeout,
    });
    let options = ServeOptions {
        listen: args.listen,
        admin_listen: args.admin_listen,
        cert_file,
        key_file,
        cert_reload_interval: args.cert_reload_interval,
        shutdown_timeout: args.shutdown_timeout,
        limits: ConnectionLimits {
            handshake_timeout: args.tls_handshake_timeout,
            header_read_timeout: args.header_read_timeout,
            max_connections: args.max_connections as usize,
            max_connections_per_peer: args.max_connections_per_peer as usize,
        },
        metrics: None,
        webhook_client_ca: args.webhook_client_ca.clone(),
    };
    let running = server::start(state, &options).await?;
    tracing::info!(
        registries = index.load().len(),
        "registry-resolver is ready"
    );
    let token = running.shutdown_token();
    let shutdown_delay = args.shutdown_delay;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AppError::Signal)?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining"),
        _ = token.cancelled() => {}
    }
    running.shutdown_after(shutdown_delay).await;
    background.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// The one-thread runtime of a command that does a little I/O and ends.
fn current_thread_runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AppError::Signal)
}

/// `resolve`: manifests in, resolved manifests out (stdout); warnings are
/// returned for stderr.
pub fn resolve(args: ResolveArgs) -> Result<crate::manifests::Resolved, AppError> {
    if !args.store.data_dir.join(DATABASE_FILE).exists() {
        return Err(AppError::NoStore(args.store.data_dir.display().to_string()));
    }
    // Several inputs become one stream: a document separator between them,
    // and every byte of each kept.
    let mut input = String::new();
    let separate = |input: &mut String| {
        if !input.is_empty() {
            if !input.ends_with('\n') {
                input.push('\n');
            }
            input.push_str("---\n");
        }
    };
    let stdin = args.files.is_empty() || args.files.iter().any(|f| f.as_os_str() == "-");
    for file in args.files.iter().filter(|f| f.as_os_str() != "-") {
        let text = std::fs::read_to_string(file).map_err(|source| AppError::Input {
            path: file.display().to_string(),
            source,
        })?;
        separate(&mut input);
        input.push_str(&text);
    }
    if stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| AppError::Input {
                path: "stdin".into(),
                source,
            })?;
        separate(&mut input);
        input.push_str(&text);
    }
    crate::server::tls::install_crypto_provider();
    let runtime = current_thread_runtime()?;
    runtime.block_on(async {
        let index = IndexHandle::new();
        // Opening publishes the records into the index.
        let store: Arc<dyn RegistryStore> =
            Arc::new(open_embedded_store(&args.store, index.clone())?);
        let pinner = Pinner::new(
            store,
            PinOptions {
                policy: args.pin_failure_policy,
                deadline: args.pin_deadline,
                ..PinOptions::default()
            },
        );
        Ok(crate::manifests::resolve_documents(
            &input,
            &args.namespace,
            &index.load(),
            args.output,
            Some(&pinner),
        )
        .await?)
    })
}

/// What `node-config` did (or, with `--check`, would do).
#[derive(Debug)]
pub struct NodeConfigOutcome {
    /// A line per change, conflict and problem.
    pub lines: Vec<String>,
    /// Something was (or would be) changed.
    pub changed: bool,
}

/// `import`: records from Docker configs, registry Secrets and export
/// files into the embedded store or the cluster (`--store kubernetes`).
pub fn import(args: crate::cli::ImportArgs) -> Result<crate::import::Outcome, AppError> {
    use crate::import::{ImportOptions, Plan, sources};
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| AppError::Input {
            path: path.display().to_string(),
            source,
        })
    };
    crate::server::tls::install_crypto_provider();
    let runtime = current_thread_runtime()?;
    runtime.block_on(async {
        let mut plans: Vec<Plan> = Vec::new();
        for path in &args.docker_config {
            let from = path.display().to_string();
            plans.push(sources::from_docker_config(
                &read(path)?,
                &from,
                &args.namespaces,
            ));
        }
        for path in &args.secrets {
            let from = path.display().to_string();
            let dump: serde_json::Value = serde_json::from_slice(&read(path)?)
                .map_err(|e| AppError::Cluster(format!("{from}: not JSON: {e}")))?;
            plans.push(sources::from_secrets(&dump, &from));
        }
        if args.from_cluster {
            plans.push(sources::from_secrets(
                &cluster_secrets().await?,
                "the cluster",
            ));
        }
        for path in &args.records {
            let from = path.display().to_string();
            plans.push(sources::from_records(&read(path)?, &from));
        }
        let plan = plans.into_iter().fold(Plan::default(), |mut all, plan| {
            all.records.extend(plan.records);
            all.problems.extend(plan.problems);
            all
        });
        let store = CommandStore::open(&args.location, &args.store, false).await?;
        let connectivity = Connectivity::new(ConnectivityOptions {
            client: ClientOptions {
                addresses: Arc::new(AddressPolicy {
                    allow_loopback: args.registry_allow_loopback,
                    ..AddressPolicy::default()
                }),
                ..ClientOptions::default()
            },
            check_timeout: args.registry_check_timeout,
            ..ConnectivityOptions::default()
        });
        let service = crate::service::RegistryService::new(
            store.store.clone(),
            store.index.clone(),
            Arc::new(connectivity),
        );
        Ok(crate::import::apply(
            plan,
            &service,
            ImportOptions {
                dry_run: args.dry_run,
                verify: args.verify,
            },
        )
        .await)
    })
}

/// The cluster's `kubernetes.io/dockerconfigjson` Secrets, as a list.
async fn cluster_secrets() -> Result<serde_json::Value, AppError> {
    use k8s_openapi::api::core::v1::Secret;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| AppError::Cluster(e.to_string()))?;
    let secrets = kube::Api::<Secret>::all(client)
        .list(&kube::api::ListParams::default().fields("type=kubernetes.io/dockerconfigjson"))
        .await
        .map_err(|e| AppError::Cluster(format!("listing Secrets: {e}")))?;
    serde_json::to_value(&secrets).map_err(|e| AppError::Cluster(e.to_string()))
}

/// `export`: every record, in the form `import --records` reads; with
/// passwords only into a file created 0600.
pub fn export(args: crate::cli::ExportArgs) -> Result<Option<String>, AppError> {
    crate::server::tls::install_crypto_provider();
    let runtime = current_thread_runtime()?;
    let document = runtime.block_on(async {
        let opened = CommandStore::open(&args.location, &args.store, true).await?;
        let store = opened.store.as_ref();
        let records = store.list().await?;
        let mut passwords = Vec::new();
        if args.include_passwords {
            for record in &records {
                if let Some(credentials) = store.credentials(&record.name).await? {
                    passwords.push((
                        record.name.clone(),
                        credentials.password.expose().to_owned(),
                    ));
                }
            }
        }
        Ok::<_, AppError>(crate::import::export(&records, &passwords))
    })?;
    let mut text =
        serde_json::to_string_pretty(&document).map_err(|e| AppError::Cluster(e.to_string()))?;
    text.push('\n');
    let Some(path) = &args.output else {
        return Ok(Some(text));
    };
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |source| AppError::Input {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    // An existing file keeps its mode when opened: make it private too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    Ok(None)
}

/// `node-config`: this node's runtime trust configuration, once, from the
/// embedded store.
pub fn node_config(args: NodeConfigArgs) -> Result<NodeConfigOutcome, AppError> {
    if !args.store.data_dir.join(DATABASE_FILE).exists() {
        return Err(AppError::NoStore(args.store.data_dir.display().to_string()));
    }
    let index = IndexHandle::new();
    open_embedded_store(&args.store, index.clone())?;
    let records: Vec<crate::registry::Registry> = index
        .load()
        .records()
        .map(|record| crate::registry::Registry::clone(record))
        .collect();
    let node = args.trust.node();
    let pass = crate::node_trust::Pass::compute(&records, &node, &args.trust.containerd_config)
        .map_err(AppError::NodeTrust)?;
    let mut lines = pass.changes.describe();
    for problem in &pass.problems {
        lines.push(format!(
            "skip   registry {}: {}",
            problem.registry, problem.message
        ));
    }
    if let Some(advice) = &pass.runtime_config {
        lines.push(format!("note   {advice}"));
    }
    if !args.check {
        node.apply(&pass.changes).map_err(AppError::NodeTrust)?;
    }
    Ok(NodeConfigOutcome {
        lines,
        changed: !pass.changes.is_empty(),
    })
}

/// `node-agent`: keeps this node's runtime trust in step with the cluster
/// until SIGTERM.
pub async fn node_agent(args: NodeAgentArgs) -> Result<(), AppError> {
    crate::server::tls::install_crypto_provider();
    let client = kube::Client::try_default()
        .await
        .map_err(|e| AppError::Cluster(e.to_string()))?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let metrics = Arc::new(crate::telemetry::Metrics::new());
    let listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .map_err(AppError::Signal)?;
    let admin = crate::node_trust::agent::admin_router(metrics.clone());
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, admin)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the admin listener stopped");
            }
        });
    }
    let options = crate::node_trust::agent::AgentOptions {
        metrics,
        node_name: args.node_name.clone(),
        namespace: args.namespace.clone(),
        node: args.trust.node(),
        containerd_config: args.trust.containerd_config.clone(),
        resync: args.resync_interval,
    };
    tracing::info!(node = %args.node_name, runtimes = ?options.node.runtimes, "node agent starting");
    let agent = tokio::spawn(crate::node_trust::agent::run(
        client,
        options,
        shutdown.clone(),
    ));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AppError::Signal)?;
    tokio::select! {
        _ = sigterm.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    shutdown.cancel();
    let _ = agent.await;
    Ok(())
}

/// `certs`: writes a CA and serving certificate.
pub fn certs(args: CertsArgs) -> Result<CertPaths, AppError> {
    let paths = CertPaths::in_dir(&args.out_dir);
    if paths.serving_pair_exists() && !args.force {
        return Err(AppError::Exists(paths.cert.display().to_string()));
    }
    let subjects = CertSubjects {
        service: args.service,
        namespace: args.namespace,
        extra: args.sans,
    };
    Ok(certs::generate(&args.out_dir, &subjects)?)
}
