//! Talking to registries on behalf of the API: checking a record the way
//! `docker login` would, and browsing repositories and tags for an image
//! picker, with short-lived caches so a picker typing letters does not
//! hammer the registry.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use moka::future::Cache;

use super::Credentials;
use super::client::{ClientOptions, ConnectError, HarborPage, Page, RegistryClient};
use super::{BrowseMethod, Registry, RegistryStatus, Server, TlsOptions};

#[derive(Debug, Clone)]
pub struct ConnectivityOptions {
    pub client: ClientOptions,
    /// Deadline for a whole check (challenge, token, retry), so a dead
    /// registry answers in seconds and never holds up the API.
    pub check_timeout: Duration,
    pub browse_cache_ttl: Duration,
    pub browse_cache_entries: u64,
    /// Where `browse: dockerhub` searches (Docker Hub's API).
    pub dockerhub_url: String,
}

impl Default for ConnectivityOptions {
    fn default() -> Self {
        Self {
            client: ClientOptions::default(),
            check_timeout: Duration::from_secs(10),
            browse_cache_ttl: Duration::from_secs(10),
            browse_cache_entries: 1000,
            dockerhub_url: DOCKER_HUB.to_owned(),
        }
    }
}

/// A listing as the API returns it: one page, and the cursor of the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub items: Vec<String>,
    pub next: Option<String>,
}

pub struct Connectivity {
    options: ConnectivityOptions,
    /// Clients by record name and version: a changed record gets a new
    /// client, so stored credentials never follow a record to a new address.
    clients: Cache<String, Arc<RegistryClient>>,
    /// Full repository and tag lists by record version and path.
    lists: Cache<String, Arc<Vec<String>>>,
    /// Registries that refused to list repositories, by record version: a
    /// picker typing letters does not ask again each time.
    refused: Cache<String, ConnectError>,
    /// Whether a record's registry is a Harbor, by record version.
    harbor: Cache<String, bool>,
}

impl std::fmt::Debug for Connectivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectivity")
            .field("options", &self.options)
            .finish()
    }
}

/// Docker Hub's API, where `browse: dockerhub` searches.
pub const DOCKER_HUB: &str = "https://hub.docker.com";

/// Most search pages read for one query (100 results each).
const HUB_PAGES_MAX: usize = 5;

/// How long a registry's refusal to list repositories is remembered.
const REFUSAL_TTL: Duration = Duration::from_secs(300);

/// How many entries one registry page asks for while collecting a full list.
const REGISTRY_PAGE: usize = 1000;
/// A registry with more repositories (or a repository with more tags) than
/// this is listed only this far; the picker filters with `q` anyway.
const LIST_MAX: usize = 50_000;
/// Most pages followed for one list: `LIST_MAX` names even from a registry
/// that sends 100 a page (Harbor's largest page).
const PAGES_MAX: usize = LIST_MAX / 100;

