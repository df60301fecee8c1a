//! The decision for one object: locate its pod template, resolve every
//! registry-relative image, and say what would change (a [`Plan`]), or why
//! it cannot be admitted. Pure: no I/O, no wire format.

use super::kinds::{self, PodBearingKind};
use super::patch::{self, Patch};
use crate::index::Index;
use crate::pod_template::Located;
use crate::resolve::{self, Denial, Resolution, Scope};

/// The edits for one object: the patch and what it does.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// RFC 6902 operations on the whole object: paths start at its root,
    /// not at the pod template.
    pub patch: Patch,
    /// The rewrites and added pull Secrets the patch makes: what the
    /// warnings and the audit annotation report.
    pub resolution: Resolution,
    /// Said to the user beside the rewrites (e.g. a tag that could not be pinned).
    pub warnings: Vec<String>,
}

/// How an object is being written, which limits what we may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// CREATE, or UPDATE of anything but a Pod.
    Full,
    /// UPDATE of a Pod: images may change, `imagePullSecrets` may not.
    PodUpdate,
    /// `pods/ephemeralcontainers`: only the ephemeral containers are applied.
    EphemeralContainers,
}

/// Why an object of a pod-bearing kind gets no plan.
#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    /// An image cannot be admitted as written; the denial names every
    /// problem.
    #[error(transparent)]
    Denied(#[from] Denial),
    /// The object does not decode as its kind: its pod template is not
    /// where, or not what, the kind says.
    #[error("object is not a valid {kind}: {message}")]
    Malformed {
        /// The kind it was read as, e.g. `Deployment`.
        kind: &'static str,
        /// The JSON decoder's complaint, with its position.
        message: String,
    },
}

/// A resolution not yet turned into a patch: pinning may still change
/// its images, and add warnings.
#[derive(Debug)]
pub struct Plan<'a> {
    located: Located<'a>,
    kind: &'static PodBearingKind,
    write: WriteKind,
    /// What resolution decided; pinning adds digests to its rewrites'
    /// images before [`Plan::into_mutation`].
    pub resolution: Resolution,
    /// Said to the user beside the rewrites (e.g. a tag that could not be pinned).
    pub warnings: Vec<String>,
    /// Pull Secrets to add that the cluster does not have yet in the
    /// namespace: warned about if they are still added once lookups are
    /// done (a mirror that cannot serve takes its Secret back).
    not_yet_present: Vec<String>,
    namespace: String,
}

