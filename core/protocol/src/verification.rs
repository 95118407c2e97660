//! The pairing verification code: six digits the device and the host both show, so a person
//! can check that the request they approve comes from the device in their hand and reached the
//! host they mean.
//!
//! A code over the two public keys alone can be ground: a man in the middle makes keys until
//! one gives the code the device shows (a million tries, seconds of work). So the code also
//! covers a secret of the device's that it commits to before it sees the host's challenge:
//!
//! 1. The device picks a fresh pairing nonce `p` and sends the commitment
//!    `c = SHA-256("perch-pair-commit-v2" ‖ device key ‖ len(p) ‖ p)` as its client nonce in the
//!    WebSocket URL, before the host says anything.
//! 2. The host answers with its challenge nonce `n`, signed together with `c`.
//! 3. The device reveals `p` in `connect`; the host checks it against `c`.
//! 4. Both show `SHA-256("perch-pair-verify-v2" ‖ host key ‖ device key ‖ len(p) ‖ p ‖ len(n) ‖ n)`,
//!    the first 4 bytes big-endian modulo 1 000 000, as `"NNN NNN"`.
//!
//! A man in the middle has to fix its own keys and nonces on each side before it learns the
//! other side's secret, so each attempt matches with probability one in a million, and every
//! attempt shows up as a new code (the host lets a request's code change only a few times).
//! Lengths are 4-byte big-endian, so no two inputs hash the same bytes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::identity::{IdentityError, decode_public_key};

/// Domain separation for the commitment.
pub const COMMIT_CONTEXT: &[u8] = b"perch-pair-commit-v2";

/// Domain separation for the code.
pub const VERIFICATION_CONTEXT: &[u8] = b"perch-pair-verify-v2";

/// Longest pairing nonce the host accepts, in characters.
pub const MAX_PAIRING_NONCE_LEN: usize = 128;

