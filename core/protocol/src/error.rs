//! Structured errors: a stable machine-readable code plus a human message.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// Stable error codes; clients branch on these, never on message text.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this build does not know, typically a node-specific one such as
            /// `CAMERA_DISABLED`; kept verbatim so nothing is lost in transit.
            Other(String),
        }

        impl ErrorCode {
            /// The code as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Other(s) => s.as_str(),
                }
            }

            /// Parses a wire code; unknown codes become [`ErrorCode::Other`].
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_string()),
                }
            }

            /// Every code this build knows, for documentation and tests.
            pub const KNOWN: &'static [&'static str] = &[$($text,)*];
        }
    };
}

error_codes! {
    /// The client's protocol range does not include the host's version.
    ProtocolMismatch => "PROTOCOL_MISMATCH",
    /// The device is unknown; a pairing request is pending (see `details.requestId`).
    NotPaired => "NOT_PAIRED",
    /// The user rejected the pairing request.
    PairingRejected => "PAIRING_REJECTED",
    /// The device signature does not verify against its public key.
    DeviceAuthSignatureInvalid => "DEVICE_AUTH_SIGNATURE_INVALID",
    /// The signed nonce is not the one this connection was challenged with.
    DeviceAuthNonceMismatch => "DEVICE_AUTH_NONCE_MISMATCH",
    /// `signedAt` is too far from the host's clock.
    DeviceAuthSignatureExpired => "DEVICE_AUTH_SIGNATURE_EXPIRED",
    /// The claimed device id is not the hash of the public key.
    DeviceAuthDeviceIdMismatch => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
    /// The public key is not a valid Ed25519 key.
    DeviceAuthPublicKeyInvalid => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
    /// A node connected without a device identity.
    DeviceIdentityRequired => "DEVICE_IDENTITY_REQUIRED",
    /// Missing or wrong credentials, or a revoked device.
    Unauthorized => "UNAUTHORIZED",
    /// Authenticated, but the role may not call this method.
    Forbidden => "FORBIDDEN",
    /// The frame or its params are malformed.
    InvalidRequest => "INVALID_REQUEST",
    /// The frame exceeds the size limit in force.
    PayloadTooLarge => "PAYLOAD_TOO_LARGE",
    /// The method does not exist.
    UnknownMethod => "UNKNOWN_METHOD",
    /// The node is not connected (or disconnected while the call was in flight).
    NodeNotConnected => "NODE_NOT_CONNECTED",
    /// No node matches the given id, prefix or name.
    NodeNotFound => "NODE_NOT_FOUND",
    /// The node did not advertise the command, or host policy forbids it.
    CommandNotAllowed => "COMMAND_NOT_ALLOWED",
    /// The call did not finish before its deadline.
    Timeout => "TIMEOUT",
    /// The referenced pairing request or device does not exist.
    NotFound => "NOT_FOUND",
    /// A setup code's bootstrap token is unknown, used, or expired (`details.reason`).
    BootstrapTokenInvalid => "BOOTSTRAP_TOKEN_INVALID",
    /// The model tier has no credential (details name where the host looked).
    CredentialMissing => "CREDENTIAL_MISSING",
    /// The model provider failed the turn (HTTP error, malformed or stalled stream).
    ModelError => "MODEL_ERROR",
    /// The host cannot serve the request right now; retry later.
    Unavailable => "UNAVAILABLE",
    /// Too many at once from this source (pending pairing requests); `details.retryAfterMs`.
    RateLimited => "RATE_LIMITED",
    /// The host hit an internal fault; nothing was changed.
    Internal => "INTERNAL",
    /// The request was cancelled by the caller.
    Cancelled => "CANCELLED",
    /// The node has no location fix and no configured location.
    LocationUnavailable => "LOCATION_UNAVAILABLE",
    /// The node has no notification service to deliver to.
    NotificationsUnavailable => "NOTIFICATIONS_UNAVAILABLE",
    /// The user has not shared this node's location with the assistant (`location.share`
    /// is `off`): the host refused a model's call without asking the node.
    LocationSharingOff => "LOCATION_SHARING_OFF",
    /// The command needs the app on screen and the phone has it in the background.
    NodeBackgroundUnavailable => "NODE_BACKGROUND_UNAVAILABLE",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorCode::parse(&s))
    }
}

/// The error body carried by a failed `res` frame and by failed node invoke results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorShape {
    /// Stable code to branch on.
    pub code: ErrorCode,
    /// Human-readable explanation; never contains secrets.
    pub message: String,
    /// Structured context (request id, limits, the offending field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Whether the same request may succeed if sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// How long to wait before retrying, when the host knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// An error with a code and message and nothing else.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Marks whether a retry may succeed.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }

    /// Tells the client how long to back off.
    pub fn with_retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self.retryable = Some(true);
        self
    }

    /// `details.reason`, when it is one this version knows.
    pub fn reason(&self) -> Option<Reason> {
        self.details
            .as_ref()?
            .get("reason")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
    }
}

