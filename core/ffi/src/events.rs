//! What the app hears: [`NodeEvent`]s through a foreign [`NodeListener`], derived from
//! perch-node's `NodeState` watch plus the commands this node served.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use perch_node::{CapabilityHandler, CommandError, NodeState};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

/// Something the app may show or react to.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum NodeEvent {
    /// Opening the connection to the host.
    Connecting {
        /// Where.
        url: String,
    },
    /// The host does not know this device yet: the user approves it on the host, after
    /// checking the host shows the same verification code.
    WaitingForApproval {
        /// The host's pairing request id.
        request_id: String,
        /// Six digits both sides show (`"048 213"`); `None` when the host proved no key.
        verification_code: Option<String>,
    },
    /// Paired and serving commands.
    Online {
        /// The host's display name.
        host_name: String,
    },
    /// Not connected; the node retries by itself.
    Offline {
        /// Why the last connection ended.
        reason: String,
        /// When the next attempt starts, in ms.
        retry_in_ms: u64,
    },
    /// A different key (or none) answers where this device expects its host: nothing was
    /// sent to it, and the node keeps trying, so whoever holds the address can't switch it off.
    /// If the host was reinstalled, `forget_host` and pair again.
    HostKeyChanged {
        /// The host id this device expected.
        host_id: String,
    },
    /// The node answered a command from the host.
    CommandServed {
        /// The command, for example `location.get`.
        command: String,
        /// Whether it answered with a result (false: with an error).
        ok: bool,
    },
    /// The node stopped: by `stop` (`error` is `None`) or because the host refused it for
    /// good (rejected, revoked, setup code refused, host key changed).
    Stopped {
        /// Why, when it was not asked to stop.
        error: Option<String>,
    },
}

/// The app's event sink (a Kotlin Flow, a Swift AsyncStream, a Python queue). Called off the
/// runtime's workers, one event at a time, in order.
#[uniffi::export(foreign)]
pub trait NodeListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: NodeEvent);
}

/// The event a state change means, if any (`Idle` means nothing to the app).
pub(crate) fn event_for(state: &NodeState, url: &str) -> Option<NodeEvent> {
    Some(match state {
        NodeState::Idle => return None,
        NodeState::Connecting => NodeEvent::Connecting {
            url: url.to_string(),
        },
        NodeState::AwaitingApproval {
            request_id,
            verification_code,
        } => NodeEvent::WaitingForApproval {
            request_id: request_id.clone(),
            verification_code: verification_code.clone(),
        },
        NodeState::Connected { host_name, .. } => NodeEvent::Online {
            host_name: host_name.clone(),
        },
        NodeState::Backoff {
            retry_in_ms,
            last_error,
        } => NodeEvent::Offline {
            reason: last_error.clone(),
            retry_in_ms: *retry_in_ms,
        },
        NodeState::WrongHost {
            trusted_host_id, ..
        } => NodeEvent::HostKeyChanged {
            host_id: trusted_host_id.clone(),
        },
        NodeState::Stopped { error } => NodeEvent::Stopped {
            error: error.clone(),
        },
    })
}

/// Forwards state changes as events until the node's state channel closes; the final
/// `Stopped` is sent by whoever ran the node, with the typed reason.
pub(crate) async fn forward_states(
    mut states: watch::Receiver<NodeState>,
    url: String,
    events: mpsc::UnboundedSender<NodeEvent>,
) {
    loop {
        let state = states.borrow_and_update().clone();
        if !matches!(state, NodeState::Stopped { .. })
            && let Some(e) = event_for(&state, &url)
        {
            let _ = events.send(e);
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}

/// Delivers events to the listener in order, each on a blocking thread, so a slow listener
/// never stalls the runtime.
pub(crate) async fn deliver(
    mut events: mpsc::UnboundedReceiver<NodeEvent>,
    listener: Option<Arc<dyn NodeListener>>,
) {
    while let Some(event) = events.recv().await {
        tracing::debug!(?event, "node event");
        let Some(l) = listener.clone() else { continue };
        if let Err(e) = tokio::task::spawn_blocking(move || l.on_event(event)).await {
            tracing::warn!(error = %e, "the node listener failed");
        }
    }
}

/// Wraps a handler to report each served command as [`NodeEvent::CommandServed`].
pub(crate) struct Reporting {
    pub(crate) inner: Arc<dyn CapabilityHandler>,
    pub(crate) events: mpsc::UnboundedSender<NodeEvent>,
}

impl CapabilityHandler for Reporting {
    fn commands(&self) -> Vec<String> {
        self.inner.commands()
    }

    fn caps(&self) -> Vec<String> {
        self.inner.caps()
    }

    fn permissions(&self) -> std::collections::BTreeMap<String, bool> {
        self.inner.permissions()
    }

    fn needs_foreground(&self, command: &str) -> bool {
        self.inner.needs_foreground(command)
    }

    fn invoke(
        &self,
        command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        let answer = self.inner.invoke(command, params);
        let events = self.events.clone();
        let command = command.to_string();
        Box::pin(async move {
            let result = answer.await;
            let _ = events.send(NodeEvent::CommandServed {
                command,
                ok: result.is_ok(),
            });
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_to_events() {
        let url = "ws://h:1";
        assert_eq!(event_for(&NodeState::Idle, url), None);
        assert_eq!(
            event_for(&NodeState::Connecting, url),
            Some(NodeEvent::Connecting { url: url.into() })
        );
        assert_eq!(
            event_for(
                &NodeState::Connected {
                    host_name: "home".into(),
                    conn_id: "c".into()
                },
                url
            ),
            Some(NodeEvent::Online {
                host_name: "home".into()
            })
        );
        assert_eq!(
            event_for(
                &NodeState::Backoff {
                    retry_in_ms: 500,
                    last_error: "gone".into()
                },
                url
            ),
            Some(NodeEvent::Offline {
                reason: "gone".into(),
                retry_in_ms: 500
            })
        );
    }
}
