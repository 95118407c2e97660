//! The accept loop: connection caps before anything is allocated, TCP_NODELAY, and HTTP/1 with
//! a header-read timeout so a client that trickles its request head is dropped.

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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn_limits::{ConnLimits, Refused, Slot};

/// The answer to a connection over the caps, written without reading the request.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 40\r\nRetry-After: 5\r\n\r\ntoo many connections; try again shortly\n";
/// How long shutdown lets an HTTP exchange finish.
const HTTP_GRACE: Duration = Duration::from_secs(2);
/// Pause after an accept error such as "too many open files", so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The place of the connection a request came on; the WebSocket handler keeps it for the
/// socket's life.
pub type SlotHandle = Arc<Slot>;

/// Serves `app` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
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
        tracker.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(tcp), service)
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

/// Answers 503 if the socket takes it at once, then drops it; never waits on the client.
fn refuse(tcp: TcpStream, why: Refused) {
    tracing::debug!(?why, "connection refused at the cap");
    let _ = tcp.try_write(REFUSAL);
    // Closing with unread bytes resets the connection; shutting down the write side first
    // lets a client that reads see the 503.
    let mut tcp = tcp;
    let _ = futures_util::FutureExt::now_or_never(tcp.shutdown());
}
