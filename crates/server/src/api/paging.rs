//! The API's one paging convention, the Kubernetes list convention: `limit`
//! asks for at most that many items, and `metadata.continue` in the answer
//! is an opaque token to pass back as `continue` for the next page (absent
//! on the last one). Record lists and registry browsing both use it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;

/// Most items one page holds.
pub const LIMIT_MAX: usize = 1000;

/// About a list, beside its items.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// Pass as `continue` for the next page; absent on the last page.
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
    /// Matching items after this page, where the server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<usize>,
}

/// `limit`, checked: 1 to [`LIMIT_MAX`], or `default` when absent.
pub fn limit(limit: Option<usize>, default: Option<usize>) -> Result<Option<usize>, ApiError> {
    match limit {
        None => Ok(default),
        Some(n @ 1..=LIMIT_MAX) => Ok(Some(n)),
        Some(_) => Err(ApiError::InvalidField {
            field: Some("limit".into()),
            message: format!("limit must be between 1 and {LIMIT_MAX}"),
        }),
    }
}

/// The token for a position. Opaque to clients: its form may change.
pub fn encode<T: Serialize>(position: &T) -> String {
    // Serializing plain data cannot fail; an empty token would only restart.
    let json = serde_json::to_vec(position).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The position in a token this server issued; a 422 naming `continue`
/// for anything else.
pub fn decode<T: DeserializeOwned>(token: &str) -> Result<T, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| invalid_continue("not a continue token this server issued"))
}

pub fn invalid_continue(message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field: Some("continue".into()),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_garbage_names_the_parameter() {
        let token = encode(&("name", 3));
        assert_eq!(
            decode::<(String, u32)>(&token).ok(),
            Some(("name".into(), 3))
        );
        for garbage in ["", "!!", "bm90IGpzb24", &encode(&"a string")] {
            match decode::<(String, u32)>(garbage) {
                Err(ApiError::InvalidField { field, .. }) => {
                    assert_eq!(field.as_deref(), Some("continue"))
                }
                other => panic!("{garbage:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn limits_outside_the_range_name_the_parameter() {
        assert_eq!(limit(None, Some(100)).ok(), Some(Some(100)));
        assert_eq!(limit(Some(1000), None).ok(), Some(Some(1000)));
        for bad in [0, 1001] {
            assert!(
                matches!(limit(Some(bad), None), Err(ApiError::InvalidField { field: Some(f), .. }) if f == "limit")
            );
        }
    }
}
