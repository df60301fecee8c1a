//! The image reference grammar, as far as registry-relative paths need it.
//!
//! A *registry-relative* image starts with `/` (`/mysql/mysql:5.6`): the user
//! names a repository path inside a registry and leaves the registry to us.
//! Anything else (`nginx`, `docker.io/x`, `localhost:5000/x`) is an ordinary
//! reference that we never touch.
//!
//! The rules follow the distribution reference grammar
//! (`github.com/distribution/reference`): lowercase path components joined by
//! `/`, an optional `:tag`, an optional `@algorithm:hex` digest. We parse the
//! grammar ourselves rather than through a general reference parser because
//! the webhook must tell a person *which* part is wrong, and a general parser
//! both normalises (`docker.io/library/…`) and answers only "invalid format".

use crate::excerpt::excerpt;
use std::fmt;

/// The longest repository name (host and path) the distribution grammar accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;

/// Does this image string ask us to pick the registry?
#[inline]
pub fn is_registry_relative(image: &str) -> bool {
    image.starts_with('/')
}

/// A parsed registry-relative image: `/path[:tag][@digest]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelativeImage<'a> {
    /// Repository path without the leading `/`, e.g. `mysql/mysql`.
    pub path: &'a str,
    /// The tag after `:`, when written; never defaulted here.
    pub tag: Option<&'a str>,
    /// The digest after `@` (`sha256:…`), when written.
    pub digest: Option<&'a str>,
}

/// What is wrong with an image path, phrased for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The image does not start with `/`: an ordinary reference, not ours
    /// to resolve.
    #[error("image path must start with '/' to be registry-relative")]
    NotRelative,
    /// No repository after the `/`, only (at most) a tag or a digest.
    #[error("image path is empty: name a repository after '/'")]
    EmptyPath,
    /// A path component is empty: `//`, or a trailing `/`.
    #[error("image path has an empty component ('//' or a trailing '/')")]
    EmptyComponent,
    /// A path component has an uppercase letter (repository names are
    /// lowercase); holds the component, shortened.
    #[error("repository path component {0:?} must be lowercase")]
    Uppercase(String),
    /// A path component has a character or separator the grammar does
    /// not allow; holds it, shortened.
    #[error(
        "repository path component {0:?} is invalid: use lowercase letters, digits and single '.', '_', '__' or '-' separators between them"
    )]
    InvalidComponent(String),
    /// The tag is too long or has a character a tag may not have; holds
    /// it, shortened.
    #[error(
        "tag {0:?} is invalid: up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    )]
    InvalidTag(String),
    /// A `:` with nothing after it.
    #[error("tag is empty after ':'")]
    EmptyTag,
    /// The digest is not `algorithm:hex` with the length its algorithm
    /// needs; holds it, shortened.
    #[error("digest {0:?} is invalid: expected algorithm:hex such as sha256:<64 hex digits>")]
    InvalidDigest(String),
    /// Registry address and path together exceed
    /// [`NAME_TOTAL_LENGTH_MAX`]; holds the name, shortened. Only
    /// [`RelativeImage::join`] finds it: it depends on the registry.
    #[error("repository name {0:?} is longer than 255 characters")]
    NameTooLong(String),
}

impl<'a> RelativeImage<'a> {
    /// Parses `/path[:tag][@digest]`, checking every part against the grammar.
    pub fn parse(image: &'a str) -> Result<Self, ReferenceError> {
        let rest = image.strip_prefix('/').ok_or(ReferenceError::NotRelative)?;
        Self::parse_path(rest)
    }

