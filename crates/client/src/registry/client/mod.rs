//! A client for one registry's Distribution API (`/v2/`): the login check
//! `docker login` does, catalog and tag listing, and manifest digests.
//!
//! Built on reqwest with our own rustls config per registry, so every
//! failure can be told apart (see [`ConnectError`]): oci-client fits pulling
//! images, but answers these cases with errors we could not categorise, and
//! has no catalog call.

mod address;
mod dockerhub;
mod error;
mod harbor;
mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

pub use address::{AddressPolicy, AddressRefused};
pub use error::ConnectError;
pub use harbor::HarborPage;

use super::Credentials;
use super::{Scheme, Server, TlsOptions};

/// Every manifest media type a tag may point at; an index or manifest list
/// first, so a multi-arch tag resolves to the index digest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP (and TLS) connect deadline.
    pub connect_timeout: Duration,
    /// Deadline for one request, connect included.
    pub request_timeout: Duration,
    /// Addresses never to send a request to.
    pub addresses: Arc<AddressPolicy>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            addresses: Arc::new(AddressPolicy::default()),
        }
    }
}

/// Most bytes read of a page of names (`_catalog`, `tags/list`): a page of
/// 1000 names of the longest legal length is about 260 KB.
const LIST_BODY_MAX: usize = 4 * 1024 * 1024;
/// Most bytes read of a token service's answer (JWTs are a few KB).
const TOKEN_BODY_MAX: usize = 256 * 1024;
/// Most bytes read of an error page we look into.
const ERROR_BODY_MAX: usize = 64 * 1024;

/// One page of names, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
    /// The `last` of the next page, from the registry's `Link` header.
    pub next: Option<String>,
}

/// How the registry wants to be authenticated, learnt from its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

