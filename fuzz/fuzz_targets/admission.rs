//! The webhook end to end: decode → resolve → patch → encode. Never panics;
//! the answer is, byte for byte, the reference answer (the serde-tree
//! encoder it replaced); a patch applies (RFC 6902, the json-patch crate)
//! to the object it was made for; reviewing the patched object again
//! patches nothing.
#![no_main]

mod common;

use std::sync::LazyLock;

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use registry_resolver::admission;
use registry_resolver::index::Index;

static INDEX: LazyLock<Index> = LazyLock::new(common::index);

fuzz_target!(|data: &[u8]| {
    let written = admission::review(data, &INDEX);
    let reference = registry_resolver_core::admission::reference::review(data, &INDEX);
    let reviewed = match (written, reference) {
        (Ok(written), Ok(reference)) => {
            assert_eq!(
                String::from_utf8_lossy(&written.body),
                String::from_utf8_lossy(&reference.body),
                "the written answer differs"
            );
            assert_eq!(written.outcome, reference.outcome);
            assert_eq!(written.reason, reference.reason);
            assert_eq!(written.denial, reference.denial);
            assert_eq!(written.mirror_uses, reference.mirror_uses);
            written
        }
        (Err(written), Err(reference)) => {
            assert_eq!(written.to_string(), reference.to_string());
            return;
        }
        (written, reference) => panic!(
            "written {:?}, reference {:?}",
            written.map(|r| r.outcome),
            reference.map(|r| r.outcome)
        ),
    };
    let answer: serde_json::Value =
        serde_json::from_slice(&reviewed.body).expect("the answer is JSON");
    let Some(patch) = answer["response"]["patch"].as_str() else {
        return;
    };
    let patch = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("the patch is base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("an RFC 6902 patch");
    // The invariants are about the object as a JSON value: a body that
    // serde_json's Value cannot hold (a number beyond f64, which the
    // webhook's decoder skips unread) has no such value to patch.
    let Ok(mut review) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("the patch applies to its object");
    review["request"]["object"] = object;
    let again = serde_json::to_vec(&review).expect("encodes");
    let second = admission::review(&again, &INDEX).expect("the patched review is answered too");
    let second: serde_json::Value = serde_json::from_slice(&second.body).expect("JSON");
    assert!(
        second["response"]["patch"].is_null(),
        "a second pass must change nothing: {second}"
    );
});
