//! Harbor's own API (`/api/v2.0`, as its `swagger.yaml` describes it), for
//! what the registry API does not give a project robot account: the list
//! of repositories it may pull, and tags with their push times (so "newest
//! first" is a fact, not a guess from the tag text).

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::{ConnectError, LIST_BODY_MAX, RegistryClient, json, read_capped};

/// Harbor's largest page (`page_size` maximum 100).
pub const HARBOR_PAGE: usize = 100;

#[derive(Deserialize)]
struct Repository {
    name: String,
}

#[derive(Deserialize)]
struct Artifact {
    #[serde(default)]
    tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
    #[serde(default)]
    push_time: Option<DateTime<Utc>>,
}

/// One page of a Harbor list, and whether another may follow.
pub struct HarborPage<T> {
    pub items: Vec<T>,
    pub more: bool,
}

impl RegistryClient {
    /// Whether this is a Harbor: its `systeminfo` answers anyone, with an
    /// object that names the auth mode (or, for some, the version).
    pub async fn is_harbor(&self) -> Result<bool, ConnectError> {
        let url = format!("{}/api/v2.0/systeminfo", self.base);
        let response = self.send(Method::GET, &url, None, None).await?;
        if response.status() != StatusCode::OK {
            return Ok(false);
        }
        let Ok(body) = read_capped(response, 64 * 1024, &self.host).await else {
            return Ok(false);
        };
        Ok(
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body).is_ok_and(
                |info| info.contains_key("auth_mode") || info.contains_key("harbor_version"),
            ),
        )
    }

    /// One page of the repositories this account may see: those of
    /// `project`, or of every project it belongs to. Names are full
    /// (`library/nginx`). `filter` is Harbor's fuzzy name match.
    pub async fn harbor_repositories(
        &self,
        project: Option<&str>,
        filter: &str,
        page: usize,
    ) -> Result<HarborPage<String>, ConnectError> {
        let path = match project {
            Some(project) => format!("/api/v2.0/projects/{project}/repositories"),
            None => "/api/v2.0/repositories".to_owned(),
        };
        let mut url = url::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            if !filter.is_empty() {
                query.append_pair("q", &format!("name=~{filter}"));
            }
            query.append_pair("page", &page.to_string());
            query.append_pair("page_size", &HARBOR_PAGE.to_string());
        }
        let items: Vec<Repository> = self.harbor_get(url.as_str(), "the repository list").await?;
        Ok(HarborPage {
            more: items.len() == HARBOR_PAGE,
            items: items.into_iter().map(|r| r.name).collect(),
        })
    }

    /// One page of the tags of `repository` in `project` (the name inside
    /// the project, which Harbor wants URL-encoded twice when it has a
    /// `/`), with their push times.
    pub async fn harbor_tags(
        &self,
        project: &str,
        repository: &str,
        page: usize,
    ) -> Result<HarborPage<(String, Option<DateTime<Utc>>)>, ConnectError> {
        // Components are checked against the reference grammar, so `/` is
        // the only character to encode: once to `%2F`, then its `%` again.
        let encoded = repository.replace('/', "%252F");
        let url = format!(
            "{}/api/v2.0/projects/{project}/repositories/{encoded}/artifacts?with_tag=true&page={page}&page_size={HARBOR_PAGE}",
            self.base
        );
        let artifacts: Vec<Artifact> = self
            .harbor_get(&url, &format!("repository {project}/{repository}"))
            .await?;
        Ok(HarborPage {
            more: artifacts.len() == HARBOR_PAGE,
            items: artifacts
                .into_iter()
                .flat_map(|a| a.tags.unwrap_or_default())
                .map(|t| (t.name, t.push_time))
                .collect(),
        })
    }

    /// A GET on Harbor's API with the record's credentials (Harbor takes
    /// Basic auth there, robot accounts included). A 401 or 403 means this
    /// account may not list: the caller falls back.
    async fn harbor_get<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, ConnectError> {
        let response = self
            .send(
                Method::GET,
                url,
                self.basic_header().as_deref(),
                Some("application/json"),
            )
            .await?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(ConnectError::BrowseUnsupported(format!(
                    "{} does not let this account list {what}: type the path, its tags are still listed",
                    self.host
                )))
            }
            _ => {
                let response = self.check_status(response, what)?;
                json(response, LIST_BODY_MAX, &self.host).await
            }
        }
    }
}

#[doc(hidden)]
pub mod fuzzing {
    /// Harbor's repository and artifact lists, as the client reads them.
    pub fn parse(body: &[u8]) {
        let _ = serde_json::from_slice::<Vec<super::Repository>>(body);
        let _ = serde_json::from_slice::<Vec<super::Artifact>>(body);
    }
}
