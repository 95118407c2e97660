//! The accept loop: connection caps before anything is allocated, TCP_NODELAY, TLS or plain
//! chosen by the client's first byte (plain only where [`Transport`] allows it for the peer),
//! and HTTP/1 with a header-read timeout so a client that trickles its request head is dropped.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Transport;
use crate::conn_limits::{ConnLimits, Refused, Slot};

/// The answer to a connection over the caps, written without reading the request.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 40\r\nRetry-After: 5\r\n\r\ntoo many connections; try again shortly\n";
/// How long shutdown lets an HTTP exchange finish.
const HTTP_GRACE: Duration = Duration::from_secs(2);
/// Pause after an accept error such as "too many open files", so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// What a plain request from the network gets while TLS is required.
const TLS_REQUIRED_BODY: &str = "this Perch host accepts only TLS from the network: use wss:// (nodes) or https:// (browsers)\n";

/// The transports the listener offers: TLS with the host's certificate, plain where allowed.
pub struct Transports {
    tls: Option<TlsAcceptor>,
    policy: Transport,
}

impl Transports {
    /// TLS with `tls` (when the policy offers it) and plain per `policy`.
    pub fn new(policy: Transport, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self {
            tls: tls.filter(|_| policy.tls).map(TlsAcceptor::from),
            policy,
        }
    }

    /// Reads the client's first byte (within `deadline`) and opens TLS or plain accordingly;
    /// `None` when the client went away, stalled or failed the TLS handshake.
    async fn open(&self, tcp: TcpStream, peer: IpAddr, deadline: Duration) -> Option<Opened> {
        let Some(acceptor) = &self.tls else {
            return Some(Opened::Serve(Either::Right(tcp)));
        };
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(deadline, tcp.peek(&mut first)).await;
        match peeked {
            Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {
                match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => Some(Opened::Serve(Either::Left(Box::new(tls)))),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        None
                    }
                }
            }
            Ok(Ok(1)) if self.policy.plain_allowed_from(peer) => {
                Some(Opened::Serve(Either::Right(tcp)))
            }
            Ok(Ok(1)) => Some(Opened::PlainRefused(tcp)),
            Ok(_) => None,
            Err(_) => {
                tracing::debug!(%peer, "no request before the header deadline");
                None
            }
        }
    }
}

/// A connection after its first byte.
enum Opened {
    /// Served by the app, over TLS or plain.
    Serve(Either<Box<TlsStream<TcpStream>>, TcpStream>),
    /// Plain from the network while TLS is required: answered 426.
    PlainRefused(TcpStream),
}

/// The place of the connection a request came on; the WebSocket handler keeps it for the
/// socket's life.
pub type SlotHandle = Arc<Slot>;

/// Serves `app` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    transports: Arc<Transports>,
    limits: Arc<ConnLimits>,
    header_timeout: Duration,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut refused: u64 = 0;
    loop {
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let slot = match limits.try_acquire(remote.ip()) {
            Ok(s) => Arc::new(s),
            Err(why) => {
                refused += 1;
                limits.log_refusal(why, remote.ip(), refused);
                refuse(tcp, why);
                continue;
            }
        };
        // Invokes are small request/response exchanges: Nagle plus delayed ACKs would add
        // ~40 ms to every call.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = {
            let app = app.clone();
            let slot = slot.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req.extensions_mut().insert(slot.clone());
                let svc = TowerToHyperService::new(app.clone());
                hyper::service::Service::call(&svc, req)
            })
        };
        let shutdown = shutdown.clone();
        let transports = transports.clone();
        tracker.spawn(async move {
            let io = match transports.open(tcp, remote.ip(), header_timeout).await {
                Some(Opened::Serve(io)) => io,
                Some(Opened::PlainRefused(tcp)) => {
                    tracing::debug!(%remote, "plain connection from the network refused: TLS required");
                    refuse_plain(tcp, header_timeout).await;
                    drop(slot);
                    return;
                }
                None => {
                    drop(slot);
                    return;
                }
            };
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            let done = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = shutdown.cancelled() => None,
            };
            match done {
                Some(Err(e)) => tracing::debug!(%remote, error = %e, "HTTP connection ended"),
                Some(Ok(())) => {}
                None => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(HTTP_GRACE, conn).await;
                }
            }
            drop(slot);
        });
    }
}

/// Reads the request (so the client sees the answer, not a reset) and answers 426.
async fn refuse_plain(tcp: TcpStream, header_timeout: Duration) {
    let service = hyper::service::service_fn(|_req: hyper::Request<Incoming>| async {
        hyper::Response::builder()
            .status(hyper::StatusCode::UPGRADE_REQUIRED)
            .header(hyper::header::UPGRADE, "TLS/1.3")
            .header(hyper::header::CONNECTION, "close, upgrade")
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(axum::body::Body::from(TLS_REQUIRED_BODY))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(false);
    let served = builder.serve_connection(TokioIo::new(tcp), service);
    let _ = tokio::time::timeout(header_timeout + HTTP_GRACE, served).await;
}

/// Answers 503 if the socket takes it at once, then drops it; never waits on the client.
fn refuse(tcp: TcpStream, why: Refused) {
    tracing::debug!(?why, "connection refused at the cap");
    let _ = tcp.try_write(REFUSAL);
    // Closing with unread bytes resets the connection; shutting down the write side first
    // lets a client that reads see the 503.
    let mut tcp = tcp;
    let _ = futures_util::FutureExt::now_or_never(tcp.shutdown());
}
