//! `/api/v1` handlers for registry records.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::{API_BODY_LIMIT, ApiJson, ApiQuery, NoQuery, parse_json, read_body};
use super::error::{ApiError, ErrorBody};
use super::paging::{self, ListMeta};
use super::{Actor, AppState};
use crate::index::ClaimedBy;
use crate::listing::{self, SortBy, SortOrder};
use crate::reference::validate_path_component;
use crate::registry::store::Credentials;
use crate::registry::{
    BrowseMethod, FieldError, Registry, RegistryInput, ValidationErrors, check_dns1123_label, dedup,
};
use crate::resolve::{self, Choice};
use crate::service::Written;

/// A record as the API answers with it: the record, and what the server
/// concludes from it, so no client works it out again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryView {
    #[serde(flatten)]
    pub record: Registry,
    /// The nodes' container runtimes must be configured to pull from it
    /// (plain HTTP, a private CA or skipped verification): `node-config`
    /// or the chart's node agent does it.
    pub needs_node_trust: bool,
    /// How its certificate is checked, as `tls` decides (a CA bundle wins
    /// over `insecureSkipVerify`).
    pub certificate_check: crate::registry::CertificateCheck,
    /// `namespaceSelector` in the short form `kubectl -l` takes, which
    /// the API also accepts in its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "kubesphere.io/workspace=ws1")]
    pub namespace_selector_text: Option<String>,
    /// `defaultForSelector` in the short form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_for_selector_text: Option<String>,
}

impl RegistryView {
    pub fn of(record: &Registry) -> Self {
        Self {
            needs_node_trust: crate::node_trust::plan::needs_trust(record),
            certificate_check: record.tls.certificate_check(),
            namespace_selector_text: record
                .namespace_selector
                .as_ref()
                .map(crate::selector::describe),
            default_for_selector_text: record
                .default_for_selector
                .as_ref()
                .map(crate::selector::describe),
            record: record.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryList {
    pub items: Vec<RegistryView>,
    pub metadata: ListMeta,
    /// For one namespace's list: which registry is its default and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultChoice>,
}

/// The default registry of a namespace, and the entry that makes it so.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultChoice {
    pub registry: String,
    /// How the default reaches the namespace.
    pub by: ClaimKind,
    /// The `defaultFor` entry that reaches the namespace (its name or a
    /// pattern such as `team-*`), or the `defaultForSelector` as `kubectl -l`
    /// writes it.
    pub via: String,
    /// Other records claiming it too, which the precedence rule put after
    /// this one (a name before a pattern, a longer pattern first, then the
    /// older record).
    pub outranked: Vec<String>,
}

/// How a default reaches a namespace, in precedence order.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClaimKind {
    Name,
    Pattern,
    Selector,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    /// `false` saves without checking the registry (air-gapped setups); the
    /// status then says it is unverified. Default `true`, and `false` with
    /// `dryRun`.
    pub verify: Option<bool>,
    /// `All`: validate and answer as if saved (status, body, warnings, or
    /// the error the write would get), and change nothing. The registry is
    /// checked only with `verify=true`. As the Kubernetes API's `dryRun`.
    #[serde(rename = "dryRun")]
    #[param(rename = "dryRun", inline)]
    pub dry_run: Option<DryRun>,
}

/// The one `dryRun` value, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub enum DryRun {
    All,
}

