//! An in-memory Kubernetes API server for the kube client, speaking the
//! same wire format: lists with resourceVersions, watch streams of
//! ADDED/MODIFIED/DELETED events, create/get/delete, server-side apply and
//! merge patches, the status subresource, owner-reference garbage
//! collection, Status bodies for errors, and TokenReview/SubjectAccessReview.
//! Enough of the real thing to run the controller and the API against it
//! where no cluster can run.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::mpsc;

type ResponseBody = BoxBody<Bytes, Infallible>;

/// Which collection a path addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Collection {
    /// `secrets`, `namespaces`, `imageregistries`.
    plural: String,
    api_version: String,
    kind: String,
}

#[derive(Debug, Clone)]
struct Target {
    collection: Collection,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

struct Watcher {
    collection: Collection,
    namespace: Option<String>,
    labels: Vec<(String, String)>,
    fields: Vec<(String, String)>,
    /// How late this watch hears of each event.
    delay: Duration,
    tx: mpsc::UnboundedSender<(Instant, Bytes)>,
}

#[derive(Default)]
struct State {
    version: u64,
    /// (plural, namespace, name) → object
    objects: BTreeMap<(String, String, String), Value>,
    watchers: Vec<Watcher>,
    /// Every write, for watches that start from an older resourceVersion.
    log: Vec<(u64, String, Value)>,
    /// Tokens the TokenReview accepts → username.
    tokens: BTreeMap<String, String>,
    /// Users allowed everything by the SubjectAccessReview.
    admins: Vec<String>,
    /// The bearer token of every Deployment request.
    deployment_tokens: Vec<String>,
    requests: Vec<String>,
    /// (plural, namespace, text the body holds) → writes still to refuse
    /// with a 500.
    failing_writes: BTreeMap<(String, String, String), usize>,
    /// plural → how late watches of it hear of events, as when one watch
    /// stream lags behind another.
    watch_delays: BTreeMap<String, Duration>,
    /// Writes past this rate are answered 429 with `Retry-After`.
    write_limit: Option<WriteLimit>,
    /// Every write let through: when, and to what.
    writes: Vec<Write>,
    /// The plural of each write answered 429.
    throttled: Vec<String>,
    /// (plural, namespace prefix) → how long each write there takes, as
    /// when etcd is slow for some objects.
    slow_writes: BTreeMap<(String, String), Duration>,
    /// Plurals whose lists are never answered, as an API server that
    /// accepts the connection and then stalls.
    stalled_lists: Vec<String>,
    /// How many lists were left unanswered so far.
    lists_stalled: usize,
}

/// The server's own token bucket for writes, as API Priority and
/// Fairness answers a client that sends more than its share: a 429 with
/// `Retry-After`.
struct WriteLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
    retry_after_seconds: u64,
}

impl WriteLimit {
    /// Takes a token if there is one.
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_second)
            .min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One write the server let through.
#[derive(Debug, Clone)]
pub struct Write {
    pub at: Instant,
    pub method: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
    /// A write to the status subresource.
    pub status: bool,
}

#[derive(Clone, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

fn status_body(code: u16, reason: &str, message: String) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// The API server's 404 for a named object.
fn not_found(target: &Target, name: &str) -> Response<ResponseBody> {
    full(
        StatusCode::NOT_FOUND,
        &status_body(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", target.collection.plural),
        ),
    )
}

/// A write whose resourceVersion is not the stored one, as the API server
/// answers it.
fn conflict(target: &Target, name: &str) -> Response<ResponseBody> {
    full(
        StatusCode::CONFLICT,
        &status_body(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified",
                target.collection.plural
            ),
        ),
    )
}

fn full(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(value).unwrap_or_default())).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// The kinds this server knows, by plural.
/// What this API server serves: (group, version, plural, kind,
/// namespaced). Its discovery documents and its routes both come from here.
const RESOURCES: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "secrets", "Secret", true),
    ("", "v1", "configmaps", "ConfigMap", true),
    ("", "v1", "events", "Event", true),
    ("", "v1", "namespaces", "Namespace", false),
    ("apps", "v1", "deployments", "Deployment", true),
    (
        "registry-resolver.io",
        "v1alpha1",
        "imageregistries",
        "ImageRegistry",
        false,
    ),
    ("coordination.k8s.io", "v1", "leases", "Lease", true),
    (
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "TokenReview",
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
    ),
];

