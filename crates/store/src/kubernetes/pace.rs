//! Client-side pacing of the leader's writes to the API server.
//!
//! A record authorized for `*` in a cluster of 5,000 namespaces owns 5,000
//! pull Secrets: creating it, rotating its password or relabelling a
//! workspace is thousands of writes at once. Sent as fast as the client can
//! go, they meet API Priority and Fairness queues and 429s, and every other
//! controller of the cluster pays for them. So, like client-go's token
//! bucket, every write the controller makes (pull Secret applies and
//! deletes, statuses, finalizers, re-verification) first takes a token:
//! `--write-rate` a second, `--write-burst` at once.
//!
//! When the API server still asks us to slow down (429 Too Many Requests,
//! or 503/504 when it is overloaded) the request is sent again after the
//! `Retry-After` it names, or a doubling backoff, with jitter so the
//! writers do not all come back in the same instant; and every request of
//! the paced client waits that long, not only the refused one: the server
//! said it is overloaded, not that one write was too many. A request is
//! tried at most [`MAX_ATTEMPTS`] times; then its error goes back to the
//! reconcile, which has its own backoff per record.
//!
//! The Lease and the API's own writes (one per user request) do not go
//! through here: a leader must renew its Lease whatever it is replicating,
//! and an admin saving a record does not wait behind a rotation.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use kube::client::Body;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

/// How fast the leader writes to the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePace {
    /// Writes a second, sustained.
    pub per_second: NonZeroU32,
    /// Writes at once after a quiet spell.
    pub burst: NonZeroU32,
}

impl Default for WritePace {
    /// 50 writes a second, 100 at once: 5,000 namespaces in line in under
    /// two minutes, a fraction of what one API server's default
    /// priority levels admit.
    fn default() -> Self {
        Self {
            per_second: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Tries of one request, the first included, before its error is returned.
pub const MAX_ATTEMPTS: u32 = 8;
/// The first wait when the server names none; it doubles with each try.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// No wait is longer, whatever `Retry-After` says (before the jitter,
/// which adds up to half): the reconcile's own backoff takes over from
/// there.
const WAIT_MAX: Duration = Duration::from_secs(60);

/// What every request of one paced client shares.
struct Pacer {
    writes: DefaultDirectRateLimiter,
    /// Until when every request waits: the server asked us to slow down.
    /// A std mutex, never held across an await.
    paused_until: Mutex<Option<Instant>>,
    throttled: Counter,
}

/// `client`, with its writes paced and its throttled requests retried as
/// the module says. `client` itself must not retry 429s (kube's default
/// stack does: build it with `Config::default_retry = false`), or the
/// pause would come only after its own retries. `throttled` counts the
/// server's answers that asked us to slow down.
pub fn paced(client: kube::Client, pace: WritePace, throttled: Counter) -> kube::Client {
    let default_namespace = client.default_namespace().to_owned();
    let pacer = Arc::new(Pacer {
        writes: RateLimiter::direct(Quota::per_second(pace.per_second).allow_burst(pace.burst)),
        paused_until: Mutex::new(None),
        throttled,
    });
    kube::Client::new(Paced { client, pacer }, default_namespace)
}

#[derive(Clone)]
struct Paced {
    client: kube::Client,
    pacer: Arc<Pacer>,
}

impl tower::Service<Request<Body>> for Paced {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (client, pacer) = (self.client.clone(), self.pacer.clone());
        Box::pin(async move { pacer.send(&client, request).await })
    }
}

impl Pacer {
    async fn send(
        &self,
        client: &kube::Client,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, kube::Error> {
        let write = is_write(request.method());
        let mut attempt = 1;
        loop {
            if write {
                // The bucket refilled while the server had us wait:
                // resume at the steady rate, not with a burst that the
                // server would refuse again.
                if self.wait_out_pause().await {
                    while self.writes.check().is_ok() {}
                }
                self.writes.until_ready().await;
            }
            // A pause that began while this write waited for its token.
            self.wait_out_pause().await;
            // A streamed body cannot be sent twice; such a request is
            // sent once (ours are all whole bodies).
            let again = (attempt < MAX_ATTEMPTS)
                .then(|| clone_request(&request))
                .flatten();
            let response = client.send(request).await?;
            if !asks_to_slow_down(response.status()) {
                return Ok(response);
            }
            // Counted and waited out by everyone, even when this request
            // has had its last try.
            self.throttled.inc();
            let wait = with_jitter(
                retry_after(response.headers()).unwrap_or_else(|| backoff(attempt)),
                jitter_fraction(),
            );
            self.pause_for(wait);
            tracing::debug!(status = %response.status(), ?wait, attempt, "the API server asked to slow down");
            let Some(next) = again else {
                return Ok(response);
            };
            request = next;
            attempt += 1;
        }
    }

    /// Every request waits until the pause is over; one that began while
    /// it was being extended waits the new end too. Whether it waited.
    async fn wait_out_pause(&self) -> bool {
        let mut waited = false;
        loop {
            let until = self.paused_until.lock().ok().and_then(|until| *until);
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep_until(until).await;
                    waited = true;
                }
                _ => return waited,
            }
        }
    }

    /// Pauses every request for at least `wait` from now.
    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut paused) = self.paused_until.lock()
            && paused.is_none_or(|current| current < until)
        {
            *paused = Some(until);
        }
    }
}