impl WriteQuery {
    fn verify(&self) -> bool {
        self.verify.unwrap_or(self.dry_run.is_none())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    /// Only names containing this text.
    #[serde(default)]
    pub q: String,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `metadata.continue` of the previous page.
    #[serde(rename = "continue")]
    #[param(rename = "continue")]
    pub continue_token: Option<String>,
}

impl BrowseQuery {
    /// The page size and the registry's own cursor.
    fn page(&self) -> Result<(usize, Option<String>), ApiError> {
        let limit = paging::limit(self.limit, Some(100))?.unwrap_or(100);
        // An empty token is no token, as in Kubernetes.
        let after = self
            .continue_token
            .as_deref()
            .filter(|token| !token.is_empty())
            .map(paging::decode::<BrowsePosition>)
            .transpose()?
            .map(|position| position.after);
        Ok((limit, after))
    }
}

/// Where a browse page ended, in the registry's own terms (a name for a
/// catalog, a page number for Harbor and Docker Hub).
#[derive(Debug, Serialize, Deserialize)]
struct BrowsePosition {
    after: String,
}

fn browse_meta(next: Option<String>) -> ListMeta {
    ListMeta {
        continue_token: next.map(|after| paging::encode(&BrowsePosition { after })),
        remaining_item_count: None,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NameList {
    pub items: Vec<String>,
    pub metadata: ListMeta,
    /// For repositories: how the list was made (`catalog`, `harbor` or
    /// `dockerhub`), which `browse: auto` chooses per registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BrowseMethod>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub verified: bool,
    pub message: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only registries authorized for this namespace.
    pub namespace: Option<String>,
    /// Only registries whose name or server contains this text (any case).
    pub q: Option<String>,
    /// The order, ties broken by name (default `name`).
    pub sort: Option<SortBy>,
    /// `asc` (default) or `desc`.
    pub order: Option<SortOrder>,
    /// At most this many items, 1 to 1000; every match when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `metadata.continue` of the previous page, with the same `sort`
    /// and `order`.
    #[serde(rename = "continue")]
    #[param(rename = "continue")]
    pub continue_token: Option<String>,
}

/// The body of a PUT in the OpenAPI document: [`RegistryInput`] without
/// `name`, which the URL gives. (The server also takes a `name` equal to the
/// URL's, and the read-only fields, so a client can send back what it read.)
pub struct RegistryReplacement;

impl utoipa::PartialSchema for RegistryReplacement {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        input_schema_without_name(
            "A replacement record: every field as on create but `name`, which the URL gives.",
            true,
        )
    }
}

impl ToSchema for RegistryReplacement {}

/// The body of a PATCH: any subset of the replacement's fields.
pub struct RegistryPatch;

impl utoipa::PartialSchema for RegistryPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        input_schema_without_name(
            "A JSON merge patch (RFC 7396) of the record: any subset of its fields; `null` removes an optional one.",
            false,
        )
    }
}

impl ToSchema for RegistryPatch {}

fn input_schema_without_name(
    description: &str,
    keep_required: bool,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::PartialSchema;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    let mut schema = RegistryInput::schema();
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.properties.remove("name");
        object
            .required
            .retain(|field| keep_required && field != "name");
        object.description = Some(description.to_owned());
    }
    schema
}

/// Most names one `registries:batchDelete` takes: a console page of
/// selections many times over; larger clean-ups take several calls.
pub const BATCH_DELETE_MAX: usize = 1000;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct BatchDeleteRequest {
    /// Record names, at most 1000; repeated names count once.
    #[schema(value_type = Vec<crate::registry::Dns1123Label>, max_items = 1000)]
    pub names: Vec<String>,
}

