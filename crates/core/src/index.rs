//! The snapshot the webhook and the API read: every record, and which
//! registries each namespace may use.
//!
//! The maps are persistent (structure-sharing) collections, so a write makes
//! a new snapshot by changing only the entries it touches — cost in
//! proportion to the change, not to the record count — and the result is
//! swapped in atomically. The admission path only ever loads the current
//! `Arc<Index>`: no lock, no store query, no network.

use std::borrow::Cow;
use std::cmp::Ordering as Precedence;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::mirror::MirrorEntry;
use crate::namespaces::Entry;
use crate::registry::Registry;
use crate::selector::NamespaceSelector;

/// A namespace's labels (Kubernetes mode).
pub type Labels = BTreeMap<String, String>;

/// One registry as resolution needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedRegistry {
    /// The record's name, as registry annotations and denials name it.
    pub name: String,
    /// Changes whenever the record does (its `updatedAt`): keys caches of
    /// clients and digests, so nothing outlives an edit.
    pub version: i64,
    /// `host[:port][/prefix]`, what relative paths are joined onto.
    pub image_prefix: String,
    /// The repository path prefix inside the registry, if any.
    pub path_prefix: Option<String>,
    /// The record's `pinDigests`: every tag resolved to it is pinned,
    /// whether or not the template asks.
    pub pin_digests: bool,
    /// The pull secret to inject; `None` for a registry without credentials.
    pub pull_secret: Option<String>,
    /// Whether its last check did not fail: a mirror is used only while
    /// it holds.
    pub healthy: bool,
}

/// A record's `mirrorOf` entry, as the index keeps it by upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MirrorRoute {
    registry: Arc<str>,
    created_at: DateTime<Utc>,
    entry: MirrorEntry,
}

/// Who may be used in one namespace (or under one pattern). Names are
/// shared with the other entries of the same record (`Arc<str>`), so a
/// record with thousands of namespaces costs pointers, not copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceView {
    /// Every registry authorized here, by name. A persistent set: a write
    /// to one record of a namespace that thousands share copies a path of
    /// the tree, not the whole list.
    members: imbl::OrdSet<Arc<str>>,
    /// Every registry claiming the default here, the winner first.
    claims: Vec<DefaultClaim>,
}

/// How a default claim names the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimedBy {
    /// By the namespace's own name.
    Name,
    /// By a pattern: the namespace's first `len` characters and `*`.
    Prefix(usize),
    /// By its labels (`defaultForSelector`).
    Selector,
}

/// A record's claim to be a namespace's default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DefaultClaim {
    by: ClaimedBy,
    created_at: DateTime<Utc>,
    name: Arc<str>,
}

impl DefaultClaim {
    /// `record`'s claim through its `defaultFor` entry `entry`.
    fn of(entry: &str, record: &Registry, name: Arc<str>) -> Self {
        Self {
            by: match Entry::of(entry) {
                Entry::Name(_) => ClaimedBy::Name,
                Entry::Prefix(prefix) => ClaimedBy::Prefix(prefix.len()),
            },
            created_at: record.created_at,
            name,
        }
    }
}

/// A record that chooses namespaces by their labels, as the index matches
/// it against each namespace's labels.
#[derive(Debug)]
struct Selecting {
    name: Arc<str>,
    /// `namespaceSelector`.
    authorizes: Option<NamespaceSelector>,
    /// `defaultForSelector`, and the claim it makes where it matches.
    default: Option<(NamespaceSelector, DefaultClaim)>,
    /// The record's own `namespaces`: a default by labels holds only where
    /// the record is authorized, by labels or by these.
    namespaces: Vec<String>,
}

impl Selecting {
    fn of(record: &Registry, name: Arc<str>) -> Option<Self> {
        let compile = |wire: &Option<_>| wire.as_ref().and_then(NamespaceSelector::compile);
        let authorizes = compile(&record.namespace_selector);
        let default = compile(&record.default_for_selector).map(|selector| {
            (
                selector,
                DefaultClaim {
                    by: ClaimedBy::Selector,
                    created_at: record.created_at,
                    name: name.clone(),
                },
            )
        });
        (authorizes.is_some() || default.is_some()).then(|| Self {
            name,
            authorizes,
            default,
            namespaces: record.namespaces.clone(),
        })
    }

    /// What this record's selectors give `ns`: membership, a default claim.
    fn gives(&self, ns: &str, labels: &Labels) -> (bool, Option<&DefaultClaim>) {
        let member = self.authorizes.as_ref().is_some_and(|s| s.matches(labels));
        let claim = self.default.as_ref().and_then(|(selector, claim)| {
            (selector.matches(labels)
                && (member || crate::namespaces::reaches(&self.namespaces, ns)))
            .then_some(claim)
        });
        (member, claim)
    }
}

/// The one rule for a namespace several records claim as their default:
/// a claim by name before a claim by pattern, a longer pattern before a
/// shorter one, a pattern before labels (`defaultForSelector`), then the
/// older record, then the lexically first name (a
/// total order, so every replica and every store agrees). The embedded store
/// refuses a second claim of the same entry on write; in a cluster the
/// younger record is told in its status; overlapping patterns are allowed
/// and the write is answered with a warning.
fn default_precedence(a: &DefaultClaim, b: &DefaultClaim) -> Precedence {
    let specificity = |by: ClaimedBy| match by {
        ClaimedBy::Name => (0, 0),
        ClaimedBy::Prefix(len) => (1, usize::MAX - len),
        ClaimedBy::Selector => (2, 0),
    };
    specificity(a.by)
        .cmp(&specificity(b.by))
        .then_with(|| a.created_at.cmp(&b.created_at))
        .then_with(|| a.name.cmp(&b.name))
}

