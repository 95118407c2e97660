//! The client side: a rustls verifier that accepts a host only by the identity key its chain
//! proves (no certificate authorities, no names), and records what it saw so the caller can
//! say which host answered and tie the TLS key to the host's signed challenge.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::chain::{ChainError, verify_chain};

/// Which host key a TLS connection must prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPin {
    /// The key with this fingerprint (a pin, a setup code, the key file next to the token).
    Fingerprint(String),
    /// Any Perch host key, on first contact; the caller then holds the host's challenge to the
    /// key TLS saw ([`Seen::proved`]).
    FirstUse,
}

/// What the verifier saw on the last handshake, for messages and for the first-use check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The chain proved this host key fingerprint (and it matched the pin, if any).
    Proved(String),
    /// The chain proved another key than the pinned one.
    Mismatch {
        /// The fingerprint that was expected.
        pinned: String,
        /// The fingerprint the host proved.
        found: String,
    },
    /// The chain proved no Perch host key at all.
    NotAPerchHost(ChainError),
}

/// The verifier's record, shared with the caller that made the config.
#[derive(Debug, Clone, Default)]
pub struct Seen(Arc<Mutex<Option<Observation>>>);

impl Seen {
    /// What the last handshake showed, if it got as far as a certificate.
    pub fn get(&self) -> Option<Observation> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The fingerprint the last handshake proved and accepted.
    pub fn proved(&self) -> Option<String> {
        match self.get() {
            Some(Observation::Proved(fp)) => Some(fp),
            _ => None,
        }
    }

    fn set(&self, o: Observation) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(o);
    }
}

/// A client config that trusts exactly `pin`, and the record of what it saw.
pub fn client_config(pin: HostPin) -> Result<(Arc<rustls::ClientConfig>, Seen), crate::TlsError> {
    let provider = Arc::new(crate::crypto_provider());
    let seen = Seen::default();
    let verifier = Arc::new(PinnedHostVerifier {
        pin,
        seen: seen.clone(),
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| crate::TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), seen))
}

/// Trusts a chain only for the host key it proves; the name in the URL plays no part (hosts
/// are reached by LAN addresses that no certificate could name reliably).
#[derive(Debug)]
struct PinnedHostVerifier {
    pin: HostPin,
    seen: Seen,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedHostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let proved = match verify_chain(end_entity, intermediates, now) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "the host's certificate proves no Perch host key");
                self.seen.set(Observation::NotAPerchHost(e));
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ));
            }
        };
        if let HostPin::Fingerprint(pinned) = &self.pin
            && !pinned.eq_ignore_ascii_case(&proved.fingerprint)
        {
            self.seen.set(Observation::Mismatch {
                pinned: pinned.clone(),
                found: proved.fingerprint,
            });
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        self.seen.set(Observation::Proved(proved.fingerprint));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
