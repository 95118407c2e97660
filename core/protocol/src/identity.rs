//! Ed25519 device identity: key generation, device ids, and the signed connect payload.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why an identity or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The public key is not base64url of 32 bytes forming a valid Ed25519 point.
    #[error("public key is not a valid base64url Ed25519 key")]
    BadPublicKey,
    /// The private key material is not 32 bytes of base64url.
    #[error("private key is not 32 bytes of base64url")]
    BadPrivateKey,
    /// The signature is not 64 bytes of base64url.
    #[error("signature is not 64 bytes of base64url")]
    BadSignatureEncoding,
    /// The signature does not verify.
    #[error("signature does not verify")]
    SignatureMismatch,
    /// The device id is not the SHA-256 of the public key.
    #[error("device id does not match the public key")]
    DeviceIdMismatch,
    /// The device id is not 64 lowercase hex characters.
    #[error("device id must be 64 lowercase hex characters")]
    BadDeviceId,
    /// The operating system could not provide randomness.
    #[error("no randomness available: {0}")]
    Randomness(String),
}

/// A device's stable id: lowercase hex SHA-256 of its raw 32-byte Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    /// Derives the id from raw public key bytes.
    pub fn from_public_key(raw: &[u8; 32]) -> Self {
        DeviceId(hex::encode(Sha256::digest(raw)))
    }

    /// Validates a wire id.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(DeviceId(s.to_string()))
        } else {
            Err(IdentityError::BadDeviceId)
        }
    }

    /// The id as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first characters, for tables and logs.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl TryFrom<String> for DeviceId {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeviceId::parse(&s)
    }
}

impl From<DeviceId> for String {
    fn from(d: DeviceId) -> String {
        d.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host's short id: the first 16 hex characters of its key fingerprint, so an advertised id
/// that does not match the key is self-evidently forged.
pub fn host_id_for(fingerprint: &str) -> String {
    fingerprint.chars().take(16).collect()
}

/// Decodes a base64url (no padding) raw Ed25519 public key.
pub fn decode_public_key(b64: &str) -> Result<VerifyingKey, IdentityError> {
    if b64.len() > 1024 {
        return Err(IdentityError::BadPublicKey);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|_| IdentityError::BadPublicKey)?;
    let raw: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| IdentityError::BadPublicKey)?;
    let key = VerifyingKey::from_bytes(&raw).map_err(|_| IdentityError::BadPublicKey)?;
    // A small-order key signs nothing of its own: no honest device has one.
    if key.is_weak() {
        return Err(IdentityError::BadPublicKey);
    }
    Ok(key)
}

/// Checks that `device_id` is the hash of `public_key` and that `signature` signs `payload`.
pub fn verify_device_signature(
    device_id: &str,
    public_key_b64: &str,
    signature_b64: &str,
    payload: &str,
) -> Result<DeviceId, IdentityError> {
    let key = decode_public_key(public_key_b64)?;
    let derived = DeviceId::from_public_key(key.as_bytes());
    if derived.as_str() != device_id {
        return Err(IdentityError::DeviceIdMismatch);
    }
    if signature_b64.len() > 256 {
        return Err(IdentityError::BadSignatureEncoding);
    }
    let sig_bytes = URL_SAFE_NO_PAD
        .decode(signature_b64.trim_end_matches('='))
        .map_err(|_| IdentityError::BadSignatureEncoding)?;
    let sig_raw: [u8; 64] = sig_bytes
        .as_slice()
        .try_into()
        .map_err(|_| IdentityError::BadSignatureEncoding)?;
    let sig = Signature::from_bytes(&sig_raw);
    // Strict: refuses weak (small-order) keys and non-canonical signatures, so one key has one
    // valid signature per message and no crafted key verifies everything.
    key.verify_strict(payload.as_bytes(), &sig)
        .map_err(|_| IdentityError::SignatureMismatch)?;
    Ok(derived)
}

/// A device's private identity. Deliberately not `Debug`, `Serialize` or `Display`, so the
/// private key cannot leak into logs by accident.
pub struct DeviceIdentity {
    key: SigningKey,
}

impl DeviceIdentity {
    /// A fresh random identity.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| IdentityError::Randomness(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// An identity from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Restores an identity from its base64url seed (as kept in the identity file).
    pub fn from_private_b64(b64: &str) -> Result<Self, IdentityError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(b64.trim())
            .map_err(|_| IdentityError::BadPrivateKey)?;
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::BadPrivateKey)?;
        Ok(Self::from_seed(&seed))
    }

    /// The seed as base64url, for the identity file only.
    pub fn private_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.to_bytes())
    }

    /// The raw public key as base64url, as sent in `connect.device.publicKey`.
    pub fn public_key_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes())
    }

    /// The raw public key bytes.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(self.key.verifying_key().as_bytes())
    }

    /// Signs raw bytes, for certificates this key issues (the host's TLS certificate).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Signs a payload string; returns base64url of the 64-byte signature.
    pub fn sign_b64(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes())
    }
}

