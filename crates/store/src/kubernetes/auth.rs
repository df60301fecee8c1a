//! The API in a cluster honours the cluster's identities and RBAC: bearer
//! tokens are checked with a TokenReview, each request with a
//! SubjectAccessReview. Both answers are cached for a few seconds, so an
//! image picker's burst of requests costs the API server one review each.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use moka::future::Cache;

/// What a request needs permission for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Permission {
    /// A verb on `imageregistries.registry-resolver.io` (cluster-scoped).
    Registries {
        verb: &'static str,
        name: Option<String>,
    },
    /// Creating pods in a namespace: what the image picker and the resolve
    /// preview of that namespace require.
    CreatePods { namespace: String },
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Registries {
                verb,
                name: Some(name),
            } => {
                write!(f, "{verb} imageregistries.registry-resolver.io {name:?}")
            }
            Self::Registries { verb, name: None } => {
                write!(f, "{verb} imageregistries.registry-resolver.io")
            }
            Self::CreatePods { namespace } => write!(f, "create pods in namespace {namespace:?}"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("unknown or expired token")]
    Unauthenticated,
    #[error("user {user:?} may not {permission}")]
    Forbidden { user: String, permission: String },
    #[error("the API server could not review the request: {0}")]
    // Shared: one failed review answers every request waiting on it.
    Unavailable(#[source] std::sync::Arc<kube::Error>),
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

pub struct ClusterAuth {
    client: kube::Client,
    identities: Cache<String, Identity>,
    decisions: Cache<(Identity, Permission), bool>,
}

impl ClusterAuth {
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Self {
            client,
            identities: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            decisions: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Authenticates `token` and checks `permission` for its user.
    pub async fn check(&self, token: &str, permission: &Permission) -> Result<Identity, AuthError> {
        let identity = self.authenticate(token).await?;
        let allowed = self
            .decisions
            .try_get_with(
                (identity.clone(), permission.clone()),
                self.review(&identity, permission),
            )
            .await
            .map_err(|e| (*e).clone())?;
        if allowed {
            Ok(identity)
        } else {
            Err(AuthError::Forbidden {
                user: identity.username,
                permission: permission.to_string(),
            })
        }
    }

    async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        self.identities
            .try_get_with(token.to_owned(), async {
                let review = TokenReview {
                    spec: TokenReviewSpec {
                        token: Some(token.to_owned()),
                        audiences: None,
                    },
                    ..TokenReview::default()
                };
                let answer = Api::<TokenReview>::all(self.client.clone())
                    .create(&PostParams::default(), &review)
                    .await
                    .map_err(|e| AuthError::Unavailable(e.into()))?;
                let status = answer.status.unwrap_or_default();
                match (status.authenticated, status.user) {
                    (
                        Some(true),
                        Some(UserInfo {
                            username: Some(username),
                            uid,
                            groups,
                            extra,
                        }),
                    ) => Ok(Identity {
                        username,
                        uid,
                        groups: groups.unwrap_or_default(),
                        extra: extra.unwrap_or_default(),
                    }),
                    _ => Err(AuthError::Unauthenticated),
                }
            })
            .await
            .map_err(|e| (*e).clone())
    }

    async fn review(
        &self,
        identity: &Identity,
        permission: &Permission,
    ) -> Result<bool, AuthError> {
        let attributes = match permission {
            Permission::Registries { verb, name } => ResourceAttributes {
                group: Some("registry-resolver.io".into()),
                resource: Some("imageregistries".into()),
                verb: Some((*verb).into()),
                name: name.clone(),
                ..ResourceAttributes::default()
            },
            Permission::CreatePods { namespace } => ResourceAttributes {
                group: Some(String::new()),
                resource: Some("pods".into()),
                verb: Some("create".into()),
                namespace: Some(namespace.clone()),
                ..ResourceAttributes::default()
            },
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(identity.username.clone()),
                uid: identity.uid.clone(),
                groups: Some(identity.groups.clone()),
                extra: Some(identity.extra.clone()),
                resource_attributes: Some(attributes),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Unavailable(e.into()))?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::mock::{body, respond};
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    #[tokio::test]
    async fn token_review_then_subject_access_review_then_cached() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let auth = ClusterAuth::new(
            kube::Client::new(service, "default"),
            Duration::from_secs(5),
        );
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("TokenReview");
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(
                request.uri().path(),
                "/apis/authentication.k8s.io/v1/tokenreviews"
            );
            let review = body(request).await;
            assert_eq!(review["spec"]["token"], "alice-token");
            send.send_response(respond(201, &json!({
                "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
                "spec": {"token": "alice-token"},
                "status": {"authenticated": true, "user": {"username": "alice", "uid": "u-1",
                    "groups": ["devs", "system:authenticated"]}, "audiences": ["https://kubernetes.default.svc"]}
            })));
            let (request, send) = handle.next_request().await.expect("SubjectAccessReview");
            assert_eq!(
                request.uri().path(),
                "/apis/authorization.k8s.io/v1/subjectaccessreviews"
            );
            let review = body(request).await;
            assert_eq!(review["spec"]["user"], "alice");
            assert_eq!(
                review["spec"]["groups"],
                json!(["devs", "system:authenticated"])
            );
            assert_eq!(
                review["spec"]["resourceAttributes"],
                json!({"group": "", "namespace": "team-a", "resource": "pods", "verb": "create"})
            );
            send.send_response(respond(201, &json!({
                "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
                "spec": review["spec"].clone(),
                "status": {"allowed": true, "reason": "RBAC: allowed by RoleBinding \"devs/team-a\""}
            })));
            // The second check of the same token and permission asks nothing.
            let (request, send) = handle.next_request().await.expect("SAR for the registries");
            let review = body(request).await;
            assert_eq!(
                review["spec"]["resourceAttributes"]["resource"],
                "imageregistries"
            );
            assert_eq!(review["spec"]["resourceAttributes"]["verb"], "create");
            send.send_response(respond(201, &json!({
                "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
                "spec": review["spec"].clone(), "status": {"allowed": false}
            })));
        });
        let picker = Permission::CreatePods {
            namespace: "team-a".into(),
        };
        let identity = auth.check("alice-token", &picker).await.expect("allowed");
        assert_eq!(identity.username, "alice");
        auth.check("alice-token", &picker).await.expect("cached");
        let create = Permission::Registries {
            verb: "create",
            name: None,
        };
        let denied = auth
            .check("alice-token", &create)
            .await
            .expect_err("denied");
        assert_eq!(
            denied.to_string(),
            "user \"alice\" may not create imageregistries.registry-resolver.io"
        );
        server.await.expect("mock server");
    }

    #[tokio::test]
    async fn unknown_tokens_are_unauthenticated() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let auth = ClusterAuth::new(
            kube::Client::new(service, "default"),
            Duration::from_secs(5),
        );
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("TokenReview");
            send.send_response(respond(201, &json!({
                "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
                "spec": {}, "status": {"user": {}, "error": "[invalid bearer token, token lookup failed]"}
            })));
        });
        let result = auth
            .check(
                "forged",
                &Permission::Registries {
                    verb: "list",
                    name: None,
                },
            )
            .await;
        assert!(
            matches!(result, Err(AuthError::Unauthenticated)),
            "{result:?}"
        );
        server.await.expect("mock server");
    }
}
