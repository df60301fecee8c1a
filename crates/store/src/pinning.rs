//! Tag → digest pinning at admission (opt-in per record, or per pod
//! template with `registry-resolver.io/pin-digest: "true"`).
//!
//! The one place the admission path may wait on the network, so it is
//! bounded: digests are cached (TTL and size), concurrent misses for the
//! same reference share one registry request, tokens are reused per
//! registry and scope, and the whole lookup for one admission has a
//! deadline well under the webhook timeout. One review is bounded in how
//! many distinct tags it may have looked up (an object with thousands of
//! containers must not become thousands of registry requests), and each
//! registry in how many look-ups it serves at once. When a registry cannot
//! answer, or a bound is reached, the policy decides: deny the request, or
//! keep the tag and warn.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tokio::sync::Semaphore;

use crate::admission::Plan;
use crate::registry::client::{ClientOptions, ConnectError, RegistryClient};
use crate::registry::store::RegistryStore;
use crate::resolve::PinTarget;

/// What to do with an admission when a digest cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PinFailurePolicy {
    /// Deny the request, saying why.
    Deny,
    /// Admit it with the tag as resolved, and a warning.
    Allow,
}

#[derive(Debug, Clone)]
pub struct PinOptions {
    pub cache_ttl: Duration,
    pub cache_entries: u64,
    /// For all lookups of one admission together.
    pub deadline: Duration,
    pub policy: PinFailurePolicy,
    pub client: ClientOptions,
    /// Distinct tags one review may have looked up (cached ones are free).
    pub max_lookups_per_review: usize,
    /// Look-ups sent to one registry at once, across all reviews.
    pub max_in_flight_per_registry: usize,
}

impl Default for PinOptions {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(300),
            cache_entries: 10_000,
            deadline: Duration::from_secs(2),
            policy: PinFailurePolicy::Allow,
            client: ClientOptions::default(),
            max_lookups_per_review: 64,
            max_in_flight_per_registry: 8,
        }
    }
}

/// One image whose tag could not be pinned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container {container:?}: cannot pin {image:?} to a digest ({}: {error})", error.code())]
pub struct ImageNotPinned {
    pub container: String,
    pub image: String,
    pub error: ConnectError,
}

/// Under the deny policy, why the review is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinFailed {
    /// Every image that could not be pinned, as the denial says them.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Images(Vec<ImageNotPinned>),
    /// More distinct uncached tags than one review may look up.
    #[error("{0}")]
    TooManyLookups(TooManyLookups),
    /// Images whose mirror could not serve them, under `fallback: deny`.
    #[error("{}", .0.join("; "))]
    Mirror(Vec<String>),
}

impl PinFailed {
    /// The denial's reason, as metrics and API clients name it.
    pub fn reason(&self) -> crate::admission::DenialReason {
        match self {
            Self::Mirror(_) => crate::admission::DenialReason::MirrorUnavailable,
            Self::Images(_) | Self::TooManyLookups(_) => crate::admission::DenialReason::PinFailed,
        }
    }
}

/// One review asked for more look-ups than it may make; none was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{distinct} distinct tags would have to be looked up to pin this object's images, more than the {max} one review may ask for (--pin-max-lookups); none was looked up"
)]
pub struct TooManyLookups {
    pub distinct: usize,
    pub max: usize,
}

pub struct Pinner {
    options: PinOptions,
    lookups: Lookups,
}

/// The caches and what fills them, cheap to clone (each cache is a handle):
/// a lookup runs as its own task holding a clone, so an admission that stops
/// waiting at its deadline does not cancel it.
#[derive(Clone)]
struct Lookups {
    store: Arc<dyn RegistryStore>,
    client_options: ClientOptions,
    /// One client (connection pool and token cache) per record version.
    clients: Cache<(String, i64), Arc<RegistryClient>>,
    digests: Cache<PinTarget, String>,
    /// Recent failures, remembered briefly: while a registry is down, hangs
    /// or a tag is missing, admissions answer at once instead of each
    /// waiting out the deadline, and the registry is not hammered.
    failures: Cache<PinTarget, ConnectError>,
    /// Per registry: the look-ups it may be sent at once.
    in_flight: Cache<String, Arc<Semaphore>>,
    max_in_flight: usize,
}

