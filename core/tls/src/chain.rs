//! The host's certificate chain and what it proves: a leaf (the key TLS uses) issued by a
//! certificate whose key is the host's Ed25519 identity key. Checking a chain yields that
//! identity key, which the caller compares with the fingerprint it pinned.

use rustls::pki_types::{CertificateDer, UnixTime};

use perch_protocol::identity::DeviceId;

/// The DER of an Ed25519 SubjectPublicKeyInfo's contents before the 32 key bytes (RFC 8410 §4):
/// the algorithm identifier (OID 1.3.101.112, no parameters) and the BIT STRING header.
const ED25519_SPKI_PREFIX: [u8; 10] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Why a presented chain proves no host key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Not exactly a leaf and the certificate of the key that issued it.
    #[error(
        "the host sent {0} certificates; a Perch host sends its TLS certificate and the certificate of its identity key"
    )]
    Shape(usize),
    /// The issuer certificate is not DER a verifier can read.
    #[error("the host's identity certificate cannot be read: {0}")]
    BadIssuer(String),
    /// The issuer's key is not an Ed25519 key.
    #[error("the host's identity certificate does not carry an Ed25519 key")]
    NotEd25519,
    /// The leaf is not signed by the issuer's key, or not meant for a TLS server.
    #[error("the host's TLS certificate is not issued by its identity key: {0}")]
    NotIssued(String),
}

/// The host identity a chain proved: its raw Ed25519 key and the fingerprint pins are kept as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvedHost {
    /// The raw public key.
    pub key: [u8; 32],
    /// Lowercase hex SHA-256 of the key (the fingerprint in setup codes, mDNS and pins).
    pub fingerprint: String,
}

/// Checks that `end_entity` was issued, for a TLS server, by the key in the one certificate
/// of `intermediates`, and returns that key. Validity dates are not what trust rests on (the
/// pin is), and the host issues certificates valid for decades, so a phone with a wrong clock
/// still connects.
pub fn verify_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<ProvedHost, ChainError> {
    let [issuer] = intermediates else {
        return Err(ChainError::Shape(intermediates.len() + 1));
    };
    let anchor = webpki::anchor_from_trusted_cert(issuer)
        .map_err(|e| ChainError::BadIssuer(e.to_string()))?;
    let key = ed25519_key(anchor.subject_public_key_info.as_ref())?;
    let leaf = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| ChainError::NotIssued(e.to_string()))?;
    leaf.verify_for_usage(
        &[webpki::ring::ED25519],
        std::slice::from_ref(&anchor),
        &[],
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| ChainError::NotIssued(e.to_string()))?;
    Ok(ProvedHost {
        key,
        fingerprint: DeviceId::from_public_key(&key).to_string(),
    })
}

/// The raw key of an Ed25519 SubjectPublicKeyInfo (its contents, without the outer SEQUENCE).
fn ed25519_key(spki: &[u8]) -> Result<[u8; 32], ChainError> {
    spki.strip_prefix(&ED25519_SPKI_PREFIX[..])
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or(ChainError::NotEd25519)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_are_read_and_others_refused() {
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend([7u8; 32]);
        assert_eq!(ed25519_key(&spki), Ok([7u8; 32]));
        assert_eq!(ed25519_key(&spki[..41]), Err(ChainError::NotEd25519));
        let mut longer = spki.clone();
        longer.push(0);
        assert_eq!(ed25519_key(&longer), Err(ChainError::NotEd25519));
        // The same length under another algorithm (X25519, OID 1.3.101.110).
        spki[6] = 0x6e;
        assert_eq!(ed25519_key(&spki), Err(ChainError::NotEd25519));
    }

    #[test]
    fn a_chain_of_the_wrong_shape_is_refused() {
        let leaf = CertificateDer::from(vec![0x30, 0x00]);
        assert_eq!(
            verify_chain(&leaf, &[], UnixTime::now()),
            Err(ChainError::Shape(1))
        );
        let two = [leaf.clone(), leaf.clone()];
        assert_eq!(
            verify_chain(&leaf, &two, UnixTime::now()),
            Err(ChainError::Shape(3))
        );
        assert!(matches!(
            verify_chain(&leaf, std::slice::from_ref(&leaf), UnixTime::now()),
            Err(ChainError::BadIssuer(_))
        ));
    }
}
