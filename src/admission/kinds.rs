//! Which kinds carry a pod template, and where.
//!
//! One table; the extraction and patching code walks whatever path it names,
//! so no kind is handled twice. The Helm chart's webhook rules are checked
//! against [`HANDLED_KINDS`] by the tests.

use serde_json::Value;

use crate::resolve::{Annotations, ContainerImage, ContainerList, PodTemplate};

/// A kind that carries a pod template, with the object path to that template
/// (the object holding `metadata` and `spec`; empty for a Pod itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodBearingKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Resource name, as webhook rules name it.
    pub resource: &'static str,
    pub template_path: &'static [&'static str],
}

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

/// Reads the pod template at `path` in `object`; `None` when the object has
/// no such template (nothing to resolve).
pub fn pod_template<'a>(object: &'a Value, path: &[&str]) -> Option<PodTemplate<'a>> {
    let mut template = object;
    for segment in path {
        template = template.get(segment)?;
    }
    let spec = template.get("spec")?;
    let annotations = |v: &'a Value| -> Option<&'a Annotations> {
        v.get("metadata")?.get("annotations")?.as_object()
    };
    let mut containers = Vec::new();
    for list in ContainerList::ALL {
        let Some(items) = spec.get(list.field()).and_then(Value::as_array) else {
            continue;
        };
        for (index, item) in items.iter().enumerate() {
            if let Some(image) = item.get("image").and_then(Value::as_str) {
                let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
                containers.push(ContainerImage {
                    list,
                    index,
                    name,
                    image,
                });
            }
        }
    }
    let image_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .map(|secrets| {
            secrets
                .iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    Some(PodTemplate {
        template_annotations: annotations(template),
        workload_annotations: annotations(object),
        containers,
        image_pull_secrets,
    })
}

/// Navigates to the template object, for patch building.
pub fn template_value<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, segment| v.get(segment))
}
