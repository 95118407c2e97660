//! Perch TLS: the host's certificate, issued by the host identity key, and the client side that
//! trusts a host only by that key.
//!
//! Nodes and operator clients already pin the host's Ed25519 key (setup codes, mDNS and pins
//! carry its fingerprint). The host's TLS chain ends in a certificate of that same key, so TLS
//! needs no new trust root and no certificate authority: a client checks that the chain proves
//! the pinned key, and the host's signed challenge on top stays bound to the connection.
//!
//! **Architecture Invariant:** no client verifier here consults a root store or a host name;
//! the only thing a `wss://` connection trusts is the host identity key.
//!
//! **Architecture Invariant:** the host identity key never leaves `DeviceIdentity`; certificates
//! are signed through it (feature `host`), and nodes build without the issuing code.

mod chain;
mod dial;
#[cfg(feature = "host")]
mod issue;
mod pin;

pub use chain::{ChainError, ProvedHost, verify_chain};
pub use dial::{DialError, Dialed, HostSocket, TLS_REQUIRED_STATUS, dial, dial_host, secure_url};
#[cfg(feature = "host")]
pub use issue::{CERT_FILE, HostCertificate, IssueError, KEY_FILE};
pub use pin::{HostPin, Observation, Seen, client_config};

/// Why a TLS configuration could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The one crypto provider every Perch TLS config uses (ring: no C toolchain beyond cc, small
/// enough for the phone libraries).
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