/// Normalizes `platform` and `deviceFamily` for signing: trimmed, ASCII A–Z lower-cased only.
fn normalize_meta(s: Option<&str>) -> String {
    s.map(|v| {
        v.trim()
            .chars()
            .map(|c| {
                if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The fields a device signs when it connects (OpenClaw's v3 payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedConnectV3<'a> {
    /// The device id.
    pub device_id: &'a str,
    /// `client.id`.
    pub client_id: &'a str,
    /// `client.mode`.
    pub client_mode: &'a str,
    /// `role`.
    pub role: &'a str,
    /// `scopes`, joined with commas.
    pub scopes: &'a [String],
    /// `device.signedAt`, ms since the epoch.
    pub signed_at_ms: i64,
    /// The auth token actually sent, or "".
    pub token: &'a str,
    /// The challenge nonce.
    pub nonce: &'a str,
    /// `client.platform`.
    pub platform: Option<&'a str>,
    /// `client.deviceFamily`.
    pub device_family: Option<&'a str>,
}

impl SignedConnectV3<'_> {
    /// The exact string that is signed.
    pub fn payload(&self) -> String {
        format!(
            "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.device_id,
            self.client_id,
            self.client_mode,
            self.role,
            self.scopes.join(","),
            self.signed_at_ms,
            self.token,
            self.nonce,
            normalize_meta(self.platform),
            normalize_meta(self.device_family),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference example string for the v3 payload.
    #[test]
    fn v3_payload_matches_reference_vector() {
        let scopes = vec!["operator.admin".to_string(), "operator.read".to_string()];
        let p = SignedConnectV3 {
            device_id: "dev-1",
            client_id: "openclaw-macos",
            client_mode: "ui",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1_700_000_000_000,
            token: "tok-123",
            nonce: "nonce-abc",
            platform: Some("  iOS "),
            device_family: Some("iPhone"),
        };
        assert_eq!(
            p.payload(),
            "v3|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000|tok-123|nonce-abc|ios|iphone"
        );
    }

    #[test]
    fn absent_metadata_signs_as_empty() {
        let p = SignedConnectV3 {
            device_id: "d",
            client_id: "c",
            client_mode: "node",
            role: "node",
            scopes: &[],
            signed_at_ms: 1,
            token: "",
            nonce: "n",
            platform: None,
            device_family: None,
        };
        assert_eq!(p.payload(), "v3|d|c|node|node||1||n||");
    }

    #[test]
    fn only_ascii_uppercase_is_lowered() {
        assert_eq!(normalize_meta(Some(" ÄLinux ")), "Älinux");
    }

    /// Seed 0x00..0x1f. The expected public key and signature were computed independently
    /// with OpenSSL 3 (`openssl pkeyutl -sign -rawin` over a PKCS#8 key holding this seed),
    /// not with this crate.
    const SEED: [u8; 32] = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
        25, 26, 27, 28, 29, 30, 31,
    ];
    const OPENSSL_PUBLIC_KEY_HEX: &str =
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    const OPENSSL_SIGNATURE_HEX: &str = "a178811aa8baf4d4ad6f749e35e69aeb2a0c1cced601559d4187f9a86cf1ffda1a13584bba09d9fed1575ddb6de77dae3e52d527314ac9998b0cc36ec73e560c";
    const FIXED_PAYLOAD: &str = "v3|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000|tok-123|nonce-abc|ios|iphone";

    #[test]
    fn signature_matches_openssl() {
        let id = DeviceIdentity::from_seed(&SEED);
        assert_eq!(hex::encode(id.public_key_bytes()), OPENSSL_PUBLIC_KEY_HEX);
        let sig = URL_SAFE_NO_PAD.decode(id.sign_b64(FIXED_PAYLOAD)).unwrap();
        assert_eq!(hex::encode(sig), OPENSSL_SIGNATURE_HEX);
    }

    #[test]
    fn device_id_is_sha256_of_raw_key() {
        let id = DeviceIdentity::from_seed(&SEED);
        let expected = hex::encode(Sha256::digest(id.public_key_bytes()));
        assert_eq!(id.device_id().as_str(), expected);
        assert_eq!(DeviceId::parse(&expected).unwrap(), id.device_id());
    }

    #[test]
    fn verify_accepts_good_and_rejects_bad() {
        let id = DeviceIdentity::from_seed(&SEED);
        let sig = id.sign_b64("hello");
        let dev = id.device_id();
        assert_eq!(
            verify_device_signature(dev.as_str(), &id.public_key_b64(), &sig, "hello").unwrap(),
            dev
        );
        assert_eq!(
            verify_device_signature(dev.as_str(), &id.public_key_b64(), &sig, "hellO"),
            Err(IdentityError::SignatureMismatch)
        );
        let other = DeviceIdentity::from_seed(&[7; 32]);
        assert_eq!(
            verify_device_signature(dev.as_str(), &other.public_key_b64(), &sig, "hello"),
            Err(IdentityError::DeviceIdMismatch)
        );
        assert_eq!(
            verify_device_signature(dev.as_str(), "!!!", &sig, "hello"),
            Err(IdentityError::BadPublicKey)
        );
        assert_eq!(
            verify_device_signature(dev.as_str(), &id.public_key_b64(), "AAAA", "hello"),
            Err(IdentityError::BadSignatureEncoding)
        );
    }

    /// The identity point as a public key, with R = identity and S = 0, satisfies the plain
    /// Ed25519 equation for every message; only a strict check refuses it.
    #[test]
    fn a_weak_key_verifies_nothing() {
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let mut sig = [0u8; 64];
        sig[0] = 1;
        use ed25519_dalek::Verifier;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&weak).unwrap();
        let signature = Signature::from_bytes(&sig);
        assert!(
            key.verify(b"anything", &signature).is_ok(),
            "the forgery works without the strict check"
        );
        let key_b64 = URL_SAFE_NO_PAD.encode(weak);
        let dev = DeviceId::from_public_key(&weak);
        assert_eq!(
            verify_device_signature(
                dev.as_str(),
                &key_b64,
                &URL_SAFE_NO_PAD.encode(sig),
                "anything"
            ),
            Err(IdentityError::BadPublicKey)
        );
        assert!(
            key.verify_strict(b"anything", &signature).is_err(),
            "and the strict check refuses it on its own"
        );
    }

    #[test]
    fn private_key_round_trips() {
        let id = DeviceIdentity::generate().unwrap();
        let back = DeviceIdentity::from_private_b64(&id.private_b64()).unwrap();
        assert_eq!(back.device_id(), id.device_id());
        assert!(DeviceIdentity::from_private_b64("short").is_err());
    }

    #[test]
    fn device_id_rejects_non_hex() {
        assert!(DeviceId::parse("ABC").is_err());
        assert!(DeviceId::parse(&"G".repeat(64)).is_err());
        assert!(DeviceId::parse(&"A".repeat(64)).is_err());
    }
}
