//! The `resolve` command's manifest stream: any text is resolved or refused
//! with a message, never a panic.
#![no_main]

mod common;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use registry_resolver::cli::OutputFormat;
use registry_resolver::index::Index;
use registry_resolver::manifests::resolve_documents;

static INDEX: LazyLock<Index> = LazyLock::new(common::index);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let _ = runtime.block_on(resolve_documents(
        text,
        "team-a",
        &INDEX,
        OutputFormat::Yaml,
        None,
    ));
});
