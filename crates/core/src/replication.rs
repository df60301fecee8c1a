//! What the pull Secrets in the cluster should be, as a pure function of
//! the registries and of what is observed. The controller applies the
//! actions; the table tests below cover every case it must handle.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;

use crate::index::Labels;
use crate::selector::NamespaceSelector;
use base64::engine::general_purpose::STANDARD;

/// Labels on every Secret we manage.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Our value of [`MANAGED_BY_LABEL`]: a Secret without it is never changed
/// or deleted.
pub const MANAGED_BY_VALUE: &str = "registry-resolver";
/// The record a managed Secret belongs to, by name: how a Secret left by a
/// deleted or changed record is found again.
pub const REGISTRY_LABEL: &str = "registry-resolver.io/registry";

/// A registry as replication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The record's name, written to [`REGISTRY_LABEL`].
    pub name: String,
    /// The Secret's name in every namespace it goes to.
    pub pull_secret_name: String,
    /// The record's `namespaces`: names and patterns.
    pub namespaces: Vec<String>,
    /// `namespaceSelector`: namespaces reached by their labels as well.
    pub selector: Option<NamespaceSelector>,
    /// `host[:port]`: the key the kubelet matches in `auths`.
    pub auths_key: String,
    /// `None`: a public registry, no pull secret.
    pub credentials: Option<(String, String)>,
}

/// The cluster's namespaces and their labels.
pub type Namespaces = BTreeMap<String, Labels>;

impl Registry {
    /// The existing namespaces this registry's pull Secret belongs in: those
    /// its names and patterns reach, and those its selector matches.
    pub fn targets<'n>(&self, existing: &'n Namespaces) -> BTreeSet<&'n String> {
        let mut reached = crate::namespaces::expand(&self.namespaces, existing);
        if let Some(selector) = &self.selector {
            reached.extend(
                existing
                    .iter()
                    .filter(|(_, labels)| selector.matches(labels))
                    .map(|(ns, _)| ns),
            );
        }
        reached
    }
}

/// A Secret seen in the cluster, named like one we want or labelled as ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSecret {
    /// The namespace it is in.
    pub namespace: String,
    /// Its name, matched against each record's `pull_secret_name`.
    pub name: String,
    /// `Some(registry)` when it carries our labels.
    pub managed_for: Option<String>,
    /// Its `.dockerconfigjson`, to skip writes that change nothing.
    pub dockerconfigjson: Option<Vec<u8>>,
}

/// One change to the cluster's pull Secrets, as [`plan`] decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Server-side apply this Secret.
    Apply {
        /// The namespace the Secret goes to.
        namespace: String,
        /// The record's `pull_secret_name`.
        name: String,
        /// The record it belongs to, for [`REGISTRY_LABEL`].
        registry: String,
        /// The Secret's `.dockerconfigjson`, as [`dockerconfigjson`]
        /// makes it.
        dockerconfigjson: Vec<u8>,
    },
    /// Delete this Secret of ours: its record is gone, being deleted or
    /// without credentials, or no longer reaches the namespace.
    Delete {
        /// The namespace the Secret is in.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A Secret we do not manage is in the way; it is left alone and the
    /// registry's status says so.
    Conflict {
        /// The record whose Secret could not be placed.
        registry: String,
        /// The namespace where it could not be.
        namespace: String,
        /// The Secret name that is taken.
        name: String,
        /// Why, for the status: an unmanaged Secret of that name, or
        /// another record with the same `pull_secret_name`.
        reason: String,
    },
}

