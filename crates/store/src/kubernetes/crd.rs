//! `ImageRegistry` (registry-resolver.io/v1alpha1): a registry record as a
//! cluster-scoped object. The password is not here: `credentialsSecretRef`
//! names a `kubernetes.io/basic-auth` Secret in the install namespace.
//!
//! The CRD is generated from these types (`registry-resolver crd`); the copy
//! in `charts/registry-resolver/crds/` is checked against them by a test.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

/// `[http(s)://]host[:port][/prefix]` as far as one CEL regex can say it;
/// the server parses it fully before anything is used.
const SERVER_RULE: &str = r"self.matches('^([hH][tT][tT][pP][sS]?://)?([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?(/[a-z0-9]+([._/-]+[a-z0-9]+)*)?/?$')";

/// Held by every ImageRegistry until its pull Secrets are gone.
pub const FINALIZER: &str = "registry-resolver.io/pull-secrets";

/// A Secret name, as Kubernetes checks it (DNS-1123 subdomain).
const SECRET_NAME_RULE: &str =
    r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "registry-resolver.io",
    version = "v1alpha1",
    kind = "ImageRegistry",
    plural = "imageregistries",
    shortname = "imreg",
    status = "ImageRegistryStatus",
    doc = "An image registry that namespaces may use for registry-relative images",
    printcolumn = r#"{"name": "Server", "type": "string", "jsonPath": ".spec.server"}"#,
    printcolumn = r#"{"name": "Verified", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Verified\")].status"}"#,
    printcolumn = r#"{"name": "Namespaces", "type": "string", "jsonPath": ".spec.namespaces"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
// No rule pairs `defaultFor` with `namespaces` here: over lists of up to
// 5000 entries its estimated cost is far past what the API server accepts
// for one rule, so the CRD would not install. Each entry is checked by the
// schema's pattern (cheap); the pairing is checked when the object becomes
// a record, and a record that fails it is not used (its status says why).
#[x_kube(
    cel,
    validation = Rule::new("has(self.namespaceSelector) || (has(self.namespaces) && size(self.namespaces) > 0)").message("at least one namespace is required (or a namespaceSelector)")
)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistrySpec {
    /// `dockerhub.qingcloud.com`, `http://10.0.0.5:5000` (plain HTTP), `https://harbor.example.com:8443/library`.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new(SERVER_RULE).message("server must look like [http(s)://]host[:port][/prefix]"))]
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Namespaces allowed to use this registry: names, `*` (every
    /// namespace) or a prefix and `*` (`team-*`, namespaces created later
    /// included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 5000),
        inner(
            length(min = 1, max = 63),
            pattern(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?|[a-z0-9][-a-z0-9]*\*)$")
        )
    )]
    pub namespaces: Vec<String>,
    /// Where it fills in images that name no registry: names or patterns,
    /// each reached by `namespaces`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 5000),
        inner(
            length(min = 1, max = 63),
            pattern(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?|[a-z0-9][-a-z0-9]*\*)$")
        )
    )]
    pub default_for: Vec<String>,
    /// Namespaces allowed by their labels as well, e.g. every project of a
    /// workspace (`matchLabels: {kubesphere.io/workspace: ws1}`): a
    /// namespace created or relabelled later follows. Not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Where it fills in images that name no registry, by labels: among the
    /// namespaces it is allowed in, after claims by name and by pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_for_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// The `kubernetes.io/dockerconfigjson` Secret replicated into every
    /// authorized namespace and injected into workloads; defaults to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(SECRET_NAME_RULE).message("pullSecretName must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'"))]
    pub pull_secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin_digests: bool,
    /// How the image picker lists repositories: `auto` (default: Harbor's
    /// API on a Harbor, else the catalog), `catalog`, `harbor`, `dockerhub`
    /// (Docker Hub's search, for Hub and its mirrors), or `none` (a path
    /// field with tag completion).
    #[serde(default, skip_serializing_if = "is_auto")]
    pub browse: crate::registry::BrowseMethod,
    /// Upstream registries this one mirrors (`docker.io`, `quay.io`, …):
    /// in the namespaces it is authorized for, their images are pulled
    /// through it. Each: `upstream`, optional `pathPrefix` (a Harbor
    /// proxy-cache project), `excludes`, `fallback` (`upstream` or `deny`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror_of: Vec<crate::mirror::MirrorEntry>,
    /// A `kubernetes.io/basic-auth` Secret (`username`, `password`) in the
    /// install namespace; none for a public registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// PEM certificates trusted for this registry only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretRef {
    pub name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistryStatus {
    /// `Verified` (the login check) and `Replicated` (pull secrets in place).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicated_namespaces: Vec<String>,
    /// How far replication has got: written every 5 s while a reconcile
    /// takes longer (thousands of namespaces at the paced rate), and when
    /// it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<crate::registry::ReplicationProgress>,
    /// With the node agent running, for a registry that needs node trust
    /// (plain HTTP, a private CA, skipped verification): how many nodes
    /// have the current configuration, and up to ten that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_trust: Option<crate::registry::NodeTrustStatus>,
}