pub struct RegistryClient {
    http: reqwest::Client,
    /// `https://host[:port]`: the API root (a record's path prefix is part
    /// of repository names, not of the API path).
    base: String,
    /// Scheme, host and port of `base`: where credentials may go in clear text.
    origin: url::Origin,
    host: String,
    https: bool,
    addresses: Arc<AddressPolicy>,
    credentials: Option<Credentials>,
    challenge: Mutex<Option<Challenge>>,
    /// Bearer tokens by scope, reused until shortly before they expire.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct CatalogResponse {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TagsResponse {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl RegistryClient {
    /// A client for `server`, sending `credentials` only to it (and to the
    /// token service it names).
    pub fn new(
        server: &Server,
        tls: &TlsOptions,
        credentials: Option<Credentials>,
        options: &ClientOptions,
    ) -> Result<Self, ConnectError> {
        let https = server.scheme == Scheme::Https;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("registry-resolver/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(address::PolicyResolver(options.addresses.clone()))
            .http1_only();
        if https && tls.certificate_check() == crate::registry::CertificateCheck::Skipped {
            tracing::warn!(server = %server, "TLS verification is disabled for this registry (insecureSkipVerify)");
        }
        // Also for a plain-HTTP registry: its token service may be HTTPS
        // (with the record's CA), and credentials only go there over TLS.
        builder = builder.tls_backend_preconfigured(tls::client_config(tls)?);
        let http = builder
            .build()
            .map_err(|e| ConnectError::Config(format!("building the HTTP client: {e}")))?;
        let scheme = if https { "https" } else { "http" };
        let base = format!("{scheme}://{}", server.host);
        let origin = url::Url::parse(&base)
            .map_err(|e| ConnectError::Config(format!("registry address: {e}")))?
            .origin();
        Ok(Self {
            http,
            base,
            origin,
            host: server.host.clone(),
            https,
            addresses: options.addresses.clone(),
            credentials,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// What `docker login` checks: `/v2/` answers as a registry, and with
    /// our credentials (if it asks for any) it lets us in.
    pub async fn verify(&self) -> Result<(), ConnectError> {
        let url = format!("{}/v2/", self.base);
        let response = self.send(Method::GET, &url, None, None).await?;
        if let Some(failing) =
            ConnectError::from_failing_status(response.status(), response.headers(), &self.host)
        {
            return Err(failing);
        }
        match response.status() {
            StatusCode::OK => {
                if is_registry(response.headers()) {
                    Ok(())
                } else {
                    Err(ConnectError::NotARegistry(format!(
                        "{} answers /v2/ but is not a container registry (no Docker-Distribution-API-Version header)",
                        self.host
                    )))
                }
            }
            StatusCode::UNAUTHORIZED => {
                let challenge = self.challenge_from(response.headers())?;
                if self.credentials.is_none() {
                    return Err(ConnectError::Unauthorized(format!(
                        "{} requires a username and password",
                        self.host
                    )));
                }
                let scope = challenge_scope(response.headers());
                let auth = self
                    .authorization(&challenge, scope.as_deref().unwrap_or(""))
                    .await?;
                let again = self.send(Method::GET, &url, Some(&auth), None).await?;
                if let Some(failing) =
                    ConnectError::from_failing_status(again.status(), again.headers(), &self.host)
                {
                    return Err(failing);
                }
                match again.status() {
                    StatusCode::OK => Ok(()),
                    StatusCode::UNAUTHORIZED => Err(ConnectError::Unauthorized(format!(
                        "{} rejected the username or password",
                        self.host
                    ))),
                    StatusCode::FORBIDDEN => Err(ConnectError::Forbidden(format!(
                        "{} accepted the login but denies access to the registry API",
                        self.host
                    ))),
                    other => Err(ConnectError::NotARegistry(format!(
                        "{} answered /v2/ with {other} after login: not a container registry",
                        self.host
                    ))),
                }
            }
            StatusCode::FORBIDDEN => Err(ConnectError::Forbidden(format!(
                "{} denies access to the registry API",
                self.host
            ))),
            StatusCode::BAD_REQUEST if !self.https => {
                let body = read_capped(response, ERROR_BODY_MAX, &self.host)
                    .await
                    .unwrap_or_default();
                if body
                    .windows(HTTPS_PORT_HINT.len())
                    .any(|w| w == HTTPS_PORT_HINT)
                {
                    Err(ConnectError::Protocol(format!(
                        "{} speaks HTTPS on this port: use https:// (without a scheme, https is assumed)",
                        self.host
                    )))
                } else {
                    Err(self.not_a_registry(StatusCode::BAD_REQUEST))
                }
            }
            other => Err(self.not_a_registry(other)),
        }
    }

    /// One page of `/v2/_catalog`.
    pub async fn catalog(&self, n: usize, last: Option<&str>) -> Result<Page, ConnectError> {
        let mut url = url::Url::parse(&format!("{}/v2/_catalog", self.base))
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        paginate(&mut url, n, last);
        // Harbor answers a project robot account 401 here by design (with a
        // token it issued, so the login was fine); other registries 403 or
        // 404. That is a registry that does not let this account list, not
        // a failure. A 401 to Basic credentials stays a rejected login.
        let (response, bearer) = self
            .authorized_response(Method::GET, url.as_str(), None)
            .await?;
        let refused = match response.status() {
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => true,
            StatusCode::UNAUTHORIZED => bearer,
            _ => false,
        };
        if refused {
            return Err(ConnectError::BrowseUnsupported(format!(
                "{} does not let this account list repositories: type the path, its tags are still listed",
                self.host
            )));
        }
        let response = self.check_status(response, "the catalog")?;
        let next = next_last(response.headers());
        let body: CatalogResponse = json(response, LIST_BODY_MAX, &self.host).await?;
        Ok(Page {
            items: body.repositories.unwrap_or_default(),
            next,
        })
    }

    /// One page of `/v2/<repository>/tags/list`.
    pub async fn tags(
        &self,
        repository: &str,
        n: usize,
        last: Option<&str>,
    ) -> Result<Page, ConnectError> {
        let mut url = url::Url::parse(&format!("{}/v2/{repository}/tags/list", self.base))
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        paginate(&mut url, n, last);
        let what = format!("repository {repository}");
        let response = self.get_authorized(url.as_str(), None, &what).await?;
        let next = next_last(response.headers());
        let body: TagsResponse = json(response, LIST_BODY_MAX, &self.host).await?;
        Ok(Page {
            items: body.tags.unwrap_or_default(),
            next,
        })
    }

    /// The digest `reference` (a tag) points at, by `HEAD` on the manifest,
    /// accepting indexes and manifest lists first.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<String, ConnectError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let what = format!("{repository}:{reference}");
        let response = self
            .request_authorized(Method::HEAD, &url, Some(MANIFEST_ACCEPT), &what)
            .await?;
        response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.starts_with("sha256:") || d.starts_with("sha512:"))
            .map(str::to_owned)
            .ok_or_else(|| {
                ConnectError::Registry(format!(
                    "{} sent no Docker-Content-Digest for {what}",
                    self.host
                ))
            })
    }

    async fn get_authorized(
        &self,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response, ConnectError> {
        self.request_authorized(Method::GET, url, accept, what)
            .await
    }

    /// Sends with what we know of the registry's auth, answers one 401 by
    /// logging in as it asks, and maps error statuses to categories.
    async fn request_authorized(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response, ConnectError> {
        let (response, _) = self.authorized_response(method, url, accept).await?;
        self.check_status(response, what)
    }

    /// Sends with what we know of the registry's auth and answers one 401
    /// by logging in as it asks. Returns the final answer whatever its
    /// status, and whether a Bearer token was used: a refusal after a token
    /// was issued is about access, not about the login.
    async fn authorized_response(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
    ) -> Result<(reqwest::Response, bool), ConnectError> {
        let known = self
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut auth = match &known {
            Some(Challenge::Basic) => self.basic_header(),
            _ => None,
        };
        let mut response = self
            .send(method.clone(), url, auth.as_deref(), accept)
            .await?;
        let mut bearer = false;
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = self.challenge_from(response.headers())?;
            let scope = challenge_scope(response.headers()).unwrap_or_default();
            auth = Some(self.authorization(&challenge, &scope).await?);
            bearer = matches!(challenge, Challenge::Bearer { .. });
            response = self.send(method, url, auth.as_deref(), accept).await?;
        }
        Ok((response, bearer))
    }

    /// Error statuses, in categories.
    fn check_status(
        &self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<reqwest::Response, ConnectError> {
        match response.status() {
            s if s.is_success() => Ok(response),
            StatusCode::UNAUTHORIZED => Err(ConnectError::Unauthorized(format!(
                "{} rejected the credentials for {what}",
                self.host
            ))),
            StatusCode::FORBIDDEN => Err(ConnectError::Forbidden(format!(
                "{} denies access to {what}",
                self.host
            ))),
            StatusCode::NOT_FOUND => Err(ConnectError::NotFound(format!(
                "{what} not found on {}",
                self.host
            ))),
            other => Err(
                ConnectError::from_failing_status(other, response.headers(), &self.host)
                    .unwrap_or_else(|| {
                        ConnectError::Registry(format!("{} answered {other} for {what}", self.host))
                    }),
            ),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, ConnectError> {
        let parsed = url::Url::parse(url).map_err(|e| ConnectError::Config(e.to_string()))?;
        self.addresses
            .check_literal(&parsed)
            .map_err(|refused| ConnectError::AddressRefused(refused.to_string()))?;
        let mut request = self.http.request(method, parsed);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        request
            .send()
            .await
            .map_err(|e| ConnectError::from_transport(&e, &self.host, self.https))
    }

    fn not_a_registry(&self, status: StatusCode) -> ConnectError {
        ConnectError::NotARegistry(format!(
            "{} answered /v2/ with {status}: not a container registry",
            self.host
        ))
    }

    fn challenge_from(&self, headers: &HeaderMap) -> Result<Challenge, ConnectError> {
        let challenge = parse_challenge(headers).ok_or_else(|| {
            ConnectError::NotARegistry(format!(
                "{} asks for authentication without a Basic or Bearer challenge: not a container registry",
                self.host
            ))
        })?;
        *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(challenge.clone());
        Ok(challenge)
    }

    fn basic_header(&self) -> Option<String> {
        use base64::Engine;
        let credentials = self.credentials.as_ref()?;
        let pair = format!("{}:{}", credentials.username, credentials.password.expose());
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// The `Authorization` value for a challenge: Basic directly, or a
    /// Bearer token fetched from the realm with our credentials.
    async fn authorization(
        &self,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<String, ConnectError> {
        match challenge {
            Challenge::Basic => self.basic_header().ok_or_else(|| {
                ConnectError::Unauthorized(format!(
                    "{} requires a username and password",
                    self.host
                ))
            }),
            Challenge::Bearer { realm, service } => {
                if let Some((token, expires)) = self
                    .tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(scope)
                    && *expires > Instant::now()
                {
                    return Ok(format!("Bearer {token}"));
                }
                let token = self.fetch_token(realm, service.as_deref(), scope).await?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, ConnectError> {
        // The realm is the registry's text: never quoted back.
        let mut url = url::Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                ConnectError::NotARegistry(format!(
                    "{} names a token service that is not an http(s) URL",
                    self.host
                ))
            })?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        // Credentials travel to the token service the registry names, as
        // with `docker login`, but in clear text only to the registry's own
        // origin: not to another host, nor to another port of this one.
        let own_origin = url.origin() == self.origin;
        if url.scheme() != "https" && !own_origin && self.credentials.is_some() {
            return Err(ConnectError::InsecureRealm(format!(
                "{} sends logins to {realm_host} over plain HTTP; credentials are sent in clear text only to the registry itself",
                self.host
            )));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            if !scope.is_empty() {
                query.append_pair("scope", scope);
            }
        }
        let realm_https = url.scheme() == "https";
        let response = self
            .send(
                Method::GET,
                url.as_str(),
                self.basic_header().as_deref(),
                None,
            )
            .await
            .map_err(|e| match e {
                // Say that it was the token service that failed.
                ConnectError::Unreachable(m) => {
                    ConnectError::Unreachable(format!("token service: {m}"))
                }
                other => other,
            })?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Err(ConnectError::Unauthorized(format!(
                    "{realm_host} (the token service of {}) rejected the username or password",
                    self.host
                )));
            }
            StatusCode::FORBIDDEN => {
                return Err(ConnectError::Forbidden(format!(
                    "{realm_host} (the token service of {}) denies a token for this access",
                    self.host
                )));
            }
            other => {
                return Err(ConnectError::from_failing_status(
                    other,
                    response.headers(),
                    &realm_host,
                )
                .unwrap_or_else(|| {
                    ConnectError::NotARegistry(format!(
                        "token service {realm_host} answered {other}{}",
                        if realm_https { "" } else { " (plain HTTP)" }
                    ))
                }));
            }
        }
        let body: TokenResponse = json(response, TOKEN_BODY_MAX, &realm_host).await?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConnectError::NotARegistry(format!("token service {realm_host} sent no token"))
            })?;
        // Reuse until 10 s before expiry (60 s when unstated, as the spec says).
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(60).saturating_sub(10));
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_owned(), (token.clone(), Instant::now() + lifetime));
        Ok(token)
    }
}

fn is_registry(headers: &HeaderMap) -> bool {
    headers
        .get("docker-distribution-api-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("registry/2"))
}

fn parse_challenge(headers: &HeaderMap) -> Option<Challenge> {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        let Ok(challenges) = http_auth::parse_challenges(text) else {
            continue;
        };
        for challenge in challenges {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if challenge.scheme.eq_ignore_ascii_case("basic") {
                return Some(Challenge::Basic);
            }
            if challenge.scheme.eq_ignore_ascii_case("bearer")
                && let Some(realm) = param("realm")
            {
                return Some(Challenge::Bearer {
                    realm,
                    service: param("service"),
                });
            }
        }
    }
    None
}

fn challenge_scope(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        let Ok(challenges) = http_auth::parse_challenges(text) else {
            continue;
        };
        for challenge in challenges {
            if let Some((_, scope)) = challenge
                .params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("scope"))
            {
                return Some(scope.to_unescaped());
            }
        }
    }
    None
}

fn paginate(url: &mut url::Url, n: usize, last: Option<&str>) {
    let mut query = url.query_pairs_mut();
    query.append_pair("n", &n.to_string());
    if let Some(last) = last {
        query.append_pair("last", last);
    }
}

/// `last` from `Link: </v2/_catalog?last=x&n=2>; rel="next"`.
fn next_last(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    let target = link
        .split(';')
        .next()?
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let url = url::Url::parse("http://link.invalid")
        .ok()?
        .join(target)
        .ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "last")
        .map(|(_, v)| v.into_owned())
}