/// How long a failed lookup is remembered.
const FAILURE_TTL: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Pinner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinner")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Pinner {
    pub fn new(store: Arc<dyn RegistryStore>, options: PinOptions) -> Self {
        Self {
            lookups: Lookups {
                store,
                client_options: options.client.clone(),
                clients: Cache::builder()
                    .max_capacity(1000)
                    .time_to_idle(Duration::from_secs(600))
                    .build(),
                digests: Cache::builder()
                    .max_capacity(options.cache_entries)
                    .time_to_live(options.cache_ttl)
                    .build(),
                failures: Cache::builder()
                    .max_capacity(options.cache_entries)
                    .time_to_live(FAILURE_TTL.min(options.cache_ttl))
                    .build(),
                in_flight: Cache::builder()
                    .max_capacity(1000)
                    .time_to_idle(Duration::from_secs(600))
                    .build(),
                max_in_flight: options.max_in_flight_per_registry.max(1),
            },
            options,
        }
    }

    pub fn policy(&self) -> PinFailurePolicy {
        self.options.policy
    }

    /// Makes the lookups `plan` waits for: pins every rewrite that asks
    /// for it, and asks mirrors whose entries say `checkUpstream` for their
    /// images. A tag not pinned is denied under the deny policy, else kept
    /// with a warning; an image its mirror cannot serve is handled as its
    /// entry's `fallback` says (see [`Plan::fall_back`]).
    /// One deadline and one per-review bound cover both kinds of lookup.
    pub async fn look_up(&self, plan: &mut Plan<'_>) -> Result<(), PinFailed> {
        let until = tokio::time::Instant::now() + self.options.deadline;
        let every: Vec<(usize, PinTarget)> = plan
            .resolution
            .rewrites
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.pin
                    .clone()
                    .or_else(|| r.check.as_ref().map(|c| c.target.clone()))
                    .map(|t| (i, t))
            })
            .collect();
        let over = self.over_bound(&every).await;
        self.check_mirrors(plan, until, over.as_ref()).await?;
        let targets: Vec<(usize, PinTarget)> = plan
            .resolution
            .rewrites
            .iter_mut()
            .enumerate()
            .filter_map(|(i, r)| r.pin.take().map(|t| (i, t)))
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        if let Some(over) = over {
            // Nothing is looked up: the images keep their tags (allow) or
            // the review is denied (deny), with one message saying why.
            return match self.options.policy {
                PinFailurePolicy::Deny => Err(PinFailed::TooManyLookups(over)),
                PinFailurePolicy::Allow => {
                    plan.warnings.push(format!("{over}; kept the tags"));
                    Ok(())
                }
            };
        }
        let lookups = futures_util::future::join_all(targets.iter().map(|(_, t)| self.digest(t)));
        let results = match tokio::time::timeout_at(until, lookups).await {
            Ok(results) => results,
            Err(_) => {
                let late = ConnectError::Timeout(format!(
                    "no answer within the pinning deadline of {:?}",
                    self.options.deadline
                ));
                // The lookups go on in the background; until one ends, the
                // admissions after this one are told at once, not after
                // another deadline. An answer that arrives replaces this.
                for (_, target) in &targets {
                    if self.lookups.digests.get(target).await.is_none() {
                        self.lookups
                            .failures
                            .insert(target.clone(), late.clone())
                            .await;
                    }
                }
                targets.iter().map(|_| Err(late.clone())).collect()
            }
        };
        let mut problems = Vec::new();
        for ((i, _), result) in targets.iter().zip(results) {
            let Some(rewrite) = plan.resolution.rewrites.get_mut(*i) else {
                continue;
            };
            match result {
                Ok(digest) => rewrite.resolved = format!("{}@{digest}", rewrite.resolved),
                Err(error) => {
                    let failure = ImageNotPinned {
                        container: rewrite.container.clone(),
                        image: rewrite.resolved.clone(),
                        error,
                    };
                    match self.options.policy {
                        PinFailurePolicy::Deny => problems.push(failure),
                        PinFailurePolicy::Allow => {
                            plan.warnings.push(format!("{failure}; kept the tag"))
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PinFailed::Images(problems))
        }
    }

    /// Asks each mirror for the images a `checkUpstream` entry sends it,
    /// within the same deadline and per-review bound as pinning; a mirror
    /// that cannot answer in time counts as one that cannot serve.
    async fn check_mirrors(
        &self,
        plan: &mut Plan<'_>,
        until: tokio::time::Instant,
        over: Option<&TooManyLookups>,
    ) -> Result<(), PinFailed> {
        let targets: Vec<(usize, PinTarget)> = plan
            .resolution
            .rewrites
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.check.as_ref().map(|c| (i, c.target.clone())))
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let failed: Vec<(usize, String)> = if let Some(over) = over {
            targets
                .iter()
                .map(|(i, _)| (*i, over.to_string()))
                .collect()
        } else {
            let lookups =
                futures_util::future::join_all(targets.iter().map(|(_, t)| self.digest(t)));
            match tokio::time::timeout_at(until, lookups).await {
                Ok(results) => targets
                    .iter()
                    .zip(results)
                    .filter_map(|((i, _), result)| {
                        result.err().map(|e| (*i, format!("{}: {e}", e.code())))
                    })
                    .collect(),
                Err(_) => targets
                    .iter()
                    .map(|(i, _)| {
                        (
                            *i,
                            format!(
                                "no answer within the deadline of {:?}",
                                self.options.deadline
                            ),
                        )
                    })
                    .collect(),
            }
        };
        if failed.is_empty() {
            return Ok(());
        }
        plan.fall_back(failed).map_err(PinFailed::Mirror)
    }

    /// Whether a mirror serves the manifest `target` names, within the
    /// deadline; why not, said for a person.
    pub async fn serves(&self, target: &PinTarget) -> Result<(), String> {
        match tokio::time::timeout(self.options.deadline, self.digest(target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("which cannot serve it ({}: {e})", e.code())),
            Err(_) => Err(format!(
                "which did not answer within the deadline of {:?}",
                self.options.deadline
            )),
        }
    }

    /// Whether `targets` would send more distinct look-ups to registries
    /// than one review may: what is cached (or failed recently) is free.
    async fn over_bound(&self, targets: &[(usize, PinTarget)]) -> Option<TooManyLookups> {
        let distinct: HashSet<&PinTarget> = targets.iter().map(|(_, t)| t).collect();
        let max = self.options.max_lookups_per_review;
        if distinct.len() <= max {
            return None;
        }
        let mut uncached = 0;
        for target in distinct {
            if !self.lookups.digests.contains_key(target)
                && !self.lookups.failures.contains_key(target)
            {
                uncached += 1;
            }
        }
        (uncached > max).then_some(TooManyLookups {
            distinct: uncached,
            max,
        })
    }

    /// The digest of a tag, from the cache or (once, however many ask at
    /// the same time) from the registry.
    pub async fn digest(&self, target: &PinTarget) -> Result<String, ConnectError> {
        if let Some(failure) = self.lookups.failures.get(target).await {
            return Err(failure);
        }
        if let Some(digest) = self.lookups.digests.get(target).await {
            return Ok(digest);
        }
        // Its own task: the registry client's deadlines bound it, not the
        // caller's, so it ends (and is remembered) whoever stops waiting.
        let (lookups, target) = (self.lookups.clone(), target.clone());
        tokio::spawn(async move { lookups.digest(&target).await })
            .await
            .unwrap_or_else(|e| Err(ConnectError::Config(format!("pinning lookup failed: {e}"))))
    }
}