    /// Parses `path[:tag][@digest]` (no leading `/`).
    fn parse_path(rest: &'a str) -> Result<Self, ReferenceError> {
        if rest.is_empty() {
            return Err(ReferenceError::EmptyPath);
        }
        let (name_and_tag, digest) = match rest.split_once('@') {
            Some((before, digest)) => {
                validate_digest(digest)?;
                (before, Some(digest))
            }
            None => (rest, None),
        };
        // A tag can only follow the last path component: a ':' before the last
        // '/' is part of a component and is reported as an invalid component.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name_and_tag[last_slash..].find(':') {
            Some(colon) => {
                let at = last_slash + colon;
                let tag = &name_and_tag[at + 1..];
                validate_tag(tag)?;
                (&name_and_tag[..at], Some(tag))
            }
            None => (name_and_tag, None),
        };
        if path.is_empty() {
            return Err(ReferenceError::EmptyPath);
        }
        for component in path.split('/') {
            validate_path_component(component)?;
        }
        Ok(Self { path, tag, digest })
    }

    /// Joins the image onto a registry address `host[:port][/prefix]`,
    /// keeping tag and digest exactly as written.
    pub fn join(&self, registry_address: &str) -> Result<String, ReferenceError> {
        let name_len = registry_address.len() + 1 + self.path.len();
        if name_len > NAME_TOTAL_LENGTH_MAX {
            let name = format!("{registry_address}/{}", self.path);
            return Err(ReferenceError::NameTooLong(
                excerpt(&name).to_owned_string(),
            ));
        }
        let mut out = String::with_capacity(
            name_len + self.tag.map_or(0, |t| t.len() + 1) + self.digest.map_or(0, |d| d.len() + 1),
        );
        out.push_str(registry_address);
        out.push('/');
        out.push_str(self.path);
        if let Some(tag) = self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = self.digest {
            out.push('@');
            out.push_str(digest);
        }
        Ok(out)
    }
}

impl fmt::Display for RelativeImage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.path)?;
        if let Some(tag) = self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker Hub's canonical name, and the other names it goes by.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];

/// The registry a host names, with Docker Hub's other names
/// (`index.docker.io`, `registry-1.docker.io`) as `docker.io`.
pub fn canonical_domain(domain: &str) -> &str {
    if DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(domain))
        || domain.eq_ignore_ascii_case(DOCKER_HUB)
    {
        DOCKER_HUB
    } else {
        domain
    }
}

/// An ordinary (not registry-relative) reference, normalized as the
/// reference grammar does (`ParseNormalizedNamed`): `nginx` is
/// `docker.io/library/nginx`, `bitnami/nginx` is `docker.io/bitnami/nginx`;
/// a first component is a registry only if it has a `.` or a `:`, or is
/// `localhost`. Docker Hub's other names are `docker.io` too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedImage<'a> {
    /// The registry, canonical (see [`canonical_domain`]).
    pub domain: &'a str,
    /// The repository inside it, `library/` added for Docker Hub's
    /// official images.
    pub path: std::borrow::Cow<'a, str>,
    /// The tag, when written; never defaulted here.
    pub tag: Option<&'a str>,
    /// The digest, when written.
    pub digest: Option<&'a str>,
}

impl<'a> QualifiedImage<'a> {
    /// Parses and normalizes `image`; a registry-relative image is not one.
    pub fn parse(image: &'a str) -> Result<Self, ReferenceError> {
        if is_registry_relative(image) || image.is_empty() {
            return Err(ReferenceError::EmptyPath);
        }
        let (domain, rest) = match image.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (canonical_domain(first), rest)
            }
            _ => (DOCKER_HUB, image),
        };
        let parsed = RelativeImage::parse_path(rest)?;
        let path = if domain == DOCKER_HUB && !parsed.path.contains('/') {
            std::borrow::Cow::Owned(format!("library/{}", parsed.path))
        } else {
            std::borrow::Cow::Borrowed(parsed.path)
        };
        Ok(Self {
            domain,
            path,
            tag: parsed.tag,
            digest: parsed.digest,
        })
    }

    /// The same image under another registry address
    /// (`host[:port][/prefix]`), tag and digest kept.
    pub fn join(&self, registry_address: &str) -> Result<String, ReferenceError> {
        RelativeImage {
            path: &self.path,
            tag: self.tag,
            digest: self.digest,
        }
        .join(registry_address)
    }
}

impl fmt::Display for QualifiedImage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
pub fn validate_path_component(component: &str) -> Result<(), ReferenceError> {
    if component.is_empty() {
        return Err(ReferenceError::EmptyComponent);
    }
    if component.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(
            excerpt(component).to_owned_string(),
        ));
    }
    if is_path_component(component) {
        Ok(())
    } else {
        Err(ReferenceError::InvalidComponent(
            excerpt(component).to_owned_string(),
        ))
    }
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).is_some_and(|&b| alnum(b)) {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    if tag.is_empty() {
        return Err(ReferenceError::EmptyTag);
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = bytes.len() <= TAG_LENGTH_MAX
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag(excerpt(tag).to_owned_string()))
    }
}

