//! Creating a workload in the cluster on a user's behalf, with the user's
//! own bearer token: the API server authenticates and authorizes the user,
//! and runs admission (this project's webhook included) exactly as for
//! `kubectl`. This service adds no permission of its own.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};

/// Builds API clients that act as whoever presents a token.
#[derive(Clone)]
pub struct UserClients {
    /// The cluster's address and CA; credentials are replaced per user.
    config: kube::Config,
}

impl std::fmt::Debug for UserClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserClients")
            .field("cluster", &self.config.cluster_url.to_string())
            .finish()
    }
}

/// Why the cluster did not create the workload: its own status code and
/// message (RBAC, admission, validation), or that it could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{message}")]
    Refused {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("the cluster could not be reached: {0}")]
    Unavailable(#[source] kube::Error),
}

impl UserClients {
    /// From the service's own cluster configuration: only the address and
    /// the server's CA are kept.
    pub fn new(mut config: kube::Config) -> Self {
        config.auth_info = kube::config::AuthInfo::default();
        Self { config }
    }

    fn client_for(&self, token: &str) -> Result<kube::Client, SubmitError> {
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_owned().into()),
            ..kube::config::AuthInfo::default()
        };
        kube::Client::try_from(config).map_err(SubmitError::Unavailable)
    }

    /// Creates `deployment` in `namespace` as the holder of `token`, and
    /// returns it as the API server stored it (after admission).
    pub async fn create_deployment(
        &self,
        token: &str,
        namespace: &str,
        deployment: &Deployment,
    ) -> Result<Deployment, SubmitError> {
        let api: Api<Deployment> = Api::namespaced(self.client_for(token)?, namespace);
        api.create(&PostParams::default(), deployment)
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) => SubmitError::Refused {
                    code: status.code,
                    reason: status.reason.clone(),
                    message: status.message.clone(),
                },
                other => SubmitError::Unavailable(other),
            })
    }
}
