//! What `import` reads, turned into records to write: a Docker/Podman
//! `config.json`, KubeSphere's image registry Secrets (a `kubectl get
//! secrets -o json` dump or the live cluster's), and `export`'s own files.
//! Pure: no store, no network; `super` applies the plan.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use crate::registry::{Password, RegistryInput, TlsOptions};

/// KubeSphere marks a plain-HTTP (or unverified HTTPS) registry's Secret so.
pub const FORCE_INSECURE: &str = "secret.kubesphere.io/force-insecure";
/// KubeSphere's default registry of a project.
pub const DEFAULT_CLASS: &str = "secret.kubesphere.io/is-default-class";
/// What `export` writes and `import --records` reads.
pub const LIST_KIND: &str = "RegistryList";
pub const LIST_API_VERSION: &str = "registry-resolver.io/v1";

/// A record to write, and where it came from (for every message about it).
#[derive(Debug, Clone)]
pub struct Planned {
    pub input: RegistryInput,
    pub from: Vec<String>,
}

/// Something that could not become a record, named by where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub from: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub records: Vec<Planned>,
    pub problems: Vec<Problem>,
}

impl Plan {
    fn problem(&mut self, from: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            from: from.into(),
            message: message.into(),
        });
    }
}

/// `config.json` as Docker and Podman write it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// One registry login found in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Login {
    /// As the source keyed it (`harbor.example.com`, `https://index.docker.io/v1/`).
    key: String,
    username: String,
    password: String,
}

/// The logins of a Docker config; the entries whose credentials live
/// elsewhere (a credential store or helper, which import never runs) are
/// problems that name where they are.
fn logins(config: &DockerConfig, from: &str, plan: &mut Plan) -> Vec<Login> {
    let mut found = Vec::new();
    for (key, entry) in &config.auths {
        let elsewhere = config
            .cred_helpers
            .get(key)
            .map(|helper| format!("the credential helper {helper:?} (credHelpers)"))
            .or_else(|| {
                config
                    .creds_store
                    .as_ref()
                    .map(|store| format!("the credential store {store:?} (credsStore)"))
            });
        let decoded = entry.auth.as_deref().filter(|a| !a.is_empty()).map(|auth| {
            STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|pair| {
                    pair.split_once(':')
                        .map(|(u, p)| (u.to_owned(), p.to_owned()))
                })
        });
        let credentials = match (decoded, &entry.username, &entry.password) {
            (Some(Some(pair)), _, _) => Some(pair),
            (Some(None), _, _) => {
                plan.problem(
                    format!("{from}: {key}"),
                    "`auth` is not base64 of `username:password`",
                );
                continue;
            }
            (None, Some(username), Some(password)) => Some((username.clone(), password.clone())),
            (None, _, _) => None,
        };
        match (credentials, elsewhere) {
            (Some((username, password)), _) => found.push(Login {
                key: key.clone(),
                username,
                password,
            }),
            (None, Some(elsewhere)) => plan.problem(
                format!("{from}: {key}"),
                format!(
                    "no credentials in the file: they are kept by {elsewhere}, which import does not run; log in again with a file store, or give them in a record file"
                ),
            ),
            (None, None) => plan.problem(format!("{from}: {key}"), "no credentials"),
        }
    }
    for (key, helper) in &config.cred_helpers {
        if !config.auths.contains_key(key) {
            plan.problem(
                format!("{from}: {key}"),
                format!(
                    "its credentials are kept by the credential helper {helper:?} (credHelpers), which import does not run"
                ),
            );
        }
    }
    found
}

/// The server a login key names, and the record name made from it:
/// `https://index.docker.io/v1/` is Docker Hub, a scheme is kept (`http://`
/// is a plain-HTTP registry), a trailing `/v1/` or `/v2/` dropped.
fn server_of(key: &str, insecure: bool) -> (String, bool) {
    let trimmed = key.trim().trim_end_matches('/');
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, trimmed),
    };
    let rest = rest
        .strip_suffix("/v1")
        .or_else(|| rest.strip_suffix("/v2"))
        .unwrap_or(rest);
    let rest = match rest {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        other => other,
    };
    // KubeSphere's force-insecure: plain HTTP for a key without a scheme,
    // an unverified certificate for an explicit https:// key.
    match (scheme.as_deref(), insecure) {
        (Some("http"), _) | (None, true) => (format!("http://{rest}"), false),
        (Some("https"), true) => (format!("https://{rest}"), true),
        _ => (rest.to_owned(), false),
    }
}

