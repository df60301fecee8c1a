//! What registries send back: WWW-Authenticate challenges, Link headers,
//! catalog, tag, token, Harbor and Docker Hub bodies. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Three parts, split at the first two NUL bytes.
    let mut parts = data.splitn(3, |b| *b == 0);
    let challenge = parts.next().unwrap_or_default();
    let link = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    registry_resolver::registry::client::fuzzing::registry_answer(challenge, link, body);
});
