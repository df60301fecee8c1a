//! The web console: a few hand-written pages and modules, embedded in the
//! binary and served on the HTTPS listener at `/`, so `serve` is the whole
//! installation and nothing is fetched from elsewhere. The pages are a
//! client of the public API (`/api/v1`) and nothing else.
//!
//! Every answer carries a Content-Security-Policy that allows only our own
//! scripts and styles (none inline) and no framing; assets are revalidated
//! by ETag, so a new binary's console is picked up on the next load.

use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::error::ApiError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        name: "ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/ui.js"),
    },
    Asset {
        name: "signin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/signin.js"),
    },
    Asset {
        name: "list.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/list.js"),
    },
    Asset {
        name: "dialog.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/dialog.js"),
    },
    Asset {
        name: "mirrors.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/mirrors.js"),
    },
    Asset {
        name: "registry.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/registry.js"),
    },
    Asset {
        name: "activity.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/activity.js"),
    },
    Asset {
        name: "browse.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/browse.js"),
    },
    Asset {
        name: "workload.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/workload.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/dom.js"),
    },
    Asset {
        name: "i18n.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/i18n.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
];

/// Only our own files; `blob:` is not needed for the manifest download
/// (a navigation, not a fetch), `data:` only for the empty favicon.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Each asset's ETag, from its bytes: the same binary always sends the same tags.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            asset.body.hash(&mut hasher);
            HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
        })
        .collect()
});

/// `/` and `/assets/{file}`.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/assets/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move {
                if file == "index.html" {
                    return ApiError::NotFound(file).into_response();
                }
                serve(&file, &headers)
            }),
        )
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::NotFound(name.to_owned()).into_response();
    };
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|given| given.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `t('key')` the pages use has an English and a Chinese text.
    #[test]
    fn every_text_the_pages_use_exists_in_both_languages() {
        let i18n = ASSETS
            .iter()
            .find(|a| a.name == "i18n.js")
            .map(|a| a.body)
            .unwrap_or_default();
        let (en, zh) = i18n.split_at(i18n.find("const zh = {").unwrap_or(0));
        let keys_of = |block: &str| -> std::collections::BTreeSet<String> {
            block
                .lines()
                .filter_map(|line| line.trim().strip_prefix('\''))
                .filter_map(|rest| rest.split_once("':").map(|(key, _)| key.to_owned()))
                .collect()
        };
        let (en, zh) = (keys_of(en), keys_of(zh));
        assert!(en.len() > 100, "the dictionaries are found");
        assert_eq!(en, zh, "both languages have the same keys");
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = asset.body;
            let mut rest = text;
            while let Some(at) = rest.find("t('") {
                let before = rest[..at].chars().last();
                let after = &rest[at + 3..];
                rest = after;
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                    continue;
                }
                let key = after.split('\'').next().unwrap_or_default();
                assert!(en.contains(key), "{}: t({key:?}) has no text", asset.name);
            }
        }
    }

    /// Every failure a registry check or a listing can end in is said in
    /// words, with the fix, in both languages.
    #[test]
    fn every_registry_failure_code_has_words() {
        use crate::registry::client::ConnectError as E;
        let i18n = ASSETS
            .iter()
            .find(|a| a.name == "i18n.js")
            .map(|a| a.body)
            .unwrap_or_default();
        let zh_at = i18n.find("const zh = {").unwrap_or(0);
        let every = [
            E::Unreachable(String::new()),
            E::Timeout(String::new()),
            E::Tls(String::new()),
            E::Protocol(String::new()),
            E::NotARegistry(String::new()),
            E::Unauthorized(String::new()),
            E::Forbidden(String::new()),
            E::NotFound(String::new()),
            E::Registry(String::new()),
            E::Config(String::new()),
            E::AddressRefused(String::new()),
            E::TooLarge(String::new()),
            E::Paging(String::new()),
            E::InsecureRealm(String::new()),
            E::BrowseUnsupported(String::new()),
            E::RateLimited(String::new()),
        ];
        for error in every {
            let key = format!("'code.{}':", error.code());
            let (en, zh) = i18n.split_at(zh_at);
            assert!(
                en.contains(&key) && zh.contains(&key),
                "{key} in both languages"
            );
        }
    }

    #[test]
    fn pages_load_no_script_or_style_from_elsewhere() {
        for asset in ASSETS {
            for needle in [
                "from 'http",
                "src=\"http",
                "href=\"http",
                "url(",
                "@import",
                "<script>",
                "style=\"",
                "innerHTML",
                "eval(",
            ] {
                assert!(
                    !asset.body.contains(needle),
                    "{} contains {needle:?}",
                    asset.name
                );
            }
        }
    }
}