impl Connectivity {
    pub fn new(options: ConnectivityOptions) -> Self {
        Self {
            clients: Cache::builder()
                .max_capacity(1000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            lists: Cache::builder()
                .max_capacity(options.browse_cache_entries)
                .time_to_live(options.browse_cache_ttl)
                .build(),
            refused: Cache::builder()
                .max_capacity(options.browse_cache_entries)
                .time_to_live(REFUSAL_TTL)
                .build(),
            harbor: Cache::builder()
                .max_capacity(options.browse_cache_entries)
                .time_to_live(REFUSAL_TTL)
                .build(),
            options,
        }
    }

    /// Checks an address, TLS settings and credentials like `docker login`.
    pub async fn check(
        &self,
        server: &Server,
        tls: &TlsOptions,
        credentials: Option<Credentials>,
    ) -> Result<(), ConnectError> {
        let client = RegistryClient::new(server, tls, credentials, &self.options.client)?;
        self.deadline(server, client.verify()).await
    }

    /// The status a check leaves on a record.
    pub fn status_after(result: &Result<(), ConnectError>) -> RegistryStatus {
        match result {
            Ok(()) => RegistryStatus {
                verified: true,
                last_verified_at: Some(Utc::now()),
                message: Some("login succeeded".into()),
            },
            Err(error) => RegistryStatus {
                verified: false,
                last_verified_at: Some(Utc::now()),
                message: Some(format!("{}: {error}", error.code())),
            },
        }
    }

    /// One page of the repositories of `record` whose names contain `q`,
    /// and how they were listed (`catalog`, `harbor` or `dockerhub`).
    pub async fn repositories(
        &self,
        record: &Registry,
        credentials: Option<Credentials>,
        q: &str,
        n: usize,
        last: Option<&str>,
    ) -> Result<(Listing, BrowseMethod), ConnectError> {
        let version = record_version(record);
        if record.browse == BrowseMethod::None {
            return Err(ConnectError::BrowseUnsupported(
                "listing repositories is turned off for this registry (browse: none): type the path, its tags are still listed".into(),
            ));
        }
        if let Some(refusal) = self.refused.get(&version).await {
            return Err(refusal);
        }
        let client = self.client(record, credentials).await?;
        let server = record_server(record)?;
        // Only repositories under the record's path prefix are usable with it.
        let prefix = server.prefix.as_deref().map(|p| format!("{p}/"));
        let host = server.host.clone();
        let harbor = self.uses_harbor(record, &client, &version).await;
        let source = match (record.browse, harbor) {
            (BrowseMethod::Dockerhub, _) => BrowseMethod::Dockerhub,
            (_, true) => BrowseMethod::Harbor,
            _ => BrowseMethod::Catalog,
        };
        let all = if source == BrowseMethod::Dockerhub {
            // Hub searches; it does not list. No query, no list yet.
            if q.is_empty() {
                let nothing = Listing {
                    items: vec![],
                    next: None,
                };
                return Ok((nothing, source));
            }
            let hub = self.hub().await?;
            let query = q.to_owned();
            self.cached_list(format!("dockerhub/{q}"), &server, || async move {
                let mut items = Vec::new();
                for page in 1..=HUB_PAGES_MAX {
                    let (names, more) = hub.hub_search(&query, page).await?;
                    items.extend(names);
                    if !more {
                        break;
                    }
                }
                Ok(relative_sorted(items, None))
            })
            .await
        } else if harbor {
            // Harbor filters by name itself: one cached list per filter.
            let project = server
                .prefix
                .as_deref()
                .and_then(|p| p.split('/').next())
                .map(str::to_owned);
            let filter = q.to_owned();
            self.cached_list(format!("{version}/harbor/{q}"), &server, || async move {
                let items = numbered_pages(&host, |page| {
                    client.harbor_repositories(project.as_deref(), &filter, page)
                })
                .await?;
                Ok(relative_sorted(items, prefix.as_deref()))
            })
            .await
        } else {
            self.cached_list(format!("{version}/_catalog"), &server, || async move {
                let items = collect(&host, |last| {
                    let client = client.clone();
                    async move { client.catalog(REGISTRY_PAGE, last.as_deref()).await }
                })
                .await?;
                Ok(relative_sorted(items, prefix.as_deref()))
            })
            .await
        };
        let all = match all {
            Err(refusal @ ConnectError::BrowseUnsupported(_)) => {
                self.refused.insert(version, refusal.clone()).await;
                return Err(refusal);
            }
            other => other?,
        };
        Ok((page(all.iter().filter(|r| r.contains(q)), n, last), source))
    }

    /// One page of the tags of `repository` (relative to the record's
    /// prefix) containing `q`, newest first: by push time on a Harbor,
    /// else newest-looking by the tag text.
    pub async fn tags(
        &self,
        record: &Registry,
        credentials: Option<Credentials>,
        repository: &str,
        q: &str,
        n: usize,
        last: Option<&str>,
    ) -> Result<Listing, ConnectError> {
        let server = record_server(record)?;
        let full = match &server.prefix {
            Some(prefix) => format!("{prefix}/{repository}"),
            None => repository.to_owned(),
        };
        let version = record_version(record);
        let client = self.client(record, credentials).await?;
        let host = server.host.clone();
        let harbor = self.uses_harbor(record, &client, &version).await;
        let all = self
            .cached_list(format!("{version}/{full}"), &server, || async move {
                if harbor && let Some((project, inside)) = full.split_once('/') {
                    match harbor_tags(&client, &host, project, inside).await {
                        // An account that may pull but not read the
                        // project's artifacts still has the registry API.
                        Err(ConnectError::BrowseUnsupported(_) | ConnectError::NotFound(_)) => {}
                        other => return other,
                    }
                }
                let mut tags = collect(&host, |last| {
                    let (client, full) = (client.clone(), full.clone());
                    async move { client.tags(&full, REGISTRY_PAGE, last.as_deref()).await }
                })
                .await?;
                sort_tags(&mut tags);
                Ok(tags)
            })
            .await?;
        // `last` is a position in our order, not the registry's.
        Ok(page(all.iter().filter(|t| t.contains(q)), n, last))
    }

    /// Whether repositories and tags of `record` come from Harbor's API:
    /// asked for (`browse: harbor`), or found (`auto`, remembered per record
    /// version).
    async fn uses_harbor(&self, record: &Registry, client: &RegistryClient, version: &str) -> bool {
        match record.browse {
            BrowseMethod::Harbor => true,
            BrowseMethod::Auto => {
                if let Some(known) = self.harbor.get(version).await {
                    return known;
                }
                let found = tokio::time::timeout(self.options.check_timeout, client.is_harbor())
                    .await
                    .is_ok_and(|r| r.unwrap_or(false));
                self.harbor.insert(version.to_owned(), found).await;
                found
            }
            BrowseMethod::Catalog | BrowseMethod::Dockerhub | BrowseMethod::None => false,
        }
    }

    /// The client for Docker Hub's search: no credentials, the same address
    /// policy, caps and deadlines as every registry call.
    async fn hub(&self) -> Result<Arc<RegistryClient>, ConnectError> {
        let key = format!("dockerhub@{}", self.options.dockerhub_url);
        if let Some(client) = self.clients.get(&key).await {
            return Ok(client);
        }
        let server = Server::parse(&self.options.dockerhub_url)
            .map_err(|e| ConnectError::Config(format!("Docker Hub address: {e}")))?;
        let client = Arc::new(RegistryClient::new(
            &server,
            &TlsOptions::default(),
            None,
            &self.options.client,
        )?);
        self.clients.insert(key, client.clone()).await;
        Ok(client)
    }

    async fn client(
        &self,
        record: &Registry,
        credentials: Option<Credentials>,
    ) -> Result<Arc<RegistryClient>, ConnectError> {
        let key = record_version(record);
        if let Some(client) = self.clients.get(&key).await {
            return Ok(client);
        }
        let server = record_server(record)?;
        let client = Arc::new(RegistryClient::new(
            &server,
            &record.tls,
            credentials,
            &self.options.client,
        )?);
        self.clients.insert(key, client.clone()).await;
        Ok(client)
    }

    async fn cached_list<F, Fut>(
        &self,
        key: String,
        server: &Server,
        load: F,
    ) -> Result<Arc<Vec<String>>, ConnectError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<String>, ConnectError>>,
    {
        // Concurrent misses for the same key share one load.
        let result = self
            .lists
            .try_get_with(key, async {
                self.deadline(server, load()).await.map(Arc::new)
            })
            .await;
        result.map_err(|e| (*e).clone())
    }

    async fn deadline<T>(
        &self,
        server: &Server,
        work: impl std::future::Future<Output = Result<T, ConnectError>>,
    ) -> Result<T, ConnectError> {
        tokio::time::timeout(self.options.check_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectError::Timeout(format!(
                    "{} did not answer within {:?}",
                    server.host, self.options.check_timeout
                )))
            })
    }
}