/// A fresh pairing nonce: 32 random bytes, base64url.
pub fn new_pairing_nonce() -> Result<String, IdentityError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| IdentityError::Randomness(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The commitment a device sends as its client nonce before it sees the challenge.
pub fn pairing_commitment(device_public_key: &[u8; 32], pairing_nonce: &str) -> String {
    let digest = Sha256::new()
        .chain_update(COMMIT_CONTEXT)
        .chain_update(device_public_key)
        .chain_update(length_prefix(pairing_nonce))
        .chain_update(pairing_nonce.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Whether `pairing_nonce` opens `commitment` for this device key (base64url, as on the wire).
pub fn opens_commitment(
    commitment: &str,
    device_public_key: &str,
    pairing_nonce: &str,
) -> Result<bool, IdentityError> {
    if pairing_nonce.is_empty() || pairing_nonce.len() > MAX_PAIRING_NONCE_LEN {
        return Ok(false);
    }
    let key = decode_public_key(device_public_key)?.to_bytes();
    Ok(pairing_commitment(&key, pairing_nonce) == commitment)
}

/// The code both sides show, from base64url keys as sent on the wire
/// (`connect.challenge.host.publicKey`, `connect.device.publicKey`).
pub fn verification_code(
    host_public_key: &str,
    device_public_key: &str,
    pairing_nonce: &str,
    host_nonce: &str,
) -> Result<String, IdentityError> {
    let host = decode_public_key(host_public_key)?.to_bytes();
    let device = decode_public_key(device_public_key)?.to_bytes();
    Ok(verification_code_raw(
        &host,
        &device,
        pairing_nonce,
        host_nonce,
    ))
}

/// The code for raw keys; the roles are not interchangeable.
pub fn verification_code_raw(
    host_public_key: &[u8; 32],
    device_public_key: &[u8; 32],
    pairing_nonce: &str,
    host_nonce: &str,
) -> String {
    let digest = Sha256::new()
        .chain_update(VERIFICATION_CONTEXT)
        .chain_update(host_public_key)
        .chain_update(device_public_key)
        .chain_update(length_prefix(pairing_nonce))
        .chain_update(pairing_nonce.as_bytes())
        .chain_update(length_prefix(host_nonce))
        .chain_update(host_nonce.as_bytes())
        .finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format_code(n)
}

/// A string's byte length as 4 big-endian bytes (saturating; the inputs are bounded far below).
fn length_prefix(s: &str) -> [u8; 4] {
    u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes()
}

/// Writes a number below one million as `"NNN NNN"`, zero-padded.
fn format_code(n: u32) -> String {
    format!("{:03} {:03}", n / 1000, n % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceIdentity;

    /// The device test key (seed 00..1f, docs §4.5) and the host test key (seed 20..3f, docs
    /// §14.2).
    const DEVICE_KEY: &str = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg";
    const HOST_KEY: &str = "Kay64UG8yvCyLhqU000LxzYeUm0L_hLIl5S8kyKWbdc";
    const PAIRING_NONCE: &str = "pairing-nonce-for-the-known-answer";
    const HOST_NONCE: &str = "host-nonce-1";

    /// Computed independently of this crate, with Python's hashlib:
    /// ```text
    /// lp = lambda b: len(b).to_bytes(4, "big") + b
    /// d = sha256(b"perch-pair-verify-v2" + host + device + lp(p) + lp(n)).digest()
    ///   = ce6e13774b85a0ee606f571ba5c0f9285d3db6851e6dba64eb2f8cebb60db3ce
    /// int.from_bytes(d[:4], "big") % 1000000 = 320439
    /// urlsafe_b64(sha256(b"perch-pair-commit-v2" + device + lp(p)))
    ///   = spvOkzUS5cmjECNP1DRPIU4k9CYmv_FjV2yDbsNp_CM
    /// ```
    #[test]
    fn known_answers_for_the_test_keys() {
        assert_eq!(
            verification_code(HOST_KEY, DEVICE_KEY, PAIRING_NONCE, HOST_NONCE).unwrap(),
            "320 439"
        );
        let device = decode_public_key(DEVICE_KEY).unwrap().to_bytes();
        assert_eq!(
            pairing_commitment(&device, PAIRING_NONCE),
            "spvOkzUS5cmjECNP1DRPIU4k9CYmv_FjV2yDbsNp_CM"
        );
    }

    #[test]
    fn test_keys_are_the_documented_seeds() {
        let seed = |start: u8| std::array::from_fn::<u8, 32, _>(|i| start + i as u8);
        assert_eq!(
            DeviceIdentity::from_seed(&seed(0)).public_key_b64(),
            DEVICE_KEY
        );
        assert_eq!(
            DeviceIdentity::from_seed(&seed(0x20)).public_key_b64(),
            HOST_KEY
        );
    }

    #[test]
    fn the_commitment_opens_only_with_its_nonce_and_key() {
        let device = DeviceIdentity::from_seed(&[5; 32]);
        let p = new_pairing_nonce().unwrap();
        let c = pairing_commitment(&device.public_key_bytes(), &p);
        assert_eq!(opens_commitment(&c, &device.public_key_b64(), &p), Ok(true));
        let other = DeviceIdentity::from_seed(&[6; 32]).public_key_b64();
        assert_eq!(opens_commitment(&c, &other, &p), Ok(false));
        assert_eq!(
            opens_commitment(&c, &device.public_key_b64(), "another"),
            Ok(false)
        );
        assert_eq!(
            opens_commitment(&c, &device.public_key_b64(), ""),
            Ok(false)
        );
        let long = "a".repeat(MAX_PAIRING_NONCE_LEN + 1);
        assert_eq!(
            opens_commitment(&c, &device.public_key_b64(), &long),
            Ok(false)
        );
        assert_eq!(
            opens_commitment(&c, "!!!", &p),
            Err(IdentityError::BadPublicKey)
        );
        // A commitment is usable as a client nonce.
        assert!(crate::handshake::valid_client_nonce(&c));
    }

    #[test]
    fn every_input_changes_the_code() {
        let base = verification_code(HOST_KEY, DEVICE_KEY, "p", "n").unwrap();
        let other = DeviceIdentity::from_seed(&[2; 32]).public_key_b64();
        assert_ne!(
            verification_code(&other, DEVICE_KEY, "p", "n").unwrap(),
            base
        );
        assert_ne!(verification_code(HOST_KEY, &other, "p", "n").unwrap(), base);
        // Over many nonces the codes spread out (no constant, no swapped fields).
        let codes: std::collections::HashSet<_> = (0..200)
            .map(|i| verification_code(HOST_KEY, DEVICE_KEY, &format!("p{i}"), "n").unwrap())
            .collect();
        assert!(codes.len() > 190, "{}", codes.len());
        // Moving a byte between the two nonces changes the code: the lengths keep them apart.
        assert_ne!(
            verification_code(HOST_KEY, DEVICE_KEY, "ab", "c").unwrap(),
            verification_code(HOST_KEY, DEVICE_KEY, "a", "bc").unwrap()
        );
        // The roles are not interchangeable.
        assert_ne!(
            verification_code(DEVICE_KEY, HOST_KEY, "p", "n").unwrap(),
            base
        );
    }

    #[test]
    fn format_is_two_zero_padded_groups_of_three() {
        assert_eq!(format_code(48_213), "048 213");
        assert_eq!(format_code(0), "000 000");
        assert_eq!(format_code(7), "000 007");
        assert_eq!(format_code(999_999), "999 999");
        for s in 0..50u8 {
            let a = DeviceIdentity::from_seed(&[s; 32]).public_key_bytes();
            let code = verification_code_raw(&a, &[0x42; 32], "p", "n");
            let b = code.as_bytes();
            assert_eq!(b.len(), 7, "{code}");
            assert_eq!(b[3], b' ', "{code}");
            assert!(
                b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 3 || c.is_ascii_digit()),
                "{code}"
            );
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            verification_code("!!!", DEVICE_KEY, "p", "n"),
            Err(IdentityError::BadPublicKey)
        );
        assert_eq!(
            verification_code(HOST_KEY, "AAAA", "p", "n"),
            Err(IdentityError::BadPublicKey)
        );
    }
}
