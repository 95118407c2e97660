//! Opening a WebSocket to a host: `ws://` as is, `wss://` through the pinned verifier, and a
//! plain attempt the host refused for want of TLS told apart, so a client can move to `wss://`
//! (never the other way).

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use perch_protocol::handshake::url_with_client_nonce;

use crate::pin::{HostPin, Observation, client_config};

/// The socket every Perch client speaks over.
pub type HostSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// HTTP status a host answers a plain request from the network with when it wants TLS.
pub const TLS_REQUIRED_STATUS: u16 = 426;

/// Why no socket was opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The host's certificate proves another key than the pinned one.
    #[error(
        "the host's TLS certificate is issued by another key (expected {pinned}, found {found})"
    )]
    HostKeyMismatch {
        /// The fingerprint that was expected.
        pinned: String,
        /// The fingerprint the host proved.
        found: String,
    },
    /// The host's certificate proves no Perch host key.
    #[error("the server's TLS certificate is not a Perch host's: {0}")]
    NotAPerchHost(crate::ChainError),
    /// The host refused `ws://` from this address and wants `wss://`.
    #[error("the host accepts only wss:// from the network")]
    TlsRequired,
    /// The TLS configuration could not be made.
    #[error(transparent)]
    Tls(#[from] crate::TlsError),
    /// Anything else: the address, the network, the WebSocket handshake.
    #[error(transparent)]
    Ws(tungstenite::Error),
}

/// An open socket and, over `wss://`, the host key fingerprint its certificate proved.
pub struct Dialed {
    /// The socket.
    pub socket: HostSocket,
    /// The fingerprint TLS proved; `None` over `ws://`.
    pub tls_fingerprint: Option<String>,
}

/// Opens `url` (`ws://` or `wss://`); over `wss://` the host must prove `pin`.
pub async fn dial(
    url: &str,
    pin: HostPin,
    config: Option<WebSocketConfig>,
) -> Result<Dialed, DialError> {
    let secure = url
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("wss://"));
    let (connector, seen) = if secure {
        let (config, seen) = client_config(pin)?;
        (Connector::Rustls(config), Some(seen))
    } else {
        (Connector::Plain, None)
    };
    match tokio_tungstenite::connect_async_tls_with_config(url, config, true, Some(connector)).await
    {
        Ok((socket, _)) => Ok(Dialed {
            socket,
            tls_fingerprint: seen.and_then(|s| s.proved()),
        }),
        Err(e) => Err(match seen.and_then(|s| s.get()) {
            Some(Observation::Mismatch { pinned, found }) => {
                DialError::HostKeyMismatch { pinned, found }
            }
            Some(Observation::NotAPerchHost(why)) => DialError::NotAPerchHost(why),
            _ => match e {
                tungstenite::Error::Http(ref r) if r.status().as_u16() == TLS_REQUIRED_STATUS => {
                    DialError::TlsRequired
                }
                e => DialError::Ws(e),
            },
        }),
    }
}

/// Opens a Perch host's socket at `url` with this connection's client nonce; a host that wants
/// TLS from the network (426 to `ws://`) is dialled again over `wss://`, never the other way.
pub async fn dial_host(url: &str, client_nonce: &str, pin: HostPin) -> Result<Dialed, DialError> {
    let first = url_with_client_nonce(url, client_nonce);
    match dial(&first, pin.clone(), None).await {
        Err(DialError::TlsRequired) => {
            tracing::info!(
                gateway = url,
                "the host wants TLS from the network; using wss://"
            );
            dial(
                &url_with_client_nonce(&secure_url(url), client_nonce),
                pin,
                None,
            )
            .await
        }
        other => other,
    }
}

/// `wss://` for a `ws://` URL (other URLs unchanged): where a client goes when the host says
/// [`DialError::TlsRequired`].
pub fn secure_url(url: &str) -> String {
    match url.get(..5) {
        Some(s) if s.eq_ignore_ascii_case("ws://") => format!("wss://{}", &url[5..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_urls() {
        assert_eq!(secure_url("ws://10.0.0.2:18789"), "wss://10.0.0.2:18789");
        assert_eq!(secure_url("WS://h:1/x?y=1"), "wss://h:1/x?y=1");
        assert_eq!(secure_url("wss://h:1"), "wss://h:1");
        assert_eq!(secure_url("w"), "w");
    }
}
