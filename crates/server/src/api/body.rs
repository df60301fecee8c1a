//! Reading request bodies: content type, size limit, and JSON that names the
//! field at fault when it does not fit.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::json::JsonError;
use std::time::Duration;

/// Largest API request body; a registry record with a CA bundle fits easily.
pub const API_BODY_LIMIT: usize = 1024 * 1024;

/// Reads a body of one of the `accepted` media types, at most `limit` bytes,
/// all of it within `deadline` (a client that stops sending must not hold a
/// handler and its buffer forever). The timer starts only if the body is
/// not already there, so the common case of a small body that arrived with
/// its headers costs no timer.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    accepted: &'static [&'static str],
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Media types compare case-insensitively (RFC 9110 §8.3.1).
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !accepted.iter().any(|a| a.eq_ignore_ascii_case(essence)) {
        return Err(ApiError::UnsupportedMediaType {
            got: content_type.to_owned(),
            expected: accepted.first().copied().unwrap_or("application/json"),
        });
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::RequestTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge(limit)),
        Ok(Err(e)) => Err(ApiError::MalformedJson(format!("reading body: {e}"))),
    }
}

/// Deserializes JSON strictly (a field the body's type does not have is
/// refused), naming the field at fault (`namespaces[1]`, `tls.caBundle`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::json::from_slice(bytes).map_err(|error| match error {
        JsonError::Syntax(_) => ApiError::MalformedJson(error.to_string()),
        JsonError::Data { .. } | JsonError::UnknownField { .. } => ApiError::InvalidField {
            field: error.field().map(str::to_owned),
            message: error.to_string(),
        },
    })
}

/// `Json` for the API: JSON media type, size limit, our error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(
            body,
            &parts.headers,
            API_BODY_LIMIT,
            &["application/json"],
            state.body_read_timeout,
        )
        .await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// `Query` for the API: a parameter the operation does not declare (in its
/// `IntoParams`, the same list the OpenAPI document shows) is refused with
/// 422 naming it, so a typo (`?verfy=false`) never silently changes what a
/// write does; a malformed value gets our error shape too.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + utoipa::IntoParams> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if !query.is_empty() {
            let declared: Vec<String> =
                T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query))
                    .into_iter()
                    .map(|p| p.name)
                    .collect();
            for (name, _) in url::form_urlencoded::parse(query.as_bytes()) {
                if !declared.iter().any(|d| *d == name) {
                    let takes = match declared.as_slice() {
                        [] => "no query parameters".to_owned(),
                        names => format!("only {}", names.join(", ")),
                    };
                    let name = crate::excerpt::excerpt(&name);
                    return Err(ApiError::InvalidField {
                        message: format!(
                            "unknown query parameter {name:?}: this operation takes {takes}"
                        ),
                        field: Some(name.to_owned_string()),
                    });
                }
            }
        }
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| ApiError::InvalidField {
                field: None,
                message: format!("query string: {}", rejection.body_text()),
            })
    }
}

/// The query of an operation that takes no parameters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NoQuery {}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(content_type: &str) -> Result<Bytes, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().expect("header"));
        read_body(
            Body::from("{}"),
            &headers,
            1024,
            &["application/json", "application/merge-patch+json"],
            Duration::from_secs(1),
        )
        .await
    }

    /// Media types compare without regard to case and parameters, as the
    /// API server and kubectl send them; anything else is a 415.
    #[tokio::test]
    async fn media_types_match_as_http_says() {
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/merge-patch+json ;x=y",
        ] {
            assert_eq!(
                read(accepted).await.expect(accepted).as_ref(),
                b"{}",
                "{accepted}"
            );
        }
        for refused in ["text/plain", "application/jsonx", "application", ""] {
            assert!(
                matches!(
                    read(refused).await,
                    Err(ApiError::UnsupportedMediaType { .. })
                ),
                "{refused}"
            );
        }
    }
}
