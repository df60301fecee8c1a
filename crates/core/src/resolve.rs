//! Pure resolution: a pod template's images, its annotations and the
//! request's namespace, against the index → the edits to make, or why not.
//!
//! No I/O happens here. The webhook, the `resolve` command and the API's
//! resolve preview all call these functions, so they can never disagree.

use crate::excerpt::excerpt;
use std::fmt;

use crate::index::{Index, IndexedRegistry, NamespaceView};
use crate::mirror::{Fallback, MIRRORS_SWITCH};
use crate::reference::{QualifiedImage, RelativeImage, is_registry_relative};

/// Picks the registry for every registry-relative image in the pod template.
pub const REGISTRY_ANNOTATION: &str = "registry-resolver.io/registry";
/// `registry-resolver.io/registry.<container>`: one container's registry.
/// Only usable while `registry.<container>` fits the 63-character limit of
/// an annotation name, i.e. for container names up to 54 characters.
pub const CONTAINER_ANNOTATION_PREFIX: &str = "registry-resolver.io/registry.";
/// `name=registry,name=registry`: per-container registries for any name length.
pub const CONTAINER_REGISTRIES_ANNOTATION: &str = "registry-resolver.io/container-registries";
/// `"true"`: pin this template's resolved tags to digests.
pub const PIN_DIGEST_ANNOTATION: &str = "registry-resolver.io/pin-digest";
/// Written by us: JSON object of container name → the image as written.
pub const ORIGINAL_IMAGES_ANNOTATION: &str = "registry-resolver.io/original-images";

/// Longest container name whose per-container annotation name is valid.
pub const CONTAINER_ANNOTATION_NAME_MAX: usize = 63 - "registry.".len();

pub use crate::pod_template::Annotations;

/// The pod spec lists that hold containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerList {
    /// `spec.containers`: the app containers.
    Containers,
    /// `spec.initContainers`, run before the app containers.
    InitContainers,
    /// `spec.ephemeralContainers`, added to a running Pod (`kubectl debug`).
    EphemeralContainers,
}

impl ContainerList {
    /// Every list, in the order images are resolved and reported: init
    /// containers first.
    pub const ALL: [ContainerList; 3] = [
        ContainerList::InitContainers,
        ContainerList::Containers,
        ContainerList::EphemeralContainers,
    ];

    /// The pod spec field holding this list.
    pub fn field(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::InitContainers => "initContainers",
            Self::EphemeralContainers => "ephemeralContainers",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Containers => "container",
            Self::InitContainers => "init container",
            Self::EphemeralContainers => "ephemeral container",
        }
    }
}

/// One container's image, and where the container stands in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerImage<'a> {
    /// The list holding the container.
    pub list: ContainerList,
    /// Its position in that list: the index a patch addresses.
    pub index: usize,
    /// The container's name; empty when it has none.
    pub name: &'a str,
    /// The image as written.
    pub image: &'a str,
}

/// What resolution reads of one pod template.
#[derive(Debug, Clone, Default)]
pub struct PodTemplate<'a> {
    /// The pod template's `metadata.annotations`, read before the
    /// workload's.
    pub template_annotations: Option<&'a Annotations<'a>>,
    /// The workload's own `metadata.annotations` (for a Pod, the same map).
    pub workload_annotations: Option<&'a Annotations<'a>>,
    /// Every container that has an image, of every list, init containers
    /// first.
    pub containers: Vec<ContainerImage<'a>>,
    /// The pull Secrets the template already names: none is added twice.
    pub image_pull_secrets: Vec<&'a str>,
    /// The object's controller is a workload kind we handle (a ReplicaSet
    /// of a Deployment, a Pod of a ReplicaSet, a Job of a CronJob): that
    /// workload's admission already decided its mirrors, and the template
    /// it copies must stay equal to it (a Deployment whose ReplicaSet's
    /// template differs makes new ReplicaSets without end).
    pub made_by_workload: bool,
}

/// Where the request happens.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The object's namespace: whose authorized registries and default
    /// apply.
    pub namespace: &'a str,
    /// False on a Pod UPDATE: the API server rejects changes to
    /// `imagePullSecrets` there, so we may rewrite images only.
    pub pull_secrets_mutable: bool,
}

/// Why a registry was chosen; said in warnings and denials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The container's own annotation
    /// (`registry-resolver.io/registry.<container>`); holds its key.
    ContainerAnnotation(String),
    /// The container's entry in [`CONTAINER_REGISTRIES_ANNOTATION`].
    ContainerRegistriesAnnotation,
    /// [`REGISTRY_ANNOTATION`] on the pod template.
    TemplateAnnotation,
    /// [`REGISTRY_ANNOTATION`] on the workload (a Deployment's own
    /// metadata, say).
    WorkloadAnnotation,
    /// Named by an API request (the resolve preview), not by the object.
    Request,
    /// No registry named: the namespace's default.
    NamespaceDefault,
    /// Not registry-relative: the image's registry (`docker.io`, held) is
    /// one the chosen record mirrors.
    Mirror(String),
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ContainerAnnotation(key) => write!(f, "annotation {key}"),
            Self::ContainerRegistriesAnnotation => {
                write!(f, "annotation {CONTAINER_REGISTRIES_ANNOTATION}")
            }
            Self::TemplateAnnotation => write!(f, "pod template annotation {REGISTRY_ANNOTATION}"),
            Self::WorkloadAnnotation => write!(f, "workload annotation {REGISTRY_ANNOTATION}"),
            Self::Request => f.write_str("the request"),
            Self::NamespaceDefault => f.write_str("the namespace default"),
            Self::Mirror(upstream) => write!(f, "its mirror of {upstream}"),
        }
    }
}