/// What Distribution answers plain HTTP sent to its HTTPS port.
const HTTPS_PORT_HINT: &[u8] = b"HTTP request to an HTTPS server";

/// The body, unless it is longer than `limit`: a registry (or anything
/// posing as one) decides how much it sends, we decide how much we read.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    host: &str,
) -> Result<Vec<u8>, ConnectError> {
    let too_large = || {
        ConnectError::TooLarge(format!(
            "{host} sent a response larger than {} KiB; stopped reading",
            limit / 1024
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ConnectError::from_transport(&e, host, false))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Decodes a JSON answer of at most `limit` bytes. The error says where the
/// answer went wrong, never what it contained.
async fn json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    limit: usize,
    host: &str,
) -> Result<T, ConnectError> {
    let bytes = read_capped(response, limit, host).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Io | serde_json::error::Category::Eof => {
                "a truncated answer"
            }
            serde_json::error::Category::Syntax => "an answer that is not JSON",
            serde_json::error::Category::Data => "JSON of an unexpected shape",
        };
        ConnectError::Registry(format!(
            "{host} sent {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Entry points for the fuzz targets (`fuzz/`): the parsers of what a
/// registry sends back. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use reqwest::header::{HeaderMap, HeaderValue, LINK, WWW_AUTHENTICATE};

    /// Feeds one registry answer (its challenge, its `Link`, its body)
    /// through every parser that reads such answers.
    pub fn registry_answer(www_authenticate: &[u8], link: &[u8], body: &[u8]) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(www_authenticate) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let Ok(value) = HeaderValue::from_bytes(link) {
            headers.insert(LINK, value);
        }
        let _ = super::parse_challenge(&headers);
        let _ = super::challenge_scope(&headers);
        let _ = super::next_last(&headers);
        let _ = serde_json::from_slice::<super::CatalogResponse>(body);
        let _ = serde_json::from_slice::<super::TagsResponse>(body);
        let _ = serde_json::from_slice::<super::TokenResponse>(body);
        super::harbor::fuzzing::parse(body);
        super::dockerhub::fuzzing::parse(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn parses_challenges() {
        let mut headers = HeaderMap::new();
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#),
        );
        assert_eq!(
            parse_challenge(&headers),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(
            challenge_scope(&headers).as_deref(),
            Some("repository:a/b:pull")
        );
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="Registry Realm""#),
        );
        assert_eq!(parse_challenge(&headers), Some(Challenge::Basic));
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        assert_eq!(parse_challenge(&headers), None);
    }

    #[test]
    fn follows_link_pagination() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(r#"</v2/_catalog?last=team%2Fb&n=2>; rel="next""#),
        );
        assert_eq!(next_last(&headers).as_deref(), Some("team/b"));
        assert_eq!(next_last(&HeaderMap::new()), None);
    }
}
