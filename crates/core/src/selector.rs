//! Namespaces chosen by their labels (Kubernetes mode): a record's
//! `namespaceSelector` and `defaultForSelector`. The wire form is the
//! standard `LabelSelector` (`matchLabels`, `matchExpressions`); matching is
//! kube's [`Selector`]. What is checked here is what the API server checks
//! for a label selector, plus one rule of our own: an empty selector, which
//! Kubernetes reads as "every namespace", is refused — `*` in `namespaces`
//! says that plainly.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
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

/// What is wrong with a selector written in the short form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at character {at}")]
pub struct SyntaxError {
    /// Where (1-based, in characters).
    pub at: usize,
    /// What was expected, or what is not allowed.
    pub problem: String,
}

/// A selector in the short form `kubectl -l` takes and [`describe`]
/// writes: requirements separated by `,`, each `key=value` (or `==`),
/// `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key` or `!key`.
/// Only the syntax is checked here; keys and values are checked by
/// [`problems`] like those of the structured form. `key=value` goes to
/// `matchLabels` (to `matchExpressions` when the key is already there),
/// `key!=value` is `NotIn` with one value, as the API server reads them.
/// Nothing at all is the empty selector, which [`problems`] refuses.
pub fn parse(text: &str) -> Result<LabelSelector, SyntaxError> {
    let mut lexer = Lexer { text, pos: 0 };
    let mut labels = BTreeMap::new();
    let mut expressions = Vec::new();
    if lexer.peek().0 == Token::End {
        return Ok(LabelSelector::default());
    }
    loop {
        let negated = lexer.peek().0 == Token::Bang;
        if negated {
            lexer.next();
        }
        let key = lexer.identifier("a label key")?;
        let requirement = |operator: &str, values: Option<Vec<String>>| LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values,
        };
        if negated {
            expressions.push(requirement("DoesNotExist", None));
        } else {
            match lexer.peek().0 {
                Token::Comma | Token::End => expressions.push(requirement("Exists", None)),
                Token::Eq | Token::EqEq => {
                    lexer.next();
                    let value = lexer.value();
                    if labels.contains_key(key) {
                        expressions.push(requirement("In", Some(vec![value.to_owned()])));
                    } else {
                        labels.insert(key.to_owned(), value.to_owned());
                    }
                }
                Token::NotEq => {
                    lexer.next();
                    let value = lexer.value().to_owned();
                    expressions.push(requirement("NotIn", Some(vec![value])));
                }
                Token::Word("in") => {
                    lexer.next();
                    expressions.push(requirement("In", Some(lexer.values()?)));
                }
                Token::Word("notin") => {
                    lexer.next();
                    expressions.push(requirement("NotIn", Some(lexer.values()?)));
                }
                Token::Gt | Token::Lt => {
                    return Err(lexer.error("\">\" and \"<\" are not allowed in a label selector"));
                }
                _ => {
                    return Err(lexer.error(
                        "expected \"=\", \"!=\", \"in\", \"notin\", \",\" or the end after a label key",
                    ));
                }
            }
        }
        match lexer.peek().0 {
            Token::Comma => lexer.next(),
            Token::End => break,
            _ => return Err(lexer.error("expected \",\" or the end")),
        };
    }
    Ok(LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Bang,
    Eq,
    EqEq,
    NotEq,
    Comma,
    Open,
    Close,
    Gt,
    Lt,
    End,
}

/// The short form's tokens; a word is anything between the punctuation
/// and whitespace (what a key or value may hold is for [`problems`]).
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// The next token and where it ends, without taking it.
    fn peek(&self) -> (Token<'a>, usize) {
        let rest = &self.text[self.pos..];
        let start = self.pos + (rest.len() - rest.trim_start().len());
        let rest = &self.text[start..];
        let two = |token| (token, start + 2);
        let one = |token| (token, start + 1);
        match rest.as_bytes() {
            [] => (Token::End, start),
            [b'!', b'=', ..] => two(Token::NotEq),
            [b'=', b'=', ..] => two(Token::EqEq),
            [b'!', ..] => one(Token::Bang),
            [b'=', ..] => one(Token::Eq),
            [b',', ..] => one(Token::Comma),
            [b'(', ..] => one(Token::Open),
            [b')', ..] => one(Token::Close),
            [b'>', ..] => one(Token::Gt),
            [b'<', ..] => one(Token::Lt),
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || "!=,()<>".contains(c))
                    .unwrap_or(rest.len());
                (Token::Word(&rest[..len]), start + len)
            }
        }
    }

    fn next(&mut self) -> Token<'a> {
        let (token, end) = self.peek();
        self.pos = end;
        token
    }

    /// A word, or `what` was expected.
    fn identifier(&mut self, what: &str) -> Result<&'a str, SyntaxError> {
        match self.peek().0 {
            Token::Word(word) => {
                self.next();
                Ok(word)
            }
            _ => Err(self.error(&format!("expected {what}"))),
        }
    }

    /// A value, which may be empty (`key=`).
    fn value(&mut self) -> &'a str {
        match self.peek().0 {
            Token::Word(word) => {
                self.next();
                word
            }
            _ => "",
        }
    }

    /// `(a,b,…)`: the values of `in` and `notin`.
    fn values(&mut self) -> Result<Vec<String>, SyntaxError> {
        if self.peek().0 != Token::Open {
            return Err(self.error("expected \"(\" after in or notin"));
        }
        self.next();
        let mut values = Vec::new();
        loop {
            values.push(self.value().to_owned());
            match self.peek().0 {
                Token::Comma => self.next(),
                Token::Close => {
                    self.next();
                    return Ok(values);
                }
                _ => return Err(self.error("expected \",\" or \")\"")),
            };
        }
    }

    /// An error at the next token.
    fn error(&self, problem: &str) -> SyntaxError {
        let rest = &self.text[self.pos..];
        let at = self.pos + (rest.len() - rest.trim_start().len());
        self.error_at(at, problem)
    }

    fn error_at(&self, byte: usize, problem: &str) -> SyntaxError {
        SyntaxError {
            at: self.text[..byte].chars().count() + 1,
            problem: problem.to_owned(),
        }
    }
}