fn kind_of(plural: &str) -> Option<&'static str> {
    RESOURCES
        .iter()
        .find(|(_, _, p, _, _)| *p == plural)
        .map(|(_, _, _, kind, _)| *kind)
}

/// The discovery documents kubectl reads before anything else (`/api`,
/// `/apis`, each group version's resources, `/version`), so that kubectl
/// itself can be pointed at this server.
fn discovery(path: &str) -> Option<Value> {
    let resources = |group: &str, version: &str| -> Vec<Value> {
        RESOURCES
            .iter()
            .filter(|(g, v, ..)| *g == group && *v == version)
            .map(|(_, _, plural, kind, namespaced)| {
                json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced,
                       "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            })
            .collect()
    };
    let groups: Vec<Value> = RESOURCES
        .iter()
        .filter(|(group, ..)| !group.is_empty())
        .map(|(group, version, ..)| (*group, *version))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|(group, version)| {
            let preferred =
                json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [preferred], "preferredVersion": preferred})
        })
        .collect();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["version"] => {
            json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"})
        }
        ["api"] => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ["apis"] => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
        ["api", "v1"] => {
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources("", "v1")})
        }
        ["apis", group, version]
            if RESOURCES
                .iter()
                .any(|(g, v, ..)| g == group && v == version) =>
        {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"),
                   "resources": resources(group, version)})
        }
        _ => return None,
    })
}

fn parse_target(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (api_version, rest): (String, &[&str]) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".into(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        other => (None, other),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some((*name).to_owned()), false),
        [plural, name, "status"] => (*plural, Some((*name).to_owned()), true),
        _ => return None,
    };
    let kind = kind_of(plural)?;
    Some(Target {
        collection: Collection {
            plural: plural.into(),
            api_version,
            kind: kind.into(),
        },
        namespace,
        name,
        status,
    })
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn selector(query: &[(String, String)], key: &str) -> Vec<(String, String)> {
    query
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|term| {
            term.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn matches(object: &Value, labels: &[(String, String)], fields: &[(String, String)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v.as_str()))
        && fields.iter().all(|(k, v)| {
            let actual = match k.as_str() {
                "metadata.name" => object["metadata"]["name"].as_str(),
                "metadata.namespace" => object["metadata"]["namespace"].as_str(),
                other => object[other].as_str(),
            };
            actual == Some(v.as_str())
        })
}

/// JSON patch (RFC 6902) as the API server applies it: a `test` for
/// `null` passes where the path is missing (the finalizer helper relies
/// on it to add the first finalizer).
fn json_patch_k8s(old: &Value, operations: Value) -> Result<Value, String> {
    let operations: Vec<Value> = operations
        .as_array()
        .ok_or("a JSON patch is an array")?
        .iter()
        .filter(|op| {
            let absent = op["path"]
                .as_str()
                .is_some_and(|path| old.pointer(path).is_none_or(Value::is_null));
            !(op["op"] == "test" && op["value"].is_null() && absent)
        })
        .cloned()
        .collect();
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(operations)).map_err(|e| e.to_string())?;
    let mut next = old.clone();
    json_patch::patch(&mut next, &patch).map_err(|e| e.to_string())?;
    Ok(next)
}

/// JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

impl State {
    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn emit(&mut self, kind: &str, collection: &Collection, object: &Value) {
        let version = self.version;
        self.log.push((version, kind.to_owned(), object.clone()));
        let line = json!({"type": kind, "object": object});
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        self.watchers.retain(|w| {
            if w.collection.plural != collection.plural
                || w.namespace
                    .as_ref()
                    .is_some_and(|ns| object["metadata"]["namespace"].as_str() != Some(ns))
                || !matches(object, &w.labels, &w.fields)
            {
                return !w.tx.is_closed();
            }
            w.tx.send((Instant::now() + w.delay, Bytes::from(bytes.clone())))
                .is_ok()
        });
    }

    fn key(target: &Target, name: &str) -> (String, String, String) {
        (
            target.collection.plural.clone(),
            target.namespace.clone().unwrap_or_default(),
            name.to_owned(),
        )
    }

