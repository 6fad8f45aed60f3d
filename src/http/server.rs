//! The accept loop of `ordersync api`: HTTP/1.1 on hyper with the limits an
//! Internet-facing endpoint needs, which `axum::serve` does not expose.
//!
//! - **Connections are capped** ([`ServerLimits::max_connections`]): past the
//!   cap the loop stops accepting and new connections wait in the kernel's
//!   backlog, so a flood of idle sockets cannot exhaust memory or file
//!   descriptors.
//! - **Header read timeout** (hyper's own): a request head must arrive whole
//!   within [`ServerLimits::header_timeout`]. hyper starts that clock when a
//!   connection starts waiting for a request, so it is also the keep-alive
//!   idle timeout: a connection that sends nothing is closed after it.
//! - **Lingering close**: when we answer before reading a request's body (a
//!   413 decided from `Content-Length`, a 401, a 404), hyper closes the
//!   connection. Closing a socket with unread bytes makes the kernel send a
//!   reset, which can destroy the answer before the client reads it (half of
//!   the 413s to a 5 MB body were lost that way). [`LingeringStream`] sends
//!   the answer, shuts down our side, and reads and discards what the client
//!   still sends (bounded in time and bytes) before closing, as nginx's
//!   `lingering_close` does. No crate offers this for hyper, hence the
//!   small stream wrapper.
//!
//! Body timeouts, body caps and throttling are per route (tower-http layers
//! and [`crate::http::limits`]).

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt as _;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Open connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// A request head must arrive within this; also how long an idle
    /// keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long a closing connection keeps reading (and discarding) what
    /// the client still sends, so our last answer is not lost to a reset.
    pub linger: Duration,
    /// At most this many bytes are discarded while lingering.
    pub linger_bytes: usize,
    /// On shutdown, how long open requests get to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            linger: Duration::from_secs(5),
            linger_bytes: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Default cap on open connections: far above what WooCommerce, a courier,
/// Prometheus and a few operators need, far below a file-descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default header read (and keep-alive idle) timeout.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `app` on `listener` with `limits` until `shutdown` resolves; then
/// stop accepting and let open requests finish (up to the grace period).
/// Handlers see the peer address as [`ConnectInfo<SocketAddr>`].
///
/// # Errors
/// The connection cap is zero (nothing could ever be served).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        limits.max_connections > 0,
        "the connection cap must be at least 1"
    );
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(LingeringStream::new(
            stream,
            limits.linger,
            limits.linger_bytes,
        ));
        let service =
            app.clone()
                .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection = graceful.watch(
            http.serve_connection(io, hyper_util::service::TowerToHyperService::new(service)),
        );
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "requests still open after the shutdown grace; closing them");
    }
    Ok(())
}

/// A TCP stream whose shutdown lingers: it shuts down the write side (our
/// answer is complete), then reads and discards whatever the client still
/// sends until it closes, [`ServerLimits::linger`] passes, or
/// [`ServerLimits::linger_bytes`] were read. Only then is the socket closed,
/// with nothing unread that would turn the close into a reset.
pub struct LingeringStream {
    inner: TcpStream,
    linger: Duration,
    linger_bytes: usize,
    closing: Option<Closing>,
}

struct Closing {
    deadline: Pin<Box<Sleep>>,
    discarded: usize,
    write_shut: bool,
}

impl LingeringStream {
    /// Wrap `inner`.
    pub fn new(inner: TcpStream, linger: Duration, linger_bytes: usize) -> Self {
        Self {
            inner,
            linger,
            linger_bytes,
            closing: None,
        }
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringStream {
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

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let closing = this.closing.get_or_insert_with(|| Closing {
            deadline: Box::pin(tokio::time::sleep(this.linger)),
            discarded: 0,
            write_shut: false,
        });
        if !closing.write_shut {
            match Pin::new(&mut this.inner).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => closing.write_shut = true,
                // The client is gone already: nothing left to protect.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let mut scratch = [0u8; 8192];
        loop {
            if closing.discarded >= this.linger_bytes {
                return Poll::Ready(Ok(()));
            }
            if closing.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => closing.discarded += buf.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
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
}

/// The peer address of the connection a request came on.
pub fn peer_of(request: &axum::extract::Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