impl BatchDeleteRequest {
    /// The distinct names, in the order given, each a valid record name.
    fn validate(self) -> Result<Vec<String>, ApiError> {
        if self.names.len() > BATCH_DELETE_MAX {
            return Err(ApiError::InvalidField {
                field: Some("names".into()),
                message: format!(
                    "at most {BATCH_DELETE_MAX} names per call (got {})",
                    self.names.len()
                ),
            });
        }
        let details: Vec<FieldError> = self
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                check_dns1123_label(name).err().map(|problem| {
                    FieldError::new(format!("names[{i}]"), problem.reason(), problem.to_string())
                })
            })
            .collect();
        if !details.is_empty() {
            return Err(ValidationErrors(details).into());
        }
        Ok(dedup(self.names))
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteResponse {
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ResolveRequest {
    /// A registry-relative image such as `/mysql/mysql:5.6`.
    #[schema(example = "/mysql/mysql:5.6")]
    pub image: String,
    /// Registry name; the namespace default when omitted.
    #[serde(default)]
    pub registry: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolveResponse {
    #[schema(example = "dockerhub.qingcloud.com/mysql/mysql:5.6")]
    pub image: String,
    /// `null` when the image is left as written (not registry-relative,
    /// and no mirror takes it).
    pub registry: Option<String>,
    /// The pull secret the webhook injects; `null` for a registry without credentials.
    pub pull_secret: Option<String>,
    /// For an image pulled through a mirror, the upstream it mirrors
    /// (`docker.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_of: Option<String>,
    /// What the webhook would say beside it: an image left upstream
    /// because its mirror's last check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/registries", tag = "registries",
    params(WriteQuery),
    request_body = RegistryInput,
    responses(
        (status = 201, description = "Created (after a successful login check unless verify=false); with dryRun=All, the record as it would be created (no version), nothing saved", body = RegistryView),
        (status = 409, description = "Name exists, or a defaultFor namespace has another default", body = ErrorBody),
        (status = 422, description = "Invalid fields, or the registry check failed (code: unreachable, timeout, tls, protocol, not_a_registry, unauthorized, forbidden)", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Actor(actor): Actor,
    ApiQuery(query): ApiQuery<WriteQuery>,
    ApiJson(input): ApiJson<RegistryInput>,
) -> Result<Response, ApiError> {
    let service = state.service();
    let written = match query.dry_run {
        Some(DryRun::All) => service.dry_run_create(input, query.verify()).await?,
        None => service.create(&actor, input, query.verify()).await?,
    };
    let location =
        HeaderValue::from_str(&format!("/api/v1/registries/{}", written.record.name)).ok();
    let mut response = with_record(
        (StatusCode::CREATED, Json(RegistryView::of(&written.record))),
        &written,
    );
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/registries", tag = "registries", params(ListQuery),
    responses(
        (status = 200, description = "Matching records in the requested order, a page at a time with `limit`", body = RegistryList),
        (status = 422, description = "An invalid `limit` or `continue`", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<RegistryList>, ApiError> {
    let query = listing::Query {
        q: query.q.filter(|q| !q.is_empty()),
        namespace: query.namespace,
        sort: query.sort.unwrap_or_default(),
        order: query.order.unwrap_or_default(),
        limit: paging::limit(query.limit, None)?,
        after: query
            .continue_token
            .as_deref()
            .filter(|token| !token.is_empty())
            .map(paging::decode)
            .transpose()?,
    };
    // Both stores publish every committed change into the index, so the
    // list reads the snapshot: no store round trip, cost per page.
    let page = listing::page(&state.index.load(), &query)
        .map_err(|e| paging::invalid_continue(e.to_string()))?;
    Ok(Json(RegistryList {
        items: page.items.iter().map(|r| RegistryView::of(r)).collect(),
        metadata: ListMeta {
            continue_token: page.next.as_ref().map(paging::encode),
            remaining_item_count: Some(page.remaining),
        },
        default: None,
    }))
}

#[utoipa::path(get, path = "/api/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry name")),
    responses(
        (status = 200, description = "The record; its version is the ETag", body = RegistryView,
            headers(("ETag" = String, description = "The record's version, for If-Match"))),
        (status = 404, description = "No such registry", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let record = find(&state, &name).await?;
    let mut response = Json(RegistryView::of(&record)).into_response();
    if let Some(etag) = etag(&record.version) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// A record's version as an ETag (a strong one: the version changes with
/// every write).
/// `None` for a record not saved (a dry-run create has no version).
fn etag(version: &str) -> Option<HeaderValue> {
    if version.is_empty() {
        return None;
    }
    HeaderValue::from_str(&format!("\"{version}\"")).ok()
}

/// The version an `If-Match` header names, if one was sent. `*` asks only
/// that the record exist, which every update needs anyway.
fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let invalid = || ApiError::InvalidField {
        field: Some("If-Match".into()),
        message: "If-Match must be one version as the ETag gives it, e.g. \"42\"".into(),
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let version = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if version.is_empty() || version.contains(['"', ',', ' ']) {
        return Err(invalid());
    }
    Ok(Some(version.to_owned()))
}

/// A written record as a response: its ETag, and the write's warnings.
fn with_record(response: impl IntoResponse, written: &Written) -> Response {
    let mut response = with_warnings(response.into_response(), &written.warnings);
    if let Some(etag) = etag(&written.record.version) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

#[utoipa::path(put, path = "/api/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry name"), WriteQuery, ("If-Match" = Option<String>, Header, description = "Write only if the record is still at this version (its ETag, e.g. \"42\"); else 412", pattern = r#"^(\*|(W/)?"[^",\s]+"|[^",\s]+)$"#)),
    request_body = RegistryReplacement,
    responses(
        (status = 200, description = "Replaced; with dryRun=All, the record as it would be, nothing saved", body = RegistryView),
        (status = 404, description = "No such registry", body = ErrorBody),
        (status = 409, description = "A defaultFor namespace has another default; or other writers kept changing the record (conflict)", body = ErrorBody),
        (status = 412, description = "If-Match names another version than the record's (precondition_failed)", body = ErrorBody),
        (status = 422, description = "Invalid fields (invalid); or server or TLS trust changed without a password (password_required, field password)", body = ErrorBody),
    ))]
pub async fn replace(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    headers: axum::http::HeaderMap,
    ApiJson(input): ApiJson<RegistryInput>,
) -> Result<Response, ApiError> {
    let precondition = if_match(&headers)?;
    let edit = |_: &Registry| Ok::<_, ApiError>(input.clone());
    let written =
        apply_update(&state, &actor, &name, &query, precondition.as_deref(), edit).await?;
    Ok(with_record(
        Json(RegistryView::of(&written.record)),
        &written,
    ))
}

#[utoipa::path(patch, path = "/api/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry name"), WriteQuery, ("If-Match" = Option<String>, Header, description = "Write only if the record is still at this version (its ETag, e.g. \"42\"); else 412", pattern = r#"^(\*|(W/)?"[^",\s]+"|[^",\s]+)$"#)),
    request_body(content = RegistryPatch, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "Patched: the patch applied to the record as it is when the write commits; with dryRun=All, as it would be, nothing saved", body = RegistryView),
        (status = 404, description = "No such registry", body = ErrorBody),
        (status = 409, description = "A defaultFor namespace has another default; or other writers kept changing the record (conflict)", body = ErrorBody),
        (status = 412, description = "If-Match names another version than the record's (precondition_failed)", body = ErrorBody),
        (status = 422, description = "Invalid result (invalid); or server or TLS trust changed without a password (password_required, field password)", body = ErrorBody),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let precondition = if_match(&parts.headers)?;
    let bytes = read_body(
        body,
        &parts.headers,
        API_BODY_LIMIT,
        &["application/merge-patch+json", "application/json"],
        state.body_read_timeout,
    )
    .await?;
    let merge: serde_json::Value = parse_json(&bytes)?;
    if !merge.is_object() {
        return Err(ApiError::InvalidField {
            field: None,
            message: "a merge patch must be a JSON object".into(),
        });
    }
    // The patch is applied to the record as it is when the write commits:
    // fields it does not name keep what anyone else wrote meanwhile.
    let edit = |current: &Registry| {
        let mut document = serde_json::to_value(RegistryInput::from(current))
            .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        json_patch::merge(&mut document, &merge);
        parse_json::<RegistryInput>(document.to_string().as_bytes())
    };
    let written =
        apply_update(&state, &actor, &name, &query, precondition.as_deref(), edit).await?;
    Ok(with_record(
        Json(RegistryView::of(&written.record)),
        &written,
    ))
}

/// A PUT's or PATCH's write through the service, or its dry run.
async fn apply_update(
    state: &AppState,
    actor: &str,
    name: &str,
    query: &WriteQuery,
    precondition: Option<&str>,
    edit: impl Fn(&Registry) -> Result<RegistryInput, ApiError>,
) -> Result<crate::service::Written, ApiError> {
    let service = state.service();
    match query.dry_run {
        Some(DryRun::All) => {
            service
                .dry_run_update(name, precondition, query.verify(), edit)
                .await
        }
        None => {
            service
                .update(actor, name, precondition, query.verify(), edit)
                .await
        }
    }
}

/// Adds each warning as a `Warning: 299` header, as the Kubernetes API
/// server does, so `curl -i`, clients and the console can show them.
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {:?}", warning.replace('"', "'"));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

#[utoipa::path(delete, path = "/api/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry name"), ("If-Match" = Option<String>, Header, description = "Write only if the record is still at this version (its ETag, e.g. \"42\"); else 412", pattern = r#"^(\*|(W/)?"[^",\s]+"|[^",\s]+)$"#)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such registry", body = ErrorBody),
        (status = 409, description = "Other writers kept changing the record (conflict)", body = ErrorBody),
        (status = 412, description = "If-Match names another version than the record's (precondition_failed)", body = ErrorBody),
        (status = 422, description = "An If-Match that is not one version", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Actor(actor): Actor,
    _: ApiQuery<NoQuery>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    let precondition = if_match(&headers)?;
    state
        .service()
        .delete(&actor, &name, precondition.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/registries:batchDelete", tag = "registries",
    request_body = BatchDeleteRequest,
    responses(
        (status = 200, description = "What was deleted and what did not exist", body = BatchDeleteResponse),
        (status = 422, description = "More than 1000 names, or a name that is not a valid record name", body = ErrorBody),
    ))]
pub async fn batch_delete(
    State(state): State<AppState>,
    Actor(actor): Actor,
    _: ApiQuery<NoQuery>,
    ApiJson(request): ApiJson<BatchDeleteRequest>,
) -> Result<Json<BatchDeleteResponse>, ApiError> {
    let result = state
        .service()
        .delete_many(&actor, request.validate()?)
        .await?;
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
    _: ApiQuery<NoQuery>,
    Path(namespace): Path<String>,
) -> Result<Json<RegistryList>, ApiError> {
    check_namespace(&namespace)?;
    // The picker: answered from the namespace's own index entry, so the
    // cost follows what the namespace may use, not the record count.
    let index = state.index.load();
    let Some(view) = index.namespace(&namespace) else {
        return Ok(Json(RegistryList {
            items: Vec::new(),
            metadata: ListMeta::default(),
            default: None,
        }));
    };
    let items = view
        .authorized()
        .filter_map(|name| index.record(name))
        .map(|record| RegistryView::of(record))
        .collect();
    let default = view.default_registry().map(|registry| DefaultChoice {
        registry: registry.to_owned(),
        by: match view.default_claimed_by() {
            Some(ClaimedBy::Prefix(_)) => ClaimKind::Pattern,
            Some(ClaimedBy::Selector) => ClaimKind::Selector,
            _ => ClaimKind::Name,
        },
        via: match view.default_claimed_by() {
            Some(ClaimedBy::Prefix(len)) => format!("{}*", &namespace[..len.min(namespace.len())]),
            Some(ClaimedBy::Selector) => index
                .record(registry)
                .and_then(|record| record.default_for_selector.as_ref())
                .map(crate::selector::describe)
                .unwrap_or_default(),
            _ => namespace.clone(),
        },
        outranked: view
            .default_claimants()
            .skip(1)
            .map(str::to_owned)
            .collect(),
    });
    Ok(Json(RegistryList {
        items,
        metadata: ListMeta::default(),
        default,
    }))
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
    _: ApiQuery<NoQuery>,
    Path(namespace): Path<String>,
    ApiJson(request): ApiJson<ResolveRequest>,
) -> Result<Json<ResolveResponse>, ApiError> {
    check_namespace(&namespace)?;
    // A snapshot of its own, not a borrowed guard: a mirror may be asked
    // (awaited) while it is read.
    let index = state.index.load_full();
    if !crate::reference::is_registry_relative(&request.image) {
        // Pulled through a mirror, left upstream while it is unhealthy (or
        // cannot serve the image, when its entry asks it first), or
        // refused: as the webhook decides.
        let unavailable = |registry: &str, upstream: &str, fallback, why: &str| {
            match resolve::mirror_unavailable("", &request.image, registry, why, upstream, fallback)
            {
                Ok(warning) => Ok(ResolveResponse {
                    image: request.image.clone(),
                    warning: Some(warning),
                    ..ResolveResponse::default()
                }),
                Err(denial) => Err(ApiError::Denied(
                    crate::admission::DenialReason::MirrorUnavailable,
                    denial,
                )),
            }
        };
        let answer = match resolve::mirror(&request.image, &namespace, &index) {
            None => ResolveResponse {
                image: request.image.clone(),
                ..ResolveResponse::default()
            },
            Some(resolve::Mirrored::Unhealthy {
                registry,
                upstream,
                fallback,
                why,
            }) => unavailable(&registry.name, upstream, fallback, why)?,
            Some(resolve::Mirrored::Rewrite {
                registry,
                image,
                upstream,
                check,
            }) => match check {
                Some(check) if let Err(why) = state.pinner.serves(&check.target).await => {
                    unavailable(&registry.name, upstream, check.fallback, &why)?
                }
                _ => ResolveResponse {
                    image,
                    registry: Some(registry.name.clone()),
                    pull_secret: registry.pull_secret.clone(),
                    mirror_of: Some(upstream.to_owned()),
                    warning: None,
                },
            },
        };
        return Ok(Json(answer));
    }
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
        false,
    )
    .map_err(|problem| ApiError::Denied(problem.reason, problem.message))?;
    Ok(Json(ResolveResponse {
        image: expanded.image,
        registry: Some(expanded.registry.name.clone()),
        pull_secret: expanded.registry.pull_secret.clone(),
        ..ResolveResponse::default()
    }))
}

/// What `workloads:resolve` answers: the object as the webhook would
/// admit it, and what the namespace needs for its pods to pull.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadResolution {
    /// The object with the webhook's edits: images expanded (and pinned
    /// where the record asks), `imagePullSecrets` added, the
    /// original-images annotation.
    #[schema(value_type = Object)]
    pub object: serde_json::Value,
    /// What the webhook would say beside it.
    pub warnings: Vec<String>,
    /// The pull Secrets the namespace needs, one per registry with
    /// credentials that an image was resolved against: everything
    /// `kubectl create secret docker-registry` takes but the password.
    pub pull_secrets: Vec<PullSecretNeeded>,
}

/// A pull Secret a workload needs in its namespace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullSecretNeeded {
    /// The Secret's name (`imagePullSecrets[].name`).
    pub name: String,
    /// The record it is for.
    pub registry: String,
    /// The registry's host (and port), the Secret's `--docker-server`.
    pub server: String,
    /// The record's username, the Secret's `--docker-username`.
    pub username: String,
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/workloads:resolve", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body(content = Object, description = "A Kubernetes object as JSON: a workload of a kind with a pod template (Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet, Pod, …) is resolved; any other object comes back as it is, as the webhook lets it through"),
    responses(
        (status = 200, description = "The object as the webhook would admit it, and the pull Secrets it needs", body = WorkloadResolution),
        (status = 422, description = "Another namespace in metadata.namespace, or what the webhook would deny with (code resolution_denied)", body = ErrorBody),
    ))]
/// A workload resolved by the same code as the webhook and `resolve`: what
/// a person without the webhook in their cluster (the embedded store) can
/// apply as it is.
pub async fn resolve_workload(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(namespace): Path<String>,
    ApiJson(object): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<WorkloadResolution>, ApiError> {
    check_namespace(&namespace)?;
    let object = serde_json::Value::Object(object);
    // The URL's namespace is the one the caller's permission was checked
    // for: an object may repeat it, not name another.
    let named = object
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str);
    if let Some(other) = named.filter(|ns| *ns != namespace) {
        return Err(ApiError::InvalidField {
            field: Some("metadata.namespace".into()),
            message: format!(
                "names namespace {:?}, not {namespace:?} of the URL",
                crate::excerpt::excerpt(other)
            ),
        });
    }
    let index = state.index.load();
    let resolved = crate::manifests::resolve_documents(
        &object.to_string(),
        &namespace,
        &index,
        crate::manifests::OutputFormat::Json,
        Some(&state.pinner),
    )
    .await
    .map_err(|error| match error {
        crate::manifests::ManifestError::Denied {
            reason, message, ..
        } => ApiError::Denied(reason, message),
        other => ApiError::InvalidField {
            field: None,
            message: other.to_string(),
        },
    })?;
    let resolved_object = serde_json::from_str(&resolved.output)
        .map_err(|e| ApiError::MalformedJson(format!("the resolved object: {e}")))?;
    let pull_secrets = resolved
        .registries
        .iter()
        .filter_map(|name| index.record(name))
        .filter(|record| record.has_password)
        .filter_map(|record| {
            Some(PullSecretNeeded {
                name: record.pull_secret_name.clone(),
                registry: record.name.clone(),
                server: record.parsed_server().ok()?.host,
                username: record.username.clone()?,
            })
        })
        .collect();
    Ok(Json(WorkloadResolution {
        object: resolved_object,
        warnings: resolved.warnings,
        pull_secrets,
    }))
}

fn check_namespace(namespace: &str) -> Result<(), ApiError> {
    check_dns1123_label(namespace).map_err(|problem| ApiError::InvalidField {
        field: Some("namespace".into()),
        message: problem.to_string(),
    })
}

#[utoipa::path(post, path = "/api/v1/registries:verify", tag = "registries",
    request_body = RegistryInput,
    responses(
        (status = 200, description = "The registry accepts this address, TLS setting and login", body = VerifyResponse),
        (status = 422, description = "Invalid fields, or why the check failed (code: unreachable, timeout, tls, protocol, not_a_registry, unauthorized, forbidden)", body = ErrorBody),
    ))]
pub async fn verify_unsaved(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    ApiJson(input): ApiJson<RegistryInput>,
) -> Result<Json<VerifyResponse>, ApiError> {
    state.service().check_unsaved(input).await?;
    Ok(Json(VerifyResponse {
        verified: true,
        message: "login succeeded".into(),
    }))
}

#[utoipa::path(post, path = "/api/v1/registries/{name}/verify", tag = "registries",
    params(("name" = String, Path, description = "Registry name")),
    responses(
        (status = 200, description = "Checked with the stored credentials; the record with its new status", body = RegistryView),
        (status = 404, description = "No such registry", body = ErrorBody),
        (status = 422, description = "Why the check failed; the status is saved too", body = ErrorBody),
    ))]
