//! A registry's address as a user types it, and the forms we derive from it.

use std::fmt;

use crate::excerpt::excerpt;
use crate::reference::validate_path_component;

/// How we (and the nodes) talk to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP: an "insecure" registry. Nodes need containerd configured for it.
    Http,
    /// HTTPS, the default when an address names no scheme.
    Https,
}

/// A parsed registry address: `[scheme://]host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// How the registry is reached: HTTPS unless the address says
    /// `http://`.
    pub scheme: Scheme,
    /// Host and optional port, lowercase, as used in image references and in
    /// a docker config's `auths` key (`harbor.example.com:8443`).
    pub host: String,
    /// Optional repository prefix without slashes at either end (`library`).
    pub prefix: Option<String>,
}

/// Why a server address is refused, said for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// Nothing but whitespace.
    #[error("server is empty")]
    Empty,
    /// A scheme other than `http` or `https`; holds it, shortened.
    #[error(
        "unsupported scheme {0:?}: use http:// for a plain-HTTP registry, https:// or no scheme for HTTPS"
    )]
    Scheme(String),
    /// Not a URL once the scheme is added, or no host; holds why.
    #[error("server is not a valid address: {0}")]
    Syntax(String),
    /// A part an address must not have: credentials, a query string or a
    /// fragment; holds which.
    #[error("server must not contain {0}")]
    Forbidden(&'static str),
    /// A path prefix component breaks the repository path grammar; holds
    /// the [`ReferenceError`](crate::reference::ReferenceError) text.
    #[error("server path prefix: {0}")]
    Prefix(String),
    /// Longer than an image name may be, so no image could be named under
    /// it.
    #[error("server is longer than {ADDRESS_MAX} characters (after the scheme)")]
    TooLong,
}

impl ServerError {
    /// The kind of problem, for [`FieldError::reason`](super::FieldError::reason).
    pub fn reason(&self) -> super::Reason {
        match self {
            Self::Empty => super::Reason::Empty,
            Self::TooLong => super::Reason::TooLong,
            Self::Scheme(_) | Self::Syntax(_) | Self::Forbidden(_) | Self::Prefix(_) => {
                super::Reason::InvalidServer
            }
        }
    }
}

/// An image name (`host[:port]/prefix/repository`) is at most 255
/// characters, so an address longer than that could never name an image.
const ADDRESS_MAX: usize = 255;

impl Server {
    /// Parses an address as a user types it, and normalizes it: no scheme
    /// means HTTPS, the host is lowercased, and the prefix loses its
    /// leading and trailing `/`.
    pub fn parse(input: &str) -> Result<Self, ServerError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(ServerError::Empty);
        }
        let (scheme, rest) = match input.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" => (Scheme::Http, rest),
                "https" => (Scheme::Https, rest),
                _ => return Err(ServerError::Scheme(excerpt(scheme).to_owned_string())),
            },
            None => (Scheme::Https, input),
        };
        if rest.len() > ADDRESS_MAX {
            return Err(ServerError::TooLong);
        }
        let scheme_str = match scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let url = url::Url::parse(&format!("{scheme_str}://{rest}"))
            .map_err(|e| ServerError::Syntax(e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ServerError::Forbidden(
                "credentials: use the username and password fields",
            ));
        }
        if url.query().is_some() {
            return Err(ServerError::Forbidden("a query string"));
        }
        if url.fragment().is_some() {
            return Err(ServerError::Forbidden("a fragment"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ServerError::Syntax("missing host".into()))?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        // Exactly one leading and one trailing '/' are cosmetic; '//' inside is an error.
        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        let path = path.strip_suffix('/').unwrap_or(path);
        let prefix = if path.is_empty() {
            None
        } else {
            for component in path.split('/') {
                validate_path_component(component)
                    .map_err(|e| ServerError::Prefix(e.to_string()))?;
            }
            Some(path.to_owned())
        };
        Ok(Self {
            scheme,
            host,
            prefix,
        })
    }

    /// `host[:port][/prefix]`: what a registry-relative path is joined onto.
    pub fn image_prefix(&self) -> String {
        match &self.prefix {
            Some(prefix) => format!("{}/{prefix}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Server {
    /// The normalized form with its scheme, as the API returns it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.image_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_users_type() {
        let cases = [
            (
                "dockerhub.qingcloud.com",
                "https://dockerhub.qingcloud.com",
                "dockerhub.qingcloud.com",
                Scheme::Https,
            ),
            (
                "http://139.198.16.232",
                "http://139.198.16.232",
                "139.198.16.232",
                Scheme::Http,
            ),
            (
                "https://harbor.openpitrix.io:8443/library",
                "https://harbor.openpitrix.io:8443/library",
                "harbor.openpitrix.io:8443/library",
                Scheme::Https,
            ),
            (
                "HTTPS://Harbor.Example.COM/library/",
                "https://harbor.example.com/library",
                "harbor.example.com/library",
                Scheme::Https,
            ),
            (
                "  127.0.0.1:5000  ",
                "https://127.0.0.1:5000",
                "127.0.0.1:5000",
                Scheme::Https,
            ),
            (
                "http://[::1]:5000",
                "http://[::1]:5000",
                "[::1]:5000",
                Scheme::Http,
            ),
            (
                "https://r.example:443",
                "https://r.example",
                "r.example",
                Scheme::Https,
            ),
            (
                "r.example/team/apps",
                "https://r.example/team/apps",
                "r.example/team/apps",
                Scheme::Https,
            ),
        ];
        for (input, normalized, prefix, scheme) in cases {
            let server = Server::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(server.to_string(), normalized, "{input}");
            assert_eq!(server.image_prefix(), prefix, "{input}");
            assert_eq!(server.scheme, scheme, "{input}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_registry_address() {
        for input in [
            "",
            "   ",
            "ftp://r.example",
            "https://user:pw@r.example",
            "r.example?x=1",
            "r.example/#frag",
            "r.example/Library",
            "r.example//x",
            "https://",
            "r.example:99999",
        ] {
            assert!(
                Server::parse(input).is_err(),
                "{input:?} should be rejected"
            );
        }
        let long = format!("https://{}.example", "a".repeat(250));
        assert_eq!(Server::parse(&long), Err(ServerError::TooLong));
        assert!(Server::parse(&format!("{}.example", "a".repeat(200))).is_ok());
    }
}
