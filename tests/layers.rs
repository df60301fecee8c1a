//! Lower layers never import higher ones. Every module of the crate is
//! placed in a layer; a `crate::…` path in its code (not its comments) to
//! a module of a higher layer fails, naming the file and line. The layers,
//! from the bottom: the pure core (names, selectors, references, the record
//! model and the index, resolution); admission (the decision and its wire
//! format); the write path and what works around a decision (the registry
//! service, pinning, metrics); the cluster
//! side and node trust; the API; the console; the listeners; the commands.

use std::path::{Path, PathBuf};

/// From the bottom up. A module may import its own layer and those below,
/// never one above.
const LAYERS: &[&[&str]] = &[
    // The pure core: names, selectors, references, the record model and
    // the index, resolution.
    &[
        "excerpt",
        "reference",
        "pod_template",
        "crypto",
        "namespaces",
        "selector",
        "registry",
        "index",
        "resolve",
        "listing",
        "yaml_edit",
    ],
    &["admission"],
    // The write path, and what works around a decision.
    &["service", "pinning", "telemetry"],
    &["kubernetes", "node_trust"],
    &["api"],
    &["console"],
    &["server"],
    // The commands.
    &["manifests", "import", "certs", "app", "cli", "lib", "main"],
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

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let shown = file
            .strip_prefix(&src)
            .unwrap_or(file)
            .display()
            .to_string();
        // A new module must be placed in a layer.
        let Some(layer) = layer_of(&module) else {
            problems.push(format!(
                "{shown}: module {module} has no layer in tests/layers.rs"
            ));
            continue;
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
    assert!(problems.is_empty(), "{}", problems.join("\n"));
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
