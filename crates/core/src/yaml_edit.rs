//! Editing YAML (and JSON, which is YAML) as text.
//!
//! `resolve` is a Helm post-renderer: what it prints is what reaches the
//! cluster. Parsing a manifest into values and printing them again changes
//! what it does not own — `mode: 0644` becomes `'0644'`, `on` becomes
//! `true`, comments, quoting, key order and anchors are lost. So a stream is
//! parsed once into a tree of nodes that remember where they stand in the
//! text, a JSON patch is turned into a few text edits at those places, and
//! every other byte is kept.
//!
//! Values (for deciding what to change) come from the same tree under the
//! YAML 1.2 core schema; nothing here decides what to change.

use std::collections::HashMap;

use json_patch::PatchOperation;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// How deep collections may nest. Kubernetes objects stay far below it;
/// deeper input is refused with its line rather than parsed.
pub const MAX_DEPTH: usize = 100;

/// Nodes an alias may expand to, beyond the document's own: aliases that
/// refer to aliases grow exponentially ("billion laughs").
const ALIAS_EXPANSION_BUDGET: usize = 100_000;

/// Why a YAML stream cannot be read. Lines and columns count from 1, in
/// the whole stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum YamlError {
    /// Not YAML, as the parser says.
    #[error("line {line} column {column}: {message}")]
    Syntax {
        /// Where the parser stopped: its line.
        line: usize,
        /// Its column, in characters.
        column: usize,
        /// The parser's description of the problem.
        message: String,
    },
    /// Collections nest deeper than [`MAX_DEPTH`].
    #[error("line {line} column {column}: nested deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// The line of the collection one level too deep.
        line: usize,
        /// Its column, in characters.
        column: usize,
    },
    /// A mapping key is a collection, which has no JSON form.
    #[error("line {line} column {column}: a mapping key must be a scalar here")]
    ComplexKey {
        /// The line of the key.
        line: usize,
        /// Its column, in characters.
        column: usize,
    },
    /// An alias (`*name`) with no anchor (`&name`) before it.
    #[error("line {line} column {column}: alias to an unknown anchor")]
    UnknownAnchor {
        /// The line of the alias.
        line: usize,
        /// Its column, in characters.
        column: usize,
    },
    /// Aliases would expand past a fixed budget of nodes ("billion
    /// laughs"); refused rather than expanded.
    #[error("aliases expand to more than {ALIAS_EXPANSION_BUDGET} extra nodes")]
    AliasBomb,
}

/// Why a JSON patch cannot be made as text edits of a document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    /// The patch names a place the document does not have.
    #[error("{path}: not found in the document")]
    NotFound {
        /// The operation's JSON pointer.
        path: String,
    },
    /// The path steps through an alias: an edit there would change every
    /// place that uses the anchor.
    #[error("{path}: line {line} goes through a YAML alias; edit the anchored node instead")]
    ThroughAlias {
        /// The operation's JSON pointer.
        path: String,
        /// The line of the alias, from 1.
        line: usize,
    },
    /// The place exists, but changing it means rewriting more than it: a
    /// block collection replaced, an insertion inside a sequence, the
    /// whole document.
    #[error("{path}: line {line}: a {what} cannot be edited in place")]
    Unsupported {
        /// The operation's JSON pointer.
        path: String,
        /// The line of the node, from 1.
        line: usize,
        /// What the node or the edit is, in words (`block collection`).
        what: &'static str,
    },
    /// An operation other than `add` and `replace`; resolution never makes
    /// one.
    #[error("{op}: only add and replace are edited in place")]
    Operation {
        /// The operation's name (`remove`, `move`, …).
        op: &'static str,
    },
}

type NodeId = usize;

#[derive(Debug)]
enum Kind {
    Scalar {
        value: String,
        style: ScalarStyle,
        /// The core-schema tag's suffix (`str`, `int`, …) when one is given.
        tag: Option<String>,
    },
    Sequence(Vec<NodeId>),
    Mapping(Vec<(NodeId, NodeId)>),
    Alias(NodeId),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    /// Byte range in the stream. A block collection starts at its first
    /// entry and has no end of its own (see `content_end`).
    start: usize,
    end: usize,
    /// A flow collection (`[…]`, `{…}`) as opposed to a block one.
    flow: bool,
    line: usize,
}

/// One document of a stream: its nodes and where they stand in the text.
#[derive(Debug)]
pub struct Document<'a> {
    text: &'a str,
    nodes: Vec<Node>,
    root: Option<NodeId>,
}

/// A change to the text: bytes `start..end` become `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The first byte replaced, as an offset in the stream's text.
    pub start: usize,
    /// The byte after the last one replaced; `start` for an insertion.
    pub end: usize,
    /// What takes their place.
    pub text: String,
}

