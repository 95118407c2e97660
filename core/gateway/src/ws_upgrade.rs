//! The WebSocket upgrade, done by hand rather than with axum's extractor so the socket can be
//! wrapped in [`crate::frame_limit::FrameLimited`] (whose limit changes after `connect`)
//! before tokio-tungstenite reads from it.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::frame_limit::{FrameLimited, SharedLimit};

/// The socket a connection is served on.
pub type Socket = WebSocketStream<FrameLimited<TokioIo<hyper::upgrade::Upgraded>>>;

/// A valid upgrade request, accepted but not yet switched.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Whether the header holds `token` in its comma-separated list (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl Upgrade {
    /// The upgrade this request asks for, if it is a well-formed WebSocket (version 13)
    /// upgrade on a connection that can be upgraded.
    pub fn from_request(req: &mut Request) -> Option<Upgrade> {
        let h = req.headers();
        let ok = req.method() == Method::GET
            && has_token(h, header::CONNECTION, "upgrade")
            && has_token(h, header::UPGRADE, "websocket")
            && h.get(header::SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v.as_bytes() == b"13");
        let key = h.get(header::SEC_WEBSOCKET_KEY)?.clone();
        if !ok {
            return None;
        }
        let on_upgrade = req.extensions_mut().remove::<OnUpgrade>()?;
        Some(Upgrade { key, on_upgrade })
    }

    /// The 101 response, and the future that yields the socket once it is sent. The socket
    /// starts with `limit` bytes per message and allows at most `max` ever.
    pub fn accept(
        self,
        limit: usize,
        max: usize,
        read_buffer: usize,
    ) -> (
        Response,
        SharedLimit,
        impl Future<Output = Option<Socket>> + Send + 'static,
    ) {
        let accept = derive_accept_key(self.key.as_bytes());
        let mut res = Response::new(axum::body::Body::empty());
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        let shared: SharedLimit = Arc::new(AtomicUsize::new(limit));
        let reader_limit = shared.clone();
        let on_upgrade = self.on_upgrade;
        let socket = async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return None;
                }
            };
            let io = FrameLimited::new(TokioIo::new(upgraded), reader_limit);
            let config = WebSocketConfig::default()
                .max_message_size(Some(max))
                .max_frame_size(Some(max))
                .read_buffer_size(read_buffer);
            Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
        };
        (res, shared, socket)
    }
}