/// A DNS-1123 label from free text: `harbor.example.com:8443` →
/// `harbor-example-com-8443`.
pub fn label_from(text: &str) -> String {
    let mut label = String::with_capacity(text.len());
    for c in text.to_ascii_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c);
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    let label: String = label.trim_matches('-').chars().take(63).collect();
    let label = label.trim_end_matches('-').to_owned();
    if label.is_empty() {
        "registry".to_owned()
    } else {
        label
    }
}

fn input(
    name: String,
    server: String,
    login: &Login,
    skip_verify: bool,
    namespaces: Vec<String>,
) -> RegistryInput {
    RegistryInput {
        name: Some(name),
        server: Some(server),
        username: Some(login.username.clone()),
        password: Some(Password::new(login.password.clone())),
        namespaces: Some(namespaces),
        tls: skip_verify.then(|| TlsOptions {
            insecure_skip_verify: true,
            ..TlsOptions::default()
        }),
        ..RegistryInput::default()
    }
}

/// Records from a Docker/Podman `config.json`, authorized in `namespaces`
/// (the file says nothing about namespaces).
pub fn from_docker_config(text: &[u8], from: &str, namespaces: &[String]) -> Plan {
    let mut plan = Plan::default();
    let config: DockerConfig = match serde_json::from_slice(text) {
        Ok(config) => config,
        Err(e) => {
            plan.problem(from, format!("not a Docker config.json: {e}"));
            return plan;
        }
    };
    let found = logins(&config, from, &mut plan);
    if !found.is_empty() && namespaces.is_empty() {
        plan.problem(
            from,
            "a Docker config names no namespaces: give the ones its registries are for with --namespace",
        );
        return plan;
    }
    for login in found {
        let (server, skip_verify) = server_of(&login.key, false);
        let name = label_from(server.split_once("://").map_or(&server, |(_, rest)| rest));
        plan.records.push(Planned {
            input: input(name, server, &login, skip_verify, namespaces.to_vec()),
            from: vec![format!("{from}: {}", login.key)],
        });
    }
    plan
}

/// One Secret's part of a record.
struct Found {
    secret: String,
    namespace: String,
    name: String,
    login: Login,
    insecure: bool,
    default: bool,
}

