//! `/api/v1` handlers for registry records.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::body::{API_BODY_LIMIT, ApiJson, parse_json, read_body};
use super::error::{ApiError, ErrorBody};
use crate::registry::{Registry, RegistryInput, WriteMode, check_dns1123_label};
use crate::resolve::{self, Choice};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryList {
    pub items: Vec<Registry>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only registries authorized for this namespace.
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchDeleteRequest {
    pub names: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteResponse {
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// A registry-relative image such as `/mysql/mysql:5.6`.
    #[schema(example = "/mysql/mysql:5.6")]
    pub image: String,
    /// Registry name; the namespace default when omitted.
    #[serde(default)]
    pub registry: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolveResponse {
    #[schema(example = "dockerhub.qingcloud.com/mysql/mysql:5.6")]
    pub image: String,
    /// `null` when the image was not registry-relative and is left as written.
    pub registry: Option<String>,
    /// The pull secret the webhook injects; `null` for a registry without credentials.
    pub pull_secret: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/registries", tag = "registries",
    request_body = RegistryInput,
    responses(
        (status = 201, description = "Created", body = Registry),
        (status = 409, description = "Name exists, or a defaultFor namespace has another default", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<RegistryInput>,
) -> Result<Response, ApiError> {
    let spec = input.validate(WriteMode::Create, None)?;
    let record = state.store.create(spec).await?;
    tracing::info!(registry = %record.name, server = %record.server, "registry created");
    let location = HeaderValue::from_str(&format!("/api/v1/registries/{}", record.name)).ok();
    let mut response = (StatusCode::CREATED, Json(record)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/registries", tag = "registries", params(ListQuery),
    responses((status = 200, description = "All records, by name", body = RegistryList)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<RegistryList>, ApiError> {
    let mut items = state.store.list().await?;
    if let Some(ns) = &query.namespace {
        items.retain(|r| r.namespaces.contains(ns));
    }
    Ok(Json(RegistryList { items }))
}

#[utoipa::path(get, path = "/api/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry name")),
    responses(
        (status = 200, description = "The record", body = Registry),
        (status = 404, description = "No such registry", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Registry>, ApiError> {
    state
        .store
        .get(&name)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(name))
}

#[utoipa::path(put, path = "/api/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry name")),
    request_body = RegistryInput,
    responses(
        (status = 200, description = "Replaced", body = Registry),
        (status = 404, description = "No such registry", body = ErrorBody),
        (status = 409, description = "A defaultFor namespace has another default", body = ErrorBody),
        (status = 422, description = "Invalid fields; or server changed without a password", body = ErrorBody),
    ))]
pub async fn replace(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<RegistryInput>,
) -> Result<Json<Registry>, ApiError> {
    let spec = input.validate(WriteMode::Replace, Some(&name))?;
    let record = state.store.replace(spec).await?;
    tracing::info!(registry = %record.name, server = %record.server, "registry replaced");
    Ok(Json(record))
}

#[utoipa::path(patch, path = "/api/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry name")),
    request_body(content = RegistryInput, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "Patched", body = Registry),
        (status = 404, description = "No such registry", body = ErrorBody),
        (status = 422, description = "Invalid result", body = ErrorBody),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request<Body>,
) -> Result<Json<Registry>, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(
        body,
        &parts.headers,
        API_BODY_LIMIT,
        &["application/merge-patch+json", "application/json"],
    )
    .await?;
    let merge: serde_json::Value = parse_json(&bytes)?;
    if !merge.is_object() {
        return Err(ApiError::InvalidField {
            field: None,
            message: "a merge patch must be a JSON object".into(),
        });
    }
    let current = state
        .store
        .get(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(name.clone()))?;
    let mut document = serde_json::to_value(RegistryInput::from(&current))
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    json_patch::merge(&mut document, &merge);
    let input: RegistryInput = parse_json(document.to_string().as_bytes())?;
    let spec = input.validate(WriteMode::Replace, Some(&name))?;
    let record = state.store.replace(spec).await?;
    tracing::info!(registry = %record.name, "registry patched");
    Ok(Json(record))
}

#[utoipa::path(delete, path = "/api/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such registry", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete(&name).await? {
        tracing::info!(registry = %name, "registry deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(name))
    }
}

#[utoipa::path(post, path = "/api/v1/registries:batchDelete", tag = "registries",
    request_body = BatchDeleteRequest,
    responses((status = 200, description = "What was deleted and what did not exist", body = BatchDeleteResponse)))]
pub async fn batch_delete(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<BatchDeleteRequest>,
) -> Result<Json<BatchDeleteResponse>, ApiError> {
    let result = state.store.delete_many(request.names).await?;
    if !result.deleted.is_empty() {
        tracing::info!(registries = ?result.deleted, "registries deleted");
    }
    Ok(Json(BatchDeleteResponse {
        deleted: result.deleted,
        not_found: result.not_found,
    }))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/registries", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace")),
    responses(
        (status = 200, description = "Registries authorized for the namespace, its default first", body = RegistryList),
        (status = 422, description = "Invalid namespace name", body = ErrorBody),
    ))]
pub async fn namespace_registries(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
) -> Result<Json<RegistryList>, ApiError> {
    check_namespace(&namespace)?;
    let mut items = state.store.list().await?;
    items.retain(|r| r.namespaces.contains(&namespace));
    // The default first, then by name (the store lists by name; sort is stable).
    items.sort_by_key(|r| !r.default_for.contains(&namespace));
    Ok(Json(RegistryList { items }))
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/resolve", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "What the webhook would write", body = ResolveResponse),
        (status = 422, description = "What the webhook would deny with", body = ErrorBody),
    ))]
pub async fn resolve_preview(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    ApiJson(request): ApiJson<ResolveRequest>,
) -> Result<Json<ResolveResponse>, ApiError> {
    check_namespace(&namespace)?;
    if !crate::reference::is_registry_relative(&request.image) {
        return Ok(Json(ResolveResponse {
            image: request.image,
            registry: None,
            pull_secret: None,
        }));
    }
    let index = state.index.load();
    let choice = if request.registry.is_some() {
        Choice::Request
    } else {
        Choice::NamespaceDefault
    };
    let expanded = resolve::expand(
        &request.image,
        request.registry.as_deref(),
        &choice,
        &namespace,
        &index,
    )
    .map_err(ApiError::Denied)?;
    Ok(Json(ResolveResponse {
        image: expanded.image,
        registry: Some(expanded.registry.name.clone()),
        pull_secret: expanded.registry.pull_secret.clone(),
    }))
}

fn check_namespace(namespace: &str) -> Result<(), ApiError> {
    check_dns1123_label(namespace).map_err(|message| ApiError::InvalidField {
        field: Some("namespace".into()),
        message,
    })
}
