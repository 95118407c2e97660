//! Why a request failed: the host's structured answer, or the connection around it.

use std::time::Duration;

use perch_protocol::{ErrorCode, ErrorShape};

/// A failed [`crate::Client::call`]. Never carries the operator token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The host answered with a structured error; branch on its `code`.
    #[error("{}: {}", .0.code, .0.message)]
    Host(ErrorShape),
    /// There is no admitted connection right now (the client is retrying, or the host refused
    /// the token); the request was not sent.
    #[error("not connected to the Perch host: {reason}")]
    NotConnected {
        /// The connection state's reason.
        reason: String,
    },
    /// The request was sent, but the connection ended before the answer came.
    #[error("the connection to the Perch host ended before it answered: {reason}")]
    ConnectionLost {
        /// What ended the connection.
        reason: String,
    },
    /// No answer within the caller's deadline; the client sent the host a `cancel`.
    #[error("{method} got no answer within {} ms", .timeout.as_millis())]
    Timeout {
        /// The method called.
        method: String,
        /// The deadline given.
        timeout: Duration,
    },
    /// The client was shut down.
    #[error("the Perch client was shut down")]
    Closed,
    /// The answer did not have the expected shape (see [`crate::Client::call_as`]).
    #[error("unexpected answer to {method}: {message}")]
    Decode {
        /// The method called.
        method: String,
        /// What did not fit.
        message: String,
    },
}

impl ClientError {
    /// The host's error code, when the host answered.
    pub fn host_code(&self) -> Option<&ErrorCode> {
        match self {
            ClientError::Host(shape) => Some(&shape.code),
            _ => None,
        }
    }
}
