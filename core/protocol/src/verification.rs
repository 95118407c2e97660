//! The pairing verification code: six digits both sides compute from the host's and the
//! device's public keys, so a person can check that the request they approve comes from the
//! device in their hand and reached the host they mean (no one in between swapped a key).
//!
//! Value: SHA-256 over `perch-pair-verify-v1` followed by the two raw 32-byte keys in ascending
//! byte order (so the order of the arguments does not matter); the first 4 bytes as a
//! big-endian integer, modulo 1 000 000, written as two groups of three digits: `"048 213"`.

use sha2::{Digest, Sha256};

use crate::identity::{IdentityError, decode_public_key};

/// Domain separation for the hash, so the code cannot collide with any other use of the keys.
pub const VERIFICATION_CONTEXT: &[u8] = b"perch-pair-verify-v1";

/// The code for a host key and a device key, both base64url raw Ed25519 public keys as sent on
/// the wire (`connect.challenge.host.publicKey`, `connect.device.publicKey`).
pub fn verification_code(
    host_public_key: &str,
    device_public_key: &str,
) -> Result<String, IdentityError> {
    let host = decode_public_key(host_public_key)?.to_bytes();
    let device = decode_public_key(device_public_key)?.to_bytes();
    Ok(verification_code_raw(&host, &device))
}

/// The code for two raw public keys; symmetric in its arguments.
pub fn verification_code_raw(a: &[u8; 32], b: &[u8; 32]) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::new()
        .chain_update(VERIFICATION_CONTEXT)
        .chain_update(low)
        .chain_update(high)
        .finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format_code(n)
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

    /// Computed independently of this crate, with Python's hashlib:
    /// ```text
    /// a, b = sorted([b64url(HOST_KEY), b64url(DEVICE_KEY)])
    /// d = hashlib.sha256(b"perch-pair-verify-v1" + a + b).digest()
    ///   = 600a8f0731baddc24778522cc7dd27c46f88c414bd88e8d6241c5ad9b8609286
    /// int.from_bytes(d[:4], "big") % 1000000 = 304711
    /// ```
    #[test]
    fn known_answer_for_the_test_keys() {
        assert_eq!(verification_code(HOST_KEY, DEVICE_KEY).unwrap(), "304 711");
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
    fn symmetric_in_its_arguments() {
        assert_eq!(
            verification_code(HOST_KEY, DEVICE_KEY).unwrap(),
            verification_code(DEVICE_KEY, HOST_KEY).unwrap()
        );
        for s in 0..20u8 {
            let a = DeviceIdentity::from_seed(&[s; 32]);
            let b = DeviceIdentity::from_seed(&[s.wrapping_add(100); 32]);
            assert_eq!(
                verification_code(&a.public_key_b64(), &b.public_key_b64()).unwrap(),
                verification_code(&b.public_key_b64(), &a.public_key_b64()).unwrap()
            );
        }
    }

    #[test]
    fn format_is_two_zero_padded_groups_of_three() {
        assert_eq!(format_code(48_213), "048 213");
        assert_eq!(format_code(0), "000 000");
        assert_eq!(format_code(7), "000 007");
        assert_eq!(format_code(999_999), "999 999");
        for s in 0..50u8 {
            let a = DeviceIdentity::from_seed(&[s; 32]).public_key_bytes();
            let code = verification_code_raw(&a, &[0x42; 32]);
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
    fn different_devices_get_different_codes() {
        let a = DeviceIdentity::from_seed(&[1; 32]).public_key_b64();
        let b = DeviceIdentity::from_seed(&[2; 32]).public_key_b64();
        assert_ne!(
            verification_code(HOST_KEY, &a).unwrap(),
            verification_code(HOST_KEY, &b).unwrap()
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            verification_code("!!!", DEVICE_KEY),
            Err(IdentityError::BadPublicKey)
        );
        assert_eq!(
            verification_code(HOST_KEY, "AAAA"),
            Err(IdentityError::BadPublicKey)
        );
    }
}