pub async fn verify_saved(
    State(state): State<AppState>,
    Actor(actor): Actor,
    _: ApiQuery<NoQuery>,
    Path(name): Path<String>,
) -> Result<Json<RegistryView>, ApiError> {
    let record = find(&state, &name).await?;
    let (updated, result) = state.service().recheck(Some(&actor), &record).await?;
    result.map_err(ApiError::CheckFailed)?;
    Ok(Json(RegistryView::of(&updated)))
}

#[utoipa::path(get, path = "/api/v1/registries/{name}/repositories", tag = "browse",
    params(("name" = String, Path, description = "Registry name"), BrowseQuery),
    responses(
        (status = 200, description = "Repositories (relative to the record's path prefix), by name", body = NameList),
        (status = 404, description = "No such registry", body = ErrorBody),
        (status = 422, description = "browse_unsupported: this registry or account does not list repositories (or browse is none); tags still list", body = ErrorBody),
        (status = 502, description = "The registry failed (same codes as verification)", body = ErrorBody),
    ))]
pub async fn repositories(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<BrowseQuery>,
) -> Result<Json<NameList>, ApiError> {
    let (limit, after) = query.page()?;
    let (record, credentials) = record_and_credentials(&state, &name).await?;
    let (listing, source) = state
        .connectivity
        .repositories(&record, credentials, &query.q, limit, after.as_deref())
        .await
        .map_err(ApiError::Upstream)?;
    Ok(Json(NameList {
        items: listing.items,
        metadata: browse_meta(listing.next),
        source: Some(source),
    }))
}

