//! Checks on a `connect` request that need no database: protocol range, device proof.

use serde_json::json;

use perch_protocol::handshake::{ConnectParams, Role};
use perch_protocol::identity::{IdentityError, verify_device_signature};
use perch_protocol::{
    DeviceId, ErrorCode, ErrorShape, MIN_NODE_PROTOCOL, MIN_OPERATOR_PROTOCOL, PROTOCOL_VERSION,
    SIGNATURE_SKEW_MS,
};

/// Longest display name or platform string kept from a client.
pub const MAX_LABEL: usize = 64;

/// Refuses a client whose protocol range does not include ours.
pub fn check_protocol(p: &ConnectParams) -> Result<u32, ErrorShape> {
    let min_ok = match p.role {
        Role::Operator => MIN_OPERATOR_PROTOCOL,
        Role::Node => MIN_NODE_PROTOCOL,
    };
    if p.min_protocol <= PROTOCOL_VERSION
        && p.max_protocol >= min_ok
        && p.min_protocol <= p.max_protocol
    {
        Ok(p.max_protocol.min(PROTOCOL_VERSION))
    } else {
        Err(ErrorShape::new(
            ErrorCode::ProtocolMismatch,
            format!(
                "this host speaks protocol {min_ok}..={PROTOCOL_VERSION} for {} clients, the client speaks {}..={}; update the older side",
                p.role, p.min_protocol, p.max_protocol
            ),
        )
        .with_details(json!({
            "code": "PROTOCOL_MISMATCH",
            "clientMinProtocol": p.min_protocol,
            "clientMaxProtocol": p.max_protocol,
            "expectedProtocol": PROTOCOL_VERSION,
            "minProtocol": min_ok,
        }))
        .with_retryable(false))
    }
}

/// Verifies the device proof against the challenge nonce and the host clock.
pub fn verify_device(p: &ConnectParams, nonce: &str, now_ms: i64) -> Result<DeviceId, ErrorShape> {
    let Some(dev) = &p.device else {
        return Err(ErrorShape::new(
            ErrorCode::DeviceIdentityRequired,
            "a node must prove a device identity (connect.device)",
        ));
    };
    if dev.nonce != nonce {
        return Err(ErrorShape::new(
            ErrorCode::DeviceAuthNonceMismatch,
            "the signed nonce is not this connection's challenge; sign the latest connect.challenge",
        )
        .with_retryable(true));
    }
    if (now_ms - dev.signed_at).abs() > SIGNATURE_SKEW_MS {
        return Err(ErrorShape::new(
            ErrorCode::DeviceAuthSignatureExpired,
            "device.signedAt is too far from the host's clock; check the device's time",
        )
        .with_details(json!({"hostTimeMs": now_ms, "signedAt": dev.signed_at,
                             "maxSkewMs": SIGNATURE_SKEW_MS})));
    }
    let payload = p.signed_payload().unwrap_or_default();
    verify_device_signature(&dev.id, &dev.public_key, &dev.signature, &payload).map_err(|e| {
        let code = match e {
            IdentityError::DeviceIdMismatch | IdentityError::BadDeviceId => {
                ErrorCode::DeviceAuthDeviceIdMismatch
            }
            IdentityError::BadPublicKey => ErrorCode::DeviceAuthPublicKeyInvalid,
            _ => ErrorCode::DeviceAuthSignatureInvalid,
        };
        ErrorShape::new(code, format!("device proof refused: {e}"))
    })
}

/// Keeps a client-supplied label printable and bounded.
pub fn clean_label(s: &str, fallback: &str) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .take(MAX_LABEL)
        .collect::<String>()
        .trim()
        .to_string();
    if cleaned.is_empty() {
        fallback.to_string()
    } else {
        cleaned
    }
}

