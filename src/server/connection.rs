//! Serving connections on a listener, bounded: how many at once, how long a
//! client may take to send headers (and how long a keep-alive connection
//! may sit idle), and a lingering close so an early answer (a 413 while the
//! client is still sending) reaches the client instead of a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Bounds on what one client can hold. (The body deadline is the
/// handlers': only they know when they read a body; see `read_body`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// For the request line and headers, counted from when the server
    /// starts waiting for them: also how long a keep-alive connection may
    /// stay idle between requests.
    pub header_read_timeout: Duration,
    /// Connections served at once per listener; more wait in the backlog.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// After our last answer: how long, and how many bytes, we keep reading
/// (and discarding) what the client is still sending before closing.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Accepts on `listener` until `shutdown`, turns each TCP stream into a
/// transport with `handshake` (TLS, or none), and serves `router` on it
/// with HTTP/1.1 keep-alive. Returns once every connection has drained or
/// `drain_timeout` has passed.
pub async fn serve<S, H, Fut>(
    listener: TcpListener,
    handshake: H,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) where
    H: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A free slot first: at the cap, new connections wait in the
        // kernel's backlog instead of costing us memory and tasks.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
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
        let _ = tcp.set_nodelay(true);
        let handshake = handshake(tcp);
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(stream) = handshake.await else {
                return;
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
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
pub fn plain(tcp: TcpStream) -> std::future::Ready<Option<TcpStream>> {
    std::future::ready(Some(tcp))
}