fn record_server(record: &Registry) -> Result<Server, ConnectError> {
    record
        .parsed_server()
        .map_err(|e| ConnectError::Config(format!("stored server: {e}")))
}

/// A record's name and version: cache keys that a changed record does not share.
fn record_version(record: &Registry) -> String {
    format!(
        "{}@{}",
        record.name,
        record.updated_at.timestamp_nanos_opt().unwrap_or(0)
    )
}

/// Names under `prefix` (`library/`), without it, sorted; all names without one.
fn relative_sorted(items: Vec<String>, prefix: Option<&str>) -> Vec<String> {
    let mut items: Vec<String> = match prefix {
        Some(prefix) => items
            .into_iter()
            .filter_map(|r| r.strip_prefix(prefix).map(str::to_owned))
            .collect(),
        None => items,
    };
    items.sort();
    items.dedup();
    items
}

/// Every tag of a Harbor repository, newest push first.
async fn harbor_tags(
    client: &RegistryClient,
    host: &str,
    project: &str,
    repository: &str,
) -> Result<Vec<String>, ConnectError> {
    let mut tagged =
        numbered_pages(host, |page| client.harbor_tags(project, repository, page)).await?;
    // Pushed most recently first; tags without a time last, by name.
    tagged.sort_by(|(a, at), (b, bt)| bt.cmp(at).then_with(|| a.cmp(b)));
    let mut seen = HashSet::new();
    Ok(tagged
        .into_iter()
        .filter_map(|(name, _)| seen.insert(name.clone()).then_some(name))
        .collect())
}