    /// Normalizes what a write leaves behind: `stringData` into `data`,
    /// server-set metadata.
    fn store(
        &mut self,
        target: &Target,
        name: &str,
        mut object: Value,
        existing: Option<&Value>,
    ) -> Value {
        let version = self.bump();
        if let Some(string_data) = object
            .get("stringData")
            .cloned()
            .and_then(|v| v.as_object().cloned())
        {
            let data = object["data"].as_object().cloned().unwrap_or_default();
            let mut data = data;
            for (k, v) in string_data {
                data.insert(k, json!(STANDARD.encode(v.as_str().unwrap_or_default())));
            }
            object["data"] = Value::Object(data);
            if let Some(map) = object.as_object_mut() {
                map.remove("stringData");
            }
        }
        object["apiVersion"] = json!(target.collection.api_version);
        object["kind"] = json!(target.collection.kind);
        object["metadata"]["name"] = json!(name);
        if let Some(ns) = &target.namespace {
            object["metadata"]["namespace"] = json!(ns);
        }
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        match existing {
            Some(old) => {
                object["metadata"]["uid"] = old["metadata"]["uid"].clone();
                object["metadata"]["creationTimestamp"] =
                    old["metadata"]["creationTimestamp"].clone();
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                let spec_changed = old.get("spec") != object.get("spec");
                object["metadata"]["generation"] = json!(if spec_changed {
                    generation + 1
                } else {
                    generation
                });
            }
            None => {
                object["metadata"]["uid"] =
                    json!(format!("uid-{}-{version}", target.collection.plural));
                object["metadata"]["creationTimestamp"] =
                    json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                object["metadata"]["generation"] = json!(1);
            }
        }
        self.objects.insert(Self::key(target, name), object.clone());
        let kind = if existing.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.emit(kind, &target.collection, &object);
        object
    }

    fn remove(&mut self, key: &(String, String, String), collection: &Collection) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        let version = self.bump();
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        self.emit("DELETED", collection, &object);
        // The garbage collector: dependents owned by this object go too.
        if let Some(uid) = object["metadata"]["uid"].as_str().map(str::to_owned) {
            let owned: Vec<(String, String, String)> = self
                .objects
                .iter()
                .filter(|(_, o)| {
                    o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in owned {
                let dependent = Collection {
                    plural: key.0.clone(),
                    api_version: "v1".into(),
                    kind: "Secret".into(),
                };
                self.remove(&key, &dependent);
            }
        }
        Some(object)
    }
}

impl FakeApiServer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// A token the TokenReview accepts, for `username`; with `admin`, every
    /// SubjectAccessReview for it is allowed.
    pub fn add_user(&self, token: &str, username: &str, admin: bool) {
        let mut state = self.state.lock().expect("lock");
        state.tokens.insert(token.into(), username.into());
        if admin {
            state.admins.push(username.into());
        }
    }

    /// Creates an object directly (as `kubectl apply` would).
    pub fn put(
        &self,
        plural: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        object: Value,
    ) -> Value {
        let target = Target {
            collection: Collection {
                plural: plural.into(),
                api_version: api_version.into(),
                kind: kind.into(),
            },
            namespace: namespace.map(str::to_owned),
            name: None,
            status: false,
        };
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut state = self.state.lock().expect("lock");
        let existing = state.objects.get(&State::key(&target, &name)).cloned();
        state.store(&target, &name, object, existing.as_ref())
    }

    pub fn namespace(&self, name: &str) {
        self.put(
            "namespaces",
            "v1",
            "Namespace",
            None,
            json!({"metadata": {"name": name}}),
        );
    }

