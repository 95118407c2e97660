//! The host side: a TLS certificate issued by the host identity key, kept in the data directory
//! across restarts (a browser's exception for it then lasts), and the rustls server config.
//!
//! The chain is two certificates: the leaf, whose P-256 key does the TLS handshake (browsers do
//! not accept Ed25519 there), and a self-signed certificate of the host's Ed25519 identity key
//! that issued it. Clients pin the identity key, so the fingerprint already in setup codes,
//! mDNS and every node's pin covers TLS too, and the leaf can be reissued freely.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PublicKeyData,
    SignatureAlgorithm, SigningKey,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

use perch_protocol::identity::DeviceIdentity;

use crate::chain::verify_chain;

/// The leaf's key (PKCS#8 PEM, mode 0600) in the data directory.
pub const KEY_FILE: &str = "tls-key.pem";
/// The chain (leaf, then the identity key's certificate) in the data directory.
pub const CERT_FILE: &str = "tls-cert.pem";

/// Why the host has no TLS certificate.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The files could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// rcgen refused to make the certificate or key.
    #[error("cannot issue the TLS certificate: {0}")]
    Issue(String),
    /// rustls refused the certificate and key.
    #[error("the TLS certificate cannot be served: {0}")]
    Serve(String),
}

/// The host's certificate chain and its key, ready to serve.
pub struct HostCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for HostCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCertificate")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl HostCertificate {
    /// The certificate in `data_dir` if it is still issued by `host`, else a new one (written
    /// back, key 0600). A file that is missing, unreadable or for another key is replaced.
    pub fn load_or_issue(data_dir: &Path, host: &DeviceIdentity) -> Result<Self, IssueError> {
        let key_path = data_dir.join(KEY_FILE);
        let cert_path = data_dir.join(CERT_FILE);
        match Self::load(&key_path, &cert_path, host) {
            Some(found) => return Ok(found),
            None => tracing::info!("issuing the host's TLS certificate"),
        }
        let issued = Self::issue(host)?;
        issued.save(&key_path, &cert_path)?;
        Ok(issued)
    }

    /// A fresh certificate from `host`, not saved.
    pub fn issue(host: &DeviceIdentity) -> Result<Self, IssueError> {
        let bad = |e: rcgen::Error| IssueError::Issue(e.to_string());
        let signer = IdentitySigner::new(host);
        let host_id = perch_protocol::identity::host_id_for(host.device_id().as_str());
        let mut ca = CertificateParams::default();
        ca.distinguished_name = name(&format!("Perch host {host_id} identity"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_cert = ca.self_signed(&signer).map_err(bad)?;
        let issuer = Issuer::new(ca, signer);

        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(bad)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).map_err(bad)?;
        leaf.distinguished_name = name(&format!("Perch host {host_id}"));
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(bad)?;
        Ok(Self {
            chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        })
    }

    /// The rustls server config: TLS 1.3 only, HTTP/1.1, no client certificates.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, IssueError> {
        let bad = |e: rustls::Error| IssueError::Serve(e.to_string());
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(crate::crypto_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(bad)?
                .with_no_client_auth()
                .with_single_cert(
                    self.chain.clone(),
                    PrivateKeyDer::Pkcs8(self.key.clone_key()),
                )
                .map_err(bad)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The chain as served: the leaf, then the identity key's certificate.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    fn load(key_path: &Path, cert_path: &Path, host: &DeviceIdentity) -> Option<Self> {
        let key = PrivatePkcs8KeyDer::from_pem_file(key_path).ok()?;
        let chain = CertificateDer::pem_file_iter(cert_path)
            .ok()?
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        let [leaf, issuer] = chain.as_slice() else {
            return None;
        };
        let proved = verify_chain(leaf, std::slice::from_ref(issuer), UnixTime::now()).ok()?;
        if proved.key != host.public_key_bytes() {
            tracing::info!("the stored TLS certificate is for another host key");
            return None;
        }
        // The stored key must be the leaf's.
        let certified = rustls::sign::CertifiedKey::from_der(
            chain.clone(),
            PrivateKeyDer::Pkcs8(key.clone_key()),
            &crate::crypto_provider(),
        );
        if certified.is_err_and(|e| {
            tracing::info!(error = %e, "the stored TLS key does not match its certificate");
            true
        }) {
            return None;
        }
        Some(Self { chain, key })
    }

    fn save(&self, key_path: &Path, cert_path: &Path) -> Result<(), IssueError> {
        let write = |path: &Path, text: String, private: bool| {
            write_file(path, text.as_bytes(), private).map_err(|source| IssueError::Write {
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_pem: String = self
            .chain
            .iter()
            .map(|c| pem("CERTIFICATE", c.as_ref()))
            .collect();
        write(
            key_path,
            pem("PRIVATE KEY", self.key.secret_pkcs8_der()),
            true,
        )?;
        write(cert_path, cert_pem, false)
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn pem(label: &str, der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new(label, der))
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The host identity as an rcgen signer, so the identity key never leaves `DeviceIdentity`.
struct IdentitySigner<'a> {
    host: &'a DeviceIdentity,
    public: [u8; 32],
}

impl<'a> IdentitySigner<'a> {
    fn new(host: &'a DeviceIdentity) -> Self {
        Self {
            host,
            public: host.public_key_bytes(),
        }
    }
}

impl PublicKeyData for IdentitySigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

impl SigningKey for IdentitySigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.host.sign_raw(msg).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_chain_proves_the_host_key() {
        let host = DeviceIdentity::generate().unwrap();
        let cert = HostCertificate::issue(&host).unwrap();
        let [leaf, issuer] = cert.chain() else {
            panic!("two certificates")
        };
        let proved = verify_chain(leaf, std::slice::from_ref(issuer), UnixTime::now()).unwrap();
        assert_eq!(proved.key, host.public_key_bytes());
        assert_eq!(proved.fingerprint, host.device_id().to_string());
        cert.server_config().unwrap();
    }

    #[test]
    fn a_leaf_under_another_identity_certificate_is_refused() {
        let host = DeviceIdentity::generate().unwrap();
        let other = DeviceIdentity::generate().unwrap();
        let a = HostCertificate::issue(&host).unwrap();
        let b = HostCertificate::issue(&other).unwrap();
        // A's leaf presented with B's identity certificate: B's key did not sign it.
        let err = verify_chain(&a.chain()[0], &b.chain()[1..], UnixTime::now()).unwrap_err();
        assert!(matches!(err, crate::ChainError::NotIssued(_)), "{err:?}");
        // The identity certificate presented as the leaf: not for a TLS server, not issued.
        let err = verify_chain(&a.chain()[1], &a.chain()[1..], UnixTime::now()).unwrap_err();
        assert!(matches!(err, crate::ChainError::NotIssued(_)), "{err:?}");
    }

    #[test]
    fn the_certificate_is_kept_across_restarts_and_reissued_for_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let host = DeviceIdentity::generate().unwrap();
        let first = HostCertificate::load_or_issue(dir.path(), &host).unwrap();
        let again = HostCertificate::load_or_issue(dir.path(), &host).unwrap();
        assert_eq!(first.chain(), again.chain());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = DeviceIdentity::generate().unwrap();
        let moved = HostCertificate::load_or_issue(dir.path(), &other).unwrap();
        assert_ne!(moved.chain(), first.chain());
        let proved = verify_chain(&moved.chain()[0], &moved.chain()[1..], UnixTime::now()).unwrap();
        assert_eq!(proved.key, other.public_key_bytes());
    }

    #[test]
    fn damaged_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let host = DeviceIdentity::generate().unwrap();
        let first = HostCertificate::load_or_issue(dir.path(), &host).unwrap();
        std::fs::write(dir.path().join(CERT_FILE), "not a certificate").unwrap();
        let second = HostCertificate::load_or_issue(dir.path(), &host).unwrap();
        assert_ne!(first.chain(), second.chain());
        // A key that is not the certificate's.
        let third_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), third_key.serialize_pem()).unwrap();
        let third = HostCertificate::load_or_issue(dir.path(), &host).unwrap();
        assert_ne!(third.chain(), second.chain());
        let reread = HostCertificate::load_or_issue(dir.path(), &host).unwrap();
        assert_eq!(reread.chain(), third.chain());
    }
}
