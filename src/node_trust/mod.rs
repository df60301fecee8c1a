//! Node trust: making every node's container runtime able to pull from the
//! registries that need more than public HTTPS (plain HTTP, a private CA,
//! skipped verification), without anyone editing a node by hand.
//!
//! `plan` is pure: records in, the files each runtime reads out. `sync`
//! brings a node's files to that plan (atomic writes, only files we wrote).
//! `agent` runs it on every node of a cluster from the ImageRegistry watch;
//! `node-config` runs it once from the embedded store.

pub mod agent;
pub mod containerd_config;
pub mod sync;

pub use registry_resolver_core::node_trust::{Layout, Runtime, plan, report};

use std::path::Path;

use crate::registry::Registry;
use plan::{DesiredFile, HostTrust, Problem};
use report::NodeReport;
use sync::{Changes, Node, SyncError};

/// One sync of a node, worked out: what the records need, and what it
/// takes to get there from the files on disk.
#[derive(Debug)]
pub struct Pass {
    pub hosts: Vec<HostTrust>,
    pub problems: Vec<Problem>,
    pub desired: Vec<DesiredFile>,
    pub changes: Changes,
    /// containerd will not read what is written: the lines to add.
    pub runtime_config: Option<String>,
}

impl Pass {
    /// `containerd_config` is the node path of containerd's config file.
    pub fn compute(
        records: &[Registry],
        node: &Node,
        containerd_config: &Path,
    ) -> Result<Self, SyncError> {
        let (hosts, mut problems) = plan::hosts(records);
        let mut desired = plan::files(&hosts, &node.runtimes, &node.layout);
        // Node mirrors (`mirrorOf` with `mode: node`): containerd's files
        // for each mirrored upstream.
        let (mirrors, mirror_problems) =
            plan::mirror_files(records, &hosts, &node.runtimes, &node.layout);
        desired.extend(mirrors);
        desired.sort_by(|a, b| a.path.cmp(&b.path));
        problems.extend(mirror_problems);
        let insecure = plan::docker_insecure_registries(&hosts);
        let changes = node.changes(&desired, &insecure)?;
        let runtime_config = if node.runtimes.contains(&Runtime::Containerd) && !desired.is_empty()
        {
            let text = std::fs::read_to_string(node.local(containerd_config)).ok();
            containerd_config::check(text.as_deref(), &node.layout.containerd_certs_d)
                .err()
                .map(|missing| missing.to_string())
        } else {
            None
        };
        Ok(Self {
            hosts,
            problems,
            desired,
            changes,
            runtime_config,
        })
    }

    /// What the node reports after `applied`.
    pub fn report(&self, node_name: &str, applied: Result<(), &SyncError>) -> NodeReport {
        let (in_place, failed_hosts) =
            sync::hosts_in_place(&self.desired, &self.changes, applied.err());
        NodeReport::after_sync(
            node_name,
            &self.hosts,
            &self.problems,
            &in_place,
            &failed_hosts,
            self.runtime_config.clone(),
        )
    }
}
