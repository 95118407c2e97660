//! Calls a connected node makes to its host on the connection it serves on: reading its own
//! access record (`node.access.list`), so the device can show its user every command the
//! assistant or an operator ran on it, and sending what the user answered to a notification
//! (`node.event` `system.notify.reply`), acknowledged once the host has recorded it.
//!
//! [`HostCalls`] is a cheap handle taken from [`crate::Node::host_calls`] before `run`; phones
//! reach it through the FFI. A call made while the node is not connected fails at once with
//! [`HostCallError::NotConnected`], and every call is bounded by a deadline, so a caller never
//! waits on a host that is gone.

use std::time::Duration;

use perch_protocol::ErrorShape;
use perch_protocol::access::{AccessList, NODE_ACCESS_LIST, NodeAccessParams};
use perch_protocol::location::{
    LOCATION_CHANGED, LocationChangedPayload, LocationWatch, NODE_LOCATION_WATCH,
};
use perch_protocol::notify_replies::{NotifyReplyPayload, SYSTEM_NOTIFY_REPLY};
use perch_protocol::presence::{NODE_EVENT, NodeEventParams, NodeEventResult};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::runtime::NodeState;

/// How long a call waits for the host's answer.
pub const HOST_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls queued for the connection before new ones are refused.
pub(crate) const HOST_CALL_QUEUE: usize = 16;

/// One call waiting for the serving loop to send it.
pub(crate) struct HostCall {
    /// The method.
    pub method: &'static str,
    /// Its params.
    pub params: Value,
    /// Where the host's answer goes.
    pub reply: oneshot::Sender<Result<Value, ErrorShape>>,
}

/// Why a call to the host did not return a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HostCallError {
    /// The node is not connected to its host right now (or the connection ended mid-call).
    #[error("not connected to the host")]
    NotConnected,
    /// The host did not answer in time.
    #[error("the host did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The host refused the call (bad params, a host without the method...).
    #[error("the host refused: {0}")]
    Refused(ErrorShape),
    /// The host answered with something this node cannot read.
    #[error("the host's answer is malformed: {0}")]
    Malformed(String),
}

/// A handle for calling the host from outside the node's loop; clone it freely.
#[derive(Clone)]
pub struct HostCalls {
    tx: mpsc::Sender<HostCall>,
    state: watch::Receiver<NodeState>,
    timeout: Duration,
}

