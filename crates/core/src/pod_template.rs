//! A typed, borrowed view of the few parts of a pod template we read.
//!
//! Building a `serde_json::Value` of a whole Deployment costs more than all
//! the rest of a review together. Instead we walk the raw JSON to the pod
//! template and deserialize only annotations, container names and images,
//! and pull secret names, borrowing strings from the request body; every
//! other field is skipped without allocation.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// A JSON string, borrowed from the input unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    /// The string's text, wherever it is held.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// `metadata.annotations`: a handful of pairs, looked up linearly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations<'a>(pub Vec<(Str<'a>, Str<'a>)>);

impl<'a> Annotations<'a> {
    /// The value of `key`: the first, should the JSON repeat the key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(|k| k == key)
    }

    /// The value of the first key matching `pred`.
    pub fn find(&self, pred: impl Fn(&str) -> bool) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| pred(k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    /// For tests and callers that hold owned strings.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Annotations<'static> {
        Annotations(
            pairs
                .into_iter()
                .map(|(k, v)| (Str(Cow::Owned(k.into())), Str(Cow::Owned(v.into()))))
                .collect(),
        )
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = Annotations<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<Str<'de>, Str<'de>>()? {
                    pairs.push(entry);
                }
                Ok(Annotations(pairs))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// The parts of `metadata` we read.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata<'a> {
    /// `metadata.namespace`: where the object goes when the request does
    /// not say.
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    /// `metadata.annotations`, where the registry annotations are read.
    #[serde(borrow, default)]
    pub annotations: Option<Annotations<'a>>,
    /// `metadata.ownerReferences`: whether a controller made the object.
    #[serde(borrow, default, rename = "ownerReferences")]
    pub owner_references: Option<Vec<OwnerReference<'a>>>,
}

/// The parts of an owner reference we read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference<'a> {
    /// `apps/v1`, `batch/v1`, …
    #[serde(borrow, default)]
    pub api_version: Option<Str<'a>>,
    /// `ReplicaSet`, `Job`, …
    #[serde(borrow, default)]
    pub kind: Option<Str<'a>>,
    /// Whether this owner is the object's controller.
    #[serde(default)]
    pub controller: Option<bool>,
}

/// The parts of a container we read.
#[derive(Debug, Deserialize)]
pub struct Container<'a> {
    /// The container's name, which per-container annotations refer to.
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    /// The image as written; only a registry-relative one (`/…`) is
    /// resolved.
    #[serde(borrow, default)]
    pub image: Option<Str<'a>>,
}

/// An `imagePullSecrets` entry: a Secret in the pod's namespace.
#[derive(Debug, Deserialize)]
pub struct LocalObjectReference<'a> {
    /// The Secret's name; a pull Secret already listed is not added again.
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
}

/// The parts of a pod spec we read: the container lists and the pull
/// Secrets.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec<'a> {
    /// `spec.containers`: the app containers.
    #[serde(borrow, default)]
    pub containers: Option<Vec<Container<'a>>>,
    /// `spec.initContainers`, run before the app containers.
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<Container<'a>>>,
    /// `spec.ephemeralContainers`, added to a running Pod (`kubectl debug`).
    #[serde(borrow, default)]
    pub ephemeral_containers: Option<Vec<Container<'a>>>,
    /// `spec.imagePullSecrets`: the pull Secrets the pod already names.
    #[serde(borrow, default)]
    pub image_pull_secrets: Option<Vec<LocalObjectReference<'a>>>,
}

/// A pod template (or a Pod): `metadata` and `spec`.
#[derive(Debug, Deserialize)]
pub struct Template<'a> {
    /// The template's `metadata`, whose annotations come before the
    /// workload's.
    #[serde(borrow, default)]
    pub metadata: Option<Metadata<'a>>,
    /// The template's `spec`; a template without one is not located.
    #[serde(borrow, default)]
    pub spec: Option<PodSpec<'a>>,
}

/// An object's pod template, with the object's own metadata when the
/// template is nested (for a Pod the template is the object itself).
#[derive(Debug)]
pub struct Located<'a> {
    /// The object's own `metadata` when the template is nested; `None` for
    /// a Pod.
    pub workload: Option<Metadata<'a>>,
    /// The pod template, found at the kind's template path.
    pub template: Template<'a>,
}

impl Located<'_> {
    /// `metadata.namespace` of the object.
    pub fn namespace(&self) -> Option<&str> {
        self.workload
            .as_ref()
            .or(self.template.metadata.as_ref())
            .and_then(|m| m.namespace.as_ref())
            .map(Str::as_str)
    }
}