/// Parses every document of `text`. Linear in the input; nesting past
/// [`MAX_DEPTH`] is an error naming its line.
pub fn parse_stream(text: &str) -> Result<Vec<Document<'_>>, YamlError> {
    let offsets = ByteOffsets::new(text);
    let mut documents = Vec::new();
    let mut builder: Option<Builder> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let mark = e.marker();
            let message = if e.info() == "recursion limit exceeded" {
                format!("nested deeper than {MAX_DEPTH} levels")
            } else {
                e.info().to_owned()
            };
            YamlError::Syntax {
                line: mark.line(),
                column: mark.col() + 1,
                message,
            }
        })?;
        match event {
            Event::DocumentStart(_) => builder = Some(Builder::default()),
            Event::DocumentEnd => {
                if let Some(done) = builder.take() {
                    documents.push(Document {
                        text,
                        nodes: done.nodes,
                        root: done.root,
                    });
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            other => {
                if let Some(builder) = builder.as_mut() {
                    builder.event(other, span, &offsets)?;
                }
            }
        }
    }
    Ok(documents)
}

/// Character index (what the parser counts) → byte offset.
struct ByteOffsets(Option<Vec<usize>>);

impl ByteOffsets {
    fn new(text: &str) -> Self {
        if text.is_ascii() {
            return Self(None);
        }
        let mut table: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
        table.push(text.len());
        Self(Some(table))
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.0 {
            None => char_index,
            Some(table) => table.get(char_index).or(table.last()).copied().unwrap_or(0),
        }
    }
}

/// Turns a document's events into nodes.
#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    root: Option<NodeId>,
    /// Open collections, innermost last.
    open: Vec<NodeId>,
    anchors: HashMap<usize, NodeId>,
}

