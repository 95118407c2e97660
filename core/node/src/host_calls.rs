//! Calls a connected node makes to its host on the connection it serves on; today one: reading
//! its own access record (`node.access.list`), so the device can show its user every command
//! the assistant or an operator ran on it.
//!
//! [`HostCalls`] is a cheap handle taken from [`crate::Node::host_calls`] before `run`; phones
//! reach it through the FFI. A call made while the node is not connected fails at once with
//! [`HostCallError::NotConnected`], and every call is bounded by a deadline, so a caller never
//! waits on a host that is gone.

use std::time::Duration;

use perch_protocol::ErrorShape;
use perch_protocol::access::{AccessList, NODE_ACCESS_LIST, NodeAccessParams};
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
    #[error("the host did not answer within {} s", .0.as_secs())]
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