#[utoipa::path(get, path = "/api/v1/registries/{name}/repositories/{repository}/tags", tag = "browse",
    params(
        ("name" = String, Path, description = "Registry name"),
        ("repository" = String, Path, description = "Repository path relative to the record's prefix; may contain '/'"),
        BrowseQuery,
    ),
    responses(
        (status = 200, description = "Tags, newest-looking first (semantic versions by version, then by name)", body = NameList),
        (status = 404, description = "No such registry or repository", body = ErrorBody),
        (status = 502, description = "The registry failed (same codes as verification)", body = ErrorBody),
    ))]
pub async fn tags(
    State(state): State<AppState>,
    Path((name, path)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<BrowseQuery>,
) -> Result<Json<NameList>, ApiError> {
    let repository = path
        .strip_suffix("/tags")
        .ok_or_else(|| ApiError::NotFound(format!("{name}/repositories/{path}")))?;
    for component in repository.split('/') {
        validate_path_component(component).map_err(|e| ApiError::InvalidField {
            field: Some("repository".into()),
            message: e.to_string(),
        })?;
    }
    let (limit, after) = query.page()?;
    let (record, credentials) = record_and_credentials(&state, &name).await?;
    let listing = state
        .connectivity
        .tags(
            &record,
            credentials,
            repository,
            &query.q,
            limit,
            after.as_deref(),
        )
        .await
        .map_err(ApiError::Upstream)?;
    Ok(Json(NameList {
        items: listing.items,
        metadata: browse_meta(listing.next),
        source: None,
    }))
}

async fn record_and_credentials(
    state: &AppState,
    name: &str,
) -> Result<(Registry, Option<Credentials>), ApiError> {
    let record = find(state, name).await?;
    let credentials = state.store.credentials(name).await?;
    Ok((record, credentials))
}

/// The record, or 404.
async fn find(state: &AppState, name: &str) -> Result<Registry, ApiError> {
    state
        .store
        .get(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(name.to_owned()))
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/deployments", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body(content = Object, description = "An apps/v1 Deployment"),
    responses(
        (status = 201, description = "The Deployment as the API server stored it, after admission (this webhook's rewrites included)", body = Object),
        (status = 403, description = "The cluster refused (RBAC or admission): its message, code cluster_refused", body = ErrorBody),
        (status = 422, description = "Not a Deployment, or the cluster found it invalid", body = ErrorBody),
        (status = 501, description = "Only with --store kubernetes", body = ErrorBody),
    ))]
/// Creates a Deployment in the cluster with the caller's own token, so the
/// API server's RBAC and admission apply as they do for `kubectl`.
pub async fn create_deployment(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(namespace): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(deployment): ApiJson<k8s_openapi::api::apps::v1::Deployment>,
) -> Result<Response, ApiError> {
    check_namespace(&namespace)?;
    let Some(workloads) = &state.workloads else {
        return Err(ApiError::NotSupported(
            "creating workloads in the cluster needs serve --store kubernetes",
        ));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(super::bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    let created = workloads
        .create_deployment(token, &namespace, &deployment)
        .await?;
    tracing::info!(%namespace, name = ?created.metadata.name, "deployment created for the caller");
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/api/v1/namespaces", tag = "namespaces",
    responses((status = 200, description = "Namespaces to suggest when authorizing a registry: the cluster's (Kubernetes mode), or those the records already name", body = NameList)))]
pub async fn namespaces(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
) -> Result<Json<NameList>, ApiError> {
    Ok(Json(NameList {
        items: state.store.namespace_names().await?,
        metadata: ListMeta::default(),
        source: None,
    }))
}
