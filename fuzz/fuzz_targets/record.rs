//! A registry record as the API takes it: any JSON body is either refused
//! with field errors or validated; a merge patch onto a record never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_resolver::registry::{RegistryInput, WriteMode};

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = serde_json::from_slice::<RegistryInput>(data) {
        let _ = input.clone().validate(WriteMode::Create, None);
        let _ = input.validate(WriteMode::Replace, Some("demo"));
    }
    if let Ok(patch) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut document = serde_json::json!({"name": "demo", "server": "dockerhub.qingcloud.com",
            "namespaces": ["team-a"], "defaultFor": ["team-a"], "username": "robot"});
        json_patch::merge(&mut document, &patch);
        if let Ok(input) = serde_json::from_value::<RegistryInput>(document) {
            let _ = input.validate(WriteMode::Replace, Some("demo"));
        }
    }
});