/// One image rewritten: where, from what, to what, and why that registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The list holding the container.
    pub list: ContainerList,
    /// The container's position in that list.
    pub index: usize,
    /// The container's name, as warnings and the original-images
    /// annotation give it.
    pub container: String,
    /// The image as written (`/mysql/mysql:5.6`).
    pub original: String,
    /// The full reference it becomes; pinning appends the digest here.
    pub resolved: String,
    /// The registry chosen, by record name.
    pub registry: String,
    /// Why that registry.
    pub choice: Choice,
    /// Set when the tag is to be pinned to a digest before admission.
    pub pin: Option<PinTarget>,
    /// Set when the mirror is to be asked for the image before admission
    /// (its entry's `checkUpstream`).
    pub check: Option<MirrorCheck>,
    /// The chosen record's pull Secret, if it has credentials.
    pub pull_secret: Option<String>,
}

/// A mirror to ask for an image before its rewrite holds, and what to do
/// when it cannot serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorCheck {
    /// The manifest to look up at the mirror (the tag, else the digest,
    /// else `latest`).
    pub target: PinTarget,
    /// The upstream the image is left to on `fallback: upstream`.
    pub upstream: String,
    /// What the entry says to do when the mirror cannot serve it.
    pub fallback: Fallback,
}

/// A manifest to look up: where, and by which tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PinTarget {
    /// The record, by name: whose address, credentials and TLS options the
    /// lookup uses.
    pub registry: String,
    /// The registry's record version, so a cached digest never outlives an edit.
    pub version: i64,
    /// Repository inside the registry, path prefix included.
    pub repository: String,
    /// The tag whose digest is wanted; `latest` when the image named none.
    pub tag: String,
}

/// What resolution changes in one pod template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// One rewrite per registry-relative image, and per image pulled
    /// through a mirror, in container order.
    pub rewrites: Vec<Rewrite>,
    /// Pull secrets to append to `imagePullSecrets`, in container order.
    pub add_pull_secrets: Vec<String>,
    /// Said beside the edits: images left upstream because their mirror
    /// is unhealthy.
    pub warnings: Vec<String>,
    /// What each mirror did, for the metrics.
    pub mirror_uses: Vec<MirrorUse>,
}

/// What a mirror did with one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorUse {
    /// The record, by name.
    pub registry: String,
    /// What happened.
    pub outcome: MirrorOutcome,
}

/// What happened to an image a mirror takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MirrorOutcome {
    /// Pulled through the mirror.
    Rewritten,
    /// Left to the upstream: the mirror is unhealthy (`fallback: upstream`).
    Fallback,
    /// Refused: the mirror is unhealthy (`fallback: deny`).
    Denied,
}

impl MirrorOutcome {
    /// The word metrics label it by.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rewritten => "rewritten",
            Self::Fallback => "fallback",
            Self::Denied => "denied",
        }
    }
}

impl Resolution {
    /// Whether nothing changes: no rewrite and no pull Secret to add.
    pub fn is_empty(&self) -> bool {
        self.rewrites.is_empty() && self.add_pull_secrets.is_empty()
    }
}

/// Why an image cannot be admitted: a fixed set, for metrics, logs and
/// API clients that translate it (the message says it for a person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    /// No registry named and no default, or the named one does not exist.
    NoRegistry,
    /// The registry exists but is not authorized for the namespace.
    NotAuthorized,
    /// The image or a registry annotation is not well-formed.
    InvalidReference,
    /// The registry needs a pull secret the write may not add (Pod update).
    PullSecretMissing,
    /// The tag could not be pinned to a digest (policy `deny`).
    PinFailed,
    /// The image's mirror is unhealthy and its entry says `fallback: deny`.
    MirrorUnavailable,
}

impl DenialReason {
    /// The reason as metrics label it and logs say it (`no_registry`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRegistry => "no_registry",
            Self::NotAuthorized => "not_authorized",
            Self::InvalidReference => "invalid_reference",
            Self::PullSecretMissing => "pull_secret_missing",
            Self::PinFailed => "pin_failed",
            Self::MirrorUnavailable => "mirror_unavailable",
        }
    }
}

/// One problem with one image: its reason, and what to tell a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    /// Which kind of problem, for metrics and logs.
    pub reason: DenialReason,
    /// What is wrong and what to do about it, for the person who wrote
    /// the image.
    pub message: String,
}

impl Problem {
    fn new(reason: DenialReason, message: String) -> Self {
        Self { reason, message }
    }
}

/// Every reason the pod template cannot be admitted, one per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Denial {
    /// One message per image that cannot be admitted, each naming its
    /// container.
    pub problems: Vec<String>,
    /// The first problem's reason.
    pub reason: DenialReason,
    /// What mirrors did before the denial, for the metrics.
    pub mirror_uses: Vec<MirrorUse>,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