/// A selector as the API takes it: the structured `LabelSelector`, or
/// the short form as a string (see [`parse`]). Records keep the
/// structured form.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectorInput {
    /// `{"matchLabels": …, "matchExpressions": …}`.
    Structured(LabelSelector),
    /// `"kubesphere.io/workspace=ws1,env in (prod,stage)"`.
    Text(String),
}

impl SelectorInput {
    /// The structured selector, or why the short form does not parse.
    pub fn into_selector(self) -> Result<LabelSelector, SyntaxError> {
        match self {
            Self::Structured(wire) => Ok(wire),
            Self::Text(text) => parse(&text),
        }
    }
}

impl From<LabelSelector> for SelectorInput {
    fn from(wire: LabelSelector) -> Self {
        Self::Structured(wire)
    }
}

impl serde::Serialize for SelectorInput {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Structured(wire) => wire.serialize(serializer),
            Self::Text(text) => serializer.serialize_str(text),
        }
    }
}

/// By hand rather than `untagged`: a wrong field inside the object is
/// named by its path, and unknown fields are still seen by the caller's
/// strict reading.
impl<'de> serde::Deserialize<'de> for SelectorInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SelectorInput;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a label selector: an object, or a string such as \"team=a,env in (prod)\"",
                )
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(SelectorInput::Text(text.to_owned()))
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<Self::Value, M::Error> {
                serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(SelectorInput::Structured)
            }
        }
        deserializer.deserialize_any(Visitor)
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
    #[test]
    fn the_short_form_reads_as_the_api_server_reads_it() {
        let cases = [
            (
                "kubesphere.io/workspace=ws1",
                serde_json::json!({"matchLabels": {"kubesphere.io/workspace": "ws1"}}),
            ),
            (
                " a == 1 , b!=2,c in (x, y),d notin(z),e,!f",
                serde_json::json!({
                    "matchLabels": {"a": "1"},
                    "matchExpressions": [
                        {"key": "b", "operator": "NotIn", "values": ["2"]},
                        {"key": "c", "operator": "In", "values": ["x", "y"]},
                        {"key": "d", "operator": "NotIn", "values": ["z"]},
                        {"key": "e", "operator": "Exists"},
                        {"key": "f", "operator": "DoesNotExist"},
                    ],
                }),
            ),
            // A second equality on one key cannot be a second matchLabels
            // entry; it is still required.
            (
                "a=1,a=2",
                serde_json::json!({
                    "matchLabels": {"a": "1"},
                    "matchExpressions": [{"key": "a", "operator": "In", "values": ["2"]}],
                }),
            ),
            ("a=", serde_json::json!({"matchLabels": {"a": ""}})),
            ("", serde_json::json!({})),
            ("   ", serde_json::json!({})),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(selector(want)), "{text:?}");
        }
    }

    #[test]
    fn what_describe_writes_parses_back_to_the_same_selector() {
        let wire = selector(serde_json::json!({
            "matchLabels": {"kubesphere.io/workspace": "ws1", "team": "a"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "stage"]},
                {"key": "tier", "operator": "NotIn", "values": ["scratch"]},
                {"key": "owner", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }));
        assert_eq!(parse(&describe(&wire)), Ok(wire));
    }

    #[test]
    fn a_short_form_that_does_not_parse_says_where() {
        let cases = [
            ("a=1,", 5, "expected a label key"),
            ("a=1 b=2", 5, "expected \",\" or the end"),
            ("a in x", 6, "expected \"(\" after in or notin"),
            ("a in (x", 8, "expected \",\" or \")\""),
            (
                "a>1",
                2,
                "\">\" and \"<\" are not allowed in a label selector",
            ),
            ("!", 2, "expected a label key"),
            ("=1", 1, "expected a label key"),
            (
                "a (",
                3,
                "expected \"=\", \"!=\", \"in\", \"notin\", \",\" or the end after a label key",
            ),
            ("é=1,,", 5, "expected a label key"),
        ];
        for (text, at, problem) in cases {
            assert_eq!(
                parse(text),
                Err(SyntaxError {
                    at,
                    problem: problem.into()
                }),
                "{text:?}"
            );
        }
        // What parses is then checked like the structured form.
        let parsed = parse("Bad Key=1").map(|wire| problems(&wire));
        assert!(parsed.is_err(), "whitespace inside a key is a syntax error");
        let wire = parse("-bad=1").expect("parses");
        assert!(!problems(&wire).is_empty());
    }
}