    pub fn get(&self, plural: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let state = self.state.lock().expect("lock");
        state
            .objects
            .get(&(
                plural.to_owned(),
                namespace.unwrap_or_default().to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }

    /// Every stored object of `plural` (in `namespace`, when given).
    pub fn list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let state = self.state.lock().expect("lock");
        state
            .objects
            .iter()
            .filter(|((p, ns, _), _)| p == plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object.clone())
            .collect()
    }

    pub fn delete(&self, plural: &str, namespace: Option<&str>, name: &str) {
        let mut state = self.state.lock().expect("lock");
        let collection = Collection {
            plural: plural.into(),
            api_version: "v1".into(),
            kind: kind_of(plural).unwrap_or("Secret").into(),
        };
        state.remove(
            &(
                plural.to_owned(),
                namespace.unwrap_or_default().to_owned(),
                name.to_owned(),
            ),
            &collection,
        );
    }

    /// The bearer tokens Deployment requests came with.
    pub fn deployment_tokens(&self) -> Vec<String> {
        self.state.lock().expect("lock").deployment_tokens.clone()
    }

    /// The next `count` writes (anything but GET) of `plural` in
    /// `namespace` fail with a 500, as when etcd is slow.
    pub fn fail_writes(&self, plural: &str, namespace: &str, count: usize) {
        self.fail_writes_containing(plural, namespace, "", count);
    }

    /// As [`Self::fail_writes`], only for writes whose body holds `text`:
    /// one step of a multi-step write, picked by what it writes (the
    /// controller writes the same objects meanwhile, so counting writes
    /// would pick whichever came first).
    pub fn fail_writes_containing(&self, plural: &str, namespace: &str, text: &str, count: usize) {
        self.state
            .lock()
            .expect("lock")
            .failing_writes
            .insert((plural.into(), namespace.into(), text.into()), count);
    }

    /// Watches of `plural` (those open and those to come) hear of each
    /// event `delay` late, in order.
    pub fn delay_watch_events(&self, plural: &str, delay: Duration) {
        let mut state = self.state.lock().expect("lock");
        state.watch_delays.insert(plural.into(), delay);
        for watcher in &mut state.watchers {
            if watcher.collection.plural == plural {
                watcher.delay = delay;
            }
        }
    }

    /// Answers writes past `per_second` (after a burst of `burst`) with a
    /// 429 and `Retry-After: retry_after_seconds`, as API Priority and
    /// Fairness does for a client over its share.
    pub fn limit_writes(&self, per_second: f64, burst: f64, retry_after_seconds: u64) {
        self.state.lock().expect("lock").write_limit = Some(WriteLimit {
            per_second,
            burst,
            tokens: burst,
            at: Instant::now(),
            retry_after_seconds,
        });
    }

    /// Each write of `plural` in a namespace starting with `prefix` takes
    /// `delay` before it is answered.
    pub fn slow_writes(&self, plural: &str, prefix: &str, delay: Duration) {
        self.state
            .lock()
            .expect("lock")
            .slow_writes
            .insert((plural.into(), prefix.into()), delay);
    }

    /// How many lists have been left unanswered (see [`Self::stall_lists`]).
    pub fn lists_stalled(&self) -> usize {
        self.state.lock().expect("lock").lists_stalled
    }

    /// Lists of `plural` are never answered (watches and gets still are).
    pub fn stall_lists(&self, plural: &str) {
        self.state
            .lock()
            .expect("lock")
            .stalled_lists
            .push(plural.into());
    }

    /// Every write let through so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.state.lock().expect("lock").writes.clone()
    }

    /// How many writes were answered 429.
    pub fn throttled(&self) -> usize {
        self.state.lock().expect("lock").throttled.len()
    }

    /// How many writes of `plural` were answered 429.
    pub fn throttled_of(&self, plural: &str) -> usize {
        let state = self.state.lock().expect("lock");
        state.throttled.iter().filter(|p| *p == plural).count()
    }

