//! What each node says about its trust configuration, and the summary an
//! ImageRegistry's status carries: counts and a short list of failing
//! nodes, so it stays small with thousands of nodes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::plan::{HostTrust, Problem};
pub use crate::registry::{FailedNode, NodeTrustStatus};

/// Label on every node report (a ConfigMap in the install namespace).
pub const REPORT_LABEL: &str = "registry-resolver.io/node-trust";
/// The report's key in the ConfigMap.
pub const REPORT_KEY: &str = "report.json";
/// Most failing nodes one status names.
pub const FAILED_NODES_SHOWN: usize = 10;

/// The report ConfigMap's name for a node: `node-trust-<node>`, or, for a
/// node name too long to fit, a digest of it (the report names the node).
pub fn report_name(node: &str) -> String {
    let name = format!("node-trust-{node}");
    if name.len() <= 253 {
        return name;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, node.as_bytes());
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("node-trust-{hex}")
}

/// A report as stored (`object` is the ConfigMap's name, `text` its
/// [`REPORT_KEY`]); one claiming another node's name is ignored.
pub fn parse(object: &str, text: &str) -> Option<NodeReport> {
    let report: NodeReport = serde_json::from_str(text).ok()?;
    (object == report_name(&report.node)).then_some(report)
}

/// One node's account, written by its agent after each sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    /// The reporting node's name; [`parse`] ignores a report stored under
    /// another node's object.
    pub node: String,
    /// Registries whose trust is in place, with the fingerprint of the
    /// material written (a CA rotation is in place once it matches).
    pub configured: BTreeMap<String, String>,
    /// Registries whose trust could not be put in place, and why.
    pub failed: BTreeMap<String, String>,
    /// containerd will not read what was written: the lines to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<String>,
}

impl NodeReport {
    /// The report after a sync: every registry of a host in place is
    /// configured; a problem or a failed host fails its registries.
    pub fn after_sync(
        node: &str,
        hosts: &[HostTrust],
        problems: &[Problem],
        in_place: &std::collections::BTreeSet<String>,
        failed_hosts: &BTreeMap<String, String>,
        runtime_config: Option<String>,
    ) -> Self {
        let mut report = Self {
            node: node.to_owned(),
            runtime_config,
            ..Self::default()
        };
        for trust in hosts {
            for registry in &trust.registries {
                if let Some(why) = failed_hosts.get(&trust.host) {
                    report.failed.insert(registry.clone(), why.clone());
                } else if in_place.contains(&trust.host) {
                    report
                        .configured
                        .insert(registry.clone(), trust.fingerprint());
                }
            }
        }
        for problem in problems {
            report
                .failed
                .insert(problem.registry.clone(), problem.message.clone());
        }
        report
    }
}

/// The status of `registry`, whose current trust material has
/// `fingerprint`, from every node's report. A node counts as configured
/// only with that fingerprint (a node still on the old CA is not), and as
/// failed when its runtime will not read the files either.
pub fn summarize(registry: &str, fingerprint: &str, reports: &[NodeReport]) -> NodeTrustStatus {
    let mut status = NodeTrustStatus {
        nodes: u32::try_from(reports.len()).unwrap_or(u32::MAX),
        ..NodeTrustStatus::default()
    };
    let mut ordered: Vec<&NodeReport> = reports.iter().collect();
    ordered.sort_by(|a, b| a.node.cmp(&b.node));
    for report in ordered {
        let failure = report.failed.get(registry).cloned().or_else(|| {
            report
                .configured
                .contains_key(registry)
                .then(|| report.runtime_config.clone())
                .flatten()
        });
        if let Some(message) = failure {
            status.failed += 1;
            if status.failed_nodes.len() < FAILED_NODES_SHOWN {
                status.failed_nodes.push(FailedNode {
                    node: report.node.clone(),
                    message,
                });
            }
        } else if report.configured.get(registry).map(String::as_str) == Some(fingerprint) {
            status.configured += 1;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, configured: &[(&str, &str)], failed: &[(&str, &str)]) -> NodeReport {
        NodeReport {
            node: node.into(),
            configured: configured
                .iter()
                .map(|(r, f)| (r.to_string(), f.to_string()))
                .collect(),
            failed: failed
                .iter()
                .map(|(r, m)| (r.to_string(), m.to_string()))
                .collect(),
            runtime_config: None,
        }
    }

    #[test]
    fn report_names_fit_whatever_the_node_is_called() {
        assert_eq!(report_name("worker-1"), "node-trust-worker-1");
        let long = "n".repeat(253);
        let name = report_name(&long);
        assert!(
            name.len() <= 253 && name.starts_with("node-trust-"),
            "{name}"
        );
        assert_ne!(name, report_name(&"m".repeat(253)));
        let text = serde_json::to_string(&report("worker-1", &[], &[])).expect("json");
        assert!(parse("node-trust-worker-1", &text).is_some());
        assert!(
            parse("node-trust-worker-2", &text).is_none(),
            "a report names its own node"
        );
    }

    #[test]
    fn a_summary_counts_current_material_and_caps_the_failures() {
        let mut reports = vec![
            report("n1", &[("harbor", "new")], &[]),
            report("n2", &[("harbor", "old")], &[]),
            report(
                "n3",
                &[],
                &[("harbor", "hosts.toml exists and was not written by us")],
            ),
        ];
        let mut stale_config = report("n4", &[("harbor", "new")], &[]);
        stale_config.runtime_config = Some("add config_path".into());
        reports.push(stale_config);
        for i in 0..20 {
            reports.push(report(&format!("z{i:02}"), &[], &[("harbor", "disk full")]));
        }
        let status = summarize("harbor", "new", &reports);
        assert_eq!(status.nodes, 24);
        assert_eq!(status.configured, 1, "n2 still has the old CA");
        assert_eq!(status.failed, 22);
        assert_eq!(status.failed_nodes.len(), FAILED_NODES_SHOWN);
        assert_eq!(status.failed_nodes[0].node, "n3");
        assert_eq!(status.failed_nodes[1].message, "add config_path");
        assert_eq!(summarize("other", "x", &reports).configured, 0);
    }
}
