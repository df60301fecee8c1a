//! The image reference grammar: parsing never panics, and a parsed path
//! joins onto a registry address into a reference that parses the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_resolver::reference::RelativeImage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = registry_resolver::reference::is_registry_relative(text);
    let Ok(image) = RelativeImage::parse(text) else {
        return;
    };
    for address in [
        "dockerhub.qingcloud.com",
        "harbor.local:8080/library",
        "[::1]:5000",
    ] {
        if let Ok(joined) = image.join(address) {
            let again = format!(
                "/{}",
                joined
                    .strip_prefix(address)
                    .and_then(|r| r.strip_prefix('/'))
                    .expect("joined onto the address")
            );
            let reparsed = RelativeImage::parse(&again).expect("a joined path parses again");
            assert_eq!(reparsed.path, image.path);
            assert_eq!(reparsed.tag, image.tag);
            assert_eq!(reparsed.digest, image.digest);
        }
    }
});
