//! Listeners: the HTTPS listener (webhook + API) and the plain-HTTP admin
//! listener (health, readiness, metrics), with graceful shutdown.

pub mod connection;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::admission;
use crate::api::body::read_body;
use crate::api::error::ApiError;
use crate::api::{self, AppState};
use crate::excerpt::{MESSAGE_CHARS, excerpt, shorten};
pub use connection::{ClientIdentity, ConnectionLimits, ConnectionTracker};
pub use tls::{ReloadingCert, TlsError};
use tracing::Instrument;

/// Largest AdmissionReview we read; the API server's own limit is 3 MiB objects.
pub const MAX_REVIEW_BYTES: usize = 3 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub cert_reload_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Per listener: handshake and header deadlines, connections at once.
    pub limits: ConnectionLimits,
    /// Counts connections and refusals (none for the bench's responder).
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// When set, the webhooks answer only clients with a certificate from
    /// this CA bundle (the API server's `AdmissionConfiguration`); the
    /// console and the API keep authenticating by token.
    pub webhook_client_ca: Option<PathBuf>,
}

/// Whether we should receive traffic.
#[derive(Debug, Default)]
pub struct Readiness {
    tls_loaded: AtomicBool,
    shutting_down: AtomicBool,
    /// The HTTPS listener's connections, once it serves.
    https_connections: std::sync::OnceLock<Arc<ConnectionTracker>>,
}

/// The HTTPS router: the webhook, the API and the OpenAPI document.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate/imageregistries", post(validate_image_registry))
        .route("/openapi.json", get(openapi_json))
        .with_state(state.clone())
        .nest("/api/v1", api::router(state))
        .merge(crate::console::router())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(metrics, count_requests))
}

/// An AdmissionReview's body, as both webhooks take it: JSON, bounded in
/// size and in time.
async fn read_review(state: &AppState, request: Request) -> Result<axum::body::Bytes, ApiError> {
    let (parts, body) = request.into_parts();
    // The listener puts a ClientIdentity on requests only when it checks
    // client certificates (--webhook-client-ca).
    if !parts
        .extensions
        .get::<ClientIdentity>()
        .is_none_or(ClientIdentity::may_call_webhooks)
    {
        return Err(ApiError::ClientCertificateRequired);
    }
    read_body(
        body,
        &parts.headers,
        MAX_REVIEW_BYTES,
        &["application/json"],
        state.body_read_timeout,
    )
    .await
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    let bytes = match read_review(&state, request).await {
        Ok(bytes) => bytes,
        Err(error) => {
            state.metrics.observe_admission(None, None, Duration::ZERO);
            return error.into_response();
        }
    };
    let started = Instant::now();
    let index = state.index.load_full();
    let (result, span) = match admission::prepare(&bytes, &index) {
        Ok(mut prepared) => {
            let needs_lookups = prepared.plan_mut().is_some_and(|plan| plan.needs_lookups());
            // A review gets its span only when something may be logged in
            // it: a denial, or lookups (registry I/O). Otherwise nothing
            // would ever show it, and at the default level its fields,
            // formatted when it is created, cost a sixth of the webhook's
            // throughput.
            let span = if needs_lookups || prepared.is_denied() {
                review_span(prepared.subject())
            } else {
                tracing::Span::none()
            };
            if let Some(plan) = prepared.plan_mut()
                && needs_lookups
                && let Err(failed) = state.pinner.look_up(plan).instrument(span.clone()).await
            {
                prepared.deny(failed.reason(), failed.to_string());
            }
            (prepared.finish(), span)
        }
        Err(error) => (Err(error), tracing::Span::none()),
    };
    let elapsed = started.elapsed();
    let _entered = span.enter();
    match result {
        Ok(reviewed) => {
            state
                .metrics
                .observe_admission(Some(reviewed.outcome), reviewed.reason, elapsed);
            state.metrics.observe_mirror_uses(&reviewed.mirror_uses);
            span.record("outcome", reviewed.outcome.as_str());
            if let (Some(reason), Some(message)) = (reviewed.reason, &reviewed.denial) {
                // The message names the image, the problem and the
                // registries authorized in the namespace.
                tracing::info!(reason = reason.as_str(), denial = %message, "admission denied");
            }
            ([(header::CONTENT_TYPE, "application/json")], reviewed.body).into_response()
        }
        Err(error) => {
            state.metrics.observe_admission(None, None, elapsed);
            let error_text = error.to_string();
            tracing::warn!(error = %shorten(&error_text, MESSAGE_CHARS), "rejected AdmissionReview");
            ApiError::from(error).into_response()
        }
    }
}

/// A review's span: what it is about, and (recorded when answered) how it
/// ended. Values come from the request as sent; nothing from a pull
/// secret is ever here.
fn review_span(subject: admission::Subject<'_>) -> tracing::Span {
    tracing::info_span!(
        "admission",
        uid = %excerpt(subject.uid),
        namespace = %excerpt(subject.namespace),
        kind = %excerpt(subject.kind),
        object = %excerpt(subject.name),
        operation = %excerpt(subject.operation),
        outcome = tracing::field::Empty,
    )
}

/// The validating webhook for ImageRegistries (see `kubernetes::validate`).
async fn validate_image_registry(State(state): State<AppState>, request: Request) -> Response {
    let bytes = match read_review(&state, request).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let index = state.index.load();
    match crate::kubernetes::validate::review(&bytes, &index) {
        Ok(review) => {
            if let Some(response) = review.response.as_ref().filter(|r| !r.allowed) {
                tracing::info!(uid = %excerpt(&response.uid), denial = %response.result.message, "ImageRegistry refused");
            }
            axum::Json(review).into_response()
        }
        Err(error) => {
            ApiError::MalformedJson(shorten(&error.to_string(), MESSAGE_CHARS).into_owned())
                .into_response()
        }
    }
}