impl Builder {
    fn event(
        &mut self,
        event: Event<'_>,
        span: Span,
        offsets: &ByteOffsets,
    ) -> Result<(), YamlError> {
        let start = offsets.byte(span.start.index());
        let end = offsets.byte(span.end.index());
        let line = span.start.line();
        let column = span.start.col() + 1;
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.and_then(|t| {
                    (t.handle == "tag:yaml.org,2002:" || t.handle == "!!").then(|| t.suffix.clone())
                });
                let id = self.push(
                    Kind::Scalar {
                        value: value.into_owned(),
                        style,
                        tag,
                    },
                    start,
                    end,
                    false,
                    line,
                );
                self.anchor(anchor, id);
                self.attach(id);
            }
            Event::Alias(anchor) => {
                let Some(&target) = self.anchors.get(&anchor) else {
                    return Err(YamlError::UnknownAnchor { line, column });
                };
                let id = self.push(Kind::Alias(target), start, end, false, line);
                self.attach(id);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.open.len() >= MAX_DEPTH {
                    return Err(YamlError::TooDeep { line, column });
                }
                let kind = match event {
                    Event::SequenceStart(..) => Kind::Sequence(Vec::new()),
                    _ => Kind::Mapping(Vec::new()),
                };
                // A flow collection's start event spans its bracket; a
                // block one's is empty, at its first entry.
                let id = self.push(kind, start, end, end > start, line);
                self.anchor(anchor, id);
                self.attach(id);
                self.open.push(id);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(id) = self.open.pop() {
                    let node = &mut self.nodes[id];
                    if node.flow {
                        node.end = end;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize, flow: bool, line: usize) -> NodeId {
        self.nodes.push(Node {
            kind,
            start,
            end,
            flow,
            line,
        });
        self.nodes.len() - 1
    }

    fn anchor(&mut self, anchor: usize, id: NodeId) {
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
    }

    /// Adds `id` to the innermost open collection (a mapping takes keys
    /// and values in turn), or makes it the root.
    fn attach(&mut self, id: NodeId) {
        let Some(&parent) = self.open.last() else {
            self.root = Some(id);
            return;
        };
        match &mut self.nodes[parent].kind {
            Kind::Sequence(items) => items.push(id),
            Kind::Mapping(entries) => match entries.last_mut() {
                Some(entry) if entry.1 == usize::MAX => entry.1 = id,
                _ => entries.push((id, usize::MAX)),
            },
            _ => {}
        }
    }
}

impl Document<'_> {
    /// The document's value (`Null` for an empty document), aliases
    /// expanded within a budget.
    pub fn to_value(&self) -> Result<Value, YamlError> {
        let Some(root) = self.root else {
            return Ok(Value::Null);
        };
        let mut budget = ALIAS_EXPANSION_BUDGET + self.nodes.len();
        self.value_of(root, &mut budget)
    }

    fn value_of(&self, id: NodeId, budget: &mut usize) -> Result<Value, YamlError> {
        *budget = budget.checked_sub(1).ok_or(YamlError::AliasBomb)?;
        let node = &self.nodes[id];
        Ok(match &node.kind {
            Kind::Scalar { value, style, tag } => scalar_value(value, *style, tag.as_deref()),
            Kind::Alias(target) => self.value_of(*target, budget)?,
            Kind::Sequence(items) => Value::Array(
                items
                    .iter()
                    .map(|&item| self.value_of(item, budget))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Mapping(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for &(key, value) in entries {
                    let key = self.key_text(key)?;
                    let value = match value {
                        usize::MAX => Value::Null,
                        value => self.value_of(value, budget)?,
                    };
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        })
    }

    fn key_text(&self, id: NodeId) -> Result<String, YamlError> {
        match &self.nodes[self.deref(id)].kind {
            Kind::Scalar { value, .. } => Ok(value.clone()),
            _ => {
                let (line, column) = self.line_column(self.nodes[id].start);
                Err(YamlError::ComplexKey { line, column })
            }
        }
    }

    fn deref(&self, mut id: NodeId) -> NodeId {
        // Aliases point backwards only, so this ends.
        while let Kind::Alias(target) = self.nodes[id].kind {
            id = target;
        }
        id
    }

    fn line_column(&self, at: usize) -> (usize, usize) {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// The text edits that make `ops` (RFC 6902, only `add` and `replace`,
    /// each on a place that exists before any of them) on this document.
    pub fn edits(&self, ops: &[PatchOperation]) -> Result<Vec<Edit>, EditError> {
        let newline = if self.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        let mut edits = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                PatchOperation::Replace(replace) => {
                    let tokens = decoded(&replace.path);
                    let path = replace.path.to_string();
                    let id = self.locate(&tokens, &path)?;
                    edits.push(self.replace(id, &replace.value, &path)?);
                }
                PatchOperation::Add(add) => {
                    let tokens = decoded(&add.path);
                    let path = add.path.to_string();
                    let Some((last, parent)) = tokens.split_last() else {
                        return Err(EditError::Unsupported {
                            path,
                            line: 1,
                            what: "whole document",
                        });
                    };
                    let parent = self.locate(parent, &path)?;
                    edits.push(self.add(parent, last, &add.value, &path, newline)?);
                }
                PatchOperation::Remove(_) => return Err(EditError::Operation { op: "remove" }),
                PatchOperation::Move(_) => return Err(EditError::Operation { op: "move" }),
                PatchOperation::Copy(_) => return Err(EditError::Operation { op: "copy" }),
                PatchOperation::Test(_) => return Err(EditError::Operation { op: "test" }),
            }
        }
        Ok(edits)
    }

    /// The node at `tokens` from the root. Stepping through an alias is
    /// refused: an edit there would change every place that uses it.
    fn locate(&self, tokens: &[String], path: &str) -> Result<NodeId, EditError> {
        let not_found = || EditError::NotFound { path: path.into() };
        let mut at = self.root.ok_or_else(not_found)?;
        for token in tokens {
            let node = &self.nodes[at];
            if let Kind::Alias(_) = node.kind {
                return Err(EditError::ThroughAlias {
                    path: path.into(),
                    line: node.line,
                });
            }
            at = match &node.kind {
                Kind::Mapping(entries) => self.entry(entries, token).ok_or_else(not_found)?.1,
                Kind::Sequence(items) => token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i).copied())
                    .ok_or_else(not_found)?,
                _ => return Err(not_found()),
            };
            if at == usize::MAX {
                return Err(not_found());
            }
        }
        Ok(at)
    }

    /// The last entry with key `name` (the last one is the one that counts).
    fn entry(&self, entries: &[(NodeId, NodeId)], name: &str) -> Option<(NodeId, NodeId)> {
        entries.iter().rev().copied().find(|&(key, _)| {
            matches!(&self.nodes[self.deref(key)].kind, Kind::Scalar { value, .. } if value == name)
        })
    }

    fn replace(&self, id: NodeId, value: &Value, path: &str) -> Result<Edit, EditError> {
        let node = &self.nodes[id];
        match (&node.kind, value) {
            (Kind::Scalar { style, .. }, Value::String(new)) => {
                // Keep the node's anchor and tag: they precede the scalar.
                let start = skip_properties(self.text, node.start, node.end);
                let end = scalar_end(self.text, start, node.end, *style);
                Ok(Edit {
                    start,
                    end,
                    text: render_scalar(new, *style),
                })
            }
            (Kind::Scalar { value: old, .. }, _) if node.start == node.end && old.is_empty() => {
                // `key:` with nothing after it (null): the parser places the
                // empty value before the colon; the value goes after it.
                let rest = &self.text[node.start..];
                let gap = rest.len() - rest.trim_start_matches([' ', '\t']).len();
                let at = if rest[gap..].starts_with(':') {
                    node.start + gap + 1
                } else {
                    node.start
                };
                Ok(Edit {
                    start: at,
                    end: at,
                    text: format!(" {}", flow_json(value)),
                })
            }
            (Kind::Scalar { style, .. }, _) => {
                let start = skip_properties(self.text, node.start, node.end);
                Ok(Edit {
                    start,
                    end: scalar_end(self.text, start, node.end, *style),
                    text: flow_json(value),
                })
            }
            (Kind::Alias(_), _) => Ok(Edit {
                start: node.start,
                end: scalar_end(self.text, node.start, node.end, ScalarStyle::Plain),
                text: flow_json(value),
            }),
            _ if node.flow => Ok(Edit {
                start: node.start,
                end: node.end,
                text: flow_json(value),
            }),
            _ => Err(EditError::Unsupported {
                path: path.into(),
                line: node.line,
                what: "block collection",
            }),
        }
    }

    fn add(
        &self,
        parent: NodeId,
        last: &str,
        value: &Value,
        path: &str,
        newline: &str,
    ) -> Result<Edit, EditError> {
        let node = &self.nodes[parent];
        match &node.kind {
            Kind::Mapping(entries) => {
                if let Some((_, existing)) = self.entry(entries, last) {
                    return self.replace(existing, value, path);
                }
                let Some(&(first_key, _)) = entries.first() else {
                    // `{}`: the entry goes between the braces.
                    return Ok(Edit {
                        start: node.end.saturating_sub(1),
                        end: node.end.saturating_sub(1),
                        text: format!("{}: {}", flow_json(&Value::from(last)), flow_json(value)),
                    });
                };
                let (last_key, last_value) = entries[entries.len() - 1];
                if node.flow {
                    let separator = self.flow_separator(node.start, last_key, newline);
                    let at = self.content_end(last_value).0;
                    Ok(Edit {
                        start: at,
                        end: at,
                        text: format!(
                            "{separator}{}: {}",
                            flow_json(&Value::from(last)),
                            flow_json(value)
                        ),
                    })
                } else {
                    let indent = self.column(self.nodes[first_key].start);
                    let mut entry = Map::new();
                    entry.insert(last.to_owned(), value.clone());
                    let text = block_yaml(&Value::Object(entry), indent, newline);
                    Ok(self.insert_after(last_value, indent, &text, newline))
                }
            }
            Kind::Sequence(items) => {
                if last != "-" && last.parse::<usize>().ok() != Some(items.len()) {
                    return Err(EditError::Unsupported {
                        path: path.into(),
                        line: node.line,
                        what: "insertion inside a sequence",
                    });
                }
                let Some(&last_item) = items.last() else {
                    // `[]`, or a block sequence cannot be empty.
                    return Ok(Edit {
                        start: node.end.saturating_sub(1),
                        end: node.end.saturating_sub(1),
                        text: flow_json(value),
                    });
                };
                if node.flow {
                    let separator = self.flow_separator(node.start, last_item, newline);
                    let at = self.content_end(last_item).0;
                    Ok(Edit {
                        start: at,
                        end: at,
                        text: format!("{separator}{}", flow_json(value)),
                    })
                } else {
                    let dash = self.dash_before(self.nodes[items[0]].start);
                    let indent = self.column(dash);
                    let item = block_yaml(value, indent + 2, newline);
                    Ok(self.insert_after(last_item, indent, &format!("- {item}"), newline))
                }
            }
            Kind::Scalar { .. } | Kind::Alias(_) => Err(EditError::NotFound { path: path.into() }),
        }
    }

    /// `, ` on one line, or `,` and a new line indented like the last
    /// entry when the collection spans lines (pretty-printed JSON).
    fn flow_separator(&self, open: usize, last: NodeId, newline: &str) -> String {
        let last_start = self.nodes[last].start;
        if self.text[open..last_start].contains('\n') {
            format!(",{newline}{}", " ".repeat(self.column(last_start)))
        } else {
            ", ".to_owned()
        }
    }

    /// Where a node's text really ends, and whether it is a block scalar
    /// (whose span runs into the next line's indentation).
    fn content_end(&self, id: NodeId) -> (usize, bool) {
        let node = &self.nodes[id];
        match &node.kind {
            Kind::Sequence(items) if !node.flow => items
                .last()
                .map_or((node.end, false), |&last| self.content_end(last)),
            Kind::Mapping(entries) if !node.flow => {
                entries.last().map_or((node.end, false), |&(key, value)| {
                    self.content_end(if value == usize::MAX { key } else { value })
                })
            }
            Kind::Scalar {
                style: ScalarStyle::Literal | ScalarStyle::Folded,
                ..
            } => (node.end, true),
            // An empty plain scalar (a key with no value, `{a, b}`) has no
            // text of its own: the parser's span for it covers the token
            // after it (a flow collection's `}`), which an entry added after
            // it must not follow (found by fuzzing the resolve command).
            Kind::Scalar {
                style: ScalarStyle::Plain,
                value,
                ..
            } if value.is_empty() => (skip_properties(self.text, node.start, node.start), false),
            Kind::Scalar { style, .. } => {
                let start = skip_properties(self.text, node.start, node.end);
                (scalar_end(self.text, start, node.end, *style), false)
            }
            Kind::Alias(_) => (
                scalar_end(self.text, node.start, node.end, ScalarStyle::Plain),
                false,
            ),
            _ => (node.end, false),
        }
    }

    /// Inserts `text` (the first line of a block entry, later lines already
    /// indented) on a new line at `indent`, after the node `after`.
    fn insert_after(&self, after: NodeId, indent: usize, text: &str, newline: &str) -> Edit {
        let (end, block_scalar) = self.content_end(after);
        let pad = " ".repeat(indent);
        let bytes = self.text.as_bytes();
        if block_scalar {
            // The scalar's span ends after the next line's indentation (or
            // at the end of input): insert at the start of that line.
            let line_start = self.text[..end].rfind('\n').map_or(0, |i| i + 1);
            if end == self.text.len() && !self.text.ends_with('\n') {
                return Edit {
                    start: end,
                    end,
                    text: format!("{newline}{pad}{text}"),
                };
            }
            return Edit {
                start: line_start,
                end: line_start,
                text: format!("{pad}{text}{newline}"),
            };
        }
        // The end of the line the node ends on, after any comment there.
        let mut at = self.text[end..]
            .find('\n')
            .map_or(self.text.len(), |i| end + i);
        if at > end && bytes.get(at - 1) == Some(&b'\r') {
            at -= 1;
        }
        Edit {
            start: at,
            end: at,
            text: format!("{newline}{pad}{text}"),
        }
    }

    /// Column (in characters) of byte offset `at`.
    fn column(&self, at: usize) -> usize {
        let line_start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
        self.text[line_start..at].chars().count()
    }

    /// The `-` that introduces the block sequence item starting at `item`.
    fn dash_before(&self, item: usize) -> usize {
        let before = self.text[..item].trim_end_matches([' ', '\t', '\r', '\n']);
        before.len().saturating_sub(1)
    }
}

fn decoded(path: &json_patch::jsonptr::Pointer) -> Vec<String> {
    path.tokens().map(|t| t.decoded().into_owned()).collect()
}

/// Applies `edits` (none overlapping) to `text`. Edits at one place keep
/// their order.
pub fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    let added: usize = edits.iter().map(|e| e.text.len()).sum();
    let mut out = String::with_capacity(text.len() + added);
    // Stable: two insertions at one place stay in the order given.
    edits.sort_by_key(|e| e.start);
    let mut at = 0;
    for edit in edits {
        if edit.start < at {
            continue;
        }
        out.push_str(&text[at..edit.start]);
        out.push_str(&edit.text);
        at = edit.end;
    }
    out.push_str(&text[at..]);
    out
}