/// Follows numbered pages (Harbor's `page=1, 2, …`) until one says it is
/// the last, or `LIST_MAX` items; more than `PAGES_MAX` pages is an error.
async fn numbered_pages<T, F, Fut>(host: &str, mut fetch: F) -> Result<Vec<T>, ConnectError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<HarborPage<T>, ConnectError>>,
{
    let mut all = Vec::new();
    for page in 1..=PAGES_MAX {
        let listed = fetch(page).await?;
        all.extend(listed.items);
        if !listed.more || all.len() >= LIST_MAX {
            return Ok(all);
        }
    }
    Err(too_many_pages(host))
}

fn too_many_pages(host: &str) -> ConnectError {
    ConnectError::Paging(format!(
        "{host} sent more than {PAGES_MAX} pages; stopped listing"
    ))
}

/// Follows the registry's pagination to the end (or `LIST_MAX` names).
/// The registry chooses the cursors, so a cursor seen before (a loop) or
/// more than `PAGES_MAX` pages end the listing with an error instead of
/// requests without end.
async fn collect<F, Fut>(host: &str, mut fetch: F) -> Result<Vec<String>, ConnectError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page, ConnectError>>,
{
    let mut all = Vec::new();
    let mut cursors = HashSet::new();
    let mut last = None;
    for _ in 0..PAGES_MAX {
        let page = fetch(last.take()).await?;
        all.extend(page.items);
        match page.next {
            Some(next) if all.len() < LIST_MAX => {
                if !cursors.insert(next.clone()) {
                    return Err(ConnectError::Paging(format!(
                        "{host} sent a page cursor it had sent before: its paging loops"
                    )));
                }
                last = Some(next);
            }
            _ => return Ok(all),
        }
    }
    Err(too_many_pages(host))
}

/// Our own paging over a sorted list: up to `n` items after `last`.
fn page<'a>(items: impl Iterator<Item = &'a String>, n: usize, last: Option<&str>) -> Listing {
    let mut items = items.skip_while(|item| last.is_some_and(|l| item.as_str() != l));
    if last.is_some() {
        items.next(); // `last` itself
    }
    let mut chosen: Vec<String> = items.by_ref().take(n).cloned().collect();
    let next = if items.next().is_some() {
        chosen.last().cloned()
    } else {
        None
    };
    chosen.shrink_to_fit();
    Listing {
        items: chosen,
        next,
    }
}