impl NamespaceView {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.claims.is_empty()
    }

    /// The registry that fills in registry-relative images here.
    pub fn default_registry(&self) -> Option<&str> {
        self.claims.first().map(|claim| &*claim.name)
    }

    /// How the default names this namespace (for saying why it applies).
    pub fn default_claimed_by(&self) -> Option<ClaimedBy> {
        self.claims.first().map(|claim| claim.by)
    }

    /// Registries authorized here: the default first, then by name.
    pub fn authorized(&self) -> impl Iterator<Item = &str> {
        let default = self.default_registry().filter(|name| self.allows(name));
        default.into_iter().chain(
            self.members
                .iter()
                .map(|name| &**name)
                .filter(move |name| Some(*name) != default),
        )
    }

    /// Is `name` authorized here?
    pub fn allows(&self, name: &str) -> bool {
        self.members.contains(name)
    }

    /// Every registry authorized here, by name.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|name| &**name)
    }

    /// Every registry claiming the default here, the winner first.
    pub fn default_claimants(&self) -> impl Iterator<Item = &str> {
        self.claims.iter().map(|claim| &*claim.name)
    }

    /// Every registry claiming the default here and how, the winner first.
    pub fn default_claims(&self) -> impl Iterator<Item = (&str, ClaimedBy)> {
        self.claims.iter().map(|claim| (&*claim.name, claim.by))
    }

    /// Drops everything `name` gives this view.
    fn forget(&mut self, name: &str) {
        self.members.remove(name);
        self.claims.retain(|claim| &*claim.name != name);
    }

    /// Adds what a selecting record gives this view.
    fn take(&mut self, name: &Arc<str>, member: bool, claim: Option<&DefaultClaim>) {
        if member {
            self.members.insert(name.clone());
        }
        if let Some(claim) = claim {
            let at = self
                .claims
                .partition_point(|c| default_precedence(c, claim).is_lt());
            self.claims.insert(at, claim.clone());
        }
    }

    /// Adds what a matching pattern's view holds: a namespace sees the
    /// union of its own entry and every pattern that matches it.
    fn absorb(&mut self, other: &NamespaceView) {
        self.members = std::mem::take(&mut self.members).union(other.members.clone());
        self.claims.extend(other.claims.iter().cloned());
        self.claims.sort_by(default_precedence);
        // A record claiming by name and by pattern keeps its best claim.
        let mut seen = std::collections::HashSet::new();
        self.claims.retain(|claim| seen.insert(claim.name.clone()));
    }
}

/// Each `defaultFor` entry a record claims that another record claims ahead
/// of it — the same entry, ordered by `default_precedence`: (the record,
/// the entry, the record holding it). For status messages in a cluster,
/// where two objects can claim one entry; resolution applies the same order.
pub fn outranked_claims(records: &[Registry]) -> Vec<(String, String, String)> {
    let mut holders: HashMap<&str, DefaultClaim> = HashMap::new();
    for record in records {
        for entry in &record.default_for {
            let claim = DefaultClaim::of(entry, record, Arc::from(record.name.as_str()));
            match holders.get(entry.as_str()) {
                Some(holder) if default_precedence(holder, &claim).is_le() => {}
                _ => {
                    holders.insert(entry, claim);
                }
            }
        }
    }
    let mut outranked = Vec::new();
    for record in records {
        for entry in &record.default_for {
            if let Some(holder) = holders.get(entry.as_str())
                && *holder.name != *record.name
            {
                outranked.push((record.name.clone(), entry.clone(), holder.name.to_string()));
            }
        }
    }
    outranked
}

/// What a write of `defaultFor` meets among the other records' claims.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DefaultCheck {
    /// Another record claims the very same entry: (entry, that record).
    pub conflict: Option<(String, String)>,
    /// Overlaps the precedence rule settles, said in words for the writer.
    pub overlaps: Vec<String>,
}

/// Most overlaps one write is told about.
const OVERLAPS_SAID: usize = 10;

/// One change to the records, as a store commits it, or to what the
/// cluster says about namespaces and pull Secrets.
#[derive(Debug, Clone)]
pub enum Change {
    /// Created or replaced.
    Upsert(Arc<Registry>),
    /// Deleted: the record's name.
    Remove(String),
    /// A namespace with these labels exists (`Some`), or no longer does.
    Namespace {
        /// The namespace's name.
        name: String,
        /// Its labels now; `None` once it is deleted.
        labels: Option<Labels>,
    },
    /// A pull Secret of ours exists in a namespace, or no longer does.
    PullSecret {
        /// The namespace the Secret is in.
        namespace: String,
        /// The Secret's name (a record's `pullSecretName`).
        name: String,
        /// Whether it exists now.
        present: bool,
    },
}

/// An immutable snapshot of every record and of what each namespace may
/// use: all an admission, a list or a resolve preview reads. Made by
/// [`Index::build`] or [`Index::apply`], shared through an [`IndexHandle`].
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Every record as the API shows it, by name: lists and pages read this.
    records: imbl::OrdMap<String, Arc<Registry>>,
    /// The resolution view of each record whose server parses.
    registries: imbl::HashMap<String, Arc<IndexedRegistry>>,
    /// Namespaces some record names exactly, by name.
    namespaces: imbl::OrdMap<String, Arc<NamespaceView>>,
    /// Patterns, by prefix (`""` is `*`).
    patterns: imbl::OrdMap<String, Arc<NamespaceView>>,
    /// The prefix lengths `patterns` holds, so a lookup tries only those.
    pattern_lengths: Arc<Vec<usize>>,
    /// Records with a label selector, by name.
    selecting: imbl::OrdMap<String, Arc<Selecting>>,
    /// Every namespace of the cluster and its labels (Kubernetes mode).
    namespace_labels: imbl::HashMap<String, Arc<Labels>>,
    /// What label selectors give each namespace they match.
    selected: imbl::HashMap<String, Arc<NamespaceView>>,
    /// Pull Secrets known to exist, by namespace, where the store knows
    /// (the Kubernetes store); `None` where it does not.
    present_pull_secrets: Option<imbl::HashMap<String, imbl::HashSet<String>>>,
    /// Records' `mirrorOf` entries by upstream (`docker.io`); empty when no
    /// record mirrors anything, which a review checks first.
    mirrors: imbl::HashMap<String, Arc<Vec<MirrorRoute>>>,
}

