//! Docker Hub's repository search (`GET /v2/search/repositories/`), for
//! records of Docker Hub or a mirror of it (`browse: dockerhub`): Hub serves
//! no catalog. Public repositories only.

use reqwest::Method;
use serde::Deserialize;

use super::{ConnectError, LIST_BODY_MAX, RegistryClient, json};

/// Results asked for per page of a search.
pub const HUB_PAGE: usize = 100;

#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    results: Vec<SearchResult>,
}

#[derive(Deserialize)]
struct SearchResult {
    repo_name: String,
}

impl RegistryClient {
    /// One page of the repositories whose names match `query`, as paths a
    /// registry API takes: official images (`nginx`) as `library/nginx`.
    pub async fn hub_search(
        &self,
        query: &str,
        page: usize,
    ) -> Result<(Vec<String>, bool), ConnectError> {
        let mut url = url::Url::parse(&format!("{}/v2/search/repositories/", self.base))
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("query", query)
            .append_pair("page", &page.to_string())
            .append_pair("page_size", &HUB_PAGE.to_string());
        let response = self
            .send(Method::GET, url.as_str(), None, Some("application/json"))
            .await?;
        let response = self.check_status(response, "the repository search")?;
        let found: SearchPage = json(response, LIST_BODY_MAX, &self.host).await?;
        let names = found
            .results
            .into_iter()
            .map(|r| {
                if r.repo_name.contains('/') {
                    r.repo_name
                } else {
                    format!("library/{}", r.repo_name)
                }
            })
            .collect();
        Ok((names, found.next.is_some()))
    }
}

#[doc(hidden)]
pub mod fuzzing {
    /// Docker Hub's search answer, as the client reads it.
    pub fn parse(body: &[u8]) {
        let _ = serde_json::from_slice::<super::SearchPage>(body);
    }
}
