//! Every library error → one HTTP response shape, in one place:
//! `{"error": {"code": "...", "message": "...", "field": "...", "details": [...]}}`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::admission::AdmissionError;
use crate::excerpt::{MESSAGE_CHARS, VALUE_CHARS, excerpt, shorten};
use crate::kubernetes::workloads::SubmitError;
use crate::registry::client::ConnectError;
use crate::registry::store::StoreError;
use crate::registry::{FieldError, ValidationErrors};
use crate::service::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    /// The body is not JSON at all (syntax) → 400.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// JSON of the wrong shape: a wrong type, an unknown field → 422.
    #[error("{message}")]
    InvalidField {
        field: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("registry {0:?} not found")]
    NotFound(String),
    /// The webhook would refuse the image or object; the reason is a
    /// stable word a client can translate, the message names the image.
    #[error("{1}")]
    Denied(crate::admission::DenialReason, String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The webhooks accept only clients with a certificate from the CA
    /// given with --webhook-client-ca (the API server).
    #[error(
        "this webhook accepts only clients with a certificate from its client CA (--webhook-client-ca)"
    )]
    ClientCertificateRequired,
    /// Authenticated, but RBAC says no; the message names the permission.
    #[error("{0}")]
    Forbidden(String),
    /// A dependency (the API server's reviews) is not answering.
    #[error("{0}")]
    Unavailable(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The client did not send its whole body within the body deadline.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("unsupported content type {got:?}: send {expected}")]
    UnsupportedMediaType { got: String, expected: &'static str },
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// A registry check failed: the record as given cannot be used (422).
    #[error("{0}")]
    CheckFailed(ConnectError),
    /// A registry failed while we browsed it on the client's behalf (502).
    #[error("{0}")]
    Upstream(ConnectError),
    /// The cluster answered a request made with the caller's own token.
    #[error(transparent)]
    Cluster(#[from] crate::kubernetes::workloads::SubmitError),
    /// What this mode cannot do (e.g. creating workloads without a cluster).
    #[error("{0}")]
    NotSupported(&'static str),
    /// A write refused for a reason of its own: a stale `If-Match` (412),
    /// lost races (409), a password needed again (422); its code is
    /// [`WriteError::code`].
    #[error(transparent)]
    Write(WriteError),
    #[error("no such path: {}", excerpt(.0))]
    NoRoute(String),
    #[error("{} is not allowed on {}", excerpt(.method), excerpt(.path))]
    MethodNotAllowed { method: String, path: String },
}

/// The error envelope of every non-2xx API response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid`, `not_found`, `already_exists`.
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field error, for a form that shows them all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
    /// Why the webhook would refuse, with code `resolution_denied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<crate::admission::DenialReason>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, Option<String>, Vec<FieldError>) {
        use StoreError as S;
        match self {
            Self::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                errors.0.first().map(|e| e.field.clone()),
                errors.0.clone(),
            ),
            Self::InvalidField { field, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                field.clone(),
                vec![],
            ),
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "bad_request", None, vec![]),
            Self::Store(e @ S::AlreadyExists(_)) => {
                (StatusCode::CONFLICT, e.code(), Some("name".into()), vec![])
            }
            Self::Store(e @ S::NotFound(_)) => (StatusCode::NOT_FOUND, e.code(), None, vec![]),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None, vec![]),
            Self::Store(e @ S::DefaultConflict { .. }) => (
                StatusCode::CONFLICT,
                e.code(),
                Some("defaultFor".into()),
                vec![],
            ),
            Self::Store(e @ S::NeedsCluster(field)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                e.code(),
                Some((*field).into()),
                vec![],
            ),
            Self::Store(e @ S::Modified(_)) => (StatusCode::CONFLICT, e.code(), None, vec![]),
            Self::Store(e @ S::Backend(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, e.code(), None, vec![])
            }
            Self::Denied(..) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "resolution_denied",
                None,
                vec![],
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None, vec![]),
            Self::ClientCertificateRequired => (
                StatusCode::UNAUTHORIZED,
                "client_certificate_required",
                None,
                vec![],
            ),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None, vec![]),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None, vec![]),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                None,
                vec![],
            ),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout", None, vec![]),
            Self::UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
                vec![],
            ),
            Self::Admission(_) => (StatusCode::BAD_REQUEST, "malformed_review", None, vec![]),
            Self::CheckFailed(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.code(), None, vec![]),
            Self::Upstream(e @ ConnectError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, e.code(), None, vec![])
            }
            // Not a failure: this registry does not list; the client offers
            // a path field instead.
            Self::Upstream(e @ ConnectError::BrowseUnsupported(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, e.code(), None, vec![])
            }
            // Not the registry's failure either: our own policy refused the
            // record's address before any request (as verification says).
            Self::Upstream(e @ ConnectError::AddressRefused(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, e.code(), None, vec![])
            }
            Self::Upstream(e) => (StatusCode::BAD_GATEWAY, e.code(), None, vec![]),
            Self::Cluster(SubmitError::Refused { code, .. }) => (
                StatusCode::from_u16(*code)
                    .ok()
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .unwrap_or(StatusCode::BAD_GATEWAY),
                "cluster_refused",
                None,
                vec![],
            ),
            Self::Cluster(SubmitError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None, vec![])
            }
            Self::NotSupported(_) => (StatusCode::NOT_IMPLEMENTED, "not_supported", None, vec![]),
            Self::Write(error) => {
                let (status, field) = match error {
                    WriteError::PreconditionFailed { .. } => {
                        (StatusCode::PRECONDITION_FAILED, None)
                    }
                    WriteError::Conflict(_) => (StatusCode::CONFLICT, None),
                    WriteError::PasswordRequiredFor { .. } | WriteError::PasswordRequired(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, Some("password".into()))
                    }
                    // Converted to their own variants by `From<WriteError>`.
                    WriteError::Invalid(_) | WriteError::Store(_) | WriteError::CheckFailed(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, None)
                    }
                };
                (status, error.code(), field, vec![])
            }
            Self::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found", None, vec![]),
            Self::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                None,
                vec![],
            ),
        }
    }
}