impl Index {
    /// The snapshot of `records`.
    pub fn build(records: &[Registry]) -> Self {
        Self::default().apply(
            records
                .iter()
                .map(|record| Change::Upsert(Arc::new(record.clone()))),
        )
    }

    /// A new snapshot with `changes` applied; `self` is untouched, and the
    /// two share every entry the changes do not reach.
    #[must_use]
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>) -> Self {
        let mut next = self.clone();
        for change in changes {
            match change {
                Change::Upsert(record) => {
                    next.remove(&record.name);
                    next.insert(record);
                }
                Change::Remove(name) => next.remove(&name),
                Change::Namespace { name, labels } => next.set_labels(name, labels),
                Change::PullSecret {
                    namespace,
                    name,
                    present,
                } => {
                    let known = next.present_pull_secrets.get_or_insert_default();
                    let mut names = known.get(&namespace).cloned().unwrap_or_default();
                    if present {
                        names.insert(name);
                    } else {
                        names.remove(&name);
                    }
                    if names.is_empty() {
                        known.remove(&namespace);
                    } else {
                        known.insert(namespace, names);
                    }
                }
            }
        }
        next
    }

    /// A namespace appeared, was relabelled or went: what selectors give
    /// it is worked out again for this namespace alone.
    fn set_labels(&mut self, ns: String, labels: Option<Labels>) {
        let Some(labels) = labels else {
            self.namespace_labels.remove(&ns);
            self.selected.remove(&ns);
            return;
        };
        if self
            .namespace_labels
            .get(&ns)
            .is_some_and(|old| **old == labels)
        {
            return;
        }
        let mut view = NamespaceView::default();
        for selecting in self.selecting.values() {
            let (member, claim) = selecting.gives(&ns, &labels);
            view.take(&selecting.name, member, claim);
        }
        if view.is_empty() {
            self.selected.remove(&ns);
        } else {
            self.selected.insert(ns.clone(), Arc::new(view));
        }
        self.namespace_labels.insert(ns, Arc::new(labels));
    }

    /// Applies one selecting record (`Some`) or its removal (`None`) to
    /// every namespace: the cost follows the namespace count, and only the
    /// namespaces whose view changes are copied.
    fn reselect(&mut self, name: &str, selecting: Option<&Selecting>) {
        let mut changed = Vec::new();
        for (ns, labels) in self.namespace_labels.iter() {
            let (member, claim) = selecting.map_or((false, None), |s| s.gives(ns, labels));
            let current = self.selected.get(ns);
            let had = current.is_some_and(|view| {
                view.allows(name) || view.claims.iter().any(|c| &*c.name == name)
            });
            if !had && !member && claim.is_none() {
                continue;
            }
            let mut view = current.map(|v| NamespaceView::clone(v)).unwrap_or_default();
            view.forget(name);
            if let Some(selecting) = selecting {
                view.take(&selecting.name, member, claim);
            }
            changed.push((ns.clone(), view));
        }
        for (ns, view) in changed {
            if view.is_empty() {
                self.selected.remove(&ns);
            } else {
                self.selected.insert(ns, Arc::new(view));
            }
        }
    }

    fn insert(&mut self, record: Arc<Registry>) {
        let name = record.name.clone();
        // A record whose server no longer parses stays listed, but is not
        // offered to workloads (and is logged): a corrupt record must not
        // take down the webhook.
        match record.parsed_server() {
            Ok(server) => {
                let shared: Arc<str> = Arc::from(name.as_str());
                for entry in &record.namespaces {
                    self.update_entry(entry, |view| {
                        view.members.insert(shared.clone());
                    });
                }
                for entry in &record.default_for {
                    let claim = DefaultClaim::of(entry, &record, shared.clone());
                    self.update_entry(entry, |view| {
                        let at = view
                            .claims
                            .partition_point(|c| default_precedence(c, &claim).is_lt());
                        view.claims.insert(at, claim);
                    });
                }
                self.registries.insert(
                    name.clone(),
                    Arc::new(IndexedRegistry {
                        name: name.clone(),
                        version: record.updated_at.timestamp_nanos_opt().unwrap_or_default(),
                        image_prefix: server.image_prefix(),
                        path_prefix: server.prefix.clone(),
                        pin_digests: record.pin_digests,
                        pull_secret: record
                            .has_credentials()
                            .then(|| record.pull_secret_name.clone()),
                        healthy: record.status.health() != crate::registry::Health::Failed,
                    }),
                );
                // Node mirrors are the nodes' business: names stay.
                for entry in record
                    .mirror_of
                    .iter()
                    .filter(|e| e.mode == crate::mirror::MirrorMode::Rewrite)
                {
                    let mut routes = self
                        .mirrors
                        .get(&entry.upstream)
                        .map(|routes| Vec::clone(routes))
                        .unwrap_or_default();
                    routes.push(MirrorRoute {
                        registry: shared.clone(),
                        created_at: record.created_at,
                        entry: entry.clone(),
                    });
                    self.mirrors
                        .insert(entry.upstream.clone(), Arc::new(routes));
                }
                if let Some(selecting) = Selecting::of(&record, shared) {
                    self.reselect(&name, Some(&selecting));
                    self.selecting.insert(name.clone(), Arc::new(selecting));
                }
            }
            Err(error) => {
                tracing::error!(registry = %name, %error, "not offering a registry with an unparsable server");
            }
        }
        self.records.insert(name, record);
    }

    fn remove(&mut self, name: &str) {
        let Some(old) = self.records.remove(name) else {
            return;
        };
        self.registries.remove(name);
        for entry in &old.mirror_of {
            let Some(routes) = self.mirrors.get(&entry.upstream) else {
                continue;
            };
            let left: Vec<MirrorRoute> = routes
                .iter()
                .filter(|route| &*route.registry != name)
                .cloned()
                .collect();
            if left.is_empty() {
                self.mirrors.remove(&entry.upstream);
            } else {
                self.mirrors.insert(entry.upstream.clone(), Arc::new(left));
            }
        }
        if self.selecting.remove(name).is_some() {
            self.reselect(name, None);
        }
        for entry in &old.namespaces {
            self.update_entry(entry, |view| {
                view.members.remove(name);
            });
        }
        for entry in &old.default_for {
            self.update_entry(entry, |view| view.claims.retain(|c| &*c.name != name));
        }
    }

    /// Copy-on-write of one entry's view (a namespace's or a pattern's);
    /// dropped once nothing is left.
    fn update_entry(&mut self, entry: &str, change: impl FnOnce(&mut NamespaceView)) {
        let (map, key) = match Entry::of(entry) {
            Entry::Name(ns) => (&mut self.namespaces, ns),
            Entry::Prefix(prefix) => (&mut self.patterns, prefix),
        };
        let mut view = map
            .get(key)
            .map(|view| NamespaceView::clone(view))
            .unwrap_or_default();
        change(&mut view);
        let was_there = map.contains_key(key);
        if view.is_empty() {
            map.remove(key);
        } else {
            map.insert(key.to_owned(), Arc::new(view));
        }
        if matches!(Entry::of(entry), Entry::Prefix(_)) && was_there != map.contains_key(key) {
            let mut lengths: Vec<usize> = self.patterns.keys().map(String::len).collect();
            lengths.sort_unstable();
            lengths.dedup();
            self.pattern_lengths = Arc::new(lengths);
        }
    }

    /// The views of the patterns matching `ns`, with their prefix lengths.
    fn matching_patterns<'a>(
        &'a self,
        ns: &'a str,
    ) -> impl Iterator<Item = (usize, &'a NamespaceView)> + 'a {
        self.pattern_lengths.iter().filter_map(move |&len| {
            let prefix = ns.get(..len)?;
            self.patterns.get(prefix).map(|view| (len, view.as_ref()))
        })
    }

    /// What a record named `name` claiming `default_for` meets: the same
    /// entry claimed by another record (refused on write), and overlaps the
    /// precedence rule settles (the writer is warned).
    pub fn check_defaults(&self, name: &str, default_for: &[String]) -> DefaultCheck {
        let mut check = DefaultCheck::default();
        let others = |view: &NamespaceView| -> Vec<String> {
            view.default_claimants()
                .filter(|claimant| *claimant != name)
                .map(str::to_owned)
                .collect()
        };
        let mut say = |message: String| {
            if check.overlaps.len() < OVERLAPS_SAID {
                check.overlaps.push(message);
            }
        };
        for entry in default_for {
            match Entry::of(entry) {
                Entry::Name(ns) => {
                    if let Some(view) = self.namespaces.get(ns) {
                        let same: Vec<&DefaultClaim> = view
                            .claims
                            .iter()
                            .filter(|c| c.by == ClaimedBy::Name && &*c.name != name)
                            .collect();
                        if let Some(other) = same.first() {
                            check
                                .conflict
                                .get_or_insert((entry.clone(), other.name.to_string()));
                        }
                    }
                    for (len, view) in self.matching_patterns(ns) {
                        for other in others(view) {
                            say(format!(
                                "defaultFor {ns}: {other} claims it through the pattern {}*; a name comes before a pattern, so {name} is the default there",
                                &ns[..len]
                            ));
                        }
                    }
                }
                Entry::Prefix(prefix) => {
                    if let Some(view) = self.patterns.get(prefix)
                        && let Some(other) = others(view).into_iter().next()
                    {
                        check.conflict.get_or_insert((entry.clone(), other));
                    }
                    // Namespaces named under the pattern: their names win.
                    for (ns, view) in self
                        .namespaces
                        .range::<(Bound<&str>, Bound<&str>), str>((
                            Bound::Included(prefix),
                            Bound::Unbounded,
                        ))
                        .take_while(|(ns, _)| ns.starts_with(prefix))
                    {
                        let named: Vec<&DefaultClaim> =
                            view.claims.iter().filter(|c| &*c.name != name).collect();
                        if let Some(other) = named.first() {
                            say(format!(
                                "defaultFor {entry}: {ns} is claimed by {} by name, which comes before a pattern",
                                other.name
                            ));
                        }
                    }
                    // Other patterns that can match the same namespaces.
                    for (other_prefix, view) in self.patterns.iter() {
                        if other_prefix.as_str() == prefix
                            || !Entry::Prefix(other_prefix).overlaps(Entry::Prefix(prefix))
                        {
                            continue;
                        }
                        for other in others(view) {
                            let (longer, winner) = if other_prefix.len() > prefix.len() {
                                (format!("{other_prefix}*"), other.clone())
                            } else {
                                (entry.clone(), name.to_owned())
                            };
                            say(format!(
                                "defaultFor {entry}: overlaps {other_prefix}* of {other}; the longer pattern {longer} comes first, so {winner} is the default where both match"
                            ));
                        }
                    }
                }
            }
        }
        check
    }

    /// What a record named `name` claiming the default by `selector` meets
    /// in the namespaces it matches today, said in words for the writer:
    /// claims by name or pattern come first, and among selectors the older
    /// record does. Never refused: labels change, and the rule settles it.
    pub fn check_selector_default(&self, name: &str, selector: &NamespaceSelector) -> Vec<String> {
        let mut said = Vec::new();
        for ns in self.namespaces_matching(selector) {
            let Some(view) = self.namespace(ns) else {
                continue;
            };
            for (other, by) in view.default_claims().filter(|(other, _)| *other != name) {
                if said.len() == OVERLAPS_SAID {
                    return said;
                }
                said.push(match by {
                    ClaimedBy::Name => format!(
                        "defaultForSelector: {ns} is claimed by {other} by name, which comes before labels"
                    ),
                    ClaimedBy::Prefix(len) => format!(
                        "defaultForSelector: {ns} is claimed by {other} through the pattern {}*, which comes before labels",
                        &ns[..len.min(ns.len())]
                    ),
                    ClaimedBy::Selector => format!(
                        "defaultForSelector: {ns} is also claimed by {other}'s defaultForSelector; the older record is the default there"
                    ),
                });
            }
        }
        said
    }

    /// With the pull Secrets that exist in the cluster, so admission can
    /// warn when one it injects is not there yet.
    pub fn with_present_pull_secrets(
        mut self,
        present: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut by_namespace: imbl::HashMap<String, imbl::HashSet<String>> = Default::default();
        for (namespace, name) in present {
            by_namespace.entry(namespace).or_default().insert(name);
        }
        self.present_pull_secrets = Some(by_namespace);
        self
    }

    /// With the cluster's namespaces and their labels, for label selectors.
    pub fn with_namespaces(self, namespaces: impl IntoIterator<Item = (String, Labels)>) -> Self {
        self.apply(
            namespaces
                .into_iter()
                .map(|(name, labels)| Change::Namespace {
                    name,
                    labels: Some(labels),
                }),
        )
    }

    /// Known to be missing (not merely unknown).
    pub fn pull_secret_missing(&self, namespace: &str, name: &str) -> bool {
        self.present_pull_secrets.as_ref().is_some_and(|present| {
            !present
                .get(namespace)
                .is_some_and(|names| names.contains(name))
        })
    }

    /// The record `name` as resolution needs it; `None` when there is no
    /// such record, or its server does not parse.
    pub fn registry(&self, name: &str) -> Option<&IndexedRegistry> {
        self.registries.get(name).map(Arc::as_ref)
    }

    /// Who may be used in `ns`: its own entry, every matching pattern, and
    /// every label selector matching its labels. Borrowed when one source
    /// alone speaks for it (the common case, and the webhook's); merged
    /// into a new view when several do.
    pub fn namespace(&self, ns: &str) -> Option<Cow<'_, NamespaceView>> {
        let exact = self.namespaces.get(ns).map(Arc::as_ref);
        let selected = self.selected.get(ns).map(Arc::as_ref);
        let mut patterns = self.matching_patterns(ns).peekable();
        if patterns.peek().is_none() {
            match (exact, selected) {
                (one, None) | (None, one) => return one.map(Cow::Borrowed),
                _ => {}
            }
        }
        let mut merged = exact.cloned().unwrap_or_default();
        for (_, view) in patterns {
            merged.absorb(view);
        }
        if let Some(view) = selected {
            merged.absorb(view);
        }
        Some(Cow::Owned(merged))
    }

    /// Whether any record mirrors an upstream: a review with none has no
    /// fully qualified image to look at.
    pub fn has_mirrors(&self) -> bool {
        !self.mirrors.is_empty()
    }

    /// The record that mirrors `upstream` (canonical) in `ns`, and its
    /// entry: of those authorized there, the one the precedence rule of
    /// defaults puts first, by how the record names the namespace (by
    /// name, then the longer pattern, then labels), then the older record.
    pub fn mirror_for(&self, ns: &str, upstream: &str) -> Option<(&IndexedRegistry, &MirrorEntry)> {
        let routes = self.mirrors.get(upstream)?;
        let view = self.namespace(ns)?;
        let claim = |route: &MirrorRoute| DefaultClaim {
            by: self
                .records
                .get(&*route.registry)
                .map_or(ClaimedBy::Selector, |record| {
                    crate::namespaces::best_entry(&record.namespaces, ns).map_or(
                        ClaimedBy::Selector,
                        |entry| match Entry::of(entry) {
                            Entry::Name(_) => ClaimedBy::Name,
                            Entry::Prefix(prefix) => ClaimedBy::Prefix(prefix.len()),
                        },
                    )
                }),
            created_at: route.created_at,
            name: route.registry.clone(),
        };
        let route = routes
            .iter()
            .filter(|route| view.allows(&route.registry))
            .min_by(|a, b| default_precedence(&claim(a), &claim(b)))?;
        Some((self.registry(&route.registry)?, &route.entry))
    }

    /// A namespace's labels, where the cluster told us (Kubernetes mode).
    pub fn labels(&self, ns: &str) -> Option<&Labels> {
        self.namespace_labels.get(ns).map(Arc::as_ref)
    }

    /// Namespaces of the cluster whose labels `selector` matches, sorted.
    pub fn namespaces_matching(&self, selector: &NamespaceSelector) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .namespace_labels
            .iter()
            .filter(|(_, labels)| selector.matches(labels))
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// The registry that fills in registry-relative images in `ns`, if any.
    pub fn default_registry(&self, ns: &str) -> Option<String> {
        self.namespace(ns)
            .and_then(|view| view.default_registry().map(str::to_owned))
    }

    /// The record as the API shows it.
    pub fn record(&self, name: &str) -> Option<&Arc<Registry>> {
        self.records.get(name)
    }

    /// Every record, by name.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &Arc<Registry>> {
        self.records_range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Records with names between the bounds, by name.
    pub fn records_range(
        &self,
        from: Bound<String>,
        to: Bound<String>,
    ) -> impl DoubleEndedIterator<Item = &Arc<Registry>> {
        self.records.range((from, to)).map(|(_, record)| record)
    }

    /// Namespaces some record names, sorted: suggestions without a cluster.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .namespaces
            .iter()
            .filter(|(_, view)| !view.members.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Usable registries (those whose server parses).
    pub fn len(&self) -> usize {
        self.registries.len()
    }

    /// Whether no registry is usable (see [`Index::len`]).
    pub fn is_empty(&self) -> bool {
        self.registries.is_empty()
    }
}