impl std::fmt::Debug for HostCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCalls")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HostCalls {
    pub(crate) fn new(tx: mpsc::Sender<HostCall>, state: watch::Receiver<NodeState>) -> Self {
        Self {
            tx,
            state,
            timeout: HOST_CALL_TIMEOUT,
        }
    }

    /// The same handle with another deadline per call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// This node's own access record, newest first: each command run on it, who asked (a chat
    /// turn or an operator), when, how long and what came of it. Page with `before` set to
    /// the previous page's `next_before`.
    pub async fn access_record(
        &self,
        query: NodeAccessParams,
    ) -> Result<AccessList, HostCallError> {
        let params =
            serde_json::to_value(query).map_err(|e| HostCallError::Malformed(e.to_string()))?;
        let v = self.call(NODE_ACCESS_LIST, params).await?;
        serde_json::from_value(v).map_err(|e| HostCallError::Malformed(e.to_string()))
    }

    /// Sends what the user answered to a notification; returns once the host has recorded
    /// it (`handled`), or with the host's reason when it does not know the event (an older
    /// host). Resending the same `reply_id` is harmless: the host keeps one.
    pub async fn notification_reply(
        &self,
        reply: NotifyReplyPayload,
    ) -> Result<NodeEventResult, HostCallError> {
        self.node_event(SYSTEM_NOTIFY_REPLY, reply).await
    }

    /// What the host wants this node to report about its location (sharing precision, the
    /// distance that counts, the named places).
    pub async fn location_watch(&self) -> Result<LocationWatch, HostCallError> {
        let v = self
            .call(NODE_LOCATION_WATCH, Value::Object(Default::default()))
            .await?;
        serde_json::from_value(v).map_err(|e| HostCallError::Malformed(e.to_string()))
    }

    /// Reports a significant location change; the answer says whether the host recorded it
    /// (`handled: false` with a reason while sharing is off).
    pub async fn location_changed(
        &self,
        change: LocationChangedPayload,
    ) -> Result<NodeEventResult, HostCallError> {
        self.node_event(LOCATION_CHANGED, change).await
    }

    async fn node_event<T: serde::Serialize>(
        &self,
        event: &str,
        payload: T,
    ) -> Result<NodeEventResult, HostCallError> {
        let params = NodeEventParams {
            event: event.to_string(),
            payload: Some(
                serde_json::to_value(payload)
                    .map_err(|e| HostCallError::Malformed(e.to_string()))?,
            ),
            payload_json: None,
        };
        let params =
            serde_json::to_value(params).map_err(|e| HostCallError::Malformed(e.to_string()))?;
        let v = self.call(NODE_EVENT, params).await?;
        serde_json::from_value(v).map_err(|e| HostCallError::Malformed(e.to_string()))
    }

    async fn call(&self, method: &'static str, params: Value) -> Result<Value, HostCallError> {
        if !matches!(*self.state.borrow(), NodeState::Connected { .. }) {
            return Err(HostCallError::NotConnected);
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(HostCall {
                method,
                params,
                reply,
            })
            .map_err(|_| HostCallError::NotConnected)?;
        match tokio::time::timeout(self.timeout, answer).await {
            Err(_) => Err(HostCallError::Timeout(self.timeout)),
            Ok(Err(_)) => Err(HostCallError::NotConnected),
            Ok(Ok(result)) => result.map_err(HostCallError::Refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_protocol::ErrorCode;
    use serde_json::json;

    fn connected() -> NodeState {
        NodeState::Connected {
            host_name: "h".into(),
            conn_id: "c1".into(),
        }
    }

    #[tokio::test]
    async fn calls_fail_fast_when_not_connected() {
        let (tx, _rx) = mpsc::channel(HOST_CALL_QUEUE);
        let (_state, watch_rx) = watch::channel(NodeState::Idle);
        let calls = HostCalls::new(tx, watch_rx);
        assert_eq!(
            calls.access_record(Default::default()).await.unwrap_err(),
            HostCallError::NotConnected
        );
    }

    #[tokio::test]
    async fn answers_refusals_drops_and_silence() {
        let (tx, mut rx) = mpsc::channel(HOST_CALL_QUEUE);
        let (_state, watch_rx) = watch::channel(connected());
        let calls = HostCalls::new(tx, watch_rx).with_timeout(Duration::from_millis(200));
        let serving = tokio::spawn(async move {
            // 1: a page; 2: a refusal; 3: the connection ends; 4: no answer at all.
            let c = rx.recv().await.unwrap();
            assert_eq!(c.method, NODE_ACCESS_LIST);
            assert_eq!(c.params, json!({"limit": 3}));
            let _ = c.reply.send(Ok(json!({"nodeId": "n", "entries": []})));
            let c = rx.recv().await.unwrap();
            let _ = c
                .reply
                .send(Err(ErrorShape::new(ErrorCode::InvalidRequest, "bad")));
            drop(rx.recv().await.unwrap());
            let silent = rx.recv().await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
            drop(silent);
        });
        let page = calls
            .access_record(NodeAccessParams {
                limit: Some(3),
                before: None,
            })
            .await
            .unwrap();
        assert_eq!(page.node_id, "n");
        assert!(matches!(
            calls.access_record(Default::default()).await,
            Err(HostCallError::Refused(e)) if e.code == ErrorCode::InvalidRequest
        ));
        assert_eq!(
            calls.access_record(Default::default()).await.unwrap_err(),
            HostCallError::NotConnected
        );
        assert_eq!(
            calls.access_record(Default::default()).await.unwrap_err(),
            HostCallError::Timeout(Duration::from_millis(200))
        );
        serving.await.unwrap();
    }
}
