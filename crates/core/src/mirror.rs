//! Records as mirrors of public registries: a record's `mirrorOf` entries
//! say which upstream registries (`docker.io`, `quay.io`, …) it mirrors —
//! a Harbor proxy-cache project, a Distribution pull-through cache — and
//! where the upstream's repositories are inside it. Which images an entry
//! takes, and where they go, is decided here; which record wins in a
//! namespace is the index's precedence rule, and the rewrite itself is
//! resolution's ([`crate::resolve`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::excerpt::excerpt;
use crate::reference::{QualifiedImage, canonical_domain, validate_path_component};
use crate::registry::server::Server;

/// `off` on a workload, its pod template (annotation) or a namespace
/// (label): its images are left as written, whatever mirrors exist.
pub const MIRRORS_SWITCH: &str = "registry-resolver.io/mirrors";

/// Most `mirrorOf` entries one record has.
pub const ENTRIES_MAX: usize = 16;
/// Most `excludes` one entry has.
pub const EXCLUDES_MAX: usize = 64;

/// One upstream registry a record mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorEntry {
    /// The registry mirrored, `host[:port]`; `docker.io`,
    /// `index.docker.io` and `registry-1.docker.io` are one (stored as
    /// `docker.io`).
    #[schema(example = "docker.io")]
    pub upstream: String,
    /// Where the upstream's repositories are in this registry, after the
    /// record's own path prefix: a Harbor proxy-cache project
    /// (`dockerhub-proxy`). None for a Distribution pull-through cache,
    /// which serves them at its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "dockerhub-proxy")]
    pub path_prefix: Option<String>,
    /// Repositories of the upstream left to it: a path (`library/busybox`)
    /// or the beginning of one and `*` (`internal/*`), as the normalized
    /// name has it (`nginx` is `library/nginx`). At most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["library/busybox", "internal/*"]))]
    pub excludes: Vec<String>,
    /// What happens to an image while the mirror's last check failed:
    /// pulled from the upstream as written (`upstream`, the default), or
    /// refused (`deny`, for clusters that cannot reach the upstream).
    #[serde(default)]
    pub fallback: Fallback,
    /// Before rewriting, ask the mirror for the image's manifest (a HEAD,
    /// which a proxy cache answers from the upstream); an image it cannot
    /// serve is handled as `fallback` says. Answers are cached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check_upstream: bool,
    /// How images reach the mirror: `rewrite` (the default: the webhook
    /// rewrites them, in the namespaces the record is authorized for), or
    /// `node` (every node's containerd is told to try the mirror first for
    /// the upstream, on every pod; names stay as written).
    #[serde(default)]
    pub mode: MirrorMode,
}

/// How images of an upstream reach its mirror.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MirrorMode {
    /// The webhook rewrites image names, namespace by namespace.
    #[default]
    Rewrite,
    /// containerd on every node tries the mirror first (`hosts.toml`).
    Node,
}

/// What happens to an image whose mirror is unhealthy.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Left as written: pulled from the upstream, with a warning.
    #[default]
    Upstream,
    /// Refused at admission.
    Deny,
}

/// What is wrong with one `mirrorOf` entry, by field relative to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// More entries than [`ENTRIES_MAX`].
    #[error("at most {ENTRIES_MAX} mirrored registries")]
    TooManyEntries,
    /// `upstream` empty.
    #[error("the mirrored registry is required, e.g. docker.io")]
    NoUpstream,
    /// `upstream` is not `host[:port]`; holds why.
    #[error("{0}")]
    Upstream(String),
    /// The same upstream twice (after Docker Hub's names are made one);
    /// holds it.
    #[error("{0} is mirrored by an earlier entry already")]
    Duplicate(String),
    /// A path prefix component breaks the repository grammar; holds why.
    #[error("path prefix: {0}")]
    PathPrefix(String),
    /// More excludes than [`EXCLUDES_MAX`].
    #[error("at most {EXCLUDES_MAX} excludes")]
    TooManyExcludes,
    /// An exclude that is not a repository path, or one and `*`; holds it,
    /// quoted.
    #[error(
        "{0} is not a repository path (library/busybox) or the beginning of one and * (internal/*)"
    )]
    Exclude(String),
}