/// Characters that change how text around them reads without being seen: bidirectional
/// overrides, embeddings and isolates (a name could display reversed, or push a fake code into
/// view), zero-width spaces and joiners, and the byte-order mark.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{180E}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_protocol::DeviceIdentity;
    use perch_protocol::handshake::{ClientInfo, ConnectAuth};

    fn params(
        id: &DeviceIdentity,
        nonce: &str,
        signed_at: i64,
        token: Option<&str>,
    ) -> ConnectParams {
        let mut p = ConnectParams {
            min_protocol: 4,
            max_protocol: 4,
            client: ClientInfo {
                id: "perch-node".into(),
                display_name: Some("n".into()),
                version: "0".into(),
                platform: "Linux".into(),
                device_family: None,
                model_identifier: None,
                mode: "node".into(),
                instance_id: None,
            },
            role: Role::Node,
            scopes: vec![],
            caps: vec![],
            commands: vec![],
            permissions: Default::default(),
            device: None,
            auth: token.map(|t| ConnectAuth {
                device_token: Some(t.into()),
                ..Default::default()
            }),
            locale: None,
            user_agent: None,
            extra: Default::default(),
        };
        p.sign(id, signed_at, nonce);
        p
    }

    #[test]
    fn good_proof_verifies() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let p = params(&id, "nonce", 1_000_000, Some("tok"));
        assert_eq!(
            verify_device(&p, "nonce", 1_000_000).unwrap(),
            id.device_id()
        );
    }

    #[test]
    fn wrong_signature_is_refused() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let mut p = params(&id, "nonce", 1_000_000, None);
        // Signed without a token, but claims one: the payload no longer matches.
        p.auth = Some(ConnectAuth {
            device_token: Some("x".into()),
            ..Default::default()
        });
        assert_eq!(
            verify_device(&p, "nonce", 1_000_000).unwrap_err().code,
            ErrorCode::DeviceAuthSignatureInvalid
        );
    }

    #[test]
    fn replayed_or_mismatched_nonce_is_refused() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let p = params(&id, "old-nonce", 1_000_000, None);
        assert_eq!(
            verify_device(&p, "fresh-nonce", 1_000_000)
                .unwrap_err()
                .code,
            ErrorCode::DeviceAuthNonceMismatch
        );
    }

    #[test]
    fn stale_signed_at_is_refused() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let p = params(&id, "n", 1_000_000, None);
        let later = 1_000_000 + SIGNATURE_SKEW_MS + 1;
        assert_eq!(
            verify_device(&p, "n", later).unwrap_err().code,
            ErrorCode::DeviceAuthSignatureExpired
        );
    }

    #[test]
    fn foreign_key_is_an_id_mismatch() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let other = DeviceIdentity::from_seed(&[2; 32]);
        let mut p = params(&id, "n", 5, None);
        if let Some(d) = p.device.as_mut() {
            d.public_key = other.public_key_b64();
        }
        assert_eq!(
            verify_device(&p, "n", 5).unwrap_err().code,
            ErrorCode::DeviceAuthDeviceIdMismatch
        );
    }

    #[test]
    fn missing_device_is_refused() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let mut p = params(&id, "n", 5, None);
        p.device = None;
        assert_eq!(
            verify_device(&p, "n", 5).unwrap_err().code,
            ErrorCode::DeviceIdentityRequired
        );
    }

    #[test]
    fn protocol_ranges() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let mut p = params(&id, "n", 5, None);
        assert_eq!(check_protocol(&p).unwrap(), 4);
        p.min_protocol = 3;
        p.max_protocol = 3;
        assert_eq!(
            check_protocol(&p).unwrap(),
            3,
            "nodes get one version of grace"
        );
        p.role = Role::Operator;
        let e = check_protocol(&p).unwrap_err();
        assert_eq!(e.code, ErrorCode::ProtocolMismatch);
        assert_eq!(e.details.unwrap()["expectedProtocol"], 4);
        p.min_protocol = 5;
        p.max_protocol = 9;
        assert!(check_protocol(&p).is_err());
    }

    #[test]
    fn labels_are_cleaned() {
        assert_eq!(clean_label("  a\u{7}b  ", "x"), "ab");
        assert_eq!(clean_label("\n", "fallback"), "fallback");
        // A right-to-left override that would show "Phone 321 456" as something else, and
        // zero-width characters that make two names look alike.
        assert_eq!(clean_label("Pho\u{202E}ne\u{200B}\u{FEFF}", "x"), "Phone");
        assert_eq!(
            clean_label("\u{2066}\u{2069}\u{200D}", "fallback"),
            "fallback"
        );
        assert_eq!(clean_label(&"z".repeat(200), "x").len(), MAX_LABEL);
    }
}