/// The `kubernetes.io/dockerconfigjson` Secrets among `secrets` (a List,
/// an object with `items`, or an array), one record per server and
/// username, authorized in every namespace that has such a Secret, the
/// default where KubeSphere marked it so, with the Secrets' name as the
/// pull Secret's where they all agree.
pub fn from_secrets(secrets: &Value, from: &str) -> Plan {
    let mut plan = Plan::default();
    let items = match secrets {
        Value::Array(items) => items.as_slice(),
        Value::Object(object) => match object.get("items").and_then(Value::as_array) {
            Some(items) => items.as_slice(),
            None if object.get("kind").and_then(Value::as_str) == Some("Secret") => {
                std::slice::from_ref(secrets)
            }
            None => {
                plan.problem(from, "neither a Secret nor a list of them");
                return plan;
            }
        },
        _ => {
            plan.problem(from, "neither a Secret nor a list of them");
            return plan;
        }
    };
    let mut found = Vec::new();
    for secret in items {
        if secret["type"] != "kubernetes.io/dockerconfigjson" {
            continue;
        }
        let namespace = secret["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        let label = format!("secret {namespace}/{name}");
        let annotation = |key: &str| {
            secret["metadata"]["annotations"][key]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        let Some(config) = secret["data"][".dockerconfigjson"]
            .as_str()
            .and_then(|data| STANDARD.decode(data).ok())
        else {
            plan.problem(label, "no base64 `.dockerconfigjson` in its data");
            continue;
        };
        let config: DockerConfig = match serde_json::from_slice(&config) {
            Ok(config) => config,
            Err(e) => {
                plan.problem(
                    label,
                    format!("`.dockerconfigjson` is not a Docker config: {e}"),
                );
                continue;
            }
        };
        for login in logins(&config, &label, &mut plan) {
            found.push(Found {
                secret: label.clone(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                login,
                insecure: annotation(FORCE_INSECURE),
                default: annotation(DEFAULT_CLASS),
            });
        }
    }

    // One record per (server, username); its password must agree.
    let mut groups: BTreeMap<(String, bool, String), Vec<Found>> = BTreeMap::new();
    for f in found {
        let (server, skip_verify) = server_of(&f.login.key, f.insecure);
        groups
            .entry((server, skip_verify, f.login.username.clone()))
            .or_default()
            .push(f);
    }
    let hosts: BTreeMap<String, usize> = groups.keys().fold(BTreeMap::new(), |mut hosts, key| {
        *hosts.entry(key.0.clone()).or_default() += 1;
        hosts
    });
    for ((server, skip_verify, username), members) in groups {
        let sources: Vec<String> = members.iter().map(|f| f.secret.clone()).collect();
        let passwords: BTreeSet<&str> = members.iter().map(|f| f.login.password.as_str()).collect();
        if passwords.len() > 1 {
            plan.problem(
                sources.join(", "),
                format!("these Secrets log in to {server} as {username:?} with different passwords; make them agree, then import again"),
            );
            continue;
        }
        let host = server
            .split_once("://")
            .map_or(server.as_str(), |(_, rest)| rest);
        let name = if hosts.get(&server).copied().unwrap_or(0) > 1 {
            label_from(&format!("{host}-{username}"))
        } else {
            label_from(host)
        };
        let namespaces: BTreeSet<String> = members.iter().map(|f| f.namespace.clone()).collect();
        let defaults: BTreeSet<String> = members
            .iter()
            .filter(|f| f.default)
            .map(|f| f.namespace.clone())
            .collect();
        let secret_names: BTreeSet<&str> = members.iter().map(|f| f.name.as_str()).collect();
        let mut record = input(
            name,
            server.clone(),
            &members[0].login,
            skip_verify,
            namespaces.into_iter().collect(),
        );
        if !defaults.is_empty() {
            record.default_for = Some(defaults.into_iter().collect());
        }
        if let [only] = secret_names.into_iter().collect::<Vec<_>>().as_slice() {
            record.pull_secret_name = Some((*only).to_owned());
        }
        plan.records.push(Planned {
            input: record,
            from: sources,
        });
    }
    plan
}

/// Records as `export` wrote them (passwords present or not).
pub fn from_records(text: &[u8], from: &str) -> Plan {
    let mut plan = Plan::default();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct List {
        api_version: String,
        kind: String,
        items: Vec<Value>,
    }
    let list: List = match serde_json::from_slice(text) {
        Ok(list) => list,
        Err(e) => {
            plan.problem(from, format!("not a record file written by export: {e}"));
            return plan;
        }
    };
    if list.kind != LIST_KIND || list.api_version != LIST_API_VERSION {
        plan.problem(
            from,
            format!(
                "a {} {}, not a {LIST_API_VERSION} {LIST_KIND}",
                list.api_version, list.kind
            ),
        );
        return plan;
    }
    for (i, item) in list.items.into_iter().enumerate() {
        let label = format!(
            "{from}: {}",
            item["name"]
                .as_str()
                .map_or_else(|| format!("item {i}"), str::to_owned)
        );
        match crate::json::from_value::<RegistryInput>(item) {
            Ok(input) => plan.records.push(Planned {
                input,
                from: vec![label],
            }),
            Err(e) => plan.problem(label, e.to_string()),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn auth(user: &str, password: &str) -> String {
        STANDARD.encode(format!("{user}:{password}"))
    }

    #[test]
    fn docker_configs_with_auth_or_fields_and_helpers_named() {
        let config = json!({
            "auths": {
                "harbor.example.com:8443": {"auth": auth("robot$ci", "pw:with:colons")},
                "https://index.docker.io/v1/": {"username": "me", "password": "hub"},
                "http://10.0.0.5:5000": {"auth": auth("u", "p")},
                "gcr.io": {},
                "broken.example": {"auth": "***"}
            },
            "credHelpers": {"gcr.io": "gcloud", "ecr.example": "ecr-login"}
        });
        let plan = from_docker_config(
            config.to_string().as_bytes(),
            "config.json",
            &["team-a".into()],
        );
        let records: Vec<(String, String, String)> = plan
            .records
            .iter()
            .map(|p| {
                (
                    p.input.name.clone().unwrap_or_default(),
                    p.input.server.clone().unwrap_or_default(),
                    p.input.username.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            records,
            [
                (
                    "harbor-example-com-8443".into(),
                    "harbor.example.com:8443".into(),
                    "robot$ci".into()
                ),
                (
                    "10-0-0-5-5000".into(),
                    "http://10.0.0.5:5000".into(),
                    "u".into()
                ),
                ("docker-io".into(), "docker.io".into(), "me".into()),
            ]
        );
        assert_eq!(
            plan.records[0]
                .input
                .password
                .as_ref()
                .map(Password::expose),
            Some("pw:with:colons")
        );
        let problems: Vec<&str> = plan.problems.iter().map(|p| p.from.as_str()).collect();
        assert_eq!(
            problems,
            [
                "config.json: broken.example",
                "config.json: gcr.io",
                "config.json: ecr.example"
            ]
        );
        assert!(
            plan.problems[1].message.contains("\"gcloud\""),
            "{:?}",
            plan.problems[1]
        );
        // Namespaces are required: the file has none.
        let plan = from_docker_config(config.to_string().as_bytes(), "config.json", &[]);
        assert!(plan.records.is_empty());
        assert!(
            plan.problems
                .iter()
                .any(|p| p.message.contains("--namespace"))
        );
    }

    fn secret(
        namespace: &str,
        name: &str,
        server: &str,
        user: &str,
        pw: &str,
        annotations: Value,
    ) -> Value {
        let config = json!({"auths": {server: {"auth": auth(user, pw)}}});
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
               "metadata": {"namespace": namespace, "name": name, "annotations": annotations},
               "data": {".dockerconfigjson": STANDARD.encode(config.to_string())}})
    }

    #[test]
    fn kubesphere_secrets_become_one_record_per_server_and_user() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            secret("proj-a", "harbor", "harbor.local", "robot", "pw", json!({DEFAULT_CLASS: "true"})),
            secret("proj-b", "harbor", "harbor.local", "robot", "pw", json!({})),
            secret("proj-c", "plain", "10.0.0.9:80", "admin", "x", json!({FORCE_INSECURE: "true"})),
            secret("proj-d", "one", "https://self.signed", "u", "p", json!({FORCE_INSECURE: "true"})),
            secret("proj-e", "a", "dup.example", "u", "first", json!({})),
            secret("proj-f", "b", "dup.example", "u", "second", json!({})),
            secret("proj-a", "other-name", "harbor.local", "dev", "pw2", json!({})),
            {"kind": "Secret", "type": "Opaque", "metadata": {"namespace": "x", "name": "y"}},
        ]});
        let plan = from_secrets(&list, "secrets.json");
        let by_name: BTreeMap<String, &RegistryInput> = plan
            .records
            .iter()
            .map(|p| (p.input.name.clone().unwrap_or_default(), &p.input))
            .collect();
        let harbor = by_name["harbor-local-robot"];
        assert_eq!(harbor.server.as_deref(), Some("harbor.local"));
        assert_eq!(
            harbor.namespaces,
            Some(vec!["proj-a".into(), "proj-b".into()])
        );
        assert_eq!(harbor.default_for, Some(vec!["proj-a".into()]));
        assert_eq!(harbor.pull_secret_name.as_deref(), Some("harbor"));
        assert!(
            by_name.contains_key("harbor-local-dev"),
            "{:?}",
            by_name.keys()
        );
        assert_eq!(
            by_name["10-0-0-9-80"].server.as_deref(),
            Some("http://10.0.0.9:80")
        );
        let skip = by_name["self-signed"];
        assert_eq!(skip.server.as_deref(), Some("https://self.signed"));
        assert!(skip.tls.as_ref().is_some_and(|t| t.insecure_skip_verify));
        assert!(
            !by_name.contains_key("dup-example"),
            "disagreeing passwords are not guessed"
        );
        assert_eq!(plan.problems.len(), 1);
        assert_eq!(plan.problems[0].from, "secret proj-e/a, secret proj-f/b");
    }

    #[test]
    fn labels_are_dns_labels() {
        assert_eq!(
            label_from("Harbor.Example.com:8443/x"),
            "harbor-example-com-8443-x"
        );
        assert_eq!(label_from("..."), "registry");
        assert_eq!(label_from(&"a".repeat(100)).len(), 63);
    }
}
