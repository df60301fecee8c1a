//! The REST API for registry records (`/api/v1`), its authentication and its
//! OpenAPI document.

pub mod audit;
pub mod body;
mod contract;
pub mod error;
pub mod paging;
pub mod registries;

use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::index::IndexHandle;
use crate::kubernetes::auth::{AuthError, ClusterAuth, Permission};
use crate::pinning::Pinner;
use crate::registry::connectivity::Connectivity;
use crate::registry::store::RegistryStore;
use crate::service::RegistryService;
use crate::telemetry::Metrics;
use contract::Contract;
use error::ApiError;

/// What every handler shares, behind one `Arc`: axum clones the state for
/// every request, so a clone is one reference count, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<(Services, RegistryService)>);

impl From<Services> for AppState {
    /// Every write goes through one [`RegistryService`] over the services'
    /// store.
    fn from(services: Services) -> Self {
        let service = RegistryService::new(
            services.store.clone(),
            services.index.clone(),
            services.connectivity.clone(),
        );
        Self(Arc::new((services, service)))
    }
}

impl AppState {
    /// The one write path for records.
    pub fn service(&self) -> &RegistryService {
        &self.0.1
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0.0
    }
}

/// The services the webhook, the API and the console use.
pub struct Services {
    pub store: Arc<dyn RegistryStore>,
    pub index: Arc<IndexHandle>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<Auth>,
    pub connectivity: Arc<Connectivity>,
    pub pinner: Arc<Pinner>,
    /// In Kubernetes mode: creates workloads with the caller's own token.
    pub workloads: Option<Arc<crate::kubernetes::workloads::UserClients>>,
    /// How long a request body may take to arrive in full (408 after it).
    pub body_read_timeout: std::time::Duration,
}

/// Who may call the API.
pub enum Auth {
    /// One admin token (the embedded store's mode).
    AdminToken(String),
    /// The cluster's identities and RBAC (TokenReview + SubjectAccessReview).
    Cluster(Box<ClusterAuth>),
}

impl Auth {
    pub fn admin_token(token: impl Into<String>) -> Self {
        Self::AdminToken(token.into())
    }

    pub fn cluster(auth: ClusterAuth) -> Self {
        Self::Cluster(Box::new(auth))
    }

    /// Who the token is, if it may make this call.
    async fn allows(&self, token: &str, method: &Method, path: &str) -> Result<Actor, ApiError> {
        match self {
            // Constant time, so the token cannot be guessed byte by byte.
            Self::AdminToken(expected) => {
                if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) {
                    Ok(Actor(ADMIN_ACTOR.into()))
                } else {
                    Err(ApiError::Unauthorized)
                }
            }
            Self::Cluster(cluster) => {
                let permission = permission_for(method, path).ok_or(ApiError::Unauthorized)?;
                cluster
                    .check(token, &permission)
                    .await
                    .map(|identity| Actor(identity.username))
                    .map_err(|e| match e {
                        AuthError::Unauthenticated => ApiError::Unauthorized,
                        AuthError::Forbidden { .. } => ApiError::Forbidden(e.to_string()),
                        AuthError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
                    })
            }
        }
    }
}

/// The RBAC permission an API call needs: a verb on ImageRegistries for the
/// record endpoints; creating pods in the namespace for its picker and
/// resolve preview.
pub fn permission_for(method: &Method, path: &str) -> Option<Permission> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let registries = |verb: &'static str, name: Option<&str>| {
        Some(Permission::Registries {
            verb,
            name: name.map(str::to_owned),
        })
    };
    match (segments.as_slice(), method) {
        (["registries"], &Method::GET) => registries("list", None),
        (["registries"], &Method::POST) | (["registries:verify"], &Method::POST) => {
            registries("create", None)
        }
        (["registries:batchDelete"], &Method::POST) => registries("delete", None),
        (["registries", name], &Method::GET) => registries("get", Some(name)),
        (["registries", name], &Method::PUT | &Method::PATCH) => registries("update", Some(name)),
        (["registries", name], &Method::DELETE) => registries("delete", Some(name)),
        (["registries", name, "verify"], &Method::POST) => registries("update", Some(name)),
        (["registries", name, "repositories", ..], &Method::GET) => registries("get", Some(name)),
        (["namespaces"], &Method::GET) => registries("create", None),
        // Who changed which record: as much as listing the records says.
        (["audit"], &Method::GET) => registries("list", None),
        (
            [
                "namespaces",
                namespace,
                "registries" | "resolve" | "workloads:resolve" | "deployments",
            ],
            _,
        ) => Some(Permission::CreatePods {
            namespace: (*namespace).to_owned(),
        }),
        _ => None,
    }
}