/// One image expanded against one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded<'i> {
    /// The full reference: `host[:port][/prefix]/path[:tag][@digest]`.
    pub image: String,
    /// The registry it was expanded against.
    pub registry: &'i IndexedRegistry,
    /// What a digest lookup needs; `None` when the image names a digest.
    pub pin: Option<PinTarget>,
}

/// Resolves every registry-relative image of a pod template.
pub fn resolve(
    template: &PodTemplate<'_>,
    scope: Scope<'_>,
    index: &Index,
) -> Result<Resolution, Denial> {
    let mut resolution = Resolution::default();
    let mut problems = Vec::new();
    let mut reason = None;
    let pin_requested = template
        .template_annotations
        .and_then(|a| a.get(PIN_DIGEST_ANNOTATION))
        .or_else(|| {
            template
                .workload_annotations
                .and_then(|a| a.get(PIN_DIGEST_ANNOTATION))
        })
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    // Mirrors apply where the writer may add the pull Secret (never on a
    // Pod update: changing a running container's image restarts it), and
    // where neither the object nor the namespace switched them off.
    let mirrors = index.has_mirrors()
        && scope.pull_secrets_mutable
        && !template.made_by_workload
        && !mirrors_switched_off(template, scope.namespace, index);
    for container in &template.containers {
        // Formatted only when there is a problem to report.
        let what = || format!("{} {:?}", container.list.noun(), excerpt(container.name));
        if !is_registry_relative(container.image) {
            if mirrors {
                match through_mirror(container.image, scope.namespace, index) {
                    None => {}
                    Some(Mirrored::Rewrite {
                        registry,
                        image,
                        upstream,
                        check,
                    }) => {
                        add_pull_secret(registry, template, &mut resolution);
                        resolution.mirror_uses.push(MirrorUse {
                            registry: registry.name.clone(),
                            outcome: MirrorOutcome::Rewritten,
                        });
                        resolution.rewrites.push(Rewrite {
                            list: container.list,
                            index: container.index,
                            container: container.name.to_owned(),
                            original: container.image.to_owned(),
                            resolved: image,
                            registry: registry.name.clone(),
                            choice: Choice::Mirror(upstream.to_owned()),
                            pin: None,
                            check,
                            pull_secret: registry.pull_secret.clone(),
                        });
                    }
                    Some(Mirrored::Unhealthy {
                        registry,
                        upstream,
                        fallback,
                        why,
                    }) => {
                        let said = mirror_unavailable(
                            &format!("{}: ", what()),
                            container.image,
                            &registry.name,
                            why,
                            upstream,
                            fallback,
                        );
                        let outcome = match said {
                            Ok(warning) => {
                                resolution.warnings.push(warning);
                                MirrorOutcome::Fallback
                            }
                            Err(denial) => {
                                reason.get_or_insert(DenialReason::MirrorUnavailable);
                                problems.push(denial);
                                MirrorOutcome::Denied
                            }
                        };
                        resolution.mirror_uses.push(MirrorUse {
                            registry: registry.name.clone(),
                            outcome,
                        });
                    }
                }
            }
            continue;
        }
        let choice = match choose_registry(template, container.name) {
            Ok(choice) => choice,
            Err(problem) => {
                reason.get_or_insert(DenialReason::InvalidReference);
                problems.push(format!("{}: {problem}", what()));
                continue;
            }
        };
        let (registry_name, choice) = match choice {
            Some((name, choice)) => (Some(name), choice),
            None => (None, Choice::NamespaceDefault),
        };
        match expand(
            container.image,
            registry_name,
            &choice,
            scope.namespace,
            index,
            pin_requested,
        ) {
            Ok(expanded) => {
                if let Some(secret) = &expanded.registry.pull_secret
                    && !template.image_pull_secrets.contains(&secret.as_str())
                    && !resolution.add_pull_secrets.contains(secret)
                {
                    if scope.pull_secrets_mutable {
                        add_pull_secret(expanded.registry, template, &mut resolution);
                    } else {
                        reason.get_or_insert(DenialReason::PullSecretMissing);
                        problems.push(format!(
                            "{}: registry {:?} needs pull secret {secret:?}, but imagePullSecrets cannot change on a Pod update; add it to the pod's imagePullSecrets when creating the pod",
                            what(),
                            expanded.registry.name
                        ));
                        continue;
                    }
                }
                resolution.rewrites.push(Rewrite {
                    list: container.list,
                    index: container.index,
                    container: container.name.to_owned(),
                    original: container.image.to_owned(),
                    resolved: expanded.image,
                    registry: expanded.registry.name.clone(),
                    choice,
                    pin: expanded.pin,
                    check: None,
                    pull_secret: expanded.registry.pull_secret.clone(),
                });
            }
            Err(problem) => {
                reason.get_or_insert(problem.reason);
                problems.push(format!("{}: {problem}", what()));
            }
        }
    }
    match reason {
        None => Ok(resolution),
        // Nothing of a refused object was pulled through a mirror.
        Some(reason) => Err(Denial {
            problems,
            reason,
            mirror_uses: resolution
                .mirror_uses
                .into_iter()
                .filter(|used| used.outcome == MirrorOutcome::Denied)
                .collect(),
        }),
    }
}