/// `algorithm:hex`, with the lengths go-digest enforces for sha256 and sha512.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let invalid = || ReferenceError::InvalidDigest(excerpt(digest).to_owned_string());
    let (algorithm, hex) = digest.split_once(':').ok_or_else(invalid)?;
    let algorithm_ok = algorithm.split(['+', '.', '_', '-']).all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric())
    });
    let hex_ok = match algorithm {
        "sha256" => hex.len() == 64 && hex.bytes().all(is_lower_hex),
        "sha512" => hex.len() == 128 && hex.bytes().all(is_lower_hex),
        _ => hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
    };
    if algorithm_ok && hex_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_and_joins_valid_paths() {
        let with_digest = format!("/library/nginx@{DIGEST}");
        let with_both = format!("/library/nginx:1.27@{DIGEST}");
        let cases: Vec<(&str, &str, String)> = vec![
            (
                "/mysql/mysql:5.6",
                "dockerhub.qingcloud.com",
                "dockerhub.qingcloud.com/mysql/mysql:5.6".into(),
            ),
            ("/nginx", "139.198.16.232", "139.198.16.232/nginx".into()),
            (
                "/a/b/c:v1.0-rc.1",
                "harbor.example.com:8443/library",
                "harbor.example.com:8443/library/a/b/c:v1.0-rc.1".into(),
            ),
            (
                &with_digest,
                "r.example",
                format!("r.example/library/nginx@{DIGEST}"),
            ),
            (
                &with_both,
                "r.example",
                format!("r.example/library/nginx:1.27@{DIGEST}"),
            ),
            (
                "/a__b/c-d/e.f/g---h:Latest_1",
                "[::1]:5000",
                "[::1]:5000/a__b/c-d/e.f/g---h:Latest_1".into(),
            ),
            (
                "/docker.io/library/busybox:1",
                "proxy.example",
                "proxy.example/docker.io/library/busybox:1".into(),
            ),
        ];
        for (image, registry, want) in cases {
            let parsed = RelativeImage::parse(image).unwrap_or_else(|e| panic!("{image}: {e}"));
            assert_eq!(
                parsed.join(registry).as_deref(),
                Ok(want.as_str()),
                "{image}"
            );
            assert_eq!(parsed.to_string(), image, "display round-trips");
        }
    }

    #[test]
    fn rejects_invalid_paths_with_specific_errors() {
        use ReferenceError::*;
        let cases: Vec<(&str, ReferenceError)> = vec![
            ("nginx", NotRelative),
            ("/", EmptyPath),
            ("//x", EmptyComponent),
            ("/a//b", EmptyComponent),
            ("/a/", EmptyComponent),
            ("/MySQL/x", Uppercase("MySQL".into())),
            ("/a:b:c", InvalidTag("b:c".into())),
            ("/a:", EmptyTag),
            ("/:tag", EmptyPath),
            ("/a:b/c", InvalidComponent("a:b".into())),
            ("/-a/b", InvalidComponent("-a".into())),
            ("/a./b", InvalidComponent("a.".into())),
            ("/a..b", InvalidComponent("a..b".into())),
            ("/a___b", InvalidComponent("a___b".into())),
            ("/a b", InvalidComponent("a b".into())),
            ("/a:.tag", InvalidTag(".tag".into())),
            ("/a@sha256:abc", InvalidDigest("sha256:abc".into())),
            ("/a@md5", InvalidDigest("md5".into())),
            (
                "/a@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                InvalidDigest(
                    "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
                        .into(),
                ),
            ),
        ];
        for (image, want) in cases {
            assert_eq!(RelativeImage::parse(image), Err(want), "{image}");
        }
        let long_tag = format!("/a:{}", "t".repeat(129));
        assert!(matches!(
            RelativeImage::parse(&long_tag),
            Err(InvalidTag(_))
        ));
    }

    #[test]
    fn join_enforces_total_name_length() {
        let path = format!("/{}", "a".repeat(250));
        let parsed = RelativeImage::parse(&path).expect("valid path");
        assert!(matches!(
            parsed.join("registry.example.com"),
            Err(ReferenceError::NameTooLong(_))
        ));
        assert!(parsed.join("r").is_ok());
    }

    #[test]
    fn only_leading_slash_is_registry_relative() {
        for (image, relative) in [
            ("/mysql/mysql:5.6", true),
            ("nginx", false),
            ("docker.io/library/nginx", false),
            ("localhost:5000/x", false),
            ("", false),
        ] {
            assert_eq!(is_registry_relative(image), relative, "{image}");
        }
    }

    /// The reference grammar's normalization (`ParseNormalizedNamed` of
    /// distribution/reference), case by case: which registry an ordinary
    /// image names, and its repository there.
    #[test]
    fn an_ordinary_image_is_normalized_as_the_reference_grammar_does() {
        /// An image as written, and its registry, path, tag and digest.
        type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let digest = DIGEST;
        let cases: &[Case] = &[
            ("nginx", "docker.io", "library/nginx", None, None),
            (
                "nginx:1.25",
                "docker.io",
                "library/nginx",
                Some("1.25"),
                None,
            ),
            ("library/nginx", "docker.io", "library/nginx", None, None),
            (
                "bitnami/nginx:1",
                "docker.io",
                "bitnami/nginx",
                Some("1"),
                None,
            ),
            ("docker.io/nginx", "docker.io", "library/nginx", None, None),
            (
                "docker.io/library/nginx",
                "docker.io",
                "library/nginx",
                None,
                None,
            ),
            (
                "index.docker.io/library/nginx:1",
                "docker.io",
                "library/nginx",
                Some("1"),
                None,
            ),
            (
                "registry-1.docker.io/bitnami/redis",
                "docker.io",
                "bitnami/redis",
                None,
                None,
            ),
            ("localhost:5000/x", "localhost:5000", "x", None, None),
            ("localhost/x", "localhost", "x", None, None),
            ("quay.io/a/b", "quay.io", "a/b", None, None),
            ("quay.io/a/b:v1", "quay.io", "a/b", Some("v1"), None),
            (
                "registry.k8s.io/pause:3.9",
                "registry.k8s.io",
                "pause",
                Some("3.9"),
                None,
            ),
            (
                "10.0.0.9:5000/team/app:2",
                "10.0.0.9:5000",
                "team/app",
                Some("2"),
                None,
            ),
            // A first component without '.', ':' or "localhost" is a path.
            ("foo/bar", "docker.io", "foo/bar", None, None),
            // Without a '/', "host:5000" is an image and its tag.
            (
                "foo.bar:5000",
                "docker.io",
                "library/foo.bar",
                Some("5000"),
                None,
            ),
        ];
        for (image, domain, path, tag, want_digest) in cases {
            let parsed = QualifiedImage::parse(image).expect(image);
            assert_eq!(
                (parsed.domain, &*parsed.path, parsed.tag, parsed.digest),
                (*domain, *path, *tag, *want_digest),
                "{image}"
            );
        }
        let pinned = format!("index.docker.io/library/nginx:1@{digest}");
        let parsed = QualifiedImage::parse(&pinned).expect("pinned");
        assert_eq!(
            (parsed.domain, &*parsed.path, parsed.tag, parsed.digest),
            ("docker.io", "library/nginx", Some("1"), Some(digest))
        );
        assert_eq!(
            parsed.to_string(),
            format!("docker.io/library/nginx:1@{digest}")
        );
        // Joined onto a mirror: the tag and digest kept as written.
        assert_eq!(
            parsed.join("harbor.example.com/dockerhub-proxy"),
            Ok(format!(
                "harbor.example.com/dockerhub-proxy/library/nginx:1@{digest}"
            ))
        );
        // What the grammar refuses is not an image to route.
        for bad in [
            "",
            "/mysql",
            "Nginx",
            "docker.io/",
            "quay.io/a//b",
            "nginx:",
            "nginx@sha256:12",
        ] {
            assert!(QualifiedImage::parse(bad).is_err(), "{bad:?}");
        }
    }
}
