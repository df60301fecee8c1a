//! The layers of the workspace, from the bottom: the core (pure: names,
//! selectors, references, the record model and the index, resolution,
//! replication and node trust plans), the registry client, the stores and
//! the write path, the server (API, webhook, console), the commands.
//!
//! Cargo keeps a crate from naming one it does not depend on; the first
//! test keeps those dependencies in order (each crate only on crates below
//! it) and the core's whole dependency tree free of an async runtime, an
//! HTTP client or server, a Kubernetes client and SQLite. Inside each
//! crate, the second test keeps lower modules from importing higher ones:
//! a `crate::…` path in code (not comments) to a module of a higher layer
//! fails, naming the file and line.

use std::path::{Path, PathBuf};

/// The workspace's crates, from the bottom up.
const CRATES: &[&str] = &[
    "registry-resolver-core",
    "registry-resolver-client",
    "registry-resolver-store",
    "registry-resolver-server",
    "registry-resolver",
];

/// What the pure core must not reach, even through another crate.
const NOT_IN_CORE: &[&str] = &[
    "tokio",
    "mio",
    "reqwest",
    "hyper",
    "axum",
    "kube",
    "kube-client",
    "kube-runtime",
    "rusqlite",
];

/// Modules, from the bottom up. A module may import its own layer and
/// those below, never one above.
const LAYERS: &[&[&str]] = &[
    // The pure core: names, selectors, references, the record model and
    // the index, resolution, the plans.
    &[
        "excerpt",
        "json",
        "reference",
        "pod_template",
        "crypto",
        "namespaces",
        "selector",
        "mirror",
        "registry",
        "index",
        "resolve",
        "listing",
        "yaml_edit",
        "replication",
        "testing",
    ],
    &["admission"],
    // The write path, and what works around a decision.
    &["service", "pinning", "telemetry"],
    // Manifests resolved as the webhook would (the `resolve` command, the
    // API's workload preview).
    &["manifests"],
    &["kubernetes", "node_trust"],
    &["api"],
    &["console"],
    &["server"],
    // The commands.
    &["import", "certs", "app", "cli", "lib", "main"],
];

/// The layer `module` is in, if it is placed.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to: `src/registry/store/mod.rs` → `registry`,
/// `src/index.rs` → `index`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::<module>` named on a line of code.
fn imports(line: &str) -> Vec<&str> {
    let code = line.split("//").next().unwrap_or_default();
    code.match_indices("crate::")
        .map(|(at, _)| {
            let rest = &code[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// `cargo metadata` for Linux, as the workspace's lock file has it.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON")
}

#[test]
fn crates_depend_only_on_crates_below_and_the_core_does_no_io() {
    let metadata = metadata();
    let name_of = |id: &str| {
        metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| p["id"] == id)
            .and_then(|p| p["name"].as_str())
            .expect("a package of the graph")
            .to_owned()
    };
    let nodes = metadata["resolve"]["nodes"].as_array().expect("nodes");
    // Normal (not dev, not build) dependencies of each package, by name.
    let normal_deps = |id: &str| -> Vec<String> {
        let node = nodes.iter().find(|n| n["id"] == id).expect("a node");
        node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
            })
            .map(|d| d["pkg"].as_str().expect("pkg").to_owned())
            .collect()
    };
    let mut problems = Vec::new();
    let members = metadata["workspace_members"].as_array().expect("members");
    let placed: Vec<String> = members
        .iter()
        .map(|id| name_of(id.as_str().expect("id")))
        .collect();
    for name in &placed {
        if !CRATES.contains(&name.as_str()) {
            problems.push(format!("crate {name} has no place in tests/layers.rs"));
        }
    }
    for id in members.iter().filter_map(|m| m.as_str()) {
        let name = name_of(id);
        let Some(level) = CRATES.iter().position(|c| *c == name) else {
            continue;
        };
        for dep in normal_deps(id) {
            let dep_name = name_of(&dep);
            if let Some(other) = CRATES.iter().position(|c| *c == dep_name)
                && other >= level
            {
                problems.push(format!(
                    "{name} depends on {dep_name}, not a crate below it"
                ));
            }
        }
        if name == CRATES[0] {
            // Everything the core reaches, not only what it names.
            let mut reached = std::collections::BTreeSet::new();
            let mut stack = vec![id.to_owned()];
            while let Some(current) = stack.pop() {
                if reached.insert(current.clone()) {
                    stack.extend(normal_deps(&current));
                }
            }
            for dep in reached {
                let dep_name = name_of(&dep);
                if NOT_IN_CORE.contains(&dep_name.as_str()) {
                    problems.push(format!("the core reaches {dep_name}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![root.join("src")];
    for entry in std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        sources.push(entry.path().join("src"));
    }
    let mut problems = Vec::new();
    for src in &sources {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        files.sort();
        for file in &files {
            check_file(root, src, file, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Adds to `problems` each import of `file` from a higher layer.
fn check_file(root: &Path, src: &Path, file: &Path, problems: &mut Vec<String>) {
    let module = module_of(src, file);
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    // A new module must be placed in a layer.
    let Some(layer) = layer_of(&module) else {
        problems.push(format!(
            "{shown}: module {module} has no layer in tests/layers.rs"
        ));
        return;
    };
    let text = std::fs::read_to_string(file).expect("read");
    for (number, line) in text.lines().enumerate() {
        for imported in imports(line) {
            if layer_of(imported).is_some_and(|other| other > layer) {
                problems.push(format!(
                    "{shown}:{}: {module} imports {imported}, a higher layer",
                    number + 1
                ));
            }
        }
    }
}

/// The checker itself: it sees imports in code and not in comments.
#[test]
fn imports_are_read_from_code_only() {
    assert_eq!(
        imports("use crate::admission::Plan; // crate::server"),
        ["admission"]
    );
    assert_eq!(
        imports("    let x = crate::api::AppState::from(crate::index::x);"),
        ["api", "index"]
    );
    assert!(imports("/// see crate::server").is_empty());
}