/// Adds `registry`'s pull Secret unless the template names it or it is
/// added already.
fn add_pull_secret(
    registry: &IndexedRegistry,
    template: &PodTemplate<'_>,
    resolution: &mut Resolution,
) {
    if let Some(secret) = &registry.pull_secret
        && !template.image_pull_secrets.contains(&secret.as_str())
        && !resolution.add_pull_secrets.contains(secret)
    {
        resolution.add_pull_secrets.push(secret.clone());
    }
}

/// What is said when the mirror chosen for `image` cannot take it, as its
/// entry's `fallback` decides: the warning (the image stays as written),
/// or the denial. `subject` begins the sentence (`container "web": `),
/// `why` follows "mirrored by registry …, " (`whose last check failed`).
/// The webhook, a failed `checkUpstream` and the API's preview all say it
/// here.
pub fn mirror_unavailable(
    subject: &str,
    image: &str,
    registry: &str,
    why: &str,
    upstream: &str,
    fallback: Fallback,
) -> Result<String, String> {
    let said = format!(
        "{subject}image {:?} is mirrored by registry {registry:?}, {why}",
        excerpt(image)
    );
    match fallback {
        Fallback::Upstream => Ok(format!("{said}; pulled from {upstream} as written")),
        Fallback::Deny => Err(format!(
            "{said}, and its entry for {upstream} says fallback: deny (fix the registry, or set {MIRRORS_SWITCH}: off to pull from {upstream})"
        )),
    }
}

/// `registry-resolver.io/mirrors: off` on the pod template or the workload
/// (annotations), or on the namespace (a label).
fn mirrors_switched_off(template: &PodTemplate<'_>, namespace: &str, index: &Index) -> bool {
    let off = |value: Option<&str>| value.is_some_and(|v| v.trim().eq_ignore_ascii_case("off"));
    off(template
        .template_annotations
        .and_then(|a| a.get(MIRRORS_SWITCH)))
        || off(template
            .workload_annotations
            .and_then(|a| a.get(MIRRORS_SWITCH)))
        || off(index
            .labels(namespace)
            .and_then(|labels| labels.get(MIRRORS_SWITCH))
            .map(String::as_str))
}

/// What a mirror does with an ordinary image.
#[derive(Debug)]
pub enum Mirrored<'i> {
    /// Pulled through `registry` as `image`.
    Rewrite {
        /// The mirror.
        registry: &'i IndexedRegistry,
        /// Where the image is in it.
        image: String,
        /// The upstream it mirrors (`docker.io`).
        upstream: &'i str,
        /// The lookup to make first, when the entry asks for one.
        check: Option<MirrorCheck>,
    },
    /// `registry` would take it, but cannot: its last check failed, or the
    /// name would be too long under it.
    Unhealthy {
        /// The mirror.
        registry: &'i IndexedRegistry,
        /// The upstream it mirrors.
        upstream: &'i str,
        /// What its entry says to do meanwhile.
        fallback: Fallback,
        /// Why not, after "mirrored by registry …, " (`whose last check failed`).
        why: &'static str,
    },
}

/// What the mirrors of `namespace` do with `image` when a workload names
/// it (the API's preview): as [`resolve`] decides for an object that does
/// not switch mirrors off.
pub fn mirror<'i>(image: &str, namespace: &str, index: &'i Index) -> Option<Mirrored<'i>> {
    if !index.has_mirrors() || mirrors_switched_off(&PodTemplate::default(), namespace, index) {
        return None;
    }
    through_mirror(image, namespace, index)
}

/// The mirror, if any, that takes `image` in `namespace`: none for an
/// image the grammar refuses (the API server or the kubelet says why), of
/// an upstream no authorized record mirrors, excluded by the entry, or
/// too long a name under the mirror.
fn through_mirror<'i>(image: &str, namespace: &str, index: &'i Index) -> Option<Mirrored<'i>> {
    let parsed = QualifiedImage::parse(image).ok()?;
    let (registry, entry) = index.mirror_for(namespace, parsed.domain)?;
    if entry.excludes(&parsed.path) {
        return None;
    }
    let unhealthy = |why| {
        Some(Mirrored::Unhealthy {
            registry,
            upstream: &entry.upstream,
            fallback: entry.fallback,
            why,
        })
    };
    if !registry.healthy {
        return unhealthy("whose last check failed");
    }
    let Ok(image) = entry.rewrite(&parsed, &registry.image_prefix) else {
        return unhealthy("under which its name would be longer than 255 characters");
    };
    let check = entry.check_upstream.then(|| MirrorCheck {
        target: PinTarget {
            registry: registry.name.clone(),
            version: registry.version,
            repository: match entry.repository_prefix(registry.path_prefix.as_deref()) {
                Some(prefix) => format!("{prefix}/{}", parsed.path),
                None => parsed.path.to_string(),
            },
            // The kubelet pulls by the digest when there is one.
            tag: parsed.digest.or(parsed.tag).unwrap_or("latest").to_owned(),
        },
        upstream: entry.upstream.clone(),
        fallback: entry.fallback,
    });
    Some(Mirrored::Rewrite {
        registry,
        image,
        upstream: &entry.upstream,
        check,
    })
}