    /// Every request line seen, `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("lock").requests.clone()
    }

    async fn handle(self, request: Request<kube::client::Body>) -> Response<ResponseBody> {
        let bearer = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = query_pairs(request.uri().query().unwrap_or_default());
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if method != Method::GET
            && let Some(target) = parse_target(&path)
        {
            let namespace = target.namespace.unwrap_or_default();
            let slow = self
                .state
                .lock()
                .expect("lock")
                .slow_writes
                .iter()
                .find(|((plural, prefix), _)| {
                    *plural == target.collection.plural && namespace.starts_with(prefix.as_str())
                })
                .map(|(_, delay)| *delay);
            if let Some(delay) = slow {
                tokio::time::sleep(delay).await;
            }
        }
        if method == Method::GET
            && let Some(target) = parse_target(&path)
            && target.name.is_none()
            && !query.iter().any(|(k, v)| k == "watch" && v == "true")
            && {
                let mut state = self.state.lock().expect("lock");
                let stalled = state.stalled_lists.contains(&target.collection.plural);
                state.lists_stalled += usize::from(stalled);
                stalled
            }
        {
            std::future::pending::<()>().await;
        }
        if method == Method::GET
            && let Some(document) = discovery(&path)
        {
            return full(StatusCode::OK, &document);
        }
        let Some(target) = parse_target(&path) else {
            return full(
                StatusCode::NOT_FOUND,
                &status_body(404, "NotFound", format!("no route {path}")),
            );
        };
        let mut state = self.state.lock().expect("lock");
        state.requests.push(format!("{method} {path}"));
        let review = matches!(
            target.collection.plural.as_str(),
            "tokenreviews" | "subjectaccessreviews"
        );
        if method != Method::GET && !review {
            if let Some(limit) = state.write_limit.as_mut()
                && !limit.admit()
            {
                let retry_after = limit.retry_after_seconds;
                let plural = target.collection.plural.clone();
                state.throttled.push(plural);
                let mut response = full(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Too many requests, please try again later.",
                        "reason": "TooManyRequests", "details": {"retryAfterSeconds": retry_after},
                        "code": 429}),
                );
                if let Ok(value) = http::HeaderValue::from_str(&retry_after.to_string()) {
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, value);
                }
                return response;
            }
            let write = Write {
                at: Instant::now(),
                method: method.to_string(),
                plural: target.collection.plural.clone(),
                namespace: target.namespace.clone().unwrap_or_default(),
                name: target.name.clone().unwrap_or_default(),
                status: target.status,
            };
            state.writes.push(write);
        }
        if method != Method::GET {
            let namespace = target.namespace.clone().unwrap_or_default();
            let text = body.to_string();
            let refused = state
                .failing_writes
                .iter_mut()
                .find(|((plural, ns, needle), left)| {
                    **left > 0
                        && *plural == target.collection.plural
                        && *ns == namespace
                        && text.contains(needle.as_str())
                });
            if let Some((_, left)) = refused {
                *left -= 1;
                return full(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &status_body(500, "InternalError", "etcdserver: request timed out".into()),
                );
            }
        }
        // Workloads are written by users with their own tokens: who they
        // are, and RBAC (admins may, others may not), as the API server does.
        // Reads are open (kubectl sends no token over plain HTTP).
        if target.collection.plural == "deployments" && method != Method::GET {
            let user = bearer.as_ref().and_then(|t| state.tokens.get(t)).cloned();
            state
                .deployment_tokens
                .push(bearer.clone().unwrap_or_default());
            match user {
                None => {
                    return full(
                        StatusCode::UNAUTHORIZED,
                        &status_body(401, "Unauthorized", "Unauthorized".into()),
                    );
                }
                Some(user) if !state.admins.contains(&user) => {
                    let namespace = target.namespace.clone().unwrap_or_default();
                    return full(
                        StatusCode::FORBIDDEN,
                        &status_body(
                            403,
                            "Forbidden",
                            format!(
                                "deployments.apps is forbidden: User \"{user}\" cannot create resource \"deployments\" in API group \"apps\" in the namespace \"{namespace}\""
                            ),
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        match (method, &target.name) {
            (Method::POST, None) if target.collection.plural == "tokenreviews" => {
                let token = body["spec"]["token"].as_str().unwrap_or_default();
                let status = match state.tokens.get(token) {
                    Some(user) => {
                        json!({"authenticated": true, "user": {"username": user, "groups": ["system:authenticated"]}})
                    }
                    None => json!({"user": {}, "error": "invalid bearer token"}),
                };
                full(
                    StatusCode::CREATED,
                    &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "metadata": {}, "spec": body["spec"], "status": status}),
                )
            }
            (Method::POST, None) if target.collection.plural == "subjectaccessreviews" => {
                let allowed = body["spec"]["user"]
                    .as_str()
                    .is_some_and(|u| state.admins.iter().any(|a| a == u));
                full(
                    StatusCode::CREATED,
                    &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                    "metadata": {}, "spec": body["spec"], "status": {"allowed": allowed}}),
                )
            }
            (Method::GET, None) => {
                let labels = selector(&query, "labelSelector");
                let fields = selector(&query, "fieldSelector");
                if query.iter().any(|(k, v)| k == "watch" && v == "true") {
                    let since: u64 = query
                        .iter()
                        .find(|(k, _)| k == "resourceVersion")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let (tx, rx) = mpsc::unbounded_channel();
                    let delay = state
                        .watch_delays
                        .get(&target.collection.plural)
                        .copied()
                        .unwrap_or_default();
                    for (version, kind, object) in state.log.clone() {
                        if version > since
                            && object["kind"] == json!(target.collection.kind)
                            && target.namespace.as_ref().is_none_or(|ns| {
                                object["metadata"]["namespace"].as_str() == Some(ns)
                            })
                            && matches(&object, &labels, &fields)
                        {
                            let mut line =
                                serde_json::to_vec(&json!({"type": kind, "object": object}))
                                    .unwrap_or_default();
                            line.push(b'\n');
                            let _ = tx.send((Instant::now() + delay, Bytes::from(line)));
                        }
                    }
                    state.watchers.push(Watcher {
                        collection: target.collection.clone(),
                        namespace: target.namespace.clone(),
                        labels,
                        fields,
                        delay,
                        tx,
                    });
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        let (at, line) = rx.recv().await?;
                        if at > Instant::now() {
                            tokio::time::sleep_until(at.into()).await;
                        }
                        Some((Ok::<_, Infallible>(http_body::Frame::data(line)), rx))
                    });
                    return Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(StreamBody::new(stream).boxed())
                        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()));
                }
                // Pages, as the API server gives them to a client that
                // asks for `limit` (kube's watcher lists 500 at a time).
                // The continue token is the first page's resourceVersion,
                // which every page reports (a watch from it replays what
                // changed meanwhile), and the last object given: the next
                // page starts after it, whatever was written in between.
                let param = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v);
                let token = param("continue").and_then(|token| {
                    let mut parts = token.splitn(3, ':');
                    let version: u64 = parts.next()?.parse().ok()?;
                    Some((version, parts.next()?.to_owned(), parts.next()?.to_owned()))
                });
                let listed_at = token.as_ref().map_or(state.version, |(v, ..)| *v);
                let limit = param("limit")
                    .and_then(|v| v.parse().ok())
                    .filter(|n: &usize| *n > 0)
                    .unwrap_or(usize::MAX);
                let mut matching = state
                    .objects
                    .iter()
                    .filter(|((plural, ns, name), object)| {
                        plural == &target.collection.plural
                            && target.namespace.as_ref().is_none_or(|want| want == ns)
                            && token
                                .as_ref()
                                .is_none_or(|(_, after_ns, after)| (ns, name) > (after_ns, after))
                            && matches(object, &labels, &fields)
                    })
                    .peekable();
                let mut items = Vec::new();
                let mut last = None;
                while items.len() < limit
                    && let Some(((_, ns, name), object)) = matching.next()
                {
                    items.push(object.clone());
                    last = Some((ns.clone(), name.clone()));
                }
                let mut metadata = json!({"resourceVersion": listed_at.to_string()});
                if matching.peek().is_some()
                    && let Some((ns, name)) = last
                {
                    metadata["continue"] = json!(format!("{listed_at}:{ns}:{name}"));
                }
                full(
                    StatusCode::OK,
                    &json!({"apiVersion": target.collection.api_version,
                    "kind": format!("{}List", target.collection.kind),
                    "metadata": metadata, "items": items}),
                )
            }
            (Method::GET, Some(name)) => match state.objects.get(&State::key(&target, name)) {
                Some(object) => full(StatusCode::OK, object),
                None => not_found(&target, name),
            },
            (Method::POST, None) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if state.objects.contains_key(&State::key(&target, &name)) {
                    return full(
                        StatusCode::CONFLICT,
                        &status_body(
                            409,
                            "AlreadyExists",
                            format!("{} \"{name}\" already exists", target.collection.plural),
                        ),
                    );
                }
                let stored = state.store(&target, &name, body, None);
                full(StatusCode::CREATED, &stored)
            }
            (Method::PATCH, Some(name)) => {
                let key = State::key(&target, name);
                let existing = state.objects.get(&key).cloned();
                // A patch carrying a resourceVersion is a precondition, as
                // on the API server.
                if let (Some(wanted), Some(existing)) =
                    (body["metadata"]["resourceVersion"].as_str(), &existing)
                    && existing["metadata"]["resourceVersion"].as_str() != Some(wanted)
                {
                    return conflict(&target, name);
                }
                let next = match (&existing, content_type.as_str(), target.status) {
                    (None, "application/apply-patch+yaml", false) => body,
                    (None, _, _) => {
                        return not_found(&target, name);
                    }
                    (Some(old), "application/json-patch+json", _) => {
                        match json_patch_k8s(old, body) {
                            Ok(next) => next,
                            Err(message) => {
                                return full(
                                    StatusCode::UNPROCESSABLE_ENTITY,
                                    &status_body(422, "Invalid", message),
                                );
                            }
                        }
                    }
                    (Some(old), _, true) => {
                        let mut next = old.clone();
                        let mut status = old["status"].clone();
                        merge(&mut status, &body["status"]);
                        next["status"] = status;
                        next
                    }
                    (Some(old), _, false) => {
                        let mut next = old.clone();
                        let mut patch = body;
                        // Status is not written through the main resource.
                        if let Some(map) = patch.as_object_mut() {
                            map.remove("status");
                        }
                        merge(&mut next, &patch);
                        next
                    }
                };
                // An object marked for deletion goes once its last finalizer does.
                let releasing = !next["metadata"]["deletionTimestamp"].is_null()
                    && next["metadata"]["finalizers"]
                        .as_array()
                        .is_none_or(|f| f.is_empty());
                let stored = state.store(&target, name, next, existing.as_ref());
                if releasing {
                    state.remove(&key, &target.collection);
                }
                full(StatusCode::OK, &stored)
            }
            (Method::PUT, Some(name)) => {
                let key = State::key(&target, name);
                let Some(existing) = state.objects.get(&key).cloned() else {
                    return not_found(&target, name);
                };
                // Optimistic concurrency, as the API server does it.
                if body["metadata"]["resourceVersion"] != existing["metadata"]["resourceVersion"] {
                    return conflict(&target, name);
                }
                let stored = state.store(&target, name, body, Some(&existing));
                full(StatusCode::OK, &stored)
            }
            (Method::DELETE, Some(name))
                if state
                    .objects
                    .get(&State::key(&target, name))
                    .is_some_and(|o| {
                        o["metadata"]["finalizers"]
                            .as_array()
                            .is_some_and(|f| !f.is_empty())
                    }) =>
            {
                // Finalizers hold the object: it is only marked for deletion.
                let key = State::key(&target, name);
                let existing = state.objects.get(&key).cloned().unwrap_or_default();
                let mut marked = existing.clone();
                if marked["metadata"]["deletionTimestamp"].is_null() {
                    marked["metadata"]["deletionTimestamp"] = json!(
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
                let stored = state.store(&target, name, marked, Some(&existing));
                full(StatusCode::OK, &stored)
            }
            (Method::DELETE, Some(name)) => {
                match state.remove(&State::key(&target, name), &target.collection) {
                    Some(object) => full(StatusCode::OK, &object),
                    None => not_found(&target, name),
                }
            }
            _ => full(
                StatusCode::METHOD_NOT_ALLOWED,
                &status_body(405, "MethodNotAllowed", "not supported here".into()),
            ),
        }
    }
}

impl tower::Service<Request<kube::client::Body>> for FakeApiServer {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}

impl FakeApiServer {
    /// Serves this API server over plain HTTP on a loopback port, for a
    /// process of its own (the real binary) to talk to; returns the URL.
    pub async fn serve_http(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let fake = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let fake = fake.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let fake = fake.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let request =
                                    Request::from_parts(parts, kube::client::Body::from(bytes));
                                Ok::<_, Infallible>(fake.handle(request).await)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        url
    }

    /// A kubeconfig pointing at `url`.
    pub fn kubeconfig(url: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\nusers:\n- name: fake\n  user:\n    token: fake-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\n"
        )
    }
}