/// Documented operations that need a token but have no RBAC mapping in
/// [`permission_for`] — in a cluster they would answer every caller 401.
/// Checked when `serve` starts in Kubernetes mode (it refuses to start) and
/// by a test, so a route added without its permission cannot ship.
pub fn operations_without_permission() -> Vec<String> {
    let document = openapi();
    let mut missing = Vec::new();
    for (path, item) in &document.paths.paths {
        // Path parameters as a caller would fill them.
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ] {
            let Some(operation) = operation else { continue };
            if !contract::is_public(operation) && permission_for(&method, &concrete).is_none() {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    missing
}

async fn require_token(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(token) = presented else {
        return Err(ApiError::Unauthorized);
    };
    // Nested routers see the path without `/api/v1`; RBAC mapping wants it whole.
    let path = request.extensions().get::<OriginalUri>().map_or_else(
        || request.uri().path().to_owned(),
        |uri| uri.path().to_owned(),
    );
    let actor = auth.allows(token, request.method(), &path).await?;
    let mut request = request;
    request.extensions_mut().insert(actor);
    Ok(next.run(request).await)
}

/// The embedded store's one token, as the audit trail names it.
pub const ADMIN_ACTOR: &str = "admin";

/// Who makes an authenticated call: the admin token, or the user the
/// cluster authenticated. For the audit trail.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        // Every route that writes is behind `require_token`, which puts it
        // there; "unknown" would show a route that is not.
        Ok(parts
            .extensions
            .get::<Actor>()
            .cloned()
            .unwrap_or_else(|| Actor("unknown".into())))
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive (RFC 9110 §11.1), so `bearer` and `BEARER` count too.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `/api/v1/...`, authenticated.
pub fn router(state: AppState) -> Router {
    use registries as r;
    Router::new()
        .route("/registries", post(r::create).get(r::list))
        .route("/registries:batchDelete", post(r::batch_delete))
        .route("/registries:verify", post(r::verify_unsaved))
        .route("/registries/{name}/verify", post(r::verify_saved))
        .route("/registries/{name}/repositories", get(r::repositories))
        .route("/registries/{name}/repositories/{*path}", get(r::tags))
        .route(
            "/registries/{name}",
            get(r::get)
                .put(r::replace)
                .patch(r::patch)
                .delete(r::delete),
        )
        .route("/namespaces", get(r::namespaces))
        .route("/audit", get(audit::list))
        .route(
            "/namespaces/{namespace}/registries",
            get(r::namespace_registries),
        )
        .route("/namespaces/{namespace}/resolve", post(r::resolve_preview))
        .route(
            "/namespaces/{namespace}/workloads:resolve",
            post(r::resolve_workload),
        )
        .route(
            "/namespaces/{namespace}/deployments",
            post(r::create_deployment),
        )
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            require_token,
        ))
        // Public: the console's sign-in page reads it before there is a token.
        .route("/info", get(info))
        .with_state(state)
}

/// What a client needs to know before signing in.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Info {
    /// The server's version.
    pub version: String,
    /// `embedded` (sign in with the admin token) or `kubernetes` (with a
    /// Kubernetes bearer token, checked against RBAC).
    pub store: String,
}