/// What the audit trail keeps of an edit the API refused.
impl crate::service::ErrorCode for ApiError {
    fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Invalid(errors) => Self::Validation(errors),
            WriteError::Store(error) => Self::Store(error),
            WriteError::CheckFailed(error) => Self::CheckFailed(error),
            error => Self::Write(error),
        }
    }
}

/// Most field errors one answer lists; a form shows the first ones, and
/// the message says how many there were.
const DETAILS_MAX: usize = 100;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field, mut details) = self.parts();
        let message = match &self {
            // Storage details stay in the log; the client learns only that it failed.
            Self::Store(StoreError::Backend(detail)) => {
                tracing::error!(error = %detail, "storage failure");
                "internal storage error; see the server log".to_owned()
            }
            Self::Validation(errors) if errors.0.len() > DETAILS_MAX => format!(
                "{} fields are invalid; the first {DETAILS_MAX} are listed in details",
                errors.0.len()
            ),
            other => other.to_string(),
        };
        // Whatever a client sent that ends up in a message is bounded here,
        // the one place every API error passes through.
        details.truncate(DETAILS_MAX);
        for detail in &mut details {
            bound(&mut detail.field, VALUE_CHARS);
            bound(&mut detail.message, VALUE_CHARS * 3);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: shorten(&message, MESSAGE_CHARS).into_owned(),
                field: field.map(|f| shorten(&f, VALUE_CHARS).into_owned()),
                details,
                reason: match &self {
                    Self::Denied(reason, _) => Some(*reason),
                    _ => None,
                },
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn bound(text: &mut String, max_chars: usize) {
    if let std::borrow::Cow::Owned(short) = shorten(text, max_chars) {
        *text = short;
    }
}