/// Every answer is the JSON envelope, unknown paths and methods included.
async fn no_route(uri: axum::http::Uri) -> Response {
    ApiError::NoRoute(uri.path().to_owned()).into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
    .into_response()
}

async fn openapi_json() -> Response {
    axum::Json(api::openapi()).into_response()
}

async fn count_requests(
    State(metrics): State<Arc<crate::telemetry::Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.observe_http(
        route.as_ref().map(MatchedPath::as_str),
        &method,
        response.status().as_u16(),
    );
    response
}

#[derive(Clone)]
struct AdminState {
    app: AppState,
    readiness: Arc<Readiness>,
}

/// `/healthz`, `/readyz`, `/metrics`.
fn admin_router(app: AppState, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AdminState { app, readiness })
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let r = &state.readiness;
    let problem = if r.shutting_down.load(Ordering::Acquire) {
        Some("shutting down")
    } else if !r.tls_loaded.load(Ordering::Acquire) {
        Some("serving certificate not loaded")
    } else if !state.app.index.is_loaded() {
        Some("registry index not loaded")
    } else if r.https_connections.get().is_some_and(|c| c.is_full()) {
        // Every slot is held: new clients are refused until one frees.
        Some("connection limit reached (--max-connections)")
    } else {
        None
    };
    match problem {
        None => (StatusCode::OK, "ready").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.app.metrics.encode(),
    )
        .into_response()
}

/// A started server: its bound addresses and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub readiness: Arc<Readiness>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests finish, closes keep-alive
    /// connections, and returns when all of that is done.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// The SIGTERM sequence: not ready at once, still serving for `delay`
    /// (so load balancers and the API server's endpoints stop sending here
    /// before connections are refused or closed), then [`Self::shutdown`].
    pub async fn shutdown_after(self, delay: std::time::Duration) {
        self.readiness.shutting_down.store(true, Ordering::Release);
        if !delay.is_zero() {
            tracing::info!(?delay, "not ready; serving on until the delay ends");
            tokio::time::sleep(delay).await;
        }
        self.shutdown().await;
    }

    /// Waits until the server has stopped (after its token is cancelled).
    pub async fn wait(self) {
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "server task failed");
            }
        }
    }
}

/// Binds both listeners and serves `app` until the returned server's token
/// is cancelled. The serving certificate is reloaded as it changes on disk.
pub async fn start(app: AppState, options: &ServeOptions) -> Result<Running, ServeError> {
    let readiness = Arc::new(Readiness::default());
    let admin = admin_router(app.clone(), readiness.clone());
    let options = ServeOptions {
        metrics: Some(app.metrics.clone()),
        ..options.clone()
    };
    start_routers(router(app), admin, readiness, &options).await
}

/// Serves any router on our HTTPS stack (TLS with reload, HTTP/1.1
/// keep-alive, graceful drain) and `admin` on the plain-HTTP listener.
/// The load benchmark's no-op responder uses this to share the stack.
pub async fn start_routers(
    https: Router,
    admin: Router,
    readiness: Arc<Readiness>,
    options: &ServeOptions,
) -> Result<Running, ServeError> {
    let shutdown = CancellationToken::new();

    let cert = Arc::new(ReloadingCert::load(&options.cert_file, &options.key_file)?);
    let client_ca = options.webhook_client_ca.as_deref();
    let tls = TlsAcceptor::from(Arc::new(cert.clone().server_config(client_ca)?));
    let certificates_checked = client_ca.is_some();
    cert.spawn_reloader(options.cert_reload_interval, shutdown.clone());
    readiness.tls_loaded.store(true, Ordering::Release);

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let listener = bind(options.listen).await?;
    let admin_listener = bind(options.admin_listen).await?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: options.listen,
        source,
    })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: options.admin_listen,
            source,
        })?;

    // Readiness drops first, so the Service stops sending before we stop serving.
    {
        let readiness = readiness.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            readiness.shutting_down.store(true, Ordering::Release);
        });
    }

    // The admin listener outlives the drain, so probes see "not ready" while
    // in-flight admissions finish.
    let drained = CancellationToken::new();
    let limits = options.limits;
    let https_tracker = ConnectionTracker::new("https", limits, options.metrics.clone());
    let _ = readiness.https_connections.set(https_tracker.clone());
    let admin_tracker = ConnectionTracker::new("admin", limits, options.metrics.clone());
    let handshake_timeout = limits.handshake_timeout;
    let https = {
        let (drained, token) = (drained.clone(), shutdown.clone());
        let timeout = options.shutdown_timeout;
        let handshake = move |tcp| {
            let tls = tls.clone();
            async move {
                match tokio::time::timeout(handshake_timeout, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        // A certificate that did not chain to the CA failed
                        // the handshake; one that is here is verified.
                        let identity = ClientIdentity {
                            certificates_checked,
                            verified_certificate: stream.get_ref().1.peer_certificates().is_some(),
                        };
                        Some((stream, identity))
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        None
                    }
                }
            }
        };
        tokio::spawn(async move {
            connection::serve(listener, handshake, https, https_tracker, token, timeout).await;
            drained.cancel();
        })
    };
    let admin = tokio::spawn(async move {
        connection::serve(
            admin_listener,
            connection::plain,
            admin,
            admin_tracker,
            drained,
            Duration::from_secs(1),
        )
        .await;
    });
    tracing::info!(%addr, %admin_addr, "serving");
    Ok(Running {
        addr,
        admin_addr,
        readiness,
        shutdown,
        tasks: vec![https, admin],
    })
}
