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
use serde_json::value::RawValue;

/// A JSON string, borrowed from the input unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
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
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
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

#[derive(Debug, Default, Deserialize)]
pub struct Metadata<'a> {
    #[serde(borrow, default)]
    pub annotations: Option<Annotations<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Container<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub image: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct LocalObjectReference<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec<'a> {
    #[serde(borrow, default)]
    pub containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub ephemeral_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub image_pull_secrets: Option<Vec<LocalObjectReference<'a>>>,
}

/// A pod template (or a Pod): `metadata` and `spec`.
#[derive(Debug, Deserialize)]
pub struct Template<'a> {
    #[serde(borrow, default)]
    pub metadata: Option<Metadata<'a>>,
    #[serde(borrow, default)]
    pub spec: Option<PodSpec<'a>>,
}

/// The value of `key` in the JSON object `raw`, skipping every other field
/// unparsed. `None` when the key is absent or `raw` is `null`.
pub fn field<'a>(raw: &'a RawValue, key: &str) -> Result<Option<&'a RawValue>, serde_json::Error> {
    struct FieldSeed<'k>(&'k str);
    impl<'de> Visitor<'de> for FieldSeed<'_> {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an object (looking for {:?})", self.0)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<Str<'de>>()? {
                if found.is_none() && key.as_str() == self.0 {
                    found = Some(map.next_value::<&'de RawValue>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
        type Value = Option<&'de RawValue>;
        fn deserialize<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    FieldSeed(key).deserialize(&mut deserializer)
}

/// Follows `path` from `raw`; `None` if any step is missing.
pub fn descend<'a>(
    raw: &'a RawValue,
    path: &[&str],
) -> Result<Option<&'a RawValue>, serde_json::Error> {
    let mut current = raw;
    for key in path {
        match field(current, key)? {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> &RawValue {
        serde_json::from_str(json).expect("valid JSON")
    }

    #[test]
    fn finds_nested_fields_and_skips_the_rest() {
        let object = raw(
            r#"{"a": [1, {"x": 2}], "spec": {"jobTemplate": {"spec": {"template": {"k": "v"}}}}, "z": null}"#,
        );
        let found = descend(object, &["spec", "jobTemplate", "spec", "template"]).expect("parses");
        assert_eq!(found.map(RawValue::get), Some(r#"{"k": "v"}"#));
        assert!(
            descend(object, &["spec", "missing"])
                .expect("parses")
                .is_none()
        );
        assert!(
            descend(raw(r#"{"spec": null}"#), &["spec", "template"])
                .expect("parses")
                .is_none()
        );
        assert!(field(raw("[1]"), "spec").is_err(), "not an object");
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