/// Reads an object in one pass, deserializing only its `metadata` and the
/// template at `path` (e.g. `["spec", "template"]`); everything else is
/// skipped. Yields `None` when the object has no template with a `spec`.
#[derive(Debug, Clone, Copy)]
pub struct LocateSeed<'p> {
    /// Object keys from the root to the template; empty for a Pod.
    pub path: &'p [&'p str],
}

impl<'de> DeserializeSeed<'de> for LocateSeed<'_> {
    type Value = Option<Located<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            let template = Option::<Template<'de>>::deserialize(deserializer)?;
            return Ok(template
                .filter(|t| t.spec.is_some())
                .map(|template| Located {
                    workload: None,
                    template,
                }));
        };
        struct ObjectVisitor<'p> {
            first: &'p str,
            rest: &'p [&'p str],
        }
        impl<'de> Visitor<'de> for ObjectVisitor<'_> {
            type Value = Option<Located<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes object")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut workload, mut template) = (None, None);
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str() {
                        "metadata" => workload = map.next_value::<Option<Metadata<'de>>>()?,
                        k if k == self.first => {
                            template = map.next_value_seed(TemplateAt(self.rest))?
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(template
                    .filter(|t: &Template<'de>| t.spec.is_some())
                    .map(|template| Located { workload, template }))
            }
        }
        deserializer.deserialize_any(ObjectVisitor { first, rest })
    }
}

/// The template at a path below the current value.
struct TemplateAt<'p>(&'p [&'p str]);

impl<'de> DeserializeSeed<'de> for TemplateAt<'_> {
    type Value = Option<Template<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            return Option::<Template<'de>>::deserialize(deserializer);
        };
        struct Descend<'p> {
            first: &'p str,
            rest: &'p [&'p str],
        }
        impl<'de> Visitor<'de> for Descend<'_> {
            type Value = Option<Template<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an object with {:?}", self.first)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if key.as_str() == self.first {
                        found = map.next_value_seed(TemplateAt(self.rest))?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(found)
            }
        }
        deserializer.deserialize_any(Descend { first, rest })
    }
}

/// Locates the template at `path` in a JSON text.
pub fn locate<'a>(json: &'a str, path: &[&str]) -> Result<Option<Located<'a>>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let located = LocateSeed { path }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(located)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_templates_in_one_pass() {
        let object = r#"{"a": [1, {"x": 2}], "metadata": {"namespace": "ns", "annotations": {"k": "v"}},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "/i"}]}}}}}, "z": null}"#;
        let located = locate(object, &["spec", "jobTemplate", "spec", "template"])
            .expect("parses")
            .expect("found");
        assert_eq!(located.namespace(), Some("ns"));
        assert_eq!(
            located
                .workload
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get("k")),
            Some("v")
        );
        let containers = located
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.as_ref())
            .expect("containers");
        assert_eq!(containers[0].image.as_ref().map(Str::as_str), Some("/i"));

        assert!(
            locate(object, &["spec", "missing"])
                .expect("parses")
                .is_none()
        );
        assert!(
            locate(r#"{"spec": null}"#, &["spec", "template"])
                .expect("parses")
                .is_none()
        );
        assert!(
            locate(
                r#"{"spec": {"template": {"metadata": {}}}}"#,
                &["spec", "template"]
            )
            .expect("parses")
            .is_none(),
            "no spec"
        );
        assert!(
            locate(r#"{"metadata": {}, "spec": {"containers": []}}"#, &[])
                .expect("parses")
                .is_some(),
            "a Pod"
        );
        assert!(locate("[1]", &["spec"]).is_err(), "not an object");
        assert!(
            locate(
                r#"{"spec": {"template": {"spec": {"containers": [{"image": 5}]}}}}"#,
                &["spec", "template"]
            )
            .is_err()
        );
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let template: Template<'_> = serde_json::from_str(
            r#"{"metadata": {"annotations": {"a\/b": "x", "c": "y"}}, "spec": {"containers": [{"name": "app", "image": "\/a\/b:1"}]}}"#,
        )
        .expect("parses");
        let annotations = template
            .metadata
            .and_then(|m| m.annotations)
            .expect("annotations");
        assert_eq!(annotations.get("a/b"), Some("x"));
        assert!(matches!(annotations.0[1].0.0, Cow::Borrowed("c")));
        let spec = template.spec.expect("spec");
        let container = &spec.containers.as_ref().expect("containers")[0];
        assert_eq!(container.image.as_ref().map(Str::as_str), Some("/a/b:1"));
        assert!(matches!(
            container.name.as_ref().map(|n| &n.0),
            Some(Cow::Borrowed("app"))
        ));
    }
}
