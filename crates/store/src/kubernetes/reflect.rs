//! A reflector run as a task: the watch keeps `writer`'s cache, each event
//! it delivers is handed to `on_event` (after the cache has it), and errors
//! are retried with backoff by the watcher. The controller, the cluster
//! store and the node agent all watch this way.

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

/// What a reflector can keep: kube's bounds, named once.
pub trait Watched:
    kube::Resource<DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Spawns the reflector; it ends with `shutdown`.
pub fn spawn<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    shutdown: CancellationToken,
    on_event: impl Fn(&watcher::Event<K>) + Send + 'static,
) {
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                event = stream.next() => match event {
                    Some(Ok(event)) => on_event(&event),
                    Some(Err(error)) => tracing::warn!(%error, "watch error; retrying"),
                    None => return,
                },
            }
        }
    });
}
