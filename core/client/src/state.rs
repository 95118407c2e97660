//! The connection's state machine: what the watch of [`crate::Client::state`] reports, and
//! the one function every change goes through.

use std::sync::Arc;
use std::time::Duration;

use perch_protocol::handshake::HelloOk;
use perch_protocol::{ErrorCode, ErrorShape};

/// Where the operator connection stands, as embedders show it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionState {
    /// Dialing, or waiting for the host's `hello-ok`.
    Connecting,
    /// Admitted: the host answered `connect` with this `hello-ok`.
    Connected {
        /// The host's greeting (server name and id, presence snapshot, limits).
        hello: Arc<HelloOk>,
    },
    /// Not connected, and why.
    Disconnected {
        /// What ended the last connection or attempt, in words for people.
        reason: String,
        /// When the next attempt starts; `None` when the client will not retry by itself
        /// (for example a protocol mismatch).
        retry_in: Option<Duration>,
    },
    /// The host refused the operator token. The client waits for
    /// [`crate::Client::reconnect_now`] instead of retrying a credential known to be wrong.
    Unauthorized {
        /// The host's explanation (never the token).
        reason: String,
    },
    /// [`crate::Client::shutdown`] was called, or every handle was dropped.
    Stopped,
}

/// What happened to the connection; the input of [`ConnectionState::next`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConnEvent {
    /// A new attempt starts (dial, challenge, `connect`).
    Dial,
    /// The host answered `connect` with `hello-ok`.
    Admitted(Arc<HelloOk>),
    /// The socket or the attempt ended; a retry follows after `retry_in`.
    Lost {
        /// Why, for people.
        reason: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// The host answered `connect` with an error.
    Refused {
        /// The host's error.
        error: ErrorShape,
        /// The backoff before the next attempt, if the error is worth retrying.
        retry_in: Duration,
    },
    /// The embedder stopped the client.
    Stop,
}

impl ConnectionState {
    /// The transition function: the only way the client's state changes. `Stopped` is final,
    /// `Connected` comes only from `Admitted` while connecting, and a refused token or a
    /// protocol mismatch stop the automatic retries.
    pub fn next(&self, event: ConnEvent) -> ConnectionState {
        use ConnectionState as S;
        match (self, event) {
            (S::Stopped, _) | (_, ConnEvent::Stop) => S::Stopped,
            (_, ConnEvent::Dial) => S::Connecting,
            (S::Connecting, ConnEvent::Admitted(hello)) => S::Connected { hello },
            // Only an attempt in progress can be admitted; anything else is a stale report.
            (other, ConnEvent::Admitted(_)) => other.clone(),
            (_, ConnEvent::Lost { reason, retry_in }) => S::Disconnected {
                reason,
                retry_in: Some(retry_in),
            },
            (_, ConnEvent::Refused { error, retry_in }) => match error.code {
                ErrorCode::Unauthorized => S::Unauthorized {
                    reason: format!("the host refused the operator token: {}", error.message),
                },
                ErrorCode::ProtocolMismatch => S::Disconnected {
                    reason: format!("the host speaks another protocol: {}", error.message),
                    retry_in: None,
                },
                code => S::Disconnected {
                    reason: format!("the host refused the connection: {code}: {}", error.message),
                    retry_in: Some(retry_in),
                },
            },
        }
    }