/// A scalar's value under the YAML 1.2 core schema (what Kubernetes'
/// decoders agree on for everything `resolve` reads: strings).
fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_owned()),
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain && tag.is_none() {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(n) = text.trim_start_matches('+').parse::<u64>() {
            return Value::from(n);
        }
    }
    let radix = |prefix: &str, radix: u32| {
        text.strip_prefix(prefix)
            .filter(|d| !d.is_empty())
            .and_then(|d| u64::from_str_radix(d, radix).ok())
    };
    if let Some(n) = radix("0o", 8).or_else(|| radix("0x", 16)) {
        return Value::from(n);
    }
    if looks_like_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && digits(whole),
        Some(fraction) => {
            digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty())
        }
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// A new string value in the style the old one was written in, when that
/// style can carry it; double quotes otherwise.
fn render_scalar(value: &str, style: ScalarStyle) -> String {
    match style {
        ScalarStyle::Plain if plain_safe(value) => value.to_owned(),
        ScalarStyle::SingleQuoted if !value.chars().any(char::is_control) => {
            format!("'{}'", value.replace('\'', "''"))
        }
        _ => flow_json(&Value::from(value)),
    }
}

/// Whether `value` reads back as the same string when written plain, in
/// block and in flow context. Conservative: image references pass.
fn plain_safe(value: &str) -> bool {
    let mut chars = value.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_' | '-' | ':' | '@' | '+')
        })
        && !value.ends_with(':')
        && matches!(scalar_value(value, ScalarStyle::Plain, None), Value::String(ref s) if s == value)
}