/// Newest-looking first: semantic versions (with or without `v`) by
/// version, descending; then every other tag by name, descending, so
/// dated tags (`2024-05-01`) come newest first too; `latest` leads.
pub fn sort_tags(tags: &mut [String]) {
    fn version(tag: &str) -> Option<semver::Version> {
        let t = tag.strip_prefix('v').unwrap_or(tag);
        semver::Version::parse(t).ok().or_else(|| {
            // `1.27` and `8` are common: pad them.
            let parts: Vec<&str> = t.split('.').collect();
            if parts.is_empty()
                || parts.len() > 2
                || !parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                return None;
            }
            let padded = match parts.len() {
                1 => format!("{}.0.0", parts[0]),
                _ => format!("{}.{}.0", parts[0], parts[1]),
            };
            semver::Version::parse(&padded).ok()
        })
    }
    tags.sort_by(|a, b| {
        use std::cmp::Ordering;
        match (a == "latest", b == "latest") {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        match (version(a), version(b)) {
            (Some(va), Some(vb)) => vb.cmp(&va).then_with(|| b.cmp(a)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => b.cmp(a),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_sort_newest_looking_first() {
        let mut tags: Vec<String> = [
            "1.9.0",
            "v1.10.0",
            "latest",
            "1.10.0-rc.1",
            "alpine",
            "2024-05-01",
            "2023-12-31",
            "8",
            "1.27",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sort_tags(&mut tags);
        assert_eq!(
            tags,
            [
                "latest",
                "8",
                "1.27",
                "v1.10.0",
                "1.10.0-rc.1",
                "1.9.0",
                "alpine",
                "2024-05-01",
                "2023-12-31"
            ]
        );
    }

    #[tokio::test]
    async fn registry_paging_ends_on_a_loop_or_after_the_page_cap() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = AtomicUsize::new(0);
        let looping = collect("r.example", |last| {
            calls.fetch_add(1, Ordering::SeqCst);
            let next = if last.is_none() { "b" } else { "a" };
            async move {
                Ok(Page {
                    items: vec!["x".into()],
                    next: Some(next.into()),
                })
            }
        })
        .await;
        assert_eq!(looping.map_err(|e| e.code()), Err("paging_loop"));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "b, a, then a again");

        let calls = AtomicUsize::new(0);
        let endless = collect("r.example", |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(Page {
                    items: vec![],
                    next: Some(format!("cursor-{n}")),
                })
            }
        })
        .await;
        assert_eq!(endless.map_err(|e| e.code()), Err("paging_loop"));
        assert_eq!(calls.load(Ordering::SeqCst), PAGES_MAX);

        let pages = AtomicUsize::new(0);
        let fine = collect("r.example", |_| {
            let n = pages.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(Page {
                    items: vec![format!("r{n}")],
                    next: (n < 4).then(|| format!("r{n}")),
                })
            }
        })
        .await;
        assert_eq!(fine.map(|items| items.len()), Ok(5));
    }

    #[test]
    fn pages_over_a_sorted_list() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let first = page(items.iter(), 2, None);
        assert_eq!(
            first,
            Listing {
                items: vec!["a".into(), "b".into()],
                next: Some("b".into())
            }
        );
        let second = page(items.iter(), 2, first.next.as_deref());
        assert_eq!(
            second,
            Listing {
                items: vec!["c".into(), "d".into()],
                next: Some("d".into())
            }
        );
        let third = page(items.iter(), 2, second.next.as_deref());
        assert_eq!(
            third,
            Listing {
                items: vec!["e".into()],
                next: None
            }
        );
        assert_eq!(page(items.iter(), 5, None).next, None);
    }
}