/// Why the host refused, as `details.reason` carries it: the one list host and clients share,
/// so a node or an app branches on a type, never on a string it hopes matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The device was revoked: it stays out until the user removes it.
    DeviceRevoked,
    /// The device's token does not match what the host issued.
    DeviceTokenMismatch,
    /// The user removed the device; it may ask to pair again.
    DeviceRemoved,
    /// The operator token is wrong.
    TokenMismatch,
    /// No operator token was presented.
    TokenMissing,
    /// The node did not advertise the command.
    NotAdvertised,
    /// Host policy does not allow the command.
    HostPolicy,
    /// A setup code the host does not know.
    Unknown,
    /// A setup code already used.
    Used,
    /// A setup code past its ten minutes.
    Expired,
    /// perch.toml is not valid TOML.
    ConfigCorrupt,
    /// perch.toml could not be read or written.
    ConfigIo,
    /// The revealed pairing nonce does not open the commitment the client sent.
    PairingCommitment,
}

impl Reason {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DeviceRevoked => "device-revoked",
            Reason::DeviceTokenMismatch => "device-token-mismatch",
            Reason::DeviceRemoved => "device-removed",
            Reason::TokenMismatch => "token-mismatch",
            Reason::TokenMissing => "token-missing",
            Reason::NotAdvertised => "not-advertised",
            Reason::HostPolicy => "host-policy",
            Reason::Unknown => "unknown",
            Reason::Used => "used",
            Reason::Expired => "expired",
            Reason::ConfigCorrupt => "config-corrupt",
            Reason::ConfigIo => "config-io",
            Reason::PairingCommitment => "pairing-commitment",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ErrorShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorShape {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_codes_round_trip() {
        for code in ErrorCode::KNOWN {
            let parsed = ErrorCode::parse(code);
            assert!(
                !matches!(parsed, ErrorCode::Other(_)),
                "{code} parsed as Other"
            );
            assert_eq!(parsed.as_str(), *code);
            let json = serde_json::to_string(&parsed).unwrap();
            assert_eq!(json, format!("\"{code}\""));
        }
    }

    #[test]
    fn unknown_code_is_kept_verbatim() {
        let e: ErrorShape =
            serde_json::from_value(json!({"code": "CAMERA_DISABLED", "message": "off"})).unwrap();
        assert_eq!(e.code, ErrorCode::Other("CAMERA_DISABLED".into()));
        assert_eq!(serde_json::to_value(&e).unwrap()["code"], "CAMERA_DISABLED");
    }

    #[test]
    fn error_shape_serializes_camel_case_and_skips_empty() {
        let e = ErrorShape::new(ErrorCode::Timeout, "slow").with_retry_after(1500);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"code": "TIMEOUT", "message": "slow", "retryable": true, "retryAfterMs": 1500})
        );
        let back: ErrorShape = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn required_codes_exist() {
        for c in [
            "PROTOCOL_MISMATCH",
            "NOT_PAIRED",
            "PAIRING_REJECTED",
            "DEVICE_AUTH_SIGNATURE_INVALID",
            "DEVICE_AUTH_NONCE_MISMATCH",
            "DEVICE_AUTH_SIGNATURE_EXPIRED",
            "UNAUTHORIZED",
            "INVALID_REQUEST",
            "PAYLOAD_TOO_LARGE",
            "UNKNOWN_METHOD",
            "NODE_NOT_CONNECTED",
            "COMMAND_NOT_ALLOWED",
            "TIMEOUT",
        ] {
            assert!(ErrorCode::KNOWN.contains(&c), "{c}");
        }
    }

    #[test]
    fn reasons_round_trip_on_the_wire() {
        for r in [
            Reason::DeviceRevoked,
            Reason::DeviceTokenMismatch,
            Reason::DeviceRemoved,
            Reason::TokenMismatch,
            Reason::TokenMissing,
            Reason::NotAdvertised,
            Reason::HostPolicy,
            Reason::Unknown,
            Reason::Used,
            Reason::Expired,
            Reason::ConfigCorrupt,
            Reason::ConfigIo,
            Reason::PairingCommitment,
        ] {
            let v = serde_json::to_value(r).unwrap();
            assert_eq!(v, r.as_str());
            let e = ErrorShape::new(ErrorCode::Unauthorized, "x")
                .with_details(serde_json::json!({"reason": v}));
            assert_eq!(e.reason(), Some(r));
        }
        let e = ErrorShape::new(ErrorCode::Unauthorized, "x")
            .with_details(serde_json::json!({"reason": "from-the-future"}));
        assert_eq!(e.reason(), None);
    }
}