/// JSON: valid YAML in flow context.
fn flow_json(value: &Value) -> String {
    value.to_string()
}

/// `value` as block YAML whose first line goes where the caller puts it
/// and whose later lines stand at `indent`.
fn block_yaml(value: &Value, indent: usize, newline: &str) -> String {
    let text = serde_yaml::to_string(value).unwrap_or_else(|_| flow_json(value));
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.trim_end_matches('\n').split('\n').enumerate() {
        if i > 0 {
            out.push_str(newline);
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

/// Past a node's anchor (`&a`) and tag (`!!str`), to its text.
fn skip_properties(text: &str, start: usize, end: usize) -> usize {
    let mut at = start;
    while at < end && matches!(text.as_bytes()[at], b'&' | b'!') {
        let rest = &text[at..end];
        let token = rest.find([' ', '\t', '\r', '\n']).unwrap_or(rest.len());
        at += token;
        let spaces = text[at..end].len() - text[at..end].trim_start().len();
        at += spaces;
    }
    at
}

/// Where a scalar's own text ends. The parser's span may run on past it
/// (over a comment after the last node of a collection, or into the next
/// line's indentation after a block scalar), so the text is read: quoted
/// scalars end at their closing quote, plain ones before a comment.
fn scalar_end(text: &str, start: usize, span_end: usize, style: ScalarStyle) -> usize {
    let bytes = text.as_bytes();
    match style {
        ScalarStyle::DoubleQuoted => {
            let mut at = start + 1;
            while at < bytes.len() {
                match bytes[at] {
                    b'\\' => at += 2,
                    b'"' => return at + 1,
                    _ => at += 1,
                }
            }
            span_end
        }
        ScalarStyle::SingleQuoted => {
            let mut at = start + 1;
            while at < bytes.len() {
                if bytes[at] == b'\'' {
                    if bytes.get(at + 1) == Some(&b'\'') {
                        at += 2;
                        continue;
                    }
                    return at + 1;
                }
                at += 1;
            }
            span_end
        }
        ScalarStyle::Plain => {
            let own = &text[start..span_end.max(start)];
            let own = own
                .find(" #")
                .into_iter()
                .chain(own.find("\t#"))
                .min()
                .map_or(own, |comment| &own[..comment]);
            start + own.trim_end().len()
        }
        _ => start + text[start..span_end.max(start)].trim_end().len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Document<'_> {
        let mut docs = parse_stream(text).expect("parses");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    fn edit(text: &str, ops: Value) -> String {
        let ops: Vec<PatchOperation> = serde_json::from_value(ops).expect("ops");
        let doc = one(text);
        let edits = doc.edits(&ops).expect("edits");
        let out = apply(text, edits);
        // The text means exactly what the patch means.
        let mut expected = doc.to_value().expect("value");
        json_patch::patch(&mut expected, &ops).expect("patch applies");
        assert_eq!(
            one(&out).to_value().expect("edited parses"),
            expected,
            "{out}"
        );
        out
    }

    #[test]
    fn values_follow_the_core_schema() {
        let doc = one(
            "a: 0644\nb: yes\nc: on\nd: 1_000\ne: .nan\nf: '1'\ng: ~\nh: true\ni: 0x1F\nj: 1.5e3\nk: !!str 12\nl: 12:30\n",
        );
        assert_eq!(
            doc.to_value().expect("value"),
            json!({"a": 644, "b": "yes", "c": "on", "d": "1_000", "e": ".nan", "f": "1", "g": null,
                   "h": true, "i": 31, "j": 1500.0, "k": "12", "l": "12:30"})
        );
    }

    #[test]
    fn replaces_an_image_keeping_style_anchor_and_comment() {
        let text = "spec:\n  containers:\n  - name: a\n    image: /a:1 # mine\n  - name: b\n    image: \"/b:2\"\n  - name: c\n    image: &img '/c:3'\n";
        let out = edit(
            text,
            json!([
                {"op": "replace", "path": "/spec/containers/0/image", "value": "r.example/a:1"},
                {"op": "replace", "path": "/spec/containers/1/image", "value": "r.example/b:2"},
                {"op": "replace", "path": "/spec/containers/2/image", "value": "r.example/c:3"}
            ]),
        );
        assert_eq!(
            out,
            "spec:\n  containers:\n  - name: a\n    image: r.example/a:1 # mine\n  - name: b\n    image: \"r.example/b:2\"\n  - name: c\n    image: &img 'r.example/c:3'\n"
        );
    }

    #[test]
    fn adds_entries_to_block_mappings_and_sequences() {
        let text = "spec:\n  containers:\n    - name: a\n      image: x\n  imagePullSecrets:\n    - name: mine\nmetadata:\n  name: p # the pod\n";
        let out = edit(
            text,
            json!([
                {"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "r"}},
                {"op": "add", "path": "/metadata/annotations", "value": {"k": "{\"a\":\"/a:1\"}"}}
            ]),
        );
        assert_eq!(
            out,
            "spec:\n  containers:\n    - name: a\n      image: x\n  imagePullSecrets:\n    - name: mine\n    - name: r\nmetadata:\n  name: p # the pod\n  annotations:\n    k: '{\"a\":\"/a:1\"}'\n"
        );
    }

    #[test]
    fn adds_after_a_block_scalar_without_changing_it() {
        let text = "data:\n  script: |+\n    echo hi\n\nspec:\n  x: 1\n";
        let out = edit(
            text,
            json!([{"op": "add", "path": "/data/more", "value": "v"}]),
        );
        assert_eq!(
            out,
            "data:\n  script: |+\n    echo hi\n\n  more: v\nspec:\n  x: 1\n"
        );
        let at_end = "a:\n  s: |\n    x";
        let out = edit(at_end, json!([{"op": "add", "path": "/a/t", "value": "v"}]));
        assert_eq!(out, "a:\n  s: |\n    x\n  t: v");
    }

    /// A flow mapping whose last key has no value (`ever"` below is a plain
    /// key, its value null): an added entry goes inside the braces, not
    /// after them. Found by fuzzing the `resolve` command.
    #[test]
    fn adds_after_a_key_without_a_value_in_a_flow_mapping() {
        let text = r#"{"spec": {"containers": [], ever"}, "status": {}}"#;
        let out = edit(
            text,
            json!([{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "demo"}]}]),
        );
        assert_eq!(
            out,
            r#"{"spec": {"containers": [], ever", "imagePullSecrets": [{"name":"demo"}]}, "status": {}}"#
        );
    }

    #[test]
    fn edits_json_in_place() {
        let text = "{\n  \"spec\": {\n    \"containers\": [{\"name\": \"a\", \"image\": \"/a:1\"}],\n    \"imagePullSecrets\": []\n  }\n}\n";
        let out = edit(
            text,
            json!([
                {"op": "replace", "path": "/spec/containers/0/image", "value": "r/a:1"},
                {"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "r"}},
                {"op": "add", "path": "/metadata", "value": {"annotations": {"k": "v"}}}
            ]),
        );
        assert_eq!(
            out,
            "{\n  \"spec\": {\n    \"containers\": [{\"name\": \"a\", \"image\": \"r/a:1\"}],\n    \"imagePullSecrets\": [{\"name\":\"r\"}]\n  },\n  \"metadata\": {\"annotations\":{\"k\":\"v\"}}\n}\n"
        );
    }

    #[test]
    fn fills_a_null_value_and_keeps_crlf() {
        let out = edit(
            "spec:\r\n  imagePullSecrets:\r\n  containers: []\r\n",
            json!([
                {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "r"}]},
                {"op": "add", "path": "/metadata", "value": {"annotations": {"k": "v"}}}
            ]),
        );
        assert_eq!(
            out,
            "spec:\r\n  imagePullSecrets: [{\"name\":\"r\"}]\r\n  containers: []\r\nmetadata:\r\n  annotations:\r\n    k: v\r\n"
        );
    }

    #[test]
    fn refuses_edits_through_aliases_and_deep_nesting() {
        let doc = one("base: &b {image: /a}\nspec: *b\n");
        let ops: Vec<PatchOperation> =
            serde_json::from_value(json!([{"op": "replace", "path": "/spec/image", "value": "x"}]))
                .expect("ops");
        assert!(matches!(
            doc.edits(&ops),
            Err(EditError::ThroughAlias { line: 2, .. })
        ));

        let deep = format!("a:\n  b: {}", "[".repeat(MAX_DEPTH + 5));
        let error = parse_stream(&deep).expect_err("too deep");
        assert!(error.to_string().starts_with("line 2"), "{error}");
        assert!(error.to_string().contains("nested deeper than"), "{error}");
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert_eq!(one(&text).to_value(), Err(YamlError::AliasBomb));
    }

    #[test]
    fn bom_and_multibyte_text_keep_their_bytes() {
        let text = "\u{feff}# 注释\nspec:\n  note: 日本語\n  image: /a:1\n";
        let out = edit(
            text,
            json!([{"op": "replace", "path": "/spec/image", "value": "r/a:1"}]),
        );
        assert_eq!(
            out,
            "\u{feff}# 注释\nspec:\n  note: 日本語\n  image: r/a:1\n"
        );
    }
}

/// Generated documents: what the edits touch is only what they must.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Values Helm charts render that a re-serializer would change.
    const NOISE: &[&str] = &[
        "0644",
        "yes",
        "on",
        "1_000",
        ".nan",
        "'quoted'",
        "\"double\"",
        "~",
        "!!str 12",
        "{a: [1, 2], b: {c: d}}",
        "[x, 'y', \"z\"]",
        "2024-01-01",
        "0x1F",
        "&anchor value",
    ];

    #[derive(Debug, Clone)]
    struct Container {
        name: String,
        image: String,
        relative: bool,
        /// 0 plain, 1 double quotes, 2 single quotes
        quote: u8,
        flow: bool,
        comment: bool,
    }

    #[derive(Debug, Clone)]
    struct Doc {
        containers: Vec<Container>,
        noise: Vec<(usize, bool)>,
        /// 0 absent, 1 null, 2 block list, 3 flow list, 4 empty flow list
        secrets: u8,
        /// 0 absent, 1 null, 2 with labels only, 3 with block annotations,
        /// 4 with flow annotations, 5 null annotations
        metadata: u8,
        block_scalar_last: bool,
        crlf: bool,
        json: bool,
    }

    fn container() -> impl Strategy<Value = Container> {
        (
            "[a-z][a-z0-9]{0,6}",
            "[a-z]{1,5}(/[a-z]{1,5}){0,2}(:[0-9a-z.]{1,6})?",
            any::<bool>(),
            0u8..3,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(name, path, relative, quote, flow, comment)| Container {
                name,
                image: if relative {
                    format!("/{path}")
                } else {
                    format!("quay.io/{path}")
                },
                relative,
                quote,
                flow,
                comment,
            })
    }

    fn doc() -> impl Strategy<Value = Doc> {
        (
            proptest::collection::vec(container(), 1..5),
            proptest::collection::vec((0..NOISE.len(), any::<bool>()), 0..6),
            0u8..5,
            0u8..6,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(containers, noise, secrets, metadata, block_scalar_last, crlf, json)| Doc {
                    containers,
                    noise,
                    secrets,
                    metadata,
                    block_scalar_last,
                    crlf,
                    json,
                },
            )
    }

    fn quoted(value: &str, quote: u8) -> String {
        match quote {
            1 => format!("\"{value}\""),
            2 => format!("'{value}'"),
            _ => value.to_owned(),
        }
    }

    /// The document as a person (or a template) would write it.
    fn render(doc: &Doc) -> String {
        if doc.json {
            return render_json(doc);
        }
        let mut out = String::from("# generated\napiVersion: v1\nkind: Pod\n");
        match doc.metadata {
            1 => out.push_str("metadata:\n"),
            2 => out.push_str("metadata:\n  labels: {app: x}\n"),
            3 => out.push_str("metadata:\n  annotations:\n    keep: \"me\" # mine\n"),
            4 => out.push_str("metadata:\n  annotations: {keep: me}\n"),
            5 => out.push_str("metadata:\n  name: p\n  annotations:\n"),
            _ => {}
        }
        out.push_str("spec:\n");
        for (i, (noise, comment)) in doc.noise.iter().enumerate() {
            out.push_str(&format!(
                "  k{i}: {}",
                NOISE[*noise].replace("&anchor", &format!("&a{i}"))
            ));
            if *comment {
                out.push_str("   # keep this");
            }
            out.push('\n');
        }
        out.push_str("  containers:\n");
        for c in &doc.containers {
            let image = quoted(&c.image, c.quote);
            if c.flow {
                out.push_str(&format!("  - {{name: {}, image: {image}}}", c.name));
            } else {
                out.push_str(&format!("  - name: {}\n    image: {image}", c.name));
            }
            if c.comment {
                out.push_str(" # the image");
            }
            out.push('\n');
        }
        match doc.secrets {
            1 => out.push_str("  imagePullSecrets:\n"),
            2 => out.push_str("  imagePullSecrets:\n    - name: mine\n"),
            3 => out.push_str("  imagePullSecrets: [{name: mine}]\n"),
            4 => out.push_str("  imagePullSecrets: []\n"),
            _ => {}
        }
        if doc.block_scalar_last {
            out.push_str("  script: |\n    echo 0644\n    on: yes\n\n");
        }
        if doc.crlf {
            out = out.replace('\n', "\r\n");
        }
        out
    }

    fn render_json(doc: &Doc) -> String {
        let containers: Vec<String> = doc
            .containers
            .iter()
            .map(|c| format!("{{\"name\": \"{}\", \"image\": \"{}\"}}", c.name, c.image))
            .collect();
        let mut spec = vec![format!(
            "    \"containers\": [\n      {}\n    ]",
            containers.join(",\n      ")
        )];
        match doc.secrets {
            1 => spec.push("    \"imagePullSecrets\": null".into()),
            2 | 3 => spec.push("    \"imagePullSecrets\": [{\"name\": \"mine\"}]".into()),
            4 => spec.push("    \"imagePullSecrets\": []".into()),
            _ => {}
        }
        let mut top = vec!["  \"kind\": \"Pod\"".to_owned()];
        match doc.metadata {
            1 => top.push("  \"metadata\": null".into()),
            2 => top.push("  \"metadata\": {\"labels\": {\"app\": \"x\"}}".into()),
            3 | 4 => top.push("  \"metadata\": {\"annotations\": {\"keep\": \"me\"}}".into()),
            5 => top.push("  \"metadata\": {\"annotations\": null}".into()),
            _ => {}
        }
        top.push(format!("  \"spec\": {{\n{}\n  }}", spec.join(",\n")));
        format!("{{\n{}\n}}\n", top.join(",\n"))
    }

    /// The ops the webhook's patch builder makes for this document.
    fn ops_for(doc: &Doc, value: &Value) -> Vec<PatchOperation> {
        let mut ops = Vec::new();
        let mut originals = serde_json::Map::new();
        for (i, c) in doc.containers.iter().enumerate() {
            if c.relative {
                ops.push(
                    json!({"op": "replace", "path": format!("/spec/containers/{i}/image"),
                                "value": format!("r.example{}", c.image)}),
                );
                originals.insert(c.name.clone(), Value::from(c.image.clone()));
            }
        }
        if ops.is_empty() {
            return Vec::new();
        }
        match value.pointer("/spec/imagePullSecrets") {
            Some(Value::Array(_)) => ops.push(
                json!({"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "r"}}),
            ),
            _ => ops.push(
                json!({"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "r"}]}),
            ),
        }
        let recorded = Value::from(Value::Object(originals).to_string());
        match (value.get("metadata"), value.pointer("/metadata/annotations")) {
            (None | Some(Value::Null), _) => ops.push(json!({"op": "add", "path": "/metadata",
                "value": {"annotations": {"registry-resolver.io/original-images": recorded}}})),
            (_, None | Some(Value::Null)) => ops.push(json!({"op": "add", "path": "/metadata/annotations",
                "value": {"registry-resolver.io/original-images": recorded}})),
            _ => ops.push(json!({"op": "add",
                "path": "/metadata/annotations/registry-resolver.io~1original-images", "value": recorded})),
        }
        serde_json::from_value(Value::Array(ops)).expect("ops")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn edits_mean_the_patch_and_touch_nothing_else(doc in doc()) {
            let text = render(&doc);
            let parsed = parse_stream(&text).expect("generated documents parse");
            prop_assert_eq!(parsed.len(), 1);
            let value = parsed[0].to_value().expect("value");
            let ops = ops_for(&doc, &value);
            let edits = parsed[0].edits(&ops).expect("edits");
            // Every edit inserts, or replaces exactly an image's text (or a
            // null that an added value takes the place of).
            for edit in &edits {
                if edit.start != edit.end {
                    let old = &text[edit.start..edit.end];
                    let image = old.trim_matches(['"', '\'']);
                    prop_assert!(
                        old == "null" || doc.containers.iter().any(|c| c.relative && c.image == image),
                        "replaced {:?}, not an image", old
                    );
                }
            }
            let out = apply(&text, edits);
            let mut expected = value.clone();
            json_patch::patch(&mut expected, &ops).expect("patch applies");
            let reparsed = parse_stream(&out).expect("edited text parses");
            prop_assert_eq!(reparsed[0].to_value().expect("value"), expected);
            // Line ends stay what they were.
            if doc.crlf && !doc.json {
                prop_assert_eq!(out.matches('\n').count(), out.matches("\r\n").count());
            }
            if ops.is_empty() {
                prop_assert_eq!(out, text);
            }
        }
    }
}
