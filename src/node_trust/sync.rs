//! Bringing a node's files to what the plan says. Every write is atomic (a
//! temporary file in the same directory, synced, then renamed over), so a
//! runtime reading at any moment sees the old file or the new one; and only
//! files carrying our marker are ever changed or removed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::plan::{CA_FILE, DROP_IN_PREFIX, DesiredFile, Layout, MARKER, Runtime};

/// The node's filesystem as this process sees it: `root` is where the
/// node's `/` is (`/` for the agent, whose host directories are mounted at
/// their own paths; a directory for `node-config --root`).
#[derive(Debug, Clone)]
pub struct Node {
    pub root: PathBuf,
    pub layout: Layout,
    pub runtimes: Vec<Runtime>,
}

/// What a sync would do, or did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Files to write (new or different), by node path.
    pub write: Vec<DesiredFile>,
    /// Files of ours nothing wants any more, by node path.
    pub remove: Vec<PathBuf>,
    /// Files in our way that we did not write: (node path, host, why).
    pub conflicts: Vec<(PathBuf, String, String)>,
    /// Docker's `insecure-registries`, when it changes.
    pub docker_insecure: Option<InsecureRegistries>,
}

/// Docker's `insecure-registries` after a change: (every entry, ours).
pub type InsecureRegistries = (Vec<String>, Vec<String>);

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.write.is_empty() && self.remove.is_empty() && self.docker_insecure.is_none()
    }

    /// What changes, a line each, for `--check` and the log.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for file in &self.write {
            lines.push(format!("write  {}", file.path.display()));
        }
        for path in &self.remove {
            lines.push(format!("remove {}", path.display()));
        }
        if let Some((entries, _)) = &self.docker_insecure {
            lines.push(format!(
                "set    insecure-registries = {entries:?} in Docker's daemon.json (then reload Docker: systemctl reload docker)"
            ));
        }
        for (path, _, why) in &self.conflicts {
            lines.push(format!("skip   {}: {why}", path.display()));
        }
        lines
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    DaemonJson { path: String, message: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SyncError + '_ {
    move |source| SyncError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How our entries in Docker's `insecure-registries` are remembered: JSON
/// has no comments, so the marker lives beside `daemon.json`.
fn docker_state_file(daemon_json: &Path) -> PathBuf {
    let mut name = daemon_json.as_os_str().to_owned();
    name.push(".registry-resolver");
    PathBuf::from(name)
}

impl Node {
    /// Where a node path is in this process's view.
    pub fn local(&self, node_path: &Path) -> PathBuf {
        self.root
            .join(node_path.strip_prefix("/").unwrap_or(node_path))
    }

    /// What it takes to go from the files on disk to `desired` (and, for
    /// Docker when its `daemon.json` is managed, to `insecure` listed).
    pub fn changes(
        &self,
        desired: &[DesiredFile],
        insecure: &[String],
    ) -> Result<Changes, SyncError> {
        let mut changes = Changes::default();
        let wanted: BTreeSet<&Path> = desired.iter().map(|f| f.path.as_path()).collect();
        for file in desired {
            let local = self.local(&file.path);
            match read_if_exists(&local)? {
                None => changes.write.push(file.clone()),
                Some(current) if current == file.contents.as_bytes() => {}
                Some(current) if is_ours(&current) => changes.write.push(file.clone()),
                Some(_) => changes.conflicts.push((
                    file.path.clone(),
                    file.host.clone(),
                    "exists and was not written by registry-resolver; left as it is".into(),
                )),
            }
        }
        for path in self.ours()? {
            if !wanted.contains(path.as_path()) {
                changes.remove.push(path);
            }
        }
        if self.runtimes.contains(&Runtime::Docker)
            && let Some(daemon_json) = &self.layout.docker_daemon_json
        {
            changes.docker_insecure = self.docker_insecure_change(daemon_json, insecure)?;
        }
        Ok(changes)
    }

    /// Carries `changes` out. A failure stops at the file it happened on;
    /// the next sync starts again from what is on disk.
    pub fn apply(&self, changes: &Changes) -> Result<(), SyncError> {
        for file in &changes.write {
            write_atomically(&self.local(&file.path), file.contents.as_bytes())?;
        }
        for path in &changes.remove {
            let local = self.local(path);
            match std::fs::remove_file(&local) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&local)(e)),
            }
            // The host's directory goes with our last file in it; anything
            // else in it keeps it (removing a non-empty directory fails).
            if let Some(dir) = local.parent()
                && self.is_host_dir(dir)
            {
                let _ = std::fs::remove_dir(dir);
            }
        }
        if let (Some((entries, ours)), Some(daemon_json)) =
            (&changes.docker_insecure, &self.layout.docker_daemon_json)
        {
            self.write_docker_insecure(daemon_json, entries, ours)?;
        }
        Ok(())
    }

    /// Is `dir` a per-host directory under one of the managed `certs.d`?
    fn is_host_dir(&self, dir: &Path) -> bool {
        let parents = [
            &self.layout.containerd_certs_d,
            &self.layout.containers_certs_d,
            &self.layout.docker_certs_d,
        ];
        parents
            .iter()
            .any(|parent| dir.parent() == Some(self.local(parent).as_path()))
    }

    /// Every file of ours in the managed directories, by node path.
    fn ours(&self) -> Result<Vec<PathBuf>, SyncError> {
        let mut found = Vec::new();
        let per_host = |certs_d: &Path, names: &[&str], found: &mut Vec<PathBuf>| {
            for host in list_dir(&self.local(certs_d))? {
                for name in names {
                    let node_path = certs_d.join(&host).join(name);
                    if file_is_ours(&self.local(&node_path))? {
                        found.push(node_path);
                    }
                }
            }
            Ok::<_, SyncError>(())
        };
        for runtime in &self.runtimes {
            match runtime {
                Runtime::Containerd => per_host(
                    &self.layout.containerd_certs_d,
                    &["hosts.toml", CA_FILE],
                    &mut found,
                )?,
                Runtime::Crio => {
                    let dir = &self.layout.containers_registries_d;
                    for name in list_dir(&self.local(dir))? {
                        if name.starts_with(DROP_IN_PREFIX) && name.ends_with(".conf") {
                            let node_path = dir.join(&name);
                            if file_is_ours(&self.local(&node_path))? {
                                found.push(node_path);
                            }
                        }
                    }
                    per_host(&self.layout.containers_certs_d, &[CA_FILE], &mut found)?;
                }
                Runtime::Docker => per_host(&self.layout.docker_certs_d, &[CA_FILE], &mut found)?,
            }
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// `insecure-registries` as it should be: the admin's entries kept,
    /// ours brought to `wanted`. `None` when nothing changes.
    fn docker_insecure_change(
        &self,
        daemon_json: &Path,
        wanted: &[String],
    ) -> Result<Option<InsecureRegistries>, SyncError> {
        let config = read_daemon_json(&self.local(daemon_json))?;
        let current: Vec<String> = config
            .get("insecure-registries")
            .and_then(|v| v.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let ours_before: BTreeSet<String> =
            match read_if_exists(&self.local(&docker_state_file(daemon_json)))? {
                Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
                None => BTreeSet::new(),
            };
        let mut entries: Vec<String> = current
            .iter()
            .filter(|e| !ours_before.contains(*e) || wanted.contains(e))
            .cloned()
            .collect();
        let mut ours: Vec<String> = Vec::new();
        for host in wanted {
            if !entries.contains(host) {
                entries.push(host.clone());
                ours.push(host.clone());
            } else if ours_before.contains(host) {
                ours.push(host.clone());
            }
        }
        ours.sort();
        let unchanged =
            entries == current && ours.iter().cloned().collect::<BTreeSet<_>>() == ours_before;
        Ok((!unchanged).then_some((entries, ours)))
    }

    fn write_docker_insecure(
        &self,
        daemon_json: &Path,
        entries: &[String],
        ours: &[String],
    ) -> Result<(), SyncError> {
        let local = self.local(daemon_json);
        let mut config = read_daemon_json(&local)?;
        if entries.is_empty() {
            config.remove("insecure-registries");
        } else {
            config.insert("insecure-registries".into(), entries.into());
        }
        let text = serde_json::to_vec_pretty(&config).map_err(|e| SyncError::DaemonJson {
            path: local.display().to_string(),
            message: e.to_string(),
        })?;
        write_atomically(&local, &text)?;
        let state = serde_json::to_vec(ours).unwrap_or_default();
        write_atomically(&self.local(&docker_state_file(daemon_json)), &state)
    }
}

/// `daemon.json` as a JSON object (empty when there is none); anything
/// else is refused rather than overwritten.
fn read_daemon_json(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, SyncError> {
    match read_if_exists(path)? {
        None => Ok(serde_json::Map::new()),
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(SyncError::DaemonJson {
                path: path.display().to_string(),
                message: "not a JSON object; left as it is".into(),
            }),
        },
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, SyncError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn is_ours(contents: &[u8]) -> bool {
    contents.starts_with(MARKER.as_bytes())
}

/// Reads only as far as the marker.
fn file_is_ours(path: &Path) -> Result<bool, SyncError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(path)(e)),
    };
    let mut head = vec![0; MARKER.len()];
    match file.read_exact(&mut head) {
        Ok(()) => Ok(is_ours(&head)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Names in a directory (none when it does not exist), sorted.
fn list_dir(path: &Path) -> Result<Vec<String>, SyncError> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path)(e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// A temporary file beside `path`, synced, renamed over it; the directory
/// synced so the rename survives a crash. Readers see old or new, whole.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), SyncError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io_error(dir))?;
    let mut temporary = tempfile::Builder::new()
        .prefix(".registry-resolver-")
        .tempfile_in(dir)
        .map_err(io_error(dir))?;
    temporary.write_all(contents).map_err(io_error(path))?;
    temporary
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io_error(path))?;
    temporary.as_file().sync_all().map_err(io_error(path))?;
    temporary
        .persist(path)
        .map_err(|e| io_error(path)(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Hosts whose files are all in place after a sync (or were already), and
/// hosts that are not, with why: what the node reports.
pub fn hosts_in_place(
    desired: &[DesiredFile],
    changes: &Changes,
    failed: Option<&SyncError>,
) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut failed_hosts: BTreeMap<String, String> = BTreeMap::new();
    for (path, host, why) in &changes.conflicts {
        failed_hosts.insert(host.clone(), format!("{}: {why}", path.display()));
    }
    if let Some(error) = failed {
        for file in &changes.write {
            failed_hosts
                .entry(file.host.clone())
                .or_insert_with(|| error.to_string());
        }
    }
    let in_place = desired
        .iter()
        .map(|f| f.host.clone())
        .filter(|host| !failed_hosts.contains_key(host))
        .collect();
    (in_place, failed_hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_trust::plan;
    use crate::registry::Registry;
    use registry_resolver_core::testing::with_tls as with;

    fn node(root: &Path, runtimes: &[Runtime], daemon_json: bool) -> Node {
        Node {
            root: root.to_owned(),
            layout: Layout {
                docker_daemon_json: daemon_json.then(|| "/etc/docker/daemon.json".into()),
                ..Layout::default()
            },
            runtimes: runtimes.to_vec(),
        }
    }

    /// One sync to `records`; what changed.
    fn sync(node: &Node, records: &[Registry]) -> Changes {
        let (hosts, _) = plan::hosts(records);
        let desired = plan::files(&hosts, &node.runtimes, &node.layout);
        let changes = node
            .changes(&desired, &plan::docker_insecure_registries(&hosts))
            .expect("changes");
        node.apply(&changes).expect("apply");
        changes
    }

    /// Every file under `root`, with its contents.
    fn tree(root: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.insert(
                        path.strip_prefix(root)
                            .expect("under root")
                            .display()
                            .to_string(),
                        std::fs::read_to_string(&path).unwrap_or_default(),
                    );
                }
            }
        }
        out
    }

    #[test]
    fn files_follow_the_records_and_a_second_run_changes_nothing() {
        let root = tempfile::tempdir().expect("tmp");
        let node = node(
            root.path(),
            &[Runtime::Containerd, Runtime::Crio, Runtime::Docker],
            false,
        );
        let records = [
            with("http://10.0.0.5:5000", None, false, "plain"),
            with(
                "https://harbor.example.com/library",
                Some("CA-1"),
                false,
                "harbor",
            ),
        ];
        let first = sync(&node, &records);
        assert_eq!(first.write.len(), 6, "{:?}", first.describe());
        let after_first = tree(root.path());
        assert!(after_first.contains_key("etc/containerd/certs.d/10.0.0.5:5000/hosts.toml"));
        assert!(
            after_first["etc/docker/certs.d/harbor.example.com/registry-resolver-ca.crt"]
                .ends_with("CA-1\n")
        );
        // Idempotent: nothing to do, nothing touched.
        let second = sync(&node, &records);
        assert!(second.is_empty(), "{:?}", second.describe());
        assert_eq!(tree(root.path()), after_first);

        // A CA rotation rewrites the CA files, and only them.
        let rotated = [
            records[0].clone(),
            with(
                "https://harbor.example.com/library",
                Some("CA-2"),
                false,
                "harbor",
            ),
        ];
        let changes = sync(&node, &rotated);
        assert!(
            changes
                .write
                .iter()
                .all(|f| f.path.ends_with(plan::CA_FILE)),
            "{:?}",
            changes.describe()
        );
        assert_eq!(changes.write.len(), 3);
        assert!(
            tree(root.path())["etc/containerd/certs.d/harbor.example.com/registry-resolver-ca.crt"]
                .ends_with("CA-2\n")
        );

        // The record goes, or stops needing trust: its files and their
        // directories go.
        let changes = sync(
            &node,
            &[with(
                "https://harbor.example.com/library",
                None,
                false,
                "harbor",
            )],
        );
        assert_eq!(changes.remove.len(), 6, "{:?}", changes.describe());
        assert_eq!(tree(root.path()), BTreeMap::new());
        assert!(
            !root
                .path()
                .join("etc/containerd/certs.d/harbor.example.com")
                .exists()
        );
        assert!(root.path().join("etc/containerd/certs.d").exists());
    }

    #[test]
    fn files_we_did_not_write_are_never_changed_or_removed() {
        let root = tempfile::tempdir().expect("tmp");
        let node = node(
            root.path(),
            &[Runtime::Containerd, Runtime::Crio, Runtime::Docker],
            false,
        );
        // An admin's own configuration, some in the very places we write.
        let theirs = [
            (
                "etc/containerd/certs.d/10.0.0.5:5000/hosts.toml",
                "server = \"http://10.0.0.5:5000\"\n",
            ),
            (
                "etc/containerd/certs.d/docker.io/hosts.toml",
                "server = \"https://registry-1.docker.io\"\n",
            ),
            (
                "etc/containerd/certs.d/harbor.example.com/ca.crt",
                "ADMIN CA",
            ),
            (
                "etc/containerd/certs.d/harbor.example.com/registry-resolver-ca.crt",
                "not ours after all",
            ),
            (
                "etc/containers/registries.conf.d/registry-resolver-x.conf",
                "[[registry]]\nlocation = \"x\"\n",
            ),
            (
                "etc/containers/registries.conf.d/00-shortnames.conf",
                "[aliases]\n",
            ),
            ("etc/docker/certs.d/other.example.com/ca.crt", "OTHER"),
        ];
        for (path, text) in theirs {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, text).expect("write");
        }
        let records = [
            with("http://10.0.0.5:5000", None, false, "plain"),
            with("https://harbor.example.com", Some("CA"), false, "harbor"),
        ];
        let changes = sync(&node, &records);
        let conflicts: Vec<String> = changes
            .conflicts
            .iter()
            .map(|(p, _, _)| p.display().to_string())
            .collect();
        assert_eq!(
            conflicts,
            [
                "/etc/containerd/certs.d/10.0.0.5:5000/hosts.toml",
                "/etc/containerd/certs.d/harbor.example.com/registry-resolver-ca.crt",
            ]
        );
        // Everything else of ours was written; nothing of theirs moved.
        sync(&node, &[]);
        let after = tree(root.path());
        for (path, text) in theirs {
            assert_eq!(after.get(path).map(String::as_str), Some(text), "{path}");
        }
        assert_eq!(
            after.len(),
            theirs.len(),
            "only theirs is left: {:?}",
            after.keys()
        );
        // The hosts that conflicted are reported as not in place.
        let (hosts, _) = plan::hosts(&records);
        let desired = plan::files(&hosts, &node.runtimes, &node.layout);
        let changes = node.changes(&desired, &[]).expect("changes");
        let (in_place, failed) = hosts_in_place(&desired, &changes, None);
        assert!(in_place.is_empty(), "{in_place:?}");
        assert_eq!(failed.len(), 2);
    }

    #[test]
    fn a_reader_never_sees_a_half_written_file() {
        let root = tempfile::tempdir().expect("tmp");
        let path = root.path().join("certs.d/h/hosts.toml");
        let versions: Vec<String> = (0..2)
            .map(|v| format!("{MARKER}\n{}", v.to_string().repeat(200_000)))
            .collect();
        write_atomically(&path, versions[0].as_bytes()).expect("first");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, versions, done) = (path.clone(), versions.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let seen = std::fs::read_to_string(&path).expect("always there");
                    assert!(
                        versions.contains(&seen),
                        "a partial file of {} bytes",
                        seen.len()
                    );
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..300 {
            write_atomically(&path, versions[i % 2].as_bytes()).expect("write");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().expect("dir"))
                .expect("dir")
                .count(),
            1
        );
    }

    #[test]
    fn docker_daemon_json_keeps_every_other_key_and_entry() {
        let root = tempfile::tempdir().expect("tmp");
        let node = node(root.path(), &[Runtime::Docker], true);
        let daemon = root.path().join("etc/docker/daemon.json");
        std::fs::create_dir_all(daemon.parent().expect("dir")).expect("mkdir");
        std::fs::write(&daemon, r#"{"log-driver": "journald", "insecure-registries": ["admin.example:5000"], "mtu": 1400}"#).expect("write");
        let changes = sync(&node, &[with("http://10.0.0.5:5000", None, false, "plain")]);
        assert!(
            changes
                .describe()
                .iter()
                .any(|l| l.contains("reload Docker")),
            "{:?}",
            changes.describe()
        );
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&daemon).expect("read")).expect("json");
        assert_eq!(
            config,
            serde_json::json!({"log-driver": "journald", "insecure-registries": ["admin.example:5000", "10.0.0.5:5000"], "mtu": 1400})
        );
        assert!(sync(&node, &[with("http://10.0.0.5:5000", None, false, "plain")]).is_empty());
        // Ours goes with the record; the admin's stays.
        sync(&node, &[]);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&daemon).expect("read")).expect("json");
        assert_eq!(
            config["insecure-registries"],
            serde_json::json!(["admin.example:5000"])
        );
        assert_eq!(config["log-driver"], "journald");
        // Not an object: refused, untouched.
        std::fs::write(&daemon, "[1, 2]").expect("write");
        let (hosts, _) = plan::hosts(&[with("http://10.0.0.5:5000", None, false, "plain")]);
        assert!(
            node.changes(&[], &plan::docker_insecure_registries(&hosts))
                .is_err()
        );
        assert_eq!(std::fs::read_to_string(&daemon).expect("read"), "[1, 2]");
    }
}
