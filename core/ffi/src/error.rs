//! The errors exported calls and foreign providers return, as typed uniffi errors an app can
//! show or branch on.

use perch_node::{HostCallError, NodeError, StoreError};

/// Why a [`crate::PerchNode`] call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, uniffi::Error)]
pub enum PerchError {
    /// The setup code cannot be read (a typo, a short copy, a code from a newer host).
    #[error("invalid setup code: {reason}")]
    InvalidSetupCode {
        /// What the user should check, in words.
        reason: String,
    },
    /// The host address cannot be connected to.
    #[error("invalid host address {url:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The data directory cannot hold the identity, tokens and pinned keys.
    #[error("the data directory cannot be used: {reason}")]
    DataDirUnwritable {
        /// The underlying failure.
        reason: String,
    },
    /// A different key answers where this device pinned its host (or where the setup code
    /// said it would be): it gets nothing secret; forget the host and pair again if the host
    /// was reinstalled.
    #[error("the host's key changed: {reason}")]
    HostKeyChanged {
        /// The host id this device expected.
        host_id: String,
        /// The runtime's message.
        reason: String,
    },
    /// No host to connect to yet: pair with a setup code or connect to an address first.
    #[error("no host configured: pair with a setup code or connect to an address first")]
    NoHost,
    /// The call needs a running node (`start`, `pair_with_setup_code` or `connect_to`).
    #[error("the node is not running")]
    NotRunning,
    /// The call needs a connection to the host, and there is none right now.
    #[error("not connected to the host")]
    NotConnected,
    /// The host did not answer in time.
    #[error("the host did not answer in time")]
    Timeout,
    /// The host refused the call (for example an older host without the method).
    #[error("the host refused: {code}: {reason}")]
    HostRefused {
        /// The stable error code.
        code: String,
        /// The host's message. (Not `message`: Kotlin exceptions have their own `message`,
        /// and a field of that name makes the generated Kotlin fail to compile.)
        reason: String,
    },
    /// `forget_host` named a host this device has not pinned.
    #[error("no pinned host {host_id:?}")]
    UnknownHost {
        /// The host id given.
        host_id: String,
    },
    /// A reply named a notification this node never posted, or one too old to answer.
    #[error("no notification {notification_id:?} to reply to")]
    UnknownNotification {
        /// The id given.
        notification_id: String,
    },
    /// A reply that answers nothing (no action, no text), names an action the notification
    /// does not have, or is too long.
    #[error("invalid reply: {reason}")]
    InvalidReply {
        /// What is wrong, in words.
        reason: String,
    },
    /// A service the platform's browser found is not a Perch host this node can use (malformed,
    /// forged, another protocol, no address).
    #[error("not a usable Perch host: {reason}")]
    InvalidAdvertisement {
        /// Why, in words.
        reason: String,
    },
    /// A position the app reported is impossible (coordinates or accuracy out of range).
    #[error("invalid location: {reason}")]
    InvalidLocation {
        /// What is wrong.
        reason: String,
    },
    /// Something inside the library failed; not the caller's fault.
    #[error("internal error: {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
}

impl From<StoreError> for PerchError {
    fn from(e: StoreError) -> Self {
        PerchError::DataDirUnwritable {
            reason: e.to_string(),
        }
    }
}

impl From<NodeError> for PerchError {
    fn from(e: NodeError) -> Self {
        let reason = e.to_string();
        match e {
            NodeError::Store(_) => PerchError::DataDirUnwritable { reason },
            NodeError::InvalidGatewayUrl { url, reason } => {
                PerchError::InvalidAddress { url, reason }
            }
            NodeError::HostChanged { pinned_host_id, .. } => PerchError::HostKeyChanged {
                host_id: pinned_host_id,
                reason,
            },
            NodeError::UnexpectedHost {
                expected_host_id, ..
            } => PerchError::HostKeyChanged {
                host_id: expected_host_id,
                reason,
            },
            NodeError::SetupCodeRefused(_) => PerchError::InvalidSetupCode { reason },
            _ => PerchError::Internal { reason },
        }
    }
}

impl From<HostCallError> for PerchError {
    fn from(e: HostCallError) -> Self {
        match e {
            HostCallError::NotConnected => PerchError::NotConnected,
            HostCallError::Timeout(_) => PerchError::Timeout,
            HostCallError::Refused(shape) => PerchError::HostRefused {
                code: shape.code.to_string(),
                reason: shape.message,
            },
            HostCallError::Malformed(reason) => PerchError::Internal { reason },
        }
    }
}

/// Why a platform provider could not answer; the host's caller sees a typed command error:
/// `PermissionDenied` as `LOCATION_PERMISSION_REQUIRED` (or `NOTIFICATIONS_PERMISSION_REQUIRED`),
/// the others as the command's unavailable code (`LOCATION_UNAVAILABLE`...) with the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error, uniffi::Error)]
pub enum ProviderError {
    /// The user has not granted the permission the command needs.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// What is missing, in words.
        reason: String,
    },
    /// The platform cannot answer right now (no fix, service off).
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why, in words.
        reason: String,
    },
    /// Anything else the provider wants to report.
    #[error("failed: {reason}")]
    Failed {
        /// What failed, in words.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ProviderError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ProviderError::Failed {
            reason: format!("the provider threw: {}", e.reason),
        }
    }
}
