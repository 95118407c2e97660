//! Admission decisions: whether a device that proved its key may connect, must wait for the
//! user, or is refused. Pure functions over what the store knows, so every case is testable.

use serde_json::json;

use perch_protocol::{ErrorCode, ErrorShape, Reason};
use perch_store::{DeviceRecord, DeviceStatus};

/// The error a revoked device gets, at connect and when its live connection is closed.
pub fn admit_revoked_error(device_id: &perch_protocol::DeviceId) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::Unauthorized,
        "this device was revoked by the host's owner and may not connect",
    )
    .with_details(json!({"reason": Reason::DeviceRevoked, "deviceId": device_id}))
    .with_retryable(false)
}

/// What happens to a node whose signature verified.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Paired: let it in. `mint_token` when it presented no token and needs one.
    Admit {
        /// Issue a new device token in `hello-ok`.
        mint_token: bool,
    },
    /// Unknown: create (or reuse) a pending pairing request.
    RequestPairing,
    /// Refused, with the error to send and whether reconnecting could help.
    Refuse(ErrorShape),
}

/// How the token presented at connect compares with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// No token was presented.
    Absent,
    /// The presented token matches.
    Matches,
    /// A token was presented and it is wrong (stale or forged).
    Mismatch,
}

/// Decides admission for a node from its device record and token check.
pub fn admit(record: Option<&DeviceRecord>, token: TokenCheck) -> Admission {
    let Some(record) = record else {
        return Admission::RequestPairing;
    };
    match record.status {
        DeviceStatus::Revoked => Admission::Refuse(admit_revoked_error(&record.device_id)),
        DeviceStatus::Paired => match token {
            TokenCheck::Matches => Admission::Admit { mint_token: false },
            // The key signature is the proof of identity; a device that lost its token
            // (reinstall, wiped storage) gets a fresh one instead of a new approval.
            TokenCheck::Absent => Admission::Admit { mint_token: true },
            TokenCheck::Mismatch => Admission::Refuse(
                ErrorShape::new(
                    ErrorCode::Unauthorized,
                    "device token does not match; drop the stored token and reconnect",
                )
                .with_details(json!({"reason": Reason::DeviceTokenMismatch}))
                .with_retryable(true),
            ),
        },
    }
}

/// The NOT_PAIRED answer that tells a device its request id and that it may wait.
/// How many times a pending request's verification code may be set (the first connection and
/// a few reconnects): past it the host keeps the code it showed, so a man in the middle cannot
/// retry until a code matches.
pub const MAX_CODE_SETS: u32 = 4;

/// The answer to a device that must wait for approval; `code_current` says whether the host
/// shows the code derived on this connection (the device shows its own only then).
pub fn not_paired(request_id: &str, device_id: &str, code_current: bool) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::NotPaired,
        format!(
            "this device is not paired yet; approve it on the host with `perch devices approve {request_id}`"
        ),
    )
    .with_details(json!({
        "requestId": request_id,
        "deviceId": device_id,
        "waitForResolution": true,
        "codeCurrent": code_current,
    }))
    .with_retryable(true)
}

/// The answer to a device whose request the user rejected.
pub fn rejected(request_id: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::PairingRejected,
        "the host's owner rejected this device's pairing request",
    )
    .with_details(json!({"requestId": request_id}))
    .with_retryable(false)
}

/// How long a source whose pairing requests are at the cap is asked to wait before trying
/// again (the user decides, or the requests expire, in the meantime).
pub const SOURCE_FULL_RETRY_MS: u64 = 60_000;

/// The refusal for a new pairing request from a source that has too many pending already.
pub fn source_full(pending: usize) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::RateLimited,
        format!(
            "{pending} pairing requests from this address are already waiting for the user; \
             approve or reject them first, or pair with a setup code"
        ),
    )
    .with_details(json!({"retryAfterMs": SOURCE_FULL_RETRY_MS, "pending": pending}))
    .with_retryable(true)
}

/// Said to a device whose pending request expired to make room for newer ones.
pub fn expired_for_room(request_id: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::NotPaired,
        "this pairing request expired to make room for newer ones; connect again to file a new one",
    )
    .with_details(json!({"requestId": request_id, "reason": Reason::Expired}))
    .with_retryable(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_protocol::DeviceId;
    use perch_protocol::handshake::Role;

    fn record(status: DeviceStatus) -> DeviceRecord {
        DeviceRecord {
            device_id: DeviceId::parse(&"a".repeat(64)).unwrap(),
            public_key: "pk".into(),
            display_name: "n".into(),
            platform: "linux".into(),
            device_family: None,
            role: Role::Node,
            status,
            paired_at_ms: 1,
            revoked_at_ms: None,
            last_seen_ms: None,
            commands: vec![],
        }
    }

    #[test]
    fn unknown_device_requests_pairing() {
        assert_eq!(admit(None, TokenCheck::Absent), Admission::RequestPairing);
        assert_eq!(admit(None, TokenCheck::Mismatch), Admission::RequestPairing);
    }

    #[test]
    fn paired_device_is_admitted() {
        let r = record(DeviceStatus::Paired);
        assert_eq!(
            admit(Some(&r), TokenCheck::Matches),
            Admission::Admit { mint_token: false }
        );
        assert_eq!(
            admit(Some(&r), TokenCheck::Absent),
            Admission::Admit { mint_token: true }
        );
    }

    #[test]
    fn wrong_token_is_refused_with_reason() {
        let r = record(DeviceStatus::Paired);
        let Admission::Refuse(e) = admit(Some(&r), TokenCheck::Mismatch) else {
            panic!("expected refusal")
        };
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert_eq!(e.details.unwrap()["reason"], "device-token-mismatch");
    }

    #[test]
    fn revoked_device_is_refused_whatever_it_presents() {
        let r = record(DeviceStatus::Revoked);
        for t in [
            TokenCheck::Absent,
            TokenCheck::Matches,
            TokenCheck::Mismatch,
        ] {
            let Admission::Refuse(e) = admit(Some(&r), t) else {
                panic!("expected refusal")
            };
            assert_eq!(e.code, ErrorCode::Unauthorized);
            assert_eq!(e.details.unwrap()["reason"], "device-revoked");
        }
    }

    #[test]
    fn not_paired_carries_request_id() {
        let e = not_paired("req-1", "dev", true);
        assert_eq!(e.code, ErrorCode::NotPaired);
        let d = e.details.unwrap();
        assert_eq!(d["requestId"], "req-1");
        assert_eq!(d["waitForResolution"], true);
        assert_eq!(d["codeCurrent"], true);
    }
}
