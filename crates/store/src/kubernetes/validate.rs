//! The validating webhook for ImageRegistries: an object applied with
//! `kubectl` or by a GitOps tool is checked by the API's own validation
//! (the same function, the same messages) before the cluster stores it.
//! The CRD's schema and CEL rules stay as the fence when the webhook is
//! down (its `failurePolicy` is `Fail`, so that is only while it starts).

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use super::crd::ImageRegistry;
use crate::index::Index;
use crate::registry::store::StoreError;
use crate::registry::{RegistryInput, RegistrySpec, TlsOptions, ValidationErrors, WriteMode};

/// Why a review could not be read (400).
#[derive(Debug, thiserror::Error)]
#[error("malformed AdmissionReview for an ImageRegistry: {0}")]
pub struct MalformedReview(String);

/// The record an ImageRegistry would be, as the API would take it.
pub fn as_input(object: &ImageRegistry) -> RegistryInput {
    let spec = &object.spec;
    RegistryInput {
        name: object.metadata.name.clone(),
        server: Some(spec.server.clone()),
        description: spec.description.clone(),
        namespaces: Some(spec.namespaces.clone()),
        default_for: Some(spec.default_for.clone()),
        namespace_selector: spec.namespace_selector.clone().map(Into::into),
        default_for_selector: spec.default_for_selector.clone().map(Into::into),
        tls: spec.tls.as_ref().map(|tls| TlsOptions {
            ca_bundle: tls.ca_bundle.clone(),
            insecure_skip_verify: tls.insecure_skip_verify,
        }),
        pull_secret_name: spec.pull_secret_name.clone(),
        pin_digests: Some(spec.pin_digests),
        browse: Some(spec.browse),
        mirror_of: Some(spec.mirror_of.clone()),
        ..RegistryInput::default()
    }
}

/// Why the API would refuse an object.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Its field errors.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// A default another record already claims.
    #[error(transparent)]
    DefaultClaimed(StoreError),
}

/// What the API would say about this object.
pub fn check(object: &ImageRegistry, index: &Index) -> Result<RegistrySpec, Refusal> {
    let spec = as_input(object).validate(WriteMode::Create, None)?;
    crate::registry::store::check_default_conflict(&spec, index)
        .map_err(Refusal::DefaultClaimed)?;
    Ok(spec)
}

/// Answers one review: allowed, or denied with the API's message. Only
/// CREATE and UPDATE of the main resource are judged (status writes and
/// deletions pass).
pub fn review(
    body: &[u8],
    index: &Index,
) -> Result<AdmissionReview<DynamicObject>, MalformedReview> {
    let review: AdmissionReview<ImageRegistry> =
        serde_json::from_slice(body).map_err(|e| MalformedReview(e.to_string()))?;
    let request: AdmissionRequest<ImageRegistry> = review
        .try_into()
        .map_err(|_| MalformedReview("request is missing".into()))?;
    let response = AdmissionResponse::from(&request);
    let judged = matches!(request.operation, Operation::Create | Operation::Update)
        && request.sub_resource.as_deref().is_none_or(str::is_empty);
    let response = match (&request.object, judged) {
        (Some(object), true) => match check(object, index) {
            Ok(_) => response,
            Err(refusal) => {
                let name = object.metadata.name.as_deref().unwrap_or_default();
                response.deny(format!(
                    "registry-resolver: ImageRegistry {:?} is invalid: {refusal}",
                    crate::excerpt::excerpt(name)
                ))
            }
        },
        _ => response,
    };
    Ok(response.into_review())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review_of(object: serde_json::Value, operation: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "registry-resolver.io", "version": "v1alpha1", "kind": "ImageRegistry"},
                "resource": {"group": "registry-resolver.io", "version": "v1alpha1", "resource": "imageregistries"},
                "name": object["metadata"]["name"], "operation": operation,
                "userInfo": {"username": "admin"},
                "object": object,
                "dryRun": false
            }
        }))
        .expect("json")
    }

    fn registry(name: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "registry-resolver.io/v1alpha1", "kind": "ImageRegistry",
               "metadata": {"name": name}, "spec": spec})
    }

    fn answer(body: &[u8], index: &Index) -> serde_json::Value {
        serde_json::to_value(review(body, index).expect("a review")).expect("json")
    }

    #[test]
    fn a_bad_record_is_refused_with_the_apis_message() {
        let index = Index::default();
        let good = registry(
            "harbor",
            json!({"server": "harbor.example.com", "namespaces": ["team-a"], "defaultFor": ["team-a"]}),
        );
        let ok = answer(&review_of(good, "CREATE"), &index);
        assert_eq!(ok["response"]["allowed"], true, "{ok}");
        assert_eq!(ok["response"]["uid"], "u-1");

        let bad = registry(
            "harbor",
            json!({"server": "harbor.example.com", "namespaces": ["team-a"],
            "tls": {"caBundle": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----"},
            "defaultFor": ["team-b"]}),
        );
        let denied = answer(&review_of(bad.clone(), "UPDATE"), &index);
        assert_eq!(denied["response"]["allowed"], false, "{denied}");
        let message = denied["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("tls.caBundle: not valid PEM"), "{message}");
        assert!(
            message.contains("defaultFor[0]: namespace \"team-b\" is not reached by namespaces"),
            "{message}"
        );
        // Deleting a bad object, or writing its status, is not judged.
        assert_eq!(
            answer(&review_of(bad, "DELETE"), &index)["response"]["allowed"],
            true
        );
    }

    #[test]
    fn a_default_another_record_claims_is_refused_as_the_api_does() {
        let index = Index::build(&[registry_resolver_core::testing::record(
            "first",
            "https://first.example",
            &["team-a"],
            &["team-a"],
            false,
        )]);
        let second = registry(
            "second",
            json!({"server": "second.example.com", "namespaces": ["team-a"], "defaultFor": ["team-a"]}),
        );
        let denied = answer(&review_of(second, "CREATE"), &index);
        assert_eq!(denied["response"]["allowed"], false, "{denied}");
        assert!(
            denied["response"]["status"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("already has default registry \"first\"")),
            "{denied}"
        );
    }

    #[test]
    fn a_review_that_is_not_one_is_malformed() {
        assert!(review(b"{}", &Index::default()).is_err());
        assert!(review(b"not json", &Index::default()).is_err());
    }
}
