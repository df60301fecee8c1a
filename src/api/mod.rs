//! The REST API for registry records (`/api/v1`), its authentication and its
//! OpenAPI document.

pub mod body;
pub mod error;
pub mod registries;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::index::IndexHandle;
use crate::registry::connectivity::Connectivity;
use crate::registry::pinning::Pinner;
use crate::registry::store::RegistryStore;
use crate::telemetry::Metrics;
use error::ApiError;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn RegistryStore>,
    pub index: Arc<IndexHandle>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<Auth>,
    pub connectivity: Arc<Connectivity>,
    pub pinner: Arc<Pinner>,
}

/// Bearer-token authentication for the API.
pub struct Auth {
    token: String,
}

impl Auth {
    pub fn admin_token(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
        }
    }

    fn allows(&self, presented: &str) -> bool {
        // Constant time, so the token cannot be guessed byte by byte.
        bool::from(presented.as_bytes().ct_eq(self.token.as_bytes()))
    }
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
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if auth.allows(token) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
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
        .route(
            "/namespaces/{namespace}/registries",
            get(r::namespace_registries),
        )
        .route("/namespaces/{namespace}/resolve", post(r::resolve_preview))
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            require_token,
        ))
        .with_state(state)
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
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, crate::registry::FieldError)),
    modifiers(&BearerAuth),
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
