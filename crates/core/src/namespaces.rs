//! Which namespaces a record reaches: the entries of `namespaces` and
//! `defaultFor`. An entry is a namespace name (`team-a`), every namespace
//! (`*`), or every namespace whose name starts with a prefix (`team-*`), so
//! projects created later are covered without editing the record.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::excerpt::excerpt;

/// One entry, as it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entry<'a> {
    /// Exactly this namespace.
    Name(&'a str),
    /// Every namespace starting with this (the empty prefix is `*`).
    Prefix(&'a str),
}

impl<'a> Entry<'a> {
    /// The entry as written; validity is [`check_entry`]'s business.
    pub fn of(entry: &'a str) -> Self {
        match entry.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix),
            None => Self::Name(entry),
        }
    }

    /// Whether `namespace` is the one named, or starts with the prefix.
    pub fn matches(self, namespace: &str) -> bool {
        match self {
            Self::Name(name) => name == namespace,
            Self::Prefix(prefix) => namespace.starts_with(prefix),
        }
    }

    /// Does every namespace `other` matches also match `self`?
    pub fn covers(self, other: Entry<'_>) -> bool {
        match (self, other) {
            (Entry::Name(a), Entry::Name(b)) => a == b,
            (Entry::Name(_), Entry::Prefix(_)) => false,
            (Entry::Prefix(p), Entry::Name(name)) => name.starts_with(p),
            (Entry::Prefix(p), Entry::Prefix(q)) => q.starts_with(p),
        }
    }

    /// Could one namespace match both?
    pub fn overlaps(self, other: Entry<'_>) -> bool {
        self.covers(other) || other.covers(self)
    }
}

/// Why a `namespaces` or `defaultFor` entry is neither a name nor a
/// pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The entry has no `*`, so it must be a namespace name, and is not a
    /// valid one.
    #[error(transparent)]
    Name(#[from] crate::registry::NameError),
    /// The entry ends in `*`, but what comes before is not the beginning of
    /// a namespace name; holds the entry, quoted.
    #[error(
        "{0} is not a namespace pattern: a namespace's beginning (lowercase letters, digits and '-', starting with a letter or digit) followed by '*', or '*' alone"
    )]
    Pattern(String),
}

impl EntryError {
    /// The kind of problem, for [`FieldError::reason`](crate::registry::FieldError::reason).
    pub fn reason(&self) -> crate::registry::Reason {
        match self {
            Self::Name(problem) => problem.reason(),
            Self::Pattern(_) => crate::registry::Reason::NotPattern,
        }
    }
}

/// A valid entry: a DNS-1123 label, `*`, or a label's beginning followed by
/// `*` (lowercase letters, digits and '-', starting with a letter or digit).
pub fn check_entry(entry: &str) -> Result<(), EntryError> {
    match Entry::of(entry) {
        Entry::Name(name) => Ok(crate::registry::check_dns1123_label(name)?),
        Entry::Prefix("") => Ok(()),
        Entry::Prefix(prefix) => {
            let bytes = prefix.as_bytes();
            let valid = prefix.len() < 63
                && bytes[0].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
            if valid {
                Ok(())
            } else {
                Err(EntryError::Pattern(excerpt(entry).quoted()))
            }
        }
    }
}

/// The existing namespaces `entries` reach, each once, by name: names are
/// looked up and prefixes read as a range, so the cost follows the answer,
/// not the number of namespaces.
/// `existing` maps each namespace to what the caller keeps about it (its
/// labels, in a cluster).
pub fn expand<'n, V>(
    entries: &[String],
    existing: &'n BTreeMap<String, V>,
) -> BTreeSet<&'n String> {
    let mut reached = BTreeSet::new();
    for entry in entries {
        match Entry::of(entry) {
            Entry::Name(name) => reached.extend(existing.get_key_value(name).map(|(ns, _)| ns)),
            Entry::Prefix(prefix) => reached.extend(
                existing
                    .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                    .map(|(ns, _)| ns)
                    .take_while(|ns| ns.starts_with(prefix)),
            ),
        }
    }
    reached
}

/// The most specific of `entries` that reaches `namespace`: its name,
/// else the longest pattern; `None` when none does.
pub fn best_entry<'e>(entries: &'e [String], namespace: &str) -> Option<&'e str> {
    entries
        .iter()
        .filter(|e| Entry::of(e).matches(namespace))
        .max_by_key(|e| match Entry::of(e) {
            Entry::Name(_) => usize::MAX,
            Entry::Prefix(prefix) => prefix.len(),
        })
        .map(String::as_str)
}

/// Does any of `entries` reach `namespace`?
pub fn reaches(entries: &[String], namespace: &str) -> bool {
    entries.iter().any(|e| Entry::of(e).matches(namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_names_prefixes_or_everything() {
        for good in ["team-a", "*", "team-*", "t*", "0*", "a-*"] {
            assert!(check_entry(good).is_ok(), "{good}");
        }
        for bad in ["", "Team-*", "-a*", "team-*-x", "**", "a*b", "te.am*", "*a"] {
            assert!(check_entry(bad).is_err(), "{bad:?}");
        }
        assert!(Entry::of("*").matches("anything"));
        assert!(Entry::of("team-*").matches("team-a"));
        assert!(!Entry::of("team-*").matches("teams"));
        assert!(Entry::of("team-a").matches("team-a"));
        assert!(!Entry::of("team-a").matches("team-ab"));
        let entries = ["*".to_owned(), "team-*".to_owned(), "team-a".to_owned()];
        assert_eq!(best_entry(&entries, "team-a"), Some("team-a"));
        assert_eq!(best_entry(&entries, "team-b"), Some("team-*"));
        assert_eq!(best_entry(&entries, "other"), Some("*"));
        assert_eq!(best_entry(&entries[1..], "other"), None);
    }

    #[test]
    fn coverage_and_overlap() {
        let e = Entry::of;
        assert!(e("*").covers(e("team-*")));
        assert!(e("team-*").covers(e("team-a")));
        assert!(e("team-*").covers(e("team-a*")));
        assert!(!e("team-a*").covers(e("team-*")));
        assert!(e("team-a*").overlaps(e("team-*")));
        assert!(!e("team-a").covers(e("team-*")));
        assert!(!e("team-*").overlaps(e("prod-*")));
    }

    #[test]
    fn expansion_reads_only_what_matches() {
        let existing: BTreeMap<String, ()> =
            ["default", "prod", "team-a", "team-b", "teams", "zeta"]
                .map(|ns| (ns.to_owned(), ()))
                .into();
        let reached = |entries: &[&str]| -> Vec<String> {
            let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
            expand(&entries, &existing).into_iter().cloned().collect()
        };
        assert_eq!(reached(&["team-*"]), ["team-a", "team-b"]);
        assert_eq!(
            reached(&["team-*", "team-a", "prod", "missing"]),
            ["prod", "team-a", "team-b"]
        );
        assert_eq!(reached(&["*"]).len(), existing.len());
        assert_eq!(reached(&["z*"]), ["zeta"]);
    }
}
