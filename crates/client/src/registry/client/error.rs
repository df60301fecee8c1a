//! Why a registry could not be used, in categories a person can act on.

use std::error::Error as _;

/// A failure to talk to a registry. Each variant has its own stable `code`
/// (the API's `error.code`) and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// DNS failure or connection refused.
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Timeout(String),
    /// Certificate problems: unknown authority, wrong names, expired.
    #[error("{0}")]
    Tls(String),
    /// HTTP spoken to an HTTPS port or the reverse.
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    NotARegistry(String),
    /// Wrong or missing username/password.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// The repository, tag or manifest does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The registry answered, but not as the API says it should.
    #[error("{0}")]
    Registry(String),
    /// Our own configuration is unusable (e.g. TLS settings).
    #[error("{0}")]
    Config(String),
    /// The address is one this service does not send requests to
    /// (link-local, loopback in a cluster, or a range the operator refused).
    #[error("{0}")]
    AddressRefused(String),
    /// The registry sent more than we read of such an answer.
    #[error("{0}")]
    TooLarge(String),
    /// The registry's paging does not end: a repeated cursor, or too many pages.
    #[error("{0}")]
    Paging(String),
    /// The registry asks for credentials to be sent in clear text elsewhere.
    #[error("{0}")]
    InsecureRealm(String),
    /// The registry (or this account) does not allow listing repositories;
    /// a path can still be typed, and its tags listed.
    #[error("{0}")]
    BrowseUnsupported(String),
    /// The registry answered 429: it is limiting our requests for now.
    #[error("{0}")]
    RateLimited(String),
}

/// Most seconds of a registry's `Retry-After` we repeat to a user.
const RETRY_AFTER_MAX_SECONDS: u64 = 24 * 3600;

impl ConnectError {
    /// What a registry's failing answer means, whatever the request: 429 is
    /// rate limiting (with its `Retry-After` in seconds when given, bounded),
    /// 5xx a registry failing now — not "not a registry", which a person
    /// would act on differently. `None` for any other status.
    pub fn from_failing_status(
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        host: &str,
    ) -> Option<Self> {
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let after = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|secs| secs.min(RETRY_AFTER_MAX_SECONDS));
            return Some(Self::RateLimited(match after {
                Some(secs) => {
                    format!("{host} is rate limiting requests (429); retry after {secs} s")
                }
                None => format!("{host} is rate limiting requests (429); try again later"),
            }));
        }
        status.is_server_error().then(|| {
            Self::Registry(format!(
                "{host} is failing: it answered {status}; try again, or ask its operator"
            ))
        })
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Timeout(_) => "timeout",
            Self::Tls(_) => "tls",
            Self::Protocol(_) => "protocol",
            Self::NotARegistry(_) => "not_a_registry",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Registry(_) => "registry_error",
            Self::Config(_) => "invalid_tls_config",
            Self::AddressRefused(_) => "address_refused",
            Self::TooLarge(_) => "response_too_large",
            Self::Paging(_) => "paging_loop",
            Self::InsecureRealm(_) => "insecure_token_realm",
            Self::BrowseUnsupported(_) => "browse_unsupported",
            Self::RateLimited(_) => "rate_limited",
        }
    }

    /// Classifies a transport error from a request to `host`. Messages name
    /// the host and never a credential (our URLs carry none).
    pub fn from_transport(error: &reqwest::Error, host: &str, https: bool) -> Self {
        if error.is_timeout() {
            return Self::Timeout(format!("{host} did not answer in time"));
        }
        if let Some(refused) = find_in_chain::<super::AddressRefused>(error) {
            return Self::AddressRefused(refused.to_string());
        }
        // The registry was reached and began to answer: a body cut short is
        // the registry's failure, not an unreachable address.
        if error.is_body() || error.is_decode() {
            return Self::Registry(format!(
                "{host} broke off its answer before the end; try again, or ask its operator"
            ));
        }
        if find_in_chain::<super::address::LookupFailed>(error).is_some() {
            return Self::Unreachable(format!("cannot resolve {host}: check the address"));
        }
        if let Some(tls) = find_in_chain::<rustls::Error>(error) {
            return Self::from_tls(tls, host);
        }
        if let Some(io) = find_in_chain::<std::io::Error>(error) {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return Self::Unreachable(format!(
                        "{host} refused the connection: nothing listens there"
                    ));
                }
                std::io::ErrorKind::TimedOut => {
                    return Self::Timeout(format!("{host} did not answer in time"));
                }
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    if https =>
                {
                    return Self::Protocol(format!(
                        "{host} closed the connection during the TLS handshake: if it is a plain-HTTP registry, use http://"
                    ));
                }
                _ => {}
            }
        }
        let text = chain_text(error);
        if error.is_connect() {
            return Self::Unreachable(format!("cannot connect to {host}: {text}"));
        }
        Self::Unreachable(format!("request to {host} failed: {text}"))
    }

    fn from_tls(error: &rustls::Error, host: &str) -> Self {
        use rustls::CertificateError as C;
        match error {
            rustls::Error::InvalidCertificate(C::UnknownIssuer) => Self::Tls(format!(
                "the certificate of {host} is signed by an unknown authority: add the registry's CA certificate to tls.caBundle"
            )),
            rustls::Error::InvalidCertificate(C::NotValidForNameContext {
                expected,
                presented,
            }) => Self::Tls(format!(
                "the certificate of {host} is not valid for {}: it names {}",
                expected.to_str(),
                presented.join(", ")
            )),
            rustls::Error::InvalidCertificate(C::NotValidForName) => Self::Tls(format!(
                "the certificate of {host} is not valid for that name"
            )),
            rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                Self::Tls(format!("the certificate of {host} has expired"))
            }
            rustls::Error::InvalidCertificate(other) => {
                Self::Tls(format!("the certificate of {host} was rejected: {other:?}"))
            }
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                Self::Protocol(format!(
                    "{host} does not speak TLS on this port: if it is a plain-HTTP registry, use http://"
                ))
            }
            other => Self::Tls(format!("TLS with {host} failed: {other}")),
        }
    }
}

/// The innermost `T` behind `error`: its `source()` chain, and the errors
/// wrapped inside `io::Error`s, which `source()` skips over.
fn find_in_chain<T: std::error::Error + 'static>(error: &reqwest::Error) -> Option<&T> {
    let mut found = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(current) = source {
        if let Some(hit) = current.downcast_ref::<T>() {
            found = Some(hit);
        }
        source = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    found
}

fn chain_text(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(current) = source {
        parts.push(current.to_string());
        source = current.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}