/// A request that changes something: what the token bucket paces.
fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The answers an overloaded API server gives: 429 from API Priority and
/// Fairness (or a client-side limit of its own), 503 and 504 while it is
/// starting or its storage is slow.
fn asks_to_slow_down(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// `Retry-After` in seconds, as the API server sends it (it never sends an
/// HTTP date), capped at [`WAIT_MAX`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(WAIT_MAX))
}

/// The wait after the `attempt`th try when the server named none: 250 ms,
/// doubling, at most [`WAIT_MAX`].
fn backoff(attempt: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(WAIT_MAX)
}

/// `wait` stretched by up to half again, by `fraction` (0 to 1): writers
/// refused together come back spread out, never sooner than asked.
fn with_jitter(wait: Duration, fraction: f64) -> Duration {
    wait + wait.mul_f64(fraction.clamp(0.0, 1.0) / 2.0)
}

/// A uniform number in [0, 1); 0 if the system has no randomness to give.
fn jitter_fraction() -> f64 {
    getrandom::u64().map_or(0.0, |n| (n >> 11) as f64 / (1u64 << 53) as f64)
}

/// The same request again, if its body can be sent twice.
fn clone_request(request: &Request<Body>) -> Option<Request<Body>> {
    let body = request.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::mock::respond;
    use k8s_openapi::api::core::v1::Secret;
    use kube::Api;
    use kube::api::{Patch, PatchParams};
    use serde_json::json;

    fn too_many(retry_after: Option<&str>) -> Response<kube::client::Body> {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
            "details": {"retryAfterSeconds": 1}, "code": 429});
        let mut response = respond(429, &status);
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_str(seconds).expect("header"),
            );
        }
        response
    }

    fn secret() -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "p", "namespace": "a"}})
    }

    type Handle = tower_test::mock::Handle<Request<Body>, Response<kube::client::Body>>;

    /// Secrets through a paced client whose API server is `Handle`.
    fn paced_secrets(pace: WritePace, throttled: Counter) -> (Api<Secret>, Handle) {
        let (service, handle) =
            tower_test::mock::pair::<Request<Body>, Response<kube::client::Body>>();
        let client = paced(kube::Client::new(service, "default"), pace, throttled);
        (Api::namespaced(client, "a"), handle)
    }

    fn pace(per_second: u32, burst: u32) -> WritePace {
        WritePace {
            per_second: NonZeroU32::new(per_second).expect("non-zero"),
            burst: NonZeroU32::new(burst).expect("non-zero"),
        }
    }

    /// A 429 with `Retry-After: 1` is waited out, then the same write is
    /// sent again, body and all, and its answer is the caller's; the
    /// throttle is counted.
    #[tokio::test]
    async fn a_429_is_waited_out_then_sent_again() {
        let throttled = Counter::default();
        let (api, mut handle) = paced_secrets(WritePace::default(), throttled.clone());
        let server = tokio::spawn(async move {
            let (first, send) = handle.next_request().await.expect("first try");
            let first_body = crate::kubernetes::mock::body(first).await;
            send.send_response(too_many(Some("1")));
            let refused_at = Instant::now();
            let (second, send) = handle.next_request().await.expect("second try");
            let waited = refused_at.elapsed();
            assert_eq!(second.method(), Method::PATCH);
            assert_eq!(crate::kubernetes::mock::body(second).await, first_body);
            send.send_response(respond(200, &secret()));
            waited
        });
        let written = api
            .patch("p", &PatchParams::apply("t"), &Patch::Apply(secret()))
            .await;
        let waited = server.await.expect("server");
        assert!(written.is_ok(), "{written:?}");
        assert!(
            waited >= Duration::from_secs(1),
            "Retry-After honoured: {waited:?}"
        );
        assert_eq!(throttled.get(), 1);
    }

    /// One refused request pauses the others too: a read sent while the
    /// pause lasts waits for its end.
    #[tokio::test]
    async fn a_429_pauses_every_request_of_the_client() {
        let (api, mut handle) = paced_secrets(WritePace::default(), Counter::default());
        let writer = {
            let api = api.clone();
            tokio::spawn(async move {
                api.patch("p", &PatchParams::apply("t"), &Patch::Apply(secret()))
                    .await
            })
        };
        let (_, send) = handle.next_request().await.expect("the write");
        send.send_response(too_many(Some("1")));
        let paused_at = Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let reader = tokio::spawn(async move { api.get("p").await });
        for _ in 0..2 {
            let (_, send) = handle.next_request().await.expect("after the pause");
            assert!(
                paused_at.elapsed() >= Duration::from_secs(1),
                "sent during the pause: {:?}",
                paused_at.elapsed()
            );
            send.send_response(respond(200, &secret()));
        }
        assert!(writer.await.expect("writer").is_ok());
        assert!(reader.await.expect("reader").is_ok());
    }

    /// The server that keeps refusing gets [`MAX_ATTEMPTS`] tries, then
    /// the caller sees its 429 (the reconcile backs off on its own).
    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_last_attempt() {
        let (api, mut handle) = paced_secrets(WritePace::default(), Counter::default());
        let server = tokio::spawn(async move {
            let mut tries = 0;
            while let Some((_, send)) = handle.next_request().await {
                tries += 1;
                send.send_response(too_many(None));
            }
            tries
        });
        let written = api
            .patch("p", &PatchParams::apply("t"), &Patch::Apply(secret()))
            .await;
        drop(api);
        match written {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 429),
            other => panic!("expected the 429, got {other:?}"),
        }
        assert_eq!(server.await.expect("server"), MAX_ATTEMPTS);
    }

    /// Writes past the burst wait for tokens; reads never do.
    #[tokio::test]
    async fn writes_past_the_burst_wait_their_turn_reads_do_not() {
        let (api, mut handle) = paced_secrets(pace(10, 2), Counter::default());
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                seen.push((request.method().clone(), Instant::now()));
                send.send_response(respond(200, &secret()));
            }
            seen
        });
        let started = Instant::now();
        for _ in 0..4 {
            api.patch("p", &PatchParams::apply("t"), &Patch::Apply(secret()))
                .await
                .expect("write");
        }
        let writes_took = started.elapsed();
        let reads_started = Instant::now();
        for _ in 0..20 {
            api.get("p").await.expect("read");
        }
        let reads_took = reads_started.elapsed();
        drop(api);
        let seen = server.await.expect("server");
        assert_eq!(seen.len(), 24);
        // Two at once, then one every 100 ms: the fourth at ≥ 200 ms.
        assert!(writes_took >= Duration::from_millis(180), "{writes_took:?}");
        // Twenty reads at 10 a second would take two seconds.
        assert!(reads_took < Duration::from_secs(1), "{reads_took:?}");
    }

    #[test]
    fn waits() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(http::header::RETRY_AFTER, "3".parse().expect("value"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(http::header::RETRY_AFTER, "86400".parse().expect("value"));
        assert_eq!(retry_after(&headers), Some(WAIT_MAX));
        headers.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"),
        );
        assert_eq!(retry_after(&headers), None, "a date falls back to backoff");
        let backoffs: Vec<u128> = (1..=10).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(
            backoffs,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
        let second = Duration::from_secs(1);
        assert_eq!(with_jitter(second, 0.0), second);
        assert_eq!(with_jitter(second, 1.0), Duration::from_millis(1500));
        assert_eq!(with_jitter(second, 7.0), Duration::from_millis(1500));
        let spread: std::collections::BTreeSet<u64> = (0..20)
            .map(|_| (jitter_fraction() * 1000.0) as u64)
            .collect();
        assert!(spread.len() > 10, "jitter varies: {spread:?}");
        assert!(spread.iter().all(|n| *n < 1000));
    }

    #[test]
    fn only_changes_are_paced() {
        assert!(!is_write(&Method::GET));
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_write(&method), "{method}");
        }
    }
}