/// Where the current snapshot lives. Stores publish into it; readers load it.
#[derive(Debug, Default)]
pub struct IndexHandle {
    current: ArcSwap<Index>,
    /// Serializes writers, so two changes never race to replace one
    /// snapshot; readers never take it.
    writer: Mutex<()>,
    loaded: AtomicBool,
}

impl IndexHandle {
    /// A handle holding an empty snapshot, not yet loaded (see
    /// [`IndexHandle::is_loaded`]).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Publishes the snapshot of `records`, replacing the current one
    /// whole: a store's first load, or a full reload.
    pub fn publish(&self, records: &[Registry]) {
        self.publish_index(Index::build(records));
    }

    /// Publishes `index` as it is, replacing the current snapshot.
    pub fn publish_index(&self, index: Index) {
        let _writer = self.lock_writer();
        self.store(index);
    }

    /// Publishes what `next` makes of the current snapshot, holding the
    /// writer lock throughout: what `next` reads is not changed by another
    /// writer before its result is published.
    pub fn update(&self, next: impl FnOnce(&Index) -> Index) {
        let _writer = self.lock_writer();
        let next = next(&self.current.load());
        self.store(next);
    }

    /// Applies committed changes to the current snapshot and publishes the
    /// result: the store calls this in commit order.
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>) {
        let _writer = self.lock_writer();
        let next = self.current.load().apply(changes);
        self.store(next);
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // Nothing is guarded but the order of writers: a poisoned lock is safe.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn store(&self, index: Index) {
        let registries = index.len();
        self.current.store(Arc::new(index));
        self.loaded.store(true, Ordering::Release);
        tracing::debug!(registries, "index published");
    }

    /// The current snapshot; cheap enough for every admission.
    pub fn load(&self) -> arc_swap::Guard<Arc<Index>> {
        self.current.load()
    }

    /// The current snapshot, owned: for holding across an `.await`.
    pub fn load_full(&self) -> Arc<Index> {
        self.current.load_full()
    }

    /// Has any store published yet? Readiness waits for this.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::record;

    #[test]
    fn namespaces_list_default_first_then_by_name() {
        let index = Index::build(&[
            record("zeta", "https://z.example", &["team-a"], &["team-a"], false),
            record(
                "alpha",
                "https://a.example",
                &["team-a", "team-b"],
                &[],
                true,
            ),
            record("mid", "http://10.0.0.1:5000/lib", &["team-a"], &[], true),
        ]);
        let view = index.namespace("team-a").expect("team-a indexed");
        assert_eq!(
            view.authorized().collect::<Vec<_>>(),
            ["zeta", "alpha", "mid"]
        );
        assert_eq!(view.default_registry(), Some("zeta"));
        assert_eq!(
            index
                .namespace("team-b")
                .map(|v| v.default_registry().map(str::to_owned)),
            Some(None)
        );
        assert!(index.namespace("team-c").is_none());
        let mid = index.registry("mid").expect("mid indexed");
        assert_eq!(mid.image_prefix, "10.0.0.1:5000/lib");
        assert_eq!(mid.pull_secret.as_deref(), Some("mid-pull"));
        assert_eq!(
            index.registry("zeta").and_then(|r| r.pull_secret.clone()),
            None
        );
    }

    #[test]
    fn unparsable_records_are_skipped_not_fatal() {
        let index = Index::build(&[
            record("bad", "ftp://nope", &["a"], &["a"], false),
            record("good", "https://g.example", &["a"], &[], false),
        ]);
        assert!(index.registry("bad").is_none());
        assert_eq!(
            index
                .namespace("a")
                .map(|v| v.authorized().map(String::from).collect::<Vec<_>>()),
            Some(vec!["good".to_string()])
        );
    }

    /// What resolution and the API read, for comparing two snapshots:
    /// every record, and the view of namespaces reached by name, by
    /// pattern, or not at all.
    fn observed(index: &Index) -> Vec<String> {
        let mut out: Vec<String> = index
            .records()
            .map(|r| format!("record {} {:?}", r.name, r.namespaces))
            .collect();
        for ns in [
            "ns0", "ns1", "ns2", "ns3", "ns4", "ns5", "ns6", "nx", "other",
        ] {
            out.push(match index.namespace(ns) {
                Some(view) => format!(
                    "ns {ns} {:?} {:?} {:?}",
                    view.authorized().collect::<Vec<_>>(),
                    view.default_registry(),
                    view.default_claimed_by()
                ),
                None => format!("ns {ns} -"),
            });
        }
        let mut names: Vec<_> = index.registries.keys().cloned().collect();
        names.sort();
        for name in names {
            out.push(format!("{:?}", index.registry(&name)));
        }
        out
    }

    #[test]
    fn applying_changes_equals_rebuilding_from_the_result() {
        // A deterministic walk through creates, edits and deletes over a small
        // universe, and namespaces relabelled, so namespaces gain and lose
        // members and default claims by name, pattern and label.
        let mut seed: u64 = 0x5eed;
        let mut next = |bound: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % bound
        };
        let selector = |team: u64| -> Option<
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
        > {
            serde_json::from_value(serde_json::json!({"matchLabels": {"team": format!("t{team}")}}))
                .ok()
        };
        let mut records: std::collections::BTreeMap<String, Registry> = Default::default();
        let mut labels: std::collections::BTreeMap<String, Labels> = Default::default();
        let mut index = Index::default();
        for step in 0..3000 {
            let name = format!("r{}", next(12));
            match next(8) {
                0 | 1 => {
                    records.remove(&name);
                    index = index.apply([Change::Remove(name)]);
                }
                2 => {
                    // A namespace appears, is relabelled, or goes.
                    let ns = format!("ns{}", next(7));
                    let now = match next(4) {
                        0 => None,
                        team => Some(Labels::from([("team".to_owned(), format!("t{team}"))])),
                    };
                    match &now {
                        Some(l) => labels.insert(ns.clone(), l.clone()),
                        None => labels.remove(&ns),
                    };
                    index = index.apply([Change::Namespace {
                        name: ns,
                        labels: now,
                    }]);
                }
                _ => {
                    // Names, and now and then a pattern, so namespaces are
                    // reached both ways and claims of both kinds compete.
                    let namespaces: Vec<String> = (0..next(4))
                        .map(|_| match next(9) {
                            6 => "ns*".to_owned(),
                            7 => "n*".to_owned(),
                            8 => "*".to_owned(),
                            n => format!("ns{n}"),
                        })
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    let default_for: Vec<&str> = namespaces
                        .iter()
                        .filter(|_| next(3) == 0)
                        .map(String::as_str)
                        .collect();
                    let ns: Vec<&str> = namespaces.iter().map(String::as_str).collect();
                    let mut r = record(
                        &name,
                        "https://r.example/p",
                        &ns,
                        &default_for,
                        next(2) == 0,
                    );
                    r.namespace_selector = match next(3) {
                        0 => None,
                        team => selector(team),
                    };
                    r.default_for_selector = match next(3) {
                        0 => None,
                        team => selector(team),
                    };
                    r.created_at =
                        chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(next(5) as i64);
                    r.updated_at = r.created_at + chrono::Duration::seconds(step);
                    records.insert(name, r.clone());
                    index = index.apply([Change::Upsert(Arc::new(r))]);
                }
            }
            let rebuilt = Index::build(&records.values().cloned().collect::<Vec<_>>())
                .with_namespaces(labels.clone());
            assert_eq!(observed(&index), observed(&rebuilt), "after step {step}");
        }
    }

    #[test]
    fn labels_come_after_names_and_patterns_and_only_where_authorized() {
        let at = |secs| chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(secs);
        let selector = |value: serde_json::Value| serde_json::from_value(value).ok();
        let by_labels = |name: &str, secs, authorize: bool| {
            let mut r = record(name, "https://l.example", &[], &[], false);
            r.created_at = at(secs);
            if authorize {
                r.namespace_selector = selector(serde_json::json!({"matchLabels": {"ws": "1"}}));
            }
            r.default_for_selector = selector(serde_json::json!({"matchLabels": {"ws": "1"}}));
            r
        };
        let ws1 = Labels::from([("ws".to_owned(), "1".to_owned())]);
        let index = Index::build(&[
            by_labels("young-labels", 9, true),
            by_labels("old-labels", 1, true),
            // Claims by labels but is not authorized by them: no default.
            by_labels("unauthorized", 0, false),
            record(
                "pattern",
                "https://p.example",
                &["team-*"],
                &["team-*"],
                false,
            ),
        ])
        .with_namespaces([
            ("team-a".to_owned(), ws1.clone()),
            ("proj".to_owned(), ws1.clone()),
            ("other".to_owned(), Labels::new()),
        ]);
        let view = index.namespace("proj").expect("selected");
        assert_eq!(view.default_registry(), Some("old-labels"));
        assert_eq!(view.default_claimed_by(), Some(ClaimedBy::Selector));
        assert_eq!(
            view.authorized().collect::<Vec<_>>(),
            ["old-labels", "young-labels"]
        );
        let view = index.namespace("team-a").expect("reached");
        assert_eq!(
            view.default_registry(),
            Some("pattern"),
            "a pattern before labels"
        );
        assert_eq!(
            view.authorized().collect::<Vec<_>>(),
            ["pattern", "old-labels", "young-labels"]
        );
        assert!(index.namespace("other").is_none());
        // What a new claim by the same labels is told.
        let said = index.check_selector_default(
            "new",
            &NamespaceSelector::compile(
                &selector(serde_json::json!({"matchLabels": {"ws": "1"}})).expect("wire"),
            )
            .expect("valid"),
        );
        assert!(
            said.iter()
                .any(|s| s.contains("team-a is claimed by pattern through the pattern team-*")),
            "{said:?}"
        );
        assert!(
            said.iter()
                .any(|s| s.contains("proj is also claimed by old-labels")),
            "{said:?}"
        );
    }

    #[test]
    fn a_contested_default_goes_to_the_older_record_then_the_first_name() {
        let at = |secs| chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(secs);
        let mut young = record("aaa", "https://a.example", &["t"], &["t"], false);
        young.created_at = at(20);
        let mut old = record("zzz", "https://z.example", &["t"], &["t"], false);
        old.created_at = at(10);
        let index = Index::build(&[young.clone(), old.clone()]);
        assert_eq!(index.default_registry("t").as_deref(), Some("zzz"));
        assert_eq!(
            index
                .namespace("t")
                .map(|v| v.authorized().map(String::from).collect::<Vec<_>>()),
            Some(vec!["zzz".into(), "aaa".into()])
        );
        // Same age: the name decides, whatever order they arrive in.
        old.created_at = at(20);
        for order in [[young.clone(), old.clone()], [old.clone(), young.clone()]] {
            assert_eq!(
                Index::build(&order).default_registry("t").as_deref(),
                Some("aaa")
            );
        }
        // The winner leaves: the claim passes on.
        let index = index.apply([Change::Remove("zzz".into())]);
        assert_eq!(index.default_registry("t").as_deref(), Some("aaa"));
    }

    #[test]
    fn patterns_reach_namespaces_and_the_precedence_table_holds() {
        let at = |secs| chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(secs);
        let aged = |mut r: Registry, secs| {
            r.created_at = at(secs);
            r
        };
        let index = Index::build(&[
            aged(
                record("everyone", "https://e.example", &["*"], &["*"], false),
                1,
            ),
            aged(
                record(
                    "teams",
                    "https://t.example",
                    &["team-*"],
                    &["team-*"],
                    false,
                ),
                2,
            ),
            aged(
                record(
                    "team-a-only",
                    "https://a.example",
                    &["team-a*"],
                    &["team-a*"],
                    false,
                ),
                3,
            ),
            aged(
                record(
                    "named",
                    "https://n.example",
                    &["team-ab"],
                    &["team-ab"],
                    false,
                ),
                4,
            ),
            aged(
                record("young-teams", "https://y.example", &["team-*"], &[], false),
                5,
            ),
        ]);
        // (namespace, default, how it is claimed, authorized in order)
        let table = [
            ("prod", "everyone", ClaimedBy::Prefix(0), vec!["everyone"]),
            (
                "team-b",
                "teams",
                ClaimedBy::Prefix(5),
                vec!["teams", "everyone", "young-teams"],
            ),
            (
                "team-ax",
                "team-a-only",
                ClaimedBy::Prefix(6),
                vec!["team-a-only", "everyone", "teams", "young-teams"],
            ),
            (
                "team-ab",
                "named",
                ClaimedBy::Name,
                vec!["named", "everyone", "team-a-only", "teams", "young-teams"],
            ),
        ];
        for (ns, default, by, authorized) in table {
            let view = index.namespace(ns).expect("reached");
            assert_eq!(view.default_registry(), Some(default), "{ns}");
            assert_eq!(view.default_claimed_by(), Some(by), "{ns}");
            assert_eq!(view.authorized().collect::<Vec<_>>(), authorized, "{ns}");
        }
        // A namespace no entry reaches is unknown, not empty.
        let narrow = Index::build(&[record("t", "https://t.example", &["team-*"], &[], false)]);
        assert!(narrow.namespace("prod").is_none());
        assert!(narrow.namespace("team-x").is_some_and(|v| v.allows("t")));
    }

    #[test]
    fn a_write_is_told_what_its_defaults_meet() {
        let index = Index::build(&[record(
            "harbor",
            "https://h.example",
            &["team-a", "team-*"],
            &["team-a", "team-*"],
            false,
        )]);
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The same name or the same pattern: a conflict.
        let same_name = index.check_defaults("other", &names(&["team-a"]));
        assert_eq!(same_name.conflict, Some(("team-a".into(), "harbor".into())));
        let same_pattern = index.check_defaults("other", &names(&["team-*"]));
        assert_eq!(
            same_pattern.conflict,
            Some(("team-*".into(), "harbor".into()))
        );
        // Overlaps the rule settles: warned, not refused.
        let by_name = index.check_defaults("other", &names(&["team-b"]));
        assert_eq!(by_name.conflict, None);
        assert!(
            by_name.overlaps[0].contains("a name comes before a pattern"),
            "{:?}",
            by_name.overlaps
        );
        let wider = index.check_defaults("other", &names(&["t*"]));
        assert_eq!(wider.conflict, None);
        assert_eq!(wider.overlaps.len(), 2, "{:?}", wider.overlaps);
        // A record's own claims are not in its way.
        assert_eq!(
            index.check_defaults("harbor", &names(&["team-a", "team-*"])),
            DefaultCheck::default()
        );
    }

    #[test]
    fn a_change_leaves_the_previous_snapshot_as_it_was() {
        let before = Index::build(&[record("a", "https://a.example", &["t"], &["t"], false)]);
        let after = before.apply([
            Change::Remove("a".into()),
            Change::Upsert(Arc::new(record(
                "b",
                "https://b.example",
                &["u"],
                &[],
                false,
            ))),
        ]);
        assert_eq!(before.default_registry("t").as_deref(), Some("a"));
        assert!(before.record("b").is_none());
        assert!(after.namespace("t").is_none());
        assert_eq!(after.namespace_names(), ["u"]);
    }

    #[test]
    fn handle_reports_loaded_after_first_publish() {
        let handle = IndexHandle::new();
        assert!(!handle.is_loaded());
        handle.publish(&[record("r", "https://r.example", &["a"], &[], false)]);
        assert!(handle.is_loaded());
        assert_eq!(handle.load().len(), 1);
    }
}