    /// Whether the client is admitted and requests can be sent.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected { .. })
    }

    /// Whether the client will try again on its own (a backoff runs or an attempt is under
    /// way).
    pub fn will_retry(&self) -> bool {
        match self {
            ConnectionState::Connecting | ConnectionState::Connected { .. } => true,
            ConnectionState::Disconnected { retry_in, .. } => retry_in.is_some(),
            ConnectionState::Unauthorized { .. } | ConnectionState::Stopped => false,
        }
    }

    /// The host's greeting while connected.
    pub fn hello(&self) -> Option<&Arc<HelloOk>> {
        match self {
            ConnectionState::Connected { hello } => Some(hello),
            _ => None,
        }
    }
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionState::Connecting => f.write_str("connecting"),
            ConnectionState::Connected { hello } => write!(f, "connected to {}", hello.server.name),
            ConnectionState::Disconnected {
                reason,
                retry_in: Some(d),
            } => write!(
                f,
                "disconnected ({reason}); retrying in {} ms",
                d.as_millis()
            ),
            ConnectionState::Disconnected {
                reason,
                retry_in: None,
            } => write!(f, "disconnected ({reason})"),
            ConnectionState::Unauthorized { reason } => f.write_str(reason),
            ConnectionState::Stopped => f.write_str("stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hello() -> Arc<HelloOk> {
        let v = json!({"type": "hello-ok", "protocol": 4,
            "server": {"version": "0", "connId": "c1", "hostId": "h", "name": "box"},
            "features": {"methods": [], "events": []},
            "snapshot": {"uptimeMs": 1, "presence": [], "stateVersion": {"presence": 0, "health": 0}},
            "auth": {"role": "operator", "scopes": []},
            "policy": {"maxPayload": 1, "maxBufferedBytes": 1, "tickIntervalMs": 15000}});
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn refused(code: ErrorCode) -> ConnEvent {
        ConnEvent::Refused {
            error: ErrorShape::new(code, "nope"),
            retry_in: Duration::from_secs(1),
        }
    }

    #[test]
    fn connected_only_from_connecting_with_hello() {
        let s = ConnectionState::Connecting.next(ConnEvent::Admitted(hello()));
        assert!(s.is_connected());
        assert_eq!(s.hello().unwrap().server.name, "box");
        let lost = ConnectionState::Disconnected {
            reason: "x".into(),
            retry_in: Some(Duration::from_secs(1)),
        };
        assert_eq!(lost.next(ConnEvent::Admitted(hello())), lost);
        let unauthorized = ConnectionState::Unauthorized { reason: "r".into() };
        assert!(
            !unauthorized
                .next(ConnEvent::Admitted(hello()))
                .is_connected()
        );
    }

    #[test]
    fn refusals_pick_the_right_state() {
        let s = ConnectionState::Connecting.next(refused(ErrorCode::Unauthorized));
        assert!(
            matches!(&s, ConnectionState::Unauthorized { reason } if reason.contains("nope")),
            "{s:?}"
        );
        assert!(!s.will_retry());
        let s = ConnectionState::Connecting.next(refused(ErrorCode::ProtocolMismatch));
        assert!(matches!(
            s,
            ConnectionState::Disconnected { retry_in: None, .. }
        ));
        assert!(!s.will_retry());
        let s = ConnectionState::Connecting.next(refused(ErrorCode::Unavailable));
        assert!(s.will_retry());
        assert!(s.to_string().contains("UNAVAILABLE"), "{s}");
    }

    #[test]
    fn stopped_is_final_and_dial_leaves_unauthorized() {
        let s = ConnectionState::Connected { hello: hello() }.next(ConnEvent::Stop);
        assert_eq!(s, ConnectionState::Stopped);
        assert_eq!(s.next(ConnEvent::Dial), ConnectionState::Stopped);
        let s = ConnectionState::Unauthorized { reason: "r".into() }.next(ConnEvent::Dial);
        assert_eq!(s, ConnectionState::Connecting);
    }

    #[test]
    fn lost_carries_reason_and_delay() {
        let s = ConnectionState::Connected { hello: hello() }.next(ConnEvent::Lost {
            reason: "the host shut down".into(),
            retry_in: Duration::from_millis(300),
        });
        assert_eq!(
            s,
            ConnectionState::Disconnected {
                reason: "the host shut down".into(),
                retry_in: Some(Duration::from_millis(300))
            }
        );
        assert_eq!(
            s.to_string(),
            "disconnected (the host shut down); retrying in 300 ms"
        );
    }
}
