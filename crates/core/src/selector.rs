//! Namespaces chosen by their labels (Kubernetes mode): a record's
//! `namespaceSelector` and `defaultForSelector`. The wire form is the
//! standard `LabelSelector` (`matchLabels`, `matchExpressions`); matching is
//! kube's [`Selector`]. What is checked here is what the API server checks
//! for a label selector, plus one rule of our own: an empty selector, which
//! Kubernetes reads as "every namespace", is refused — `*` in `namespaces`
//! says that plainly.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube_core::{Selector, SelectorExt};

use crate::excerpt::excerpt;
use crate::registry::check_dns1123_subdomain;

/// Most `matchLabels` entries, and most `matchExpressions`, in one
/// selector: far above a real selector, low enough that matching every
/// namespace against every selecting record stays cheap.
pub const REQUIREMENTS_MAX: usize = 32;
/// Most values in one `In` or `NotIn` expression, for the same reason.
pub const VALUES_MAX: usize = 64;

/// A checked selector, ready to match namespaces' labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSelector(Selector);

impl NamespaceSelector {
    /// The selector, if `wire` passes [`problems`]; matching an invalid one
    /// is never attempted.
    pub fn compile(wire: &LabelSelector) -> Option<Self> {
        if !problems(wire).is_empty() {
            return None;
        }
        Selector::try_from(wire.clone()).ok().map(Self)
    }

    /// Whether a namespace with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }
}

/// The selector as `kubectl -l` writes it, for messages and the console.
pub fn describe(wire: &LabelSelector) -> String {
    match Selector::try_from(wire.clone()) {
        Ok(selector) => selector.to_string(),
        Err(_) => "(invalid selector)".into(),
    }
}

/// Everything wrong with a selector, by field relative to it
/// (`matchLabels.team`, `matchExpressions[0].values`).
pub fn problems(wire: &LabelSelector) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let labels = wire.match_labels.as_ref();
    let expressions = wire.match_expressions.as_deref().unwrap_or_default();
    if labels.is_none_or(BTreeMap::is_empty) && expressions.is_empty() {
        out.push((
            String::new(),
            "an empty selector would match every namespace; write \"*\" in namespaces for that"
                .into(),
        ));
        return out;
    }
    if let Some(labels) = labels {
        if labels.len() > REQUIREMENTS_MAX {
            out.push((
                "matchLabels".into(),
                format!("at most {REQUIREMENTS_MAX} labels"),
            ));
            return out;
        }
        for (key, value) in labels {
            let field = format!("matchLabels.{}", excerpt(key));
            if let Err(problem) = check_label_key(key) {
                out.push((field.clone(), problem.to_string()));
            }
            if let Err(problem) = check_label_value(value) {
                out.push((field, problem.to_string()));
            }
        }
    }
    if expressions.len() > REQUIREMENTS_MAX {
        out.push((
            "matchExpressions".into(),
            format!("at most {REQUIREMENTS_MAX} expressions"),
        ));
        return out;
    }
    for (i, requirement) in expressions.iter().enumerate() {
        let field = |part: &str| format!("matchExpressions[{i}].{part}");
        if let Err(problem) = check_label_key(&requirement.key) {
            out.push((field("key"), problem.to_string()));
        }
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    out.push((
                        field("values"),
                        format!("required with the operator {}", requirement.operator),
                    ));
                } else if values.len() > VALUES_MAX {
                    out.push((field("values"), format!("at most {VALUES_MAX} values")));
                } else {
                    for (j, value) in values.iter().enumerate() {
                        if let Err(problem) = check_label_value(value) {
                            out.push((field(&format!("values[{j}]")), problem.to_string()));
                        }
                    }
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    out.push((
                        field("values"),
                        format!("must be empty with the operator {}", requirement.operator),
                    ));
                }
            }
            other => out.push((
                field("operator"),
                format!(
                    "{:?} is not one of In, NotIn, Exists, DoesNotExist",
                    excerpt(other)
                ),
            )),
        }
    }
    out
}

/// Why a label key or value is not one Kubernetes accepts (values held
/// quoted, see `Excerpt::quoted`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// A key's prefix (before the `/`) is not a DNS-1123 subdomain.
    #[error("label key prefix {prefix}: {problem}")]
    Prefix {
        /// The prefix, quoted.
        prefix: String,
        /// What is wrong with it.
        problem: crate::registry::NameError,
    },
    /// A key is empty, or nothing follows its `/`.
    #[error("a label key needs a name")]
    NoName,
    /// A key's name (after any prefix) is not valid.
    #[error("label key {key}: {problem}")]
    Key {
        /// The whole key, quoted.
        key: String,
        /// What is wrong with its name: [`LabelError::TooLong`] or
        /// [`LabelError::NotValue`].
        problem: Box<LabelError>,
    },
    /// Longer than 63 characters: a value, or a key's name.
    #[error("at most 63 characters")]
    TooLong,
    /// A character a label value may not have, or not alphanumeric at
    /// either end; holds the value, quoted.
    #[error(
        "{0} is not a label value: letters, digits, '-', '_' and '.', beginning and ending with a letter or digit"
    )]
    NotValue(String),
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 characters (`[A-Za-z0-9]`, inner `-_.`).
fn check_label_key(key: &str) -> Result<(), LabelError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        check_dns1123_subdomain(prefix).map_err(|problem| LabelError::Prefix {
            prefix: excerpt(prefix).quoted(),
            problem,
        })?;
    }
    if name.is_empty() {
        return Err(LabelError::NoName);
    }
    check_label_value(name).map_err(|problem| LabelError::Key {
        key: excerpt(key).quoted(),
        problem: Box::new(problem),
    })
}