impl Plan<'_> {
    /// Whether any rewrite waits for a lookup: a digest, or a mirror's
    /// answer.
    pub fn needs_lookups(&self) -> bool {
        self.resolution
            .rewrites
            .iter()
            .any(|r| r.pin.is_some() || r.check.is_some())
    }

    /// Undoes the mirror rewrites at `failed` (indexes into the rewrites,
    /// each with why its mirror could not serve the image): each image is
    /// left as written with a warning (`fallback: upstream`), and a pull
    /// Secret no other rewrite needs is no longer added. `Err` holds what
    /// to deny with, one message per image whose entry says `deny`.
    pub fn fall_back(&mut self, failed: Vec<(usize, String)>) -> Result<(), Vec<String>> {
        use crate::resolve::{MirrorOutcome, MirrorUse};
        let mut denials = Vec::new();
        let mut undone = Vec::new();
        for (at, why) in failed {
            let Some(rewrite) = self.resolution.rewrites.get(at) else {
                continue;
            };
            let Some(check) = &rewrite.check else {
                continue;
            };
            let said = crate::resolve::mirror_unavailable(
                &format!("container {:?}: ", rewrite.container),
                &rewrite.original,
                &rewrite.registry,
                &format!("which cannot serve it ({why})"),
                &check.upstream,
                check.fallback,
            );
            let outcome = match said {
                Ok(warning) => {
                    self.warnings.push(warning);
                    MirrorOutcome::Fallback
                }
                Err(denial) => {
                    denials.push(denial);
                    MirrorOutcome::Denied
                }
            };
            // This image's use, recorded as rewritten, is what happened now.
            let uses = &mut self.resolution.mirror_uses;
            if let Some(used) = uses
                .iter_mut()
                .find(|u| u.registry == rewrite.registry && u.outcome == MirrorOutcome::Rewritten)
            {
                *used = MirrorUse {
                    registry: rewrite.registry.clone(),
                    outcome,
                };
            }
            undone.push(at);
        }
        undone.sort_unstable();
        for at in undone.into_iter().rev() {
            self.resolution.rewrites.remove(at);
        }
        let rewrites = &self.resolution.rewrites;
        self.resolution.add_pull_secrets.retain(|secret| {
            rewrites
                .iter()
                .any(|r| r.pull_secret.as_ref() == Some(secret))
        });
        if denials.is_empty() {
            Ok(())
        } else {
            Err(denials)
        }
    }

    /// The patch and what it does.
    pub fn into_mutation(mut self) -> Result<Mutation, serde_json::Error> {
        self.warn_not_yet_present();
        let patch = patch::build(
            &self.located.template,
            self.kind.template_path,
            &self.resolution,
            self.annotates(),
        )?;
        Ok(Mutation {
            patch,
            resolution: self.resolution,
            warnings: self.warnings,
        })
    }

    /// Where the store knows the cluster's pull Secrets, says so when one
    /// we inject is not there yet: the pods would fail to pull until it is.
    fn warn_not_yet_present(&mut self) {
        let namespace = &self.namespace;
        for secret in &self.not_yet_present {
            if self.resolution.add_pull_secrets.contains(secret) {
                self.warnings.push(format!("pull secret {secret:?} is not yet present in namespace {namespace:?}; pods cannot pull until it is replicated"));
            }
        }
    }

    /// Whether the images as written are recorded on the template: not
    /// for ephemeral containers, which only add to a running Pod.
    fn annotates(&self) -> bool {
        self.write != WriteKind::EphemeralContainers
    }

    /// [`Plan::into_mutation`] as the webhook answered before its answer
    /// was written without a tree: the operations as values.
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn into_reference_mutation(mut self) -> super::reference::Mutation {
        self.warn_not_yet_present();
        let patch = super::reference::build_patch(
            &self.located.template,
            self.kind.template_path,
            &self.resolution,
            self.annotates(),
        );
        super::reference::Mutation {
            patch,
            resolution: self.resolution,
            warnings: self.warnings,
        }
    }
}

/// Locates and resolves one object of a pod-bearing kind given as JSON
/// text: `Ok(None)` when nothing needs to change. Used by `resolve`.
pub fn plan_object<'a>(
    object: &'a str,
    kind: &'static PodBearingKind,
    namespace: &str,
    write: WriteKind,
    index: &Index,
) -> Result<Option<Plan<'a>>, MutateError> {
    let located = crate::pod_template::locate(object, kind.template_path).map_err(|e| {
        MutateError::Malformed {
            kind: kind.kind,
            message: e.to_string(),
        }
    })?;
    match located {
        Some(located) => Ok(plan(located, kind, namespace, write, index)?),
        None => Ok(None),
    }
}

/// Resolves an object whose pod template has been located.
pub fn plan<'a>(
    located: Located<'a>,
    kind: &'static PodBearingKind,
    namespace: &str,
    write: WriteKind,
    index: &Index,
) -> Result<Option<Plan<'a>>, Denial> {
    let template = kinds::resolution_input(&located);
    // The common case ends here: no registry-relative image, and no record
    // mirrors anything.
    if !index.has_mirrors()
        && !template
            .containers
            .iter()
            .any(|c| crate::reference::is_registry_relative(c.image))
    {
        return Ok(None);
    }
    let scope = Scope {
        namespace,
        pull_secrets_mutable: write == WriteKind::Full,
    };
    let mut resolution = resolve::resolve(&template, scope, index)?;
    drop(template);
    if resolution.is_empty() && resolution.warnings.is_empty() && resolution.mirror_uses.is_empty()
    {
        return Ok(None);
    }
    // Where the store knows the cluster's pull Secrets, say so when one we
    // inject is not there yet: the pods would fail to pull until it is.
    let warnings = std::mem::take(&mut resolution.warnings);
    let not_yet_present: Vec<String> = resolution
        .add_pull_secrets
        .iter()
        .filter(|secret| index.pull_secret_missing(namespace, secret))
        .cloned()
        .collect();
    Ok(Some(Plan {
        located,
        kind,
        write,
        resolution,
        warnings,
        // Kept only when there is something to say (no allocation per
        // review otherwise).
        namespace: if not_yet_present.is_empty() {
            String::new()
        } else {
            namespace.to_owned()
        },
        not_yet_present,
    }))
}