/// The `.dockerconfigjson` for one registry login.
pub fn dockerconfigjson(auths_key: &str, username: &str, password: &str) -> Vec<u8> {
    let auth = STANDARD.encode(format!("{username}:{password}"));
    let value = serde_json::json!({
        "auths": { auths_key: { "username": username, "password": password, "auth": auth } }
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Every action that makes the cluster match the registries. `namespaces`
/// are those that exist: a Secret for a namespace that does not exist yet
/// is created when it appears (the controller watches namespaces).
pub fn plan(
    registries: &[Registry],
    namespaces: &Namespaces,
    observed: &[ObservedSecret],
) -> Vec<Action> {
    let by_key: BTreeMap<(&str, &str), &ObservedSecret> = observed
        .iter()
        .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
        .collect();
    let mut wanted: BTreeMap<(String, String), (&Registry, Vec<u8>)> = BTreeMap::new();
    let mut actions = Vec::new();

    let mut ordered: Vec<&Registry> = registries.iter().collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name));
    for registry in ordered {
        let Some((username, password)) = registry.credentials.as_ref() else {
            continue;
        };
        let content = dockerconfigjson(&registry.auths_key, username, password);
        // Names, patterns and labels alike reach only namespaces that exist.
        for namespace in registry.targets(namespaces) {
            let key = (namespace.clone(), registry.pull_secret_name.clone());
            if let Some((other, _)) = wanted.get(&key) {
                actions.push(Action::Conflict {
                    registry: registry.name.clone(),
                    namespace: namespace.clone(),
                    name: registry.pull_secret_name.clone(),
                    reason: format!("registry {:?} uses the same pull secret name", other.name),
                });
                continue;
            }
            match by_key.get(&(namespace.as_str(), registry.pull_secret_name.as_str())) {
                Some(existing) if existing.managed_for.is_none() => {
                    actions.push(Action::Conflict {
                        registry: registry.name.clone(),
                        namespace: namespace.clone(),
                        name: registry.pull_secret_name.clone(),
                        reason:
                            "a Secret of that name exists and is not managed by registry-resolver"
                                .into(),
                    });
                    continue;
                }
                Some(existing)
                    if existing.managed_for.as_deref() == Some(registry.name.as_str())
                        && existing.dockerconfigjson.as_deref() == Some(content.as_slice()) => {}
                _ => actions.push(Action::Apply {
                    namespace: namespace.clone(),
                    name: registry.pull_secret_name.clone(),
                    registry: registry.name.clone(),
                    dockerconfigjson: content.clone(),
                }),
            }
            wanted.insert(key, (registry, content.clone()));
        }
    }

    for secret in observed {
        if secret.managed_for.is_some()
            && !wanted.contains_key(&(secret.namespace.clone(), secret.name.clone()))
        {
            actions.push(Action::Delete {
                namespace: secret.namespace.clone(),
                name: secret.name.clone(),
            });
        }
    }
    actions
}

/// The Secret names the record `name`'s plan is made over: its
/// `pull_secret_name`, and the names of the Secrets it manages now (from
/// an earlier name). `secrets` are (name, the record it is managed for)
/// of what is observed; only Secrets of these names can change its plan,
/// so a controller need read no others.
pub fn related_names<'a>(
    name: &str,
    registries: &'a [Registry],
    secrets: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> BTreeSet<&'a str> {
    registries
        .iter()
        .filter(|r| r.name == name)
        .map(|r| r.pull_secret_name.as_str())
        .chain(
            secrets
                .filter_map(|(secret, managed_for)| (managed_for == Some(name)).then_some(secret)),
        )
        .collect()
}

/// One record's share of [`plan`], for a controller that reconciles one
/// record at a time.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecordPlan {
    /// What the record's reconcile carries out: its Secrets applied, its
    /// conflicts, and Secrets it manages that nothing wants any more.
    pub actions: Vec<Action>,
    /// Other records with work in the same Secrets (one took a name over
    /// from this one, say): their reconciles are due.
    pub also_due: BTreeSet<String>,
}

/// The actions of [`plan`] that are the record `name`'s. Records affect
/// each other only through a shared Secret name, so the plan is made over
/// the records and Secrets of the names `name` has to do with (its
/// `pull_secret_name`, and names it still manages from before): the same
/// rules and the same answer as the whole-world plan, at the cost of one
/// record. `name` need not be among `registries` (being deleted, or not
/// usable): then its Secrets go.
pub fn plan_for(
    name: &str,
    registries: &[Registry],
    namespaces: &Namespaces,
    observed: &[ObservedSecret],
) -> RecordPlan {
    let names = related_names(
        name,
        registries,
        observed
            .iter()
            .map(|s| (s.name.as_str(), s.managed_for.as_deref())),
    );
    let related: Vec<Registry> = registries
        .iter()
        .filter(|r| names.contains(r.pull_secret_name.as_str()))
        .cloned()
        .collect();
    let seen: Vec<ObservedSecret> = observed
        .iter()
        .filter(|s| names.contains(s.name.as_str()))
        .cloned()
        .collect();
    let manager: BTreeMap<(&str, &str), &str> = seen
        .iter()
        .filter_map(|s| {
            Some((
                (s.namespace.as_str(), s.name.as_str()),
                s.managed_for.as_deref()?,
            ))
        })
        .collect();
    let mut out = RecordPlan::default();
    for action in plan(&related, namespaces, &seen) {
        let owner = match &action {
            Action::Apply { registry, .. } | Action::Conflict { registry, .. } => {
                Some(registry.as_str())
            }
            Action::Delete { namespace, name } => {
                manager.get(&(namespace.as_str(), name.as_str())).copied()
            }
        };
        match owner {
            Some(owner) if owner == name => out.actions.push(action),
            Some(other) if registries.iter().any(|r| r.name == other) => {
                out.also_due.insert(other.to_owned());
            }
            // A Secret of a record that is no more: see [`orphans`].
            _ => {}
        }
    }
    out
}