fn is_auto(method: &crate::registry::BrowseMethod) -> bool {
    *method == crate::registry::BrowseMethod::Auto
}

/// The CRD as YAML, as `registry-resolver crd` prints it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&ImageRegistry::crd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn committed_crd_matches_the_types() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/registry-resolver/crds/imageregistries.yaml"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let generated = crd_yaml().expect("serializes");
        assert!(
            committed == generated,
            "{path} is out of date: run `cargo run -- crd > charts/registry-resolver/crds/imageregistries.yaml`"
        );
    }

    #[test]
    fn crd_names_and_columns() {
        let crd = serde_json::to_value(ImageRegistry::crd()).expect("json");
        assert_eq!(
            crd["metadata"]["name"],
            "imageregistries.registry-resolver.io"
        );
        assert_eq!(crd["spec"]["scope"], "Cluster");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["subresources"]["status"], json!({}));
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(columns, ["Server", "Verified", "Namespaces", "Age"]);
    }

    #[test]
    fn cel_rules_check_what_one_object_can() {
        let spec = |value: serde_json::Value| ImageRegistrySpec::validate_cel(&value, None);
        assert!(spec(json!({"server": "dockerhub.qingcloud.com", "namespaces": ["a"], "defaultFor": ["a"]})).is_ok());
        assert!(spec(json!({"server": "https://harbor.example.com:8443/library", "namespaces": ["a", "b"]})).is_ok());
        assert!(spec(json!({"server": "http://[::1]:5000", "namespaces": ["a"]})).is_ok());
        assert!(spec(json!({"server": "r.example", "namespaces": ["team-*"], "defaultFor": ["team-a", "team-b*"]})).is_ok());
        assert!(
            spec(json!({"server": "r.example", "namespaces": ["*"], "defaultFor": ["*"]})).is_ok()
        );
        assert!(
            spec(json!({"server": "r.example", "namespaces": []})).is_err(),
            "no namespaces"
        );
        assert!(
            spec(json!({"server": "r.example"})).is_err(),
            "no namespaces, no selector"
        );
        assert!(
            spec(json!({"server": "r.example", "namespaceSelector": {"matchLabels": {"kubesphere.io/workspace": "ws1"}}})).is_ok(),
            "a selector alone authorizes"
        );
        assert!(spec(json!({"server": "r.example", "namespaces": ["a"], "pullSecretName": "pull.secret-1"})).is_ok());
        for bad in ["", "Upper", "a..b", "-a", "a_b"] {
            assert!(
                spec(json!({"server": "r.example", "namespaces": ["a"], "pullSecretName": bad}))
                    .is_err(),
                "pullSecretName {bad:?} should be rejected"
            );
        }
        for bad in [
            "ftp://r.example",
            "r.example/Library",
            "r example",
            "https://",
            "r.example:123456",
        ] {
            assert!(
                spec(json!({"server": bad, "namespaces": ["a"]})).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
