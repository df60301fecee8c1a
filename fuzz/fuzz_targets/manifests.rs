//! The `resolve` command's manifest stream: any text is resolved or refused
//! with a message, never a panic; the edited text always means what the
//! patch means (a mismatch is a bug, never a refusal), and resolving the
//! output again changes nothing.
#![no_main]

mod common;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use registry_resolver::manifests::OutputFormat;
use registry_resolver::index::Index;
use registry_resolver::manifests::{ManifestError, resolve_documents};

static INDEX: LazyLock<Index> = LazyLock::new(common::index);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let resolve = |text: &str| {
        runtime.block_on(resolve_documents(
            text,
            "team-a",
            &INDEX,
            OutputFormat::Yaml,
            None,
        ))
    };
    match resolve(text) {
        Ok(resolved) => {
            let again = resolve(&resolved.output).expect("the output resolves again");
            assert_eq!(again.output, resolved.output, "a second pass changes nothing");
        }
        Err(error @ ManifestError::EditMismatch { .. }) => panic!("{error}"),
        Err(_) => {}
    }
});