/// How far `registry`'s pull Secrets are in line before `actions` (its
/// plan) are carried out: the namespaces it reaches, less those its plan
/// still has to write or cannot (a conflict). Each apply that succeeds
/// adds one.
pub fn progress(
    registry: &Registry,
    namespaces: &Namespaces,
    actions: &[Action],
) -> crate::registry::ReplicationProgress {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let authorized = registry.targets(namespaces).len();
    let pending = actions
        .iter()
        .filter(|action| match action {
            Action::Apply { registry: r, .. } | Action::Conflict { registry: r, .. } => {
                r == &registry.name
            }
            Action::Delete { .. } => false,
        })
        .count();
    crate::registry::ReplicationProgress {
        replicated: count(authorized.saturating_sub(pending)),
        authorized: count(authorized),
    }
}

/// Deletions of Secrets whose record no longer exists (`objects` are the
/// names of the records that do, usable or not): no record's reconcile
/// would reach them. A finalizer normally removes a record's Secrets
/// before it goes; this catches what it could not (removed by hand).
pub fn orphans(objects: &BTreeSet<String>, observed: &[ObservedSecret]) -> Vec<Action> {
    observed
        .iter()
        .filter(|s| s.managed_for.as_ref().is_some_and(|r| !objects.contains(r)))
        .map(|s| Action::Delete {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(name: &str, namespaces: &[&str], password: Option<&str>) -> Registry {
        Registry {
            name: name.into(),
            pull_secret_name: format!("{name}-pull"),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            selector: None,
            auths_key: "r.example:5000".into(),
            credentials: password.map(|p| ("robot".into(), p.into())),
        }
    }

    fn ours(namespace: &str, name: &str, registry: &str, password: &str) -> ObservedSecret {
        ObservedSecret {
            namespace: namespace.into(),
            name: name.into(),
            managed_for: Some(registry.into()),
            dockerconfigjson: Some(dockerconfigjson("r.example:5000", "robot", password)),
        }
    }

    fn apply(namespace: &str, name: &str, registry: &str, password: &str) -> Action {
        Action::Apply {
            namespace: namespace.into(),
            name: name.into(),
            registry: registry.into(),
            dockerconfigjson: dockerconfigjson("r.example:5000", "robot", password),
        }
    }

    fn delete(namespace: &str, name: &str) -> Action {
        Action::Delete {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn namespaces(names: &[&str]) -> Namespaces {
        names
            .iter()
            .map(|s| (s.to_string(), Labels::new()))
            .collect()
    }

    #[test]
    fn a_selector_reaches_the_namespaces_whose_labels_match() {
        let mut by_labels = registry("r", &["named"], Some("pw"));
        by_labels.selector = serde_json::from_value(
            serde_json::json!({"matchLabels": {"kubesphere.io/workspace": "ws1"}}),
        )
        .ok()
        .and_then(|wire| NamespaceSelector::compile(&wire));
        let ws = |w: &str| Labels::from([("kubesphere.io/workspace".to_owned(), w.to_owned())]);
        let existing: Namespaces = [
            ("named".to_owned(), Labels::new()),
            ("proj-1".to_owned(), ws("ws1")),
            ("proj-2".to_owned(), ws("ws2")),
        ]
        .into();
        // An old copy where the labels no longer match goes.
        let observed = [ours("proj-2", "r-pull", "r", "pw")];
        assert_eq!(
            plan(&[by_labels], &existing, &observed),
            [
                apply("named", "r-pull", "r", "pw"),
                apply("proj-1", "r-pull", "r", "pw"),
                delete("proj-2", "r-pull"),
            ]
        );
    }

    /// (what, registries, existing namespaces, observed secrets, expected actions)
    type Case = (
        &'static str,
        Vec<Registry>,
        Namespaces,
        Vec<ObservedSecret>,
        Vec<Action>,
    );

    fn cases() -> Vec<Case> {
        let all = namespaces(&["a", "b", "c"]);
        let mut shared = registry("s", &["a", "b"], Some("pw2"));
        shared.pull_secret_name = "r-pull".into();
        vec![
            (
                "two records with one pull secret name, one of them renamed away",
                vec![registry("r", &["a"], Some("pw")), shared],
                all.clone(),
                vec![
                    ours("a", "r-pull", "r", "pw"),
                    ours("b", "r-pull", "r", "pw"),
                    ours("c", "old-pull", "r", "pw"),
                    ours("c", "gone-pull", "gone", "pw"),
                ],
                vec![
                    Action::Conflict {
                        registry: "s".into(),
                        namespace: "a".into(),
                        name: "r-pull".into(),
                        reason: "registry \"r\" uses the same pull secret name".into(),
                    },
                    apply("b", "r-pull", "s", "pw2"),
                    delete("c", "old-pull"),
                    delete("c", "gone-pull"),
                ],
            ),
            (
                "creates in every authorized namespace",
                vec![registry("r", &["a", "b"], Some("pw"))],
                all.clone(),
                vec![],
                vec![
                    apply("a", "r-pull", "r", "pw"),
                    apply("b", "r-pull", "r", "pw"),
                ],
            ),
            (
                "nothing when all is in place",
                vec![registry("r", &["a"], Some("pw"))],
                all.clone(),
                vec![ours("a", "r-pull", "r", "pw")],
                vec![],
            ),
            (
                "updates when the password changes",
                vec![registry("r", &["a"], Some("new"))],
                all.clone(),
                vec![ours("a", "r-pull", "r", "old")],
                vec![apply("a", "r-pull", "r", "new")],
            ),
            (
                "restores a deleted copy",
                vec![registry("r", &["a", "b"], Some("pw"))],
                all.clone(),
                vec![ours("a", "r-pull", "r", "pw")],
                vec![apply("b", "r-pull", "r", "pw")],
            ),
            (
                "deletes from a namespace removed from the list",
                vec![registry("r", &["a"], Some("pw"))],
                all.clone(),
                vec![
                    ours("a", "r-pull", "r", "pw"),
                    ours("b", "r-pull", "r", "pw"),
                ],
                vec![delete("b", "r-pull")],
            ),
            (
                "orphans of a registry that is gone are deleted",
                vec![],
                all.clone(),
                vec![ours("c", "gone-pull", "gone", "pw")],
                vec![delete("c", "gone-pull")],
            ),
            (
                "a public registry needs no secret, and loses old ones",
                vec![registry("r", &["a"], None)],
                all.clone(),
                vec![ours("a", "r-pull", "r", "pw")],
                vec![delete("a", "r-pull")],
            ),
            (
                "namespaces that do not exist yet are skipped",
                vec![registry("r", &["a", "later"], Some("pw"))],
                all.clone(),
                vec![],
                vec![apply("a", "r-pull", "r", "pw")],
            ),
            (
                "a Secret we do not manage is never overwritten",
                vec![registry("r", &["a"], Some("pw"))],
                all.clone(),
                vec![ObservedSecret {
                    namespace: "a".into(),
                    name: "r-pull".into(),
                    managed_for: None,
                    dockerconfigjson: Some(b"{}".to_vec()),
                }],
                vec![Action::Conflict {
                    registry: "r".into(),
                    namespace: "a".into(),
                    name: "r-pull".into(),
                    reason: "a Secret of that name exists and is not managed by registry-resolver"
                        .into(),
                }],
            ),
            (
                "a copy edited by hand is restored",
                vec![registry("r", &["a"], Some("pw"))],
                all.clone(),
                vec![ObservedSecret {
                    dockerconfigjson: Some(b"tampered".to_vec()),
                    ..ours("a", "r-pull", "r", "pw")
                }],
                vec![apply("a", "r-pull", "r", "pw")],
            ),
        ]
    }

    #[test]
    fn replication_table() {
        for (name, registries, existing, observed, want) in cases() {
            assert_eq!(plan(&registries, &existing, &observed), want, "{name}");
        }
    }

    /// The controller reconciles one record at a time: what each record's
    /// plan holds, with the orphans' deletions, is the whole-world plan,
    /// every action once; and a record's plan names the records it found
    /// work for.
    #[test]
    fn per_record_plans_add_up_to_the_whole_world_plan() {
        for (name, registries, existing, observed, want) in cases() {
            let mut got: Vec<Action> = Vec::new();
            for registry in &registries {
                let planned = plan_for(&registry.name, &registries, &existing, &observed);
                got.extend(planned.actions);
                for other in &planned.also_due {
                    assert!(
                        registries.iter().any(|r| &r.name == other),
                        "{name}: {other} is a record"
                    );
                }
            }
            let objects: BTreeSet<String> = registries.iter().map(|r| r.name.clone()).collect();
            got.extend(orphans(&objects, &observed));
            let key = |a: &Action| format!("{a:?}");
            got.sort_by_key(key);
            let mut want = want;
            want.sort_by_key(key);
            assert_eq!(got, want, "{name}");
        }
        // `s`'s reconcile finds `r`'s old Secret in `b` wanted by `s`: its
        // own work. `r`'s reconcile finds it too, and says `s` is due.
        let (_, registries, existing, observed, _) = cases().remove(0);
        let planned = plan_for("r", &registries, &existing, &observed);
        assert_eq!(planned.also_due, BTreeSet::from(["s".to_owned()]));
        assert_eq!(planned.actions, [delete("c", "old-pull")]);
        // A record being deleted is not among the usable ones: its own
        // plan removes the Secrets it manages that nothing else wants; the
        // ones `s` wants under the same name are `s`'s to take over.
        let usable: Vec<Registry> = registries.into_iter().filter(|r| r.name != "r").collect();
        let leaving = plan_for("r", &usable, &existing, &observed);
        assert_eq!(leaving.actions, [delete("c", "old-pull")]);
        assert_eq!(leaving.also_due, BTreeSet::from(["s".to_owned()]));
        let taking_over = plan_for("s", &usable, &existing, &observed);
        assert_eq!(
            taking_over.actions,
            [
                apply("a", "r-pull", "s", "pw2"),
                apply("b", "r-pull", "s", "pw2")
            ]
        );
        // Alone, a leaving record's plan removes all it manages.
        assert_eq!(
            plan_for("r", &[], &existing, &observed).actions,
            [
                delete("a", "r-pull"),
                delete("b", "r-pull"),
                delete("c", "old-pull")
            ]
        );
    }

    #[test]
    fn two_registries_with_one_secret_name_conflict() {
        let mut second = registry("s", &["a"], Some("pw2"));
        second.pull_secret_name = "r-pull".into();
        let actions = plan(
            &[registry("r", &["a"], Some("pw")), second],
            &namespaces(&["a"]),
            &[],
        );
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0], apply("a", "r-pull", "r", "pw"));
        assert!(matches!(&actions[1], Action::Conflict { registry, .. } if registry == "s"));
    }

    /// A rotation: every namespace's Secret holds the old password, so
    /// none is in line until it is written; a namespace taken by a Secret
    /// not ours never is.
    #[test]
    fn progress_counts_what_is_in_line_before_the_writes() {
        let rotated = registry("harbor", &["*"], Some("new"));
        let ns = namespaces(&["a", "b", "c", "d"]);
        let observed = [
            ours("a", "harbor-pull", "harbor", "new"),
            ours("b", "harbor-pull", "harbor", "old"),
            ours("c", "harbor-pull", "harbor", "old"),
            ObservedSecret {
                namespace: "d".into(),
                name: "harbor-pull".into(),
                managed_for: None,
                dockerconfigjson: None,
            },
        ];
        let actions = plan_for("harbor", std::slice::from_ref(&rotated), &ns, &observed).actions;
        let before = progress(&rotated, &ns, &actions);
        assert_eq!(
            before,
            crate::registry::ReplicationProgress {
                replicated: 1,
                authorized: 4
            }
        );
        // Where everything is in line, everything counts.
        let only_a = namespaces(&["a"]);
        let in_line = plan_for(
            "harbor",
            std::slice::from_ref(&rotated),
            &only_a,
            &observed[..1],
        );
        assert!(in_line.actions.is_empty());
        assert_eq!(
            progress(&rotated, &only_a, &in_line.actions),
            crate::registry::ReplicationProgress {
                replicated: 1,
                authorized: 1
            }
        );
    }

    #[test]
    fn dockerconfigjson_has_what_the_kubelet_reads() {
        let value: serde_json::Value = serde_json::from_slice(&dockerconfigjson(
            "harbor.example.com:8443",
            "robot",
            "s3cret",
        ))
        .expect("json");
        let entry = &value["auths"]["harbor.example.com:8443"];
        assert_eq!(entry["username"], "robot");
        assert_eq!(entry["password"], "s3cret");
        assert_eq!(entry["auth"], STANDARD.encode("robot:s3cret"));
    }
}