impl Lookups {
    async fn digest(&self, target: &PinTarget) -> Result<String, ConnectError> {
        let result = self
            .digests
            .try_get_with_by_ref(target, async {
                let client = self.client(&target.registry, target.version).await?;
                // At most `max_in_flight` look-ups at one registry at once;
                // the rest wait here (within the review's deadline).
                let slots = self
                    .in_flight
                    .get_with_by_ref(&target.registry, async {
                        Arc::new(Semaphore::new(self.max_in_flight))
                    })
                    .await;
                let _slot = slots
                    .acquire()
                    .await
                    .map_err(|_| ConnectError::Config("pinning is shutting down".to_owned()))?;
                client
                    .manifest_digest(&target.repository, &target.tag)
                    .await
            })
            .await
            .map_err(|e| (*e).clone());
        match &result {
            Ok(_) => self.failures.invalidate(target).await,
            Err(failure) => self.failures.insert(target.clone(), failure.clone()).await,
        }
        result
    }

    async fn client(&self, name: &str, version: i64) -> Result<Arc<RegistryClient>, ConnectError> {
        self.clients
            .try_get_with((name.to_owned(), version), async {
                let stored = |e: crate::registry::store::StoreError| {
                    ConnectError::Config(format!("registry {name:?}: {e}"))
                };
                let record = self.store.get(name).await.map_err(stored)?.ok_or_else(|| {
                    ConnectError::Config(format!("registry {name:?} no longer exists"))
                })?;
                let credentials = self.store.credentials(name).await.map_err(stored)?;
                let server = record
                    .parsed_server()
                    .map_err(|e| ConnectError::Config(format!("registry {name:?}: {e}")))?;
                Ok(Arc::new(RegistryClient::new(
                    &server,
                    &record.tls,
                    credentials,
                    &self.client_options,
                )?))
            })
            .await
            .map_err(|e: Arc<ConnectError>| (*e).clone())
    }
}
