//! The AdmissionReview on the wire: what we read of a request, in one
//! pass, the object straight into its pod template when the kind comes
//! first. No decisions here.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::kinds::{self, PodBearingKind};
use crate::pod_template::{LocateSeed, Located, Str};

/// The review, decoded in one pass over the body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReviewIn<'a> {
    #[serde(borrow, default)]
    pub(super) api_version: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    pub(super) group: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) kind: Option<Str<'a>>,
}

/// The parts of `request` we use. The object is read straight into its pod
/// template when its kind is already known (the API server writes `kind`
/// before `object`); otherwise it is kept raw and read afterwards.
#[derive(Default)]
pub(super) struct RequestIn<'a> {
    pub(super) uid: Option<String>,
    pub(super) kind: Option<GroupVersionKind<'a>>,
    pub(super) sub_resource: Option<Str<'a>>,
    pub(super) namespace: Option<Str<'a>>,
    pub(super) name: Option<Str<'a>>,
    pub(super) operation: Option<Str<'a>>,
    pub(super) object: ObjectIn<'a>,
}

// One short-lived value per review, on the stack: not worth a heap
// allocation to shrink the rare variants.
#[allow(clippy::large_enum_variant)]
#[derive(Default)]
pub(super) enum ObjectIn<'a> {
    #[default]
    Absent,
    /// Read with the kind's template path (`None`: it has no template).
    Located(Option<Located<'a>>),
    /// Not a kind we handle: skipped unread.
    Skipped,
    /// Seen before `kind`: kept to read once the kind is known.
    Raw(&'a RawValue),
}

impl<'de: 'a, 'a> Deserialize<'de> for RequestIn<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RequestVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for RequestVisitor<'a> {
            type Value = RequestIn<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an AdmissionRequest object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut request = RequestIn::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str() {
                        "uid" => request.uid = map.next_value()?,
                        "kind" => request.kind = map.next_value()?,
                        "subResource" => request.sub_resource = map.next_value()?,
                        "namespace" => request.namespace = map.next_value()?,
                        "name" => request.name = map.next_value()?,
                        "operation" => request.operation = map.next_value()?,
                        "object" => {
                            request.object = match request.kind.as_ref().map(|k| kinds_lookup(k)) {
                                Some(Some(kind)) => {
                                    ObjectIn::Located(map.next_value_seed(LocateSeed {
                                        path: kind.template_path,
                                    })?)
                                }
                                Some(None) => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                    ObjectIn::Skipped
                                }
                                None => ObjectIn::Raw(map.next_value()?),
                            }
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(request)
            }
        }
        deserializer.deserialize_map(RequestVisitor(std::marker::PhantomData))
    }
}

pub(super) fn kinds_lookup(kind: &GroupVersionKind<'_>) -> Option<&'static PodBearingKind> {
    kinds::lookup(
        kind.group.as_ref().map_or("", Str::as_str),
        kind.kind.as_ref().map_or("", Str::as_str),
    )
}
