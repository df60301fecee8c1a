//! Which kinds carry a pod template, and where.
//!
//! One table; the extraction and patching code walks whatever path it names,
//! so no kind is handled twice. The Helm chart's webhook rules are checked
//! against [`HANDLED_KINDS`] by the tests.

use crate::pod_template::{Container, Located};
use crate::resolve::{ContainerImage, ContainerList, PodTemplate};

/// A kind that carries a pod template, with the object path to that template
/// (the object holding `metadata` and `spec`; empty for a Pod itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodBearingKind {
    /// API group (`apps`, `batch`); empty for the core group.
    pub group: &'static str,
    /// The version webhook rules name; a request in another version of the
    /// same kind is handled as well (see [`lookup`]).
    pub version: &'static str,
    /// Kind, as `request.kind.kind` names it (`Deployment`).
    pub kind: &'static str,
    /// Resource name, as webhook rules name it.
    pub resource: &'static str,
    /// Object keys from the root to the pod template
    /// (`["spec", "template"]`).
    pub template_path: &'static [&'static str],
}

/// Every kind the webhook resolves images in; an object of any other kind
/// is admitted unchanged.
pub const HANDLED_KINDS: &[PodBearingKind] = &[
    PodBearingKind {
        group: "",
        version: "v1",
        kind: "Pod",
        resource: "pods",
        template_path: &[],
    },
    PodBearingKind {
        group: "",
        version: "v1",
        kind: "PodTemplate",
        resource: "podtemplates",
        template_path: &["template"],
    },
    PodBearingKind {
        group: "",
        version: "v1",
        kind: "ReplicationController",
        resource: "replicationcontrollers",
        template_path: &["spec", "template"],
    },
    PodBearingKind {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        resource: "deployments",
        template_path: &["spec", "template"],
    },
    PodBearingKind {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        resource: "replicasets",
        template_path: &["spec", "template"],
    },
    PodBearingKind {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        resource: "statefulsets",
        template_path: &["spec", "template"],
    },
    PodBearingKind {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        resource: "daemonsets",
        template_path: &["spec", "template"],
    },
    PodBearingKind {
        group: "batch",
        version: "v1",
        kind: "Job",
        resource: "jobs",
        template_path: &["spec", "template"],
    },
    PodBearingKind {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        resource: "cronjobs",
        template_path: &["spec", "jobTemplate", "spec", "template"],
    },
];

/// The kind entry for a group and kind (any version: `matchPolicy: Equivalent`
/// may send another version, and the template path has not moved).
pub fn lookup(group: &str, kind: &str) -> Option<&'static PodBearingKind> {
    HANDLED_KINDS
        .iter()
        .find(|k| k.kind == kind && k.group == group)
}

/// What resolution reads of a located template.
pub fn resolution_input<'l>(located: &'l Located<'_>) -> PodTemplate<'l> {
    let template_annotations = located
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref());
    let workload_annotations = match &located.workload {
        Some(metadata) => metadata.annotations.as_ref(),
        None => template_annotations,
    };
    let spec = located.template.spec.as_ref();
    let mut containers = Vec::new();
    for list in ContainerList::ALL {
        let items: Option<&Vec<Container<'_>>> = spec.and_then(|spec| match list {
            ContainerList::Containers => spec.containers.as_ref(),
            ContainerList::InitContainers => spec.init_containers.as_ref(),
            ContainerList::EphemeralContainers => spec.ephemeral_containers.as_ref(),
        });
        for (index, container) in items.into_iter().flatten().enumerate() {
            if let Some(image) = &container.image {
                containers.push(ContainerImage {
                    list,
                    index,
                    name: container.name.as_ref().map_or("", |n| n.as_str()),
                    image: image.as_str(),
                });
            }
        }
    }
    let image_pull_secrets = spec
        .and_then(|s| s.image_pull_secrets.as_ref())
        .map(|secrets| {
            secrets
                .iter()
                .filter_map(|s| s.name.as_ref().map(|n| n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    // The object's own metadata: the workload's, or a Pod's.
    let object = located
        .workload
        .as_ref()
        .or(located.template.metadata.as_ref());
    let made_by_workload = object
        .and_then(|m| m.owner_references.as_ref())
        .is_some_and(|owners| {
            owners.iter().any(|owner| {
                let api_version = owner.api_version.as_ref().map_or("", |v| v.as_str());
                let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
                owner.controller == Some(true)
                    && lookup(group, owner.kind.as_ref().map_or("", |k| k.as_str())).is_some()
            })
        });
    PodTemplate {
        template_annotations,
        workload_annotations,
        containers,
        image_pull_secrets,
        made_by_workload,
    }
}
