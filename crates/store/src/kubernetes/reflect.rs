//! A watch run as a task: each event goes into a cache (a kube reflector's,
//! or one of our own), then to `on_event`; errors are retried with backoff
//! by the watcher. The controller, the cluster
//! store and the node agent all watch this way.

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::reflector::store::Writer;
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

/// Keeps the whole object in the cache.
pub fn keep_all<K>(_: &mut K) {}

/// Drops what a cache of objects read only for their names, labels and
/// data need not hold: `managedFields`, often larger than the object, and
/// the annotations (kubectl's last-applied-configuration is a copy of the
/// whole object). Thousands of pull Secrets and namespaces are cached.
pub fn without_bookkeeping<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
}

/// Keeps a kube reflector cache: what `writer` makes of each event.
pub fn keeping<K: Watched>(mut writer: Writer<K>) -> impl FnMut(&watcher::Event<K>) + Send {
    move |event| writer.apply_watcher_event(event)
}

/// Spawns the watch; it ends with `shutdown`. `trim` is applied to each
/// object first, then `keep` puts the event in a cache (see [`keeping`]),
/// then `on_event` is told.
pub fn spawn<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
    mut keep: impl FnMut(&watcher::Event<K>) + Send + 'static,
    shutdown: CancellationToken,
    trim: fn(&mut K),
    on_event: impl Fn(&watcher::Event<K>) + Send + 'static,
) {
    let stream = watcher(api, config).modify(trim).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                event = stream.next() => match event {
                    Some(Ok(event)) => {
                        keep(&event);
                        on_event(&event);
                    }
                    Some(Err(error)) => tracing::warn!(%error, "watch error; retrying"),
                    None => return,
                },
            }
        }
    });
}