/// Every problem with a record's `mirrorOf`, by field relative to it
/// (`[0].upstream`); the entries as they will be stored (upstream
/// canonical, prefix without slashes) when there is none.
pub fn validate(entries: &[MirrorEntry]) -> Result<Vec<MirrorEntry>, Vec<(String, MirrorError)>> {
    if entries.len() > ENTRIES_MAX {
        return Err(vec![(String::new(), MirrorError::TooManyEntries)]);
    }
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = |field: &str| format!("[{i}].{field}");
        let upstream = match upstream_host(&entry.upstream) {
            Ok(host) => host,
            Err(problem) => {
                problems.push((at("upstream"), problem));
                String::new()
            }
        };
        if !upstream.is_empty() && out.iter().any(|e: &MirrorEntry| e.upstream == upstream) {
            problems.push((at("upstream"), MirrorError::Duplicate(upstream.clone())));
        }
        let path_prefix = entry
            .path_prefix
            .as_deref()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty());
        if let Some(prefix) = path_prefix
            && let Err(problem) = prefix.split('/').try_for_each(validate_path_component)
        {
            problems.push((
                at("pathPrefix"),
                MirrorError::PathPrefix(problem.to_string()),
            ));
        }
        if entry.excludes.len() > EXCLUDES_MAX {
            problems.push((at("excludes"), MirrorError::TooManyExcludes));
        } else {
            for (j, exclude) in entry.excludes.iter().enumerate() {
                if !is_exclude(exclude) {
                    problems.push((
                        format!("[{i}].excludes[{j}]"),
                        MirrorError::Exclude(excerpt(exclude).quoted()),
                    ));
                }
            }
        }
        out.push(MirrorEntry {
            upstream,
            path_prefix: path_prefix.map(str::to_owned),
            excludes: entry.excludes.clone(),
            fallback: entry.fallback,
            check_upstream: entry.check_upstream,
            mode: entry.mode,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// `host[:port]` of an upstream as typed (a scheme is tolerated, a path is
/// not: mirrors are per registry), canonical.
fn upstream_host(typed: &str) -> Result<String, MirrorError> {
    if typed.trim().is_empty() {
        return Err(MirrorError::NoUpstream);
    }
    // Images name hosts only: a scheme typed with it says nothing here.
    let server = Server::parse(typed).map_err(|e| MirrorError::Upstream(e.to_string()))?;
    if server.prefix.is_some() {
        return Err(MirrorError::Upstream(
            "a mirrored registry is a host[:port], without a path".into(),
        ));
    }
    Ok(canonical_domain(&server.host).to_owned())
}

/// A repository path, or the beginning of one and a final `*`
/// (`internal/*`, `team-*`); `*` alone is not one (it would leave every
/// image upstream: remove the entry instead).
fn is_exclude(exclude: &str) -> bool {
    let (path, open) = match exclude.strip_suffix('*') {
        Some(path) => (path, true),
        None => (exclude, false),
    };
    let mut components: Vec<&str> = path.split('/').collect();
    if open {
        // The last component may be cut short (`team-`), or empty after a
        // whole one (`internal/`).
        let last = components.pop().unwrap_or_default();
        let cut_short = last
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && last
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !(cut_short || last.is_empty() && !components.is_empty()) {
            return false;
        }
    }
    (open || !components.is_empty())
        && components
            .iter()
            .all(|component| validate_path_component(component).is_ok())
}

impl MirrorEntry {
    /// Whether this entry leaves `path` (normalized, `library/nginx`) to
    /// the upstream.
    pub fn excludes(&self, path: &str) -> bool {
        self.excludes
            .iter()
            .any(|exclude| match exclude.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == exclude,
            })
    }

    /// Where `image` is in the mirror whose address is `mirror_prefix`
    /// (`host[:port][/prefix]`, the record's).
    pub fn rewrite(
        &self,
        image: &QualifiedImage<'_>,
        mirror_prefix: &str,
    ) -> Result<String, crate::reference::ReferenceError> {
        match &self.path_prefix {
            Some(prefix) => image.join(&format!("{mirror_prefix}/{prefix}")),
            None => image.join(mirror_prefix),
        }
    }

    /// Where the upstream's repositories begin in the mirror, as a path
    /// under its `/v2/`: the record's own path prefix, then this entry's;
    /// `None` at the root (a pull-through cache).
    pub fn repository_prefix(&self, record_prefix: Option<&str>) -> Option<String> {
        match (record_prefix, self.path_prefix.as_deref()) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
            (Some(record), Some(entry)) => Some(format!("{record}/{entry}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(upstream: &str) -> MirrorEntry {
        MirrorEntry {
            upstream: upstream.into(),
            path_prefix: None,
            excludes: vec![],
            fallback: Fallback::Upstream,
            check_upstream: false,
            mode: MirrorMode::Rewrite,
        }
    }

    #[test]
    fn docker_hubs_names_are_one_upstream_and_a_path_is_refused() {
        let given = [
            MirrorEntry {
                path_prefix: Some("/dockerhub-proxy/".into()),
                ..entry("index.docker.io")
            },
            entry("https://Quay.io"),
        ];
        let stored = validate(&given).expect("valid");
        assert_eq!(stored[0].upstream, "docker.io");
        assert_eq!(stored[0].path_prefix.as_deref(), Some("dockerhub-proxy"));
        assert_eq!(stored[1].upstream, "quay.io");

        let problems = validate(&[
            entry("docker.io"),
            entry("registry-1.docker.io"),
            entry("quay.io/org"),
            entry(" "),
            MirrorEntry {
                path_prefix: Some("Proxy".into()),
                excludes: vec![
                    "library/busybox".into(),
                    "internal/*".into(),
                    "team-*".into(),
                    "*".into(),
                    "Bad".into(),
                ],
                ..entry("ghcr.io")
            },
        ])
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "[1].upstream",
                "[2].upstream",
                "[3].upstream",
                "[4].pathPrefix",
                "[4].excludes[3]",
                "[4].excludes[4]"
            ]
        );
        assert_eq!(problems[0].1, MirrorError::Duplicate("docker.io".into()));
    }

    #[test]
    fn excludes_keep_repositories_upstream_by_path_or_beginning() {
        let hub = MirrorEntry {
            excludes: vec![
                "library/busybox".into(),
                "internal/*".into(),
                "team-*".into(),
            ],
            ..entry("docker.io")
        };
        for (path, kept) in [
            ("library/busybox", true),
            ("library/busybox-extra", false),
            ("internal/app", true),
            ("internal", false),
            ("team-a/app", true),
            ("library/nginx", false),
        ] {
            assert_eq!(hub.excludes(path), kept, "{path}");
        }
    }

    #[test]
    fn an_image_goes_under_the_mirror_and_its_prefix_with_tag_and_digest() {
        let harbor = MirrorEntry {
            path_prefix: Some("dockerhub-proxy".into()),
            ..entry("docker.io")
        };
        let image = QualifiedImage::parse("nginx:1.25").expect("image");
        assert_eq!(
            harbor.rewrite(&image, "harbor.example.com").as_deref(),
            Ok("harbor.example.com/dockerhub-proxy/library/nginx:1.25")
        );
        let cache = entry("quay.io");
        let image = QualifiedImage::parse(
            "quay.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .expect("image");
        assert_eq!(
            cache.rewrite(&image, "cache.local:5000").as_deref(),
            Ok(
                "cache.local:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            )
        );
    }

    /// The path the upstream's repositories start at in the mirror: what a
    /// check asks under and a node's `hosts.toml` names after `/v2/`.
    #[test]
    fn the_repository_prefix_is_the_records_path_then_the_entrys() {
        let harbor = MirrorEntry {
            path_prefix: Some("dockerhub-proxy".into()),
            ..entry("docker.io")
        };
        assert_eq!(
            harbor.repository_prefix(None).as_deref(),
            Some("dockerhub-proxy")
        );
        assert_eq!(
            harbor.repository_prefix(Some("team")).as_deref(),
            Some("team/dockerhub-proxy")
        );
        assert_eq!(
            entry("quay.io").repository_prefix(Some("team")).as_deref(),
            Some("team")
        );
        assert_eq!(entry("quay.io").repository_prefix(None), None);
    }
}
