//! Kubernetes mode: registry records as `ImageRegistry` objects, pull
//! Secrets replicated into every authorized namespace.

pub mod audit;
pub mod auth;
pub mod controller;
pub mod convert;
pub mod crd;
pub mod lease;
pub mod pace;
pub mod pull_secrets;
pub mod reflect;
pub mod replicate;
pub mod state;
pub mod status;
pub mod store;
pub mod validate;
pub mod workloads;

/// What the unit tests' mock API server answers with (tower-test).
#[cfg(test)]
pub(crate) mod mock {
    use http::{Request, Response};
    use http_body_util::BodyExt;
    use kube::client::Body;
    use serde_json::Value;

    /// The JSON body a client sent.
    pub async fn body(request: Request<Body>) -> Value {
        let bytes = request
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("json body")
    }

    /// An answer with this status and JSON body.
    pub fn respond(status: u16, value: &Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(value).expect("json")))
            .expect("response")
    }
}