/// Expands one registry-relative image in `namespace`, with the named
/// registry or the namespace's default; with `pin` (or a registry that pins
/// by itself) the tag is marked for pinning to a digest. The error names the problem for a
/// person; callers prefix it with the container it concerns.
pub fn expand<'i>(
    image: &str,
    registry: Option<&str>,
    choice: &Choice,
    namespace: &str,
    index: &'i Index,
    pin: bool,
) -> Result<Expanded<'i>, Problem> {
    use DenialReason::{InvalidReference, NoRegistry, NotAuthorized};
    // Quoted in denials: as short as a person needs to recognise it.
    let quoted = excerpt(image);
    let parsed = RelativeImage::parse(image).map_err(|e| {
        Problem::new(
            InvalidReference,
            format!("image {quoted:?} is invalid: {e}"),
        )
    })?;
    let view = index.namespace(namespace);
    let view = view.as_deref();
    let authorized = || match view.map(|v| v.authorized().collect::<Vec<_>>()) {
        Some(names) if !names.is_empty() => {
            format!(
                "registries authorized in {namespace:?}: {}",
                names.join(", ")
            )
        }
        _ => format!("no registry is authorized in namespace {namespace:?}"),
    };
    let name = match registry {
        Some(name) => name,
        None => match view.and_then(NamespaceView::default_registry) {
            Some(default) => default,
            None => {
                return Err(Problem::new(
                    NoRegistry,
                    format!(
                        "image {quoted:?} names no registry and namespace {namespace:?} has no default registry; set annotation {REGISTRY_ANNOTATION} ({})",
                        authorized()
                    ),
                ));
            }
        },
    };
    let registry = index.registry(name).ok_or_else(|| {
        Problem::new(
            NoRegistry,
            format!(
                "registry {:?} (from {choice}) does not exist ({})",
                excerpt(name),
                authorized()
            ),
        )
    })?;
    if !view.is_some_and(|v| v.allows(name)) {
        return Err(Problem::new(
            NotAuthorized,
            format!(
                "registry {name:?} (from {choice}) is not authorized for namespace {namespace:?} ({})",
                authorized()
            ),
        ));
    }
    let image = parsed.join(&registry.image_prefix).map_err(|e| {
        Problem::new(
            InvalidReference,
            format!("image {quoted:?} is invalid with registry {name:?}: {e}"),
        )
    })?;
    let pin = ((pin || registry.pin_digests) && parsed.digest.is_none()).then(|| PinTarget {
        registry: registry.name.clone(),
        version: registry.version,
        repository: match &registry.path_prefix {
            Some(prefix) => format!("{prefix}/{}", parsed.path),
            None => parsed.path.to_owned(),
        },
        tag: parsed.tag.unwrap_or("latest").to_owned(),
    });
    Ok(Expanded {
        image,
        registry,
        pin,
    })
}

/// An entry of the container-registries annotation that is not
/// `container=registry` (held quoted, see `Excerpt::quoted`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {CONTAINER_REGISTRIES_ANNOTATION}: entry {0} is not container=registry")]
struct NotAnEntry(String);

