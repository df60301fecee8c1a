//! `GET /api/v1/audit`: the audit trail, newest first, paged.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::body::ApiQuery;
use super::error::{ApiError, ErrorBody};
use super::paging::{self, ListMeta};
use crate::service::{AuditEntry, AuditQuery};

/// Entries a page holds when `limit` is not given: the trail can hold
/// 100,000.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditListQuery {
    /// Only this record's entries.
    #[param(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    pub registry: Option<String>,
    /// At most this many entries, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `metadata.continue` of the previous page.
    #[serde(rename = "continue")]
    #[param(rename = "continue")]
    pub continue_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditEntry>,
    pub metadata: ListMeta,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", operation_id = "list_audit", params(AuditListQuery),
    responses(
        (status = 200, description = "Changes to records (and refused attempts), newest first, a page at a time", body = AuditList),
        (status = 422, description = "An invalid `limit`, `continue` or `registry`", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditListQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let registry = query.registry;
    if let Some(registry) = &registry {
        crate::registry::check_dns1123_label(registry).map_err(|problem| {
            ApiError::InvalidField {
                field: Some("registry".into()),
                message: problem.to_string(),
            }
        })?;
    }
    let limit = paging::limit(query.limit, Some(DEFAULT_LIMIT))?.unwrap_or(DEFAULT_LIMIT);
    let before = query
        .continue_token
        .as_deref()
        .filter(|token| !token.is_empty())
        .map(paging::decode::<String>)
        .transpose()?;
    let page = state
        .service()
        .audit_entries(&AuditQuery {
            registry,
            limit,
            before,
        })
        .await?;
    Ok(Json(AuditList {
        items: page.items,
        metadata: ListMeta {
            continue_token: page.next.as_ref().map(paging::encode),
            remaining_item_count: None,
        },
    }))
}
