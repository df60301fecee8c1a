//! Serving connections on a listener, bounded: how many at once in total
//! and from one peer address, how long a client may take for its TLS
//! handshake and to send headers (and how long a keep-alive connection may
//! sit idle), and a lingering close so an early answer (a 413 while the
//! client is still sending) reaches the client instead of a reset.
//!
//! A connection over a cap is closed at once and counted, never queued:
//! with `failurePolicy: Fail`, a backlog that idle clients fill would stall
//! every workload write in the cluster behind them.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::telemetry::Metrics;

/// Bounds on what clients can hold. (The body deadline is the
/// handlers': only they know when they read a body; see `read_body`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// For the TLS handshake, from accept.
    pub handshake_timeout: Duration,
    /// For the request line and headers, counted from when the server
    /// starts waiting for them: also how long a keep-alive connection may
    /// stay idle between requests.
    pub header_read_timeout: Duration,
    /// Connections open at once per listener; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one peer address per listener.
    pub max_connections_per_peer: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_peer: 512,
        }
    }
}

/// What the handshake established about a client, in every request's
/// extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The listener asks for client certificates (`--webhook-client-ca`).
    pub certificates_checked: bool,
    /// The client presented one, and it chains to that CA.
    pub verified_certificate: bool,
}

impl ClientIdentity {
    /// Whether a caller restricted to certificate holders may go on.
    pub fn may_call_webhooks(&self) -> bool {
        !self.certificates_checked || self.verified_certificate
    }
}

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds `max_connections`.
    TotalLimit,
    /// The peer address holds `max_connections_per_peer`.
    PeerLimit,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TotalLimit => "total_limit",
            Self::PeerLimit => "peer_limit",
        }
    }
}

/// The connections one listener holds, in total and per peer address.
#[derive(Debug)]
pub struct ConnectionTracker {
    listener: &'static str,
    limits: ConnectionLimits,
    open: AtomicUsize,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
    metrics: Option<Arc<Metrics>>,
}

impl ConnectionTracker {
    pub fn new(
        listener: &'static str,
        limits: ConnectionLimits,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            listener,
            limits,
            open: AtomicUsize::new(0),
            per_peer: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Every slot is taken: the next connection from anyone is refused.
    pub fn is_full(&self) -> bool {
        self.open() >= self.limits.max_connections.max(1)
    }

    /// A slot for a connection from `peer`, held until the guard drops.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refusal> {
        let admitted = {
            let mut per_peer = self.per_peer.lock().unwrap_or_else(|p| p.into_inner());
            if self.open.load(Ordering::Acquire) >= self.limits.max_connections.max(1) {
                Err(Refusal::TotalLimit)
            } else {
                let held = per_peer.entry(peer).or_insert(0);
                if *held >= self.limits.max_connections_per_peer.max(1) {
                    Err(Refusal::PeerLimit)
                } else {
                    *held += 1;
                    self.open.fetch_add(1, Ordering::AcqRel);
                    Ok(Admitted {
                        tracker: self.clone(),
                        peer,
                    })
                }
            }
        };
        if let Some(metrics) = &self.metrics {
            match &admitted {
                Ok(_) => metrics.set_connections_open(self.listener, self.open()),
                Err(refusal) => metrics.connection_refused(self.listener, refusal.as_str()),
            }
        }
        admitted
    }
}

/// A connection's slot; freed on drop.
#[derive(Debug)]
pub struct Admitted {
    tracker: Arc<ConnectionTracker>,
    peer: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let tracker = &self.tracker;
        {
            let mut per_peer = tracker.per_peer.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(held) = per_peer.get_mut(&self.peer) {
                *held -= 1;
                if *held == 0 {
                    per_peer.remove(&self.peer);
                }
            }
            tracker.open.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(metrics) = &tracker.metrics {
            metrics.set_connections_open(tracker.listener, tracker.open());
        }
    }
}

/// After our last answer: how long, and how many bytes, we keep reading
/// (and discarding) what the client is still sending before closing.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Accepts on `listener` until `shutdown`, admits each connection through
/// `tracker` (closing it at once over a cap), turns each TCP stream into a
/// transport with `handshake` (TLS, or none) and serves `router` on it
/// with HTTP/1.1 keep-alive. Returns once every connection has drained or
/// `drain_timeout` has passed.
pub async fn serve<S, H, Fut>(
    listener: TcpListener,
    handshake: H,
    router: Router,
    tracker: Arc<ConnectionTracker>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) where
    H: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<(S, ClientIdentity)>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let header_read_timeout = tracker.limits.header_read_timeout;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // Over a cap: closed now (a reset, so no state lingers), never
        // left waiting where it would hold up everyone behind it.
        let slot = match tracker.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::debug!(%peer, reason = refusal.as_str(), "connection refused");
                let _ = tcp.set_zero_linger();
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let handshake = handshake(tcp);
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let Some((stream, identity)) = handshake.await else {
                return;
            };
            let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                router,
                move |mut request: http::Request<hyper::body::Incoming>| {
                    // Absent means unchecked: no insert on the common path.
                    if identity.certificates_checked {
                        request.extensions_mut().insert(identity);
                    }
                    request
                },
            ));
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(Lingering::new(stream)), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(drain_timeout) => tracing::warn!(timeout = ?drain_timeout, "connections still open after the shutdown timeout; closing"),
    }
}

/// A transport whose shutdown lingers: it ends our side (TLS close_notify,
/// TCP FIN), then reads and discards what the client still sends, for a
/// bounded time and byte count, before the socket is closed. Closing a
/// socket with unread data makes the kernel send a reset, and a client
/// still writing its body then sees a failed write instead of our answer.
struct Lingering<S> {
    inner: S,
    linger: Option<Linger>,
}

struct Linger {
    until: Pin<Box<tokio::time::Sleep>>,
    discarded: usize,
}

impl<S> Lingering<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            linger: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            // A failure to end our side ends the connection at once.
            if let Err(error) = std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx)) {
                return Poll::Ready(Err(error));
            }
            this.linger = Some(Linger {
                until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                discarded: 0,
            });
        }
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if linger.until.as_mut().poll(cx).is_ready() || linger.discarded > LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                // End of stream, or the client reset: nothing more to wait for.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => linger.discarded += buf.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The handshake for a plain-TCP listener: none.
pub fn plain(tcp: TcpStream) -> std::future::Ready<Option<(TcpStream, ClientIdentity)>> {
    std::future::ready(Some((tcp, ClientIdentity::default())))
}