/// The registry a container asks for, most specific first; `None` means
/// the namespace default applies.
fn choose_registry<'a>(
    template: &PodTemplate<'a>,
    container: &str,
) -> Result<Option<(&'a str, Choice)>, NotAnEntry> {
    let lookup = |map: Option<&'a Annotations<'a>>, key: &str| -> Option<&'a str> {
        map.and_then(|m| m.get(key))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if container.len() <= CONTAINER_ANNOTATION_NAME_MAX {
        // Matched in place: no key is built for the common case of no such annotation.
        let per_container = template.template_annotations.and_then(|a| {
            a.find(|key| key.strip_prefix(CONTAINER_ANNOTATION_PREFIX) == Some(container))
        });
        if let Some(name) = per_container.map(str::trim).filter(|s| !s.is_empty()) {
            let key = format!("{CONTAINER_ANNOTATION_PREFIX}{container}");
            return Ok(Some((name, Choice::ContainerAnnotation(key))));
        }
    }
    if let Some(list) = lookup(
        template.template_annotations,
        CONTAINER_REGISTRIES_ANNOTATION,
    ) {
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, registry) = entry
                .split_once('=')
                .ok_or_else(|| NotAnEntry(excerpt(entry).quoted()))?;
            if name.trim() == container {
                return Ok(Some((
                    registry.trim(),
                    Choice::ContainerRegistriesAnnotation,
                )));
            }
        }
    }
    if let Some(name) = lookup(template.template_annotations, REGISTRY_ANNOTATION) {
        return Ok(Some((name, Choice::TemplateAnnotation)));
    }
    if let Some(name) = lookup(template.workload_annotations, REGISTRY_ANNOTATION) {
        return Ok(Some((name, Choice::WorkloadAnnotation)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::record;
    use serde_json::{Value, json};

    fn annotations(value: &Value) -> Annotations<'static> {
        Annotations::from_pairs(
            value
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())),
        )
    }

    fn index() -> Index {
        Index::build(&[
            record(
                "demo",
                "https://dockerhub.qingcloud.com",
                &["team-a", "team-b"],
                &["team-a"],
                true,
            ),
            record(
                "harbor",
                "http://harbor.local:8080/library",
                &["team-a"],
                &[],
                true,
            ),
            record(
                "public",
                "https://public.example",
                &["team-b"],
                &["team-b"],
                false,
            ),
        ])
    }

    fn container<'a>(name: &'a str, image: &'a str) -> ContainerImage<'a> {
        ContainerImage {
            list: ContainerList::Containers,
            index: 0,
            name,
            image,
        }
    }

    struct Case {
        name: &'static str,
        namespace: &'static str,
        template: Value,
        workload: Value,
        container: &'static str,
        image: &'static str,
        want: Result<(&'static str, &'static str, Choice), &'static str>,
    }

    #[test]
    fn registry_selection_order() {
        let long = "c".repeat(60);
        let long: &'static str = Box::leak(long.into_boxed_str());
        let cases = vec![
            Case {
                name: "namespace default",
                namespace: "team-a",
                template: json!({}),
                workload: json!({}),
                container: "app",
                image: "/a/b:1",
                want: Ok((
                    "dockerhub.qingcloud.com/a/b:1",
                    "demo",
                    Choice::NamespaceDefault,
                )),
            },
            Case {
                name: "workload annotation beats the default",
                namespace: "team-a",
                template: json!({}),
                workload: json!({REGISTRY_ANNOTATION: "harbor"}),
                container: "app",
                image: "/a/b:1",
                want: Ok((
                    "harbor.local:8080/library/a/b:1",
                    "harbor",
                    Choice::WorkloadAnnotation,
                )),
            },
            Case {
                name: "template annotation beats the workload's",
                namespace: "team-a",
                template: json!({REGISTRY_ANNOTATION: "demo"}),
                workload: json!({REGISTRY_ANNOTATION: "harbor"}),
                container: "app",
                image: "/a/b:1",
                want: Ok((
                    "dockerhub.qingcloud.com/a/b:1",
                    "demo",
                    Choice::TemplateAnnotation,
                )),
            },
            Case {
                name: "container-registries beats the template annotation",
                namespace: "team-a",
                template: json!({REGISTRY_ANNOTATION: "demo", CONTAINER_REGISTRIES_ANNOTATION: "other=demo, app = harbor"}),
                workload: json!({}),
                container: "app",
                image: "/a/b:1",
                want: Ok((
                    "harbor.local:8080/library/a/b:1",
                    "harbor",
                    Choice::ContainerRegistriesAnnotation,
                )),
            },
            Case {
                name: "per-container annotation beats everything",
                namespace: "team-a",
                template: json!({"registry-resolver.io/registry.app": "demo", CONTAINER_REGISTRIES_ANNOTATION: "app=harbor"}),
                workload: json!({REGISTRY_ANNOTATION: "harbor"}),
                container: "app",
                image: "/a/b:1",
                want: Ok((
                    "dockerhub.qingcloud.com/a/b:1",
                    "demo",
                    Choice::ContainerAnnotation("registry-resolver.io/registry.app".into()),
                )),
            },
            Case {
                name: "a name too long for its own annotation is not looked up under it",
                namespace: "team-a",
                template: json!({format!("{CONTAINER_ANNOTATION_PREFIX}{long}"): "harbor"}),
                workload: json!({}),
                container: long,
                image: "/a/b:1",
                want: Ok((
                    "dockerhub.qingcloud.com/a/b:1",
                    "demo",
                    Choice::NamespaceDefault,
                )),
            },
            Case {
                name: "empty annotation values are ignored",
                namespace: "team-a",
                template: json!({REGISTRY_ANNOTATION: "  "}),
                workload: json!({}),
                container: "app",
                image: "/a/b:1",
                want: Ok((
                    "dockerhub.qingcloud.com/a/b:1",
                    "demo",
                    Choice::NamespaceDefault,
                )),
            },
            Case {
                name: "malformed container-registries",
                namespace: "team-a",
                template: json!({CONTAINER_REGISTRIES_ANNOTATION: "app:harbor"}),
                workload: json!({}),
                container: "app",
                image: "/a/b:1",
                want: Err("entry \"app:harbor\" is not container=registry"),
            },
            Case {
                name: "no default",
                namespace: "team-c",
                template: json!({}),
                workload: json!({}),
                container: "app",
                image: "/a/b:1",
                want: Err("no registry is authorized in namespace \"team-c\""),
            },
            Case {
                name: "not authorized",
                namespace: "team-b",
                template: json!({REGISTRY_ANNOTATION: "harbor"}),
                workload: json!({}),
                container: "app",
                image: "/a/b:1",
                want: Err(
                    "registry \"harbor\" (from pod template annotation registry-resolver.io/registry) is not authorized for namespace \"team-b\" (registries authorized in \"team-b\": public, demo)",
                ),
            },
        ];
        let index = index();
        for case in cases {
            let (template, workload) = (annotations(&case.template), annotations(&case.workload));
            let pod = PodTemplate {
                template_annotations: Some(&template),
                workload_annotations: Some(&workload),
                containers: vec![container(case.container, case.image)],
                image_pull_secrets: vec![],
                made_by_workload: false,
            };
            let scope = Scope {
                namespace: case.namespace,
                pull_secrets_mutable: true,
            };
            match (resolve(&pod, scope, &index), case.want) {
                (Ok(resolution), Ok((image, registry, choice))) => {
                    let rewrite = &resolution.rewrites[0];
                    assert_eq!(
                        (
                            rewrite.resolved.as_str(),
                            rewrite.registry.as_str(),
                            &rewrite.choice
                        ),
                        (image, registry, &choice),
                        "{}",
                        case.name
                    );
                }
                (Err(denial), Err(fragment)) => {
                    assert!(
                        denial.to_string().contains(fragment),
                        "{}: {denial}",
                        case.name
                    );
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
            }
        }
    }

    #[test]
    fn pull_secrets_added_once_in_container_order() {
        let index = index();
        let annotations = annotations(&json!({"registry-resolver.io/registry.first": "harbor"}));
        let pod = PodTemplate {
            template_annotations: Some(&annotations),
            workload_annotations: None,
            containers: vec![
                ContainerImage {
                    list: ContainerList::InitContainers,
                    index: 0,
                    name: "first",
                    image: "/x:1",
                },
                ContainerImage {
                    list: ContainerList::Containers,
                    index: 0,
                    name: "second",
                    image: "/y:1",
                },
                ContainerImage {
                    list: ContainerList::Containers,
                    index: 1,
                    name: "third",
                    image: "/z:1",
                },
                ContainerImage {
                    list: ContainerList::Containers,
                    index: 2,
                    name: "qualified",
                    image: "nginx:1",
                },
            ],
            image_pull_secrets: vec!["unrelated"],
            made_by_workload: false,
        };
        let resolution = resolve(
            &pod,
            Scope {
                namespace: "team-a",
                pull_secrets_mutable: true,
            },
            &index,
        )
        .expect("resolves");
        assert_eq!(resolution.add_pull_secrets, ["harbor-pull", "demo-pull"]);
        assert_eq!(
            resolution.rewrites.len(),
            3,
            "the qualified image is not touched"
        );

        // Registries without credentials need no secret.
        let pod = PodTemplate {
            containers: vec![container("c", "/x")],
            ..PodTemplate::default()
        };
        let resolution = resolve(
            &pod,
            Scope {
                namespace: "team-b",
                pull_secrets_mutable: true,
            },
            &index,
        )
        .expect("resolves");
        assert!(resolution.add_pull_secrets.is_empty());
        assert_eq!(resolution.rewrites[0].resolved, "public.example/x");
    }

    #[test]
    fn pod_updates_cannot_add_pull_secrets() {
        let index = index();
        let pod = PodTemplate {
            containers: vec![container("c", "/x")],
            ..PodTemplate::default()
        };
        let denial = resolve(
            &pod,
            Scope {
                namespace: "team-a",
                pull_secrets_mutable: false,
            },
            &index,
        )
        .expect_err("denied");
        assert!(
            denial
                .to_string()
                .contains("needs pull secret \"demo-pull\""),
            "{denial}"
        );
        let pod = PodTemplate {
            image_pull_secrets: vec!["demo-pull"],
            ..pod
        };
        let ok = resolve(
            &pod,
            Scope {
                namespace: "team-a",
                pull_secrets_mutable: false,
            },
            &index,
        )
        .expect("allowed");
        assert!(ok.add_pull_secrets.is_empty());
        assert_eq!(ok.rewrites.len(), 1);
    }

    /// Metrics label a denial, and the API names it to clients, by the
    /// same word: a dashboard and a translated console must agree.
    #[test]
    fn a_denial_reason_is_the_same_word_in_metrics_and_the_api() {
        use DenialReason::*;
        for reason in [
            NoRegistry,
            NotAuthorized,
            InvalidReference,
            PullSecretMissing,
            PinFailed,
            MirrorUnavailable,
        ] {
            assert_eq!(
                serde_json::to_value(reason).expect("serializes"),
                Value::String(reason.as_str().to_owned())
            );
        }
    }

    /// Records that mirror Docker Hub and quay.io, each authorized
    /// somewhere: which one takes an image in a namespace, and what it
    /// becomes.
    fn mirrors() -> Index {
        use crate::mirror::{Fallback, MirrorEntry};
        use crate::testing::mirror as entry;
        let mut harbor = record(
            "harbor",
            "https://harbor.example.com",
            &["team-*"],
            &[],
            true,
        );
        harbor.mirror_of = vec![MirrorEntry {
            excludes: vec!["library/busybox".into()],
            ..entry("docker.io", Some("dockerhub-proxy"), Fallback::Upstream)
        }];
        let mut cache = record("cache", "http://cache.local:5000", &["team-a"], &[], false);
        cache.mirror_of = vec![
            entry("docker.io", None, Fallback::Upstream),
            entry("quay.io", None, Fallback::Upstream),
        ];
        let [shaky, sealed] = crate::testing::unhealthy_mirrors();
        Index::build(&[harbor, cache, shaky, sealed])
    }

    fn through(
        namespace: &str,
        images: &[&str],
        workload: Value,
        mutable: bool,
    ) -> Result<Resolution, Denial> {
        let workload = annotations(&workload);
        let containers = images
            .iter()
            .enumerate()
            .map(|(index, image)| ContainerImage {
                list: ContainerList::Containers,
                index,
                name: "app",
                image,
            })
            .collect();
        let template = PodTemplate {
            template_annotations: None,
            workload_annotations: Some(&workload),
            containers,
            image_pull_secrets: vec![],
            made_by_workload: false,
        };
        resolve(
            &template,
            Scope {
                namespace,
                pull_secrets_mutable: mutable,
            },
            &mirrors(),
        )
    }

    fn resolved(resolution: &Resolution) -> Vec<(&str, &str)> {
        resolution
            .rewrites
            .iter()
            .map(|r| (r.resolved.as_str(), r.registry.as_str()))
            .collect()
    }

    #[test]
    fn an_image_of_a_mirrored_registry_is_pulled_through_the_mirror_of_its_namespace() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let pinned = format!("nginx@{digest}");
        let none = json!({});
        // A Harbor proxy-cache project: its prefix, tag and digest kept,
        // its pull Secret added, the reason said.
        let ok = through(
            "team-b",
            &["nginx:1.25", &pinned, "busybox"],
            none.clone(),
            true,
        )
        .expect("admitted");
        assert_eq!(
            resolved(&ok),
            [
                (
                    "harbor.example.com/dockerhub-proxy/library/nginx:1.25",
                    "harbor"
                ),
                (
                    &*format!("harbor.example.com/dockerhub-proxy/library/nginx@{digest}"),
                    "harbor"
                ),
            ],
            "busybox is excluded"
        );
        assert_eq!(ok.rewrites[0].choice, Choice::Mirror("docker.io".into()));
        assert_eq!(ok.rewrites[0].original, "nginx:1.25");
        assert_eq!(ok.add_pull_secrets, ["harbor-pull"]);
        assert_eq!(ok.mirror_uses.len(), 2);
        // A record naming the namespace beats one reaching it by pattern;
        // a pull-through cache has no prefix, and no Secret without
        // credentials.
        let ok = through(
            "team-a",
            &["docker.io/library/nginx:1.25", "quay.io/a/b:1", "/x/y:1"],
            json!({"registry-resolver.io/registry": "harbor"}),
            true,
        )
        .expect("admitted");
        assert_eq!(
            resolved(&ok),
            [
                ("cache.local:5000/library/nginx:1.25", "cache"),
                ("cache.local:5000/a/b:1", "cache"),
                ("harbor.example.com/x/y:1", "harbor"),
            ]
        );
        // Nothing mirrors quay.io in team-b; nothing at all in prod; a
        // registry-relative image and a local registry are not upstreams.
        for (namespace, image) in [
            ("team-b", "quay.io/a/b"),
            ("prod", "nginx"),
            ("team-b", "localhost:5000/x"),
            ("team-b", "harbor.example.com/dockerhub-proxy/library/nginx"),
        ] {
            let ok = through(namespace, &[image], none.clone(), true).expect("admitted");
            assert!(
                ok.rewrites.is_empty() && ok.warnings.is_empty(),
                "{namespace} {image}"
            );
        }
    }

    #[test]
    fn mirrors_can_be_switched_off_and_never_touch_a_running_pod() {
        let ok = through(
            "team-b",
            &["nginx"],
            json!({"registry-resolver.io/mirrors": "off"}),
            true,
        )
        .expect("admitted");
        assert!(ok.rewrites.is_empty());
        // A Pod update: changing its image would restart the container.
        let ok = through("team-b", &["nginx"], json!({}), false).expect("admitted");
        assert!(ok.rewrites.is_empty());
        // A namespace label switches them off there (Kubernetes mode).
        let index = mirrors().apply([crate::index::Change::Namespace {
            name: "team-b".into(),
            labels: Some([("registry-resolver.io/mirrors".to_owned(), "off".to_owned())].into()),
        }]);
        let containers = vec![container("app", "nginx")];
        let template = PodTemplate {
            containers,
            ..PodTemplate::default()
        };
        let scope = Scope {
            namespace: "team-b",
            pull_secrets_mutable: true,
        };
        assert!(
            resolve(&template, scope, &index)
                .expect("admitted")
                .rewrites
                .is_empty()
        );
    }

    #[test]
    fn an_unhealthy_mirror_leaves_the_image_upstream_or_denies_it_as_its_entry_says() {
        let ok = through("lab", &["nginx:1.25"], json!({}), true).expect("admitted");
        assert!(ok.rewrites.is_empty());
        assert_eq!(ok.warnings.len(), 1);
        assert!(
            ok.warnings[0].contains("whose last check failed; pulled from docker.io as written"),
            "{:?}",
            ok.warnings
        );
        assert_eq!(ok.mirror_uses[0].outcome, MirrorOutcome::Fallback);
        let denied = through("edge", &["nginx:1.25"], json!({}), true).expect_err("denied");
        assert_eq!(denied.reason, DenialReason::MirrorUnavailable);
        assert!(denied.to_string().contains("fallback: deny"), "{denied}");
        assert_eq!(denied.mirror_uses[0].outcome, MirrorOutcome::Denied);
        // Switched off, the image is pulled upstream: the way out.
        let ok = through(
            "edge",
            &["nginx"],
            json!({"registry-resolver.io/mirrors": "off"}),
            true,
        );
        assert!(ok.is_ok());
    }
}