/// A label value: empty, or at most 63 characters, alphanumeric at both
/// ends, `-`, `_` and `.` inside.
fn check_label_value(value: &str) -> Result<(), LabelError> {
    if value.len() > 63 {
        return Err(LabelError::TooLong);
    }
    let inner_ok = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok = value.is_empty()
        || (value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric());
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(LabelError::NotValue(excerpt(value).quoted()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn selector(value: serde_json::Value) -> LabelSelector {
        serde_json::from_value(value).expect("a LabelSelector")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_form_of_requirement_matches_as_kubernetes_does() {
        let workspace = NamespaceSelector::compile(&selector(serde_json::json!({
            "matchLabels": {"kubesphere.io/workspace": "ws1"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "stage"]},
                {"key": "tier", "operator": "NotIn", "values": ["scratch"]},
                {"key": "owner", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        })))
        .expect("valid");
        let base = [
            ("kubesphere.io/workspace", "ws1"),
            ("env", "prod"),
            ("owner", "a"),
        ];
        assert!(workspace.matches(&labels(&base)));
        assert!(workspace.matches(&labels(&[
            ("kubesphere.io/workspace", "ws1"),
            ("env", "stage"),
            ("owner", "a"),
            ("tier", "web"),
        ])));
        for (why, set) in [
            (
                "other workspace",
                labels(&[
                    ("kubesphere.io/workspace", "ws2"),
                    ("env", "prod"),
                    ("owner", "a"),
                ]),
            ),
            (
                "env not in the set",
                labels(&[
                    ("kubesphere.io/workspace", "ws1"),
                    ("env", "dev"),
                    ("owner", "a"),
                ]),
            ),
            (
                "env missing",
                labels(&[("kubesphere.io/workspace", "ws1"), ("owner", "a")]),
            ),
            (
                "tier excluded",
                labels(&[
                    ("kubesphere.io/workspace", "ws1"),
                    ("env", "prod"),
                    ("owner", "a"),
                    ("tier", "scratch"),
                ]),
            ),
            (
                "owner missing",
                labels(&[("kubesphere.io/workspace", "ws1"), ("env", "prod")]),
            ),
            (
                "legacy present",
                labels(&[
                    ("kubesphere.io/workspace", "ws1"),
                    ("env", "prod"),
                    ("owner", "a"),
                    ("legacy", ""),
                ]),
            ),
        ] {
            assert!(!workspace.matches(&set), "{why}");
        }
    }

    #[test]
    fn invalid_selectors_name_the_field_at_fault() {
        let cases = [
            (serde_json::json!({}), ""),
            (serde_json::json!({"matchLabels": {}}), ""),
            (
                serde_json::json!({"matchLabels": {"bad key!": "x"}}),
                "matchLabels.bad key!",
            ),
            (
                serde_json::json!({"matchLabels": {"ok": "-bad"}}),
                "matchLabels.ok",
            ),
            (
                serde_json::json!({"matchLabels": {"Upper_Case.Prefix/x": "v"}}),
                "matchLabels.Upper_Case.Prefix/x",
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "matchExpressions[0].values",
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "matchExpressions[0].values",
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
                "matchExpressions[0].operator",
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "", "operator": "Exists"}]}),
                "matchExpressions[0].key",
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "x".repeat(64)]}]}),
                "matchExpressions[0].values[1]",
            ),
        ];
        for (wire, field) in cases {
            let wire = selector(wire);
            let found = problems(&wire);
            assert!(
                found.iter().any(|(f, _)| f == field),
                "{wire:?}: expected a problem at {field:?}, got {found:?}"
            );
            assert!(NamespaceSelector::compile(&wire).is_none());
        }
        let many = LabelSelector {
            match_expressions: Some(
                (0..=REQUIREMENTS_MAX)
                    .map(|i| LabelSelectorRequirement {
                        key: format!("k{i}"),
                        operator: "Exists".into(),
                        values: None,
                    })
                    .collect(),
            ),
            ..LabelSelector::default()
        };
        assert_eq!(problems(&many)[0].0, "matchExpressions");
    }

    #[test]
    fn a_selector_is_described_as_kubectl_writes_it() {
        let wire = selector(serde_json::json!({
            "matchLabels": {"kubesphere.io/workspace": "ws1"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}],
        }));
        assert_eq!(
            describe(&wire),
            "kubesphere.io/workspace=ws1,env in (prod,stage)"
        );
    }
}