#[utoipa::path(get, path = "/api/v1/info", tag = "server", security(()),
    responses((status = 200, description = "Version and how to sign in (no token needed)", body = Info)))]
pub async fn info(
    State(state): State<AppState>,
    _: body::ApiQuery<body::NoQuery>,
) -> Result<axum::Json<Info>, ApiError> {
    Ok(axum::Json(Info {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        store: match state.auth.as_ref() {
            Auth::AdminToken(_) => "embedded",
            Auth::Cluster(_) => "kubernetes",
        }
        .to_owned(),
    }))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "registry-resolver",
        description = "Image registry records and registry-relative image resolution. Every endpoint needs `Authorization: Bearer <token>`. Passwords are write-only."
    ),
    paths(
        registries::create,
        registries::list,
        registries::get,
        registries::replace,
        registries::patch,
        registries::delete,
        registries::batch_delete,
        registries::verify_unsaved,
        registries::verify_saved,
        registries::repositories,
        registries::tags,
        registries::namespace_registries,
        registries::resolve_preview,
        registries::resolve_workload,
        registries::create_deployment,
        registries::namespaces,
        audit::list,
        info,
    ),
    components(schemas(
        error::ErrorBody,
        error::ErrorDetail,
        crate::registry::FieldError,
        crate::registry::Reason,
        crate::admission::DenialReason,
        crate::listing::SortBy,
        crate::listing::SortOrder,
    )),
    modifiers(&BearerAuth, &Contract),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_operation_has_an_rbac_mapping() {
        assert_eq!(operations_without_permission(), Vec::<String>::new());
        // And the check sees what it should: the public one is skipped, a
        // made-up path is not mapped.
        assert!(permission_for(&Method::GET, "/api/v1/nowhere").is_none());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER  t0k ", "BeArEr t0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value:?}");
        }
        for value in ["Basic t0k", "Bearer", "Bearer   ", "Bearert0k", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn every_route_maps_to_the_permission_it_needs() {
        let registries = |verb: &'static str, name: Option<&str>| {
            Some(Permission::Registries {
                verb,
                name: name.map(str::to_owned),
            })
        };
        let cases = [
            (Method::GET, "/api/v1/registries", registries("list", None)),
            (
                Method::POST,
                "/api/v1/registries",
                registries("create", None),
            ),
            (
                Method::POST,
                "/api/v1/registries:verify",
                registries("create", None),
            ),
            (
                Method::POST,
                "/api/v1/registries:batchDelete",
                registries("delete", None),
            ),
            (
                Method::GET,
                "/api/v1/registries/demo",
                registries("get", Some("demo")),
            ),
            (
                Method::PUT,
                "/api/v1/registries/demo",
                registries("update", Some("demo")),
            ),
            (
                Method::PATCH,
                "/api/v1/registries/demo",
                registries("update", Some("demo")),
            ),
            (
                Method::DELETE,
                "/api/v1/registries/demo",
                registries("delete", Some("demo")),
            ),
            (
                Method::POST,
                "/api/v1/registries/demo/verify",
                registries("update", Some("demo")),
            ),
            (
                Method::GET,
                "/api/v1/registries/demo/repositories",
                registries("get", Some("demo")),
            ),
            (
                Method::GET,
                "/api/v1/registries/demo/repositories/library/nginx/tags",
                registries("get", Some("demo")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/team-a/registries",
                Some(Permission::CreatePods {
                    namespace: "team-a".into(),
                }),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/team-a/resolve",
                Some(Permission::CreatePods {
                    namespace: "team-a".into(),
                }),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/team-a/workloads:resolve",
                Some(Permission::CreatePods {
                    namespace: "team-a".into(),
                }),
            ),
            (Method::GET, "/api/v1/unknown", None),
        ];
        for (method, path, want) in cases {
            assert_eq!(permission_for(&method, path), want, "{method} {path}");
        }
    }
}
