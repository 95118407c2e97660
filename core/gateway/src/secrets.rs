//! Bearer secrets the host mints: device tokens, the operator token, nonces.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use perch_protocol::DeviceIdentity;

/// File in the data directory that holds the operator token.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// Why a secret could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The OS has no randomness to give.
    #[error("no randomness available: {0}")]
    Randomness(String),
    /// A secret file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret file exists but holds nothing usable.
    #[error(
        "{0} is empty or malformed; restore it from a backup or delete it to mint a new one (devices paired with this host will then need to pair again)"
    )]
    Malformed(PathBuf),
}

/// File in the data directory that holds the host's Ed25519 key.
pub const HOST_IDENTITY_FILE: &str = "host-identity.json";

/// Reads the host's signing key, minting it (mode 0600) on first run. Its fingerprint is what
/// nodes pin, so a file that exists but does not parse is an error, never silently replaced.
pub fn load_or_create_host_identity(data_dir: &Path) -> Result<DeviceIdentity, SecretError> {
    let path = data_dir.join(HOST_IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|_| SecretError::Malformed(path.clone()))?;
            let key = v
                .get("privateKey")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| SecretError::Malformed(path.clone()))?;
            DeviceIdentity::from_private_b64(key).map_err(|_| SecretError::Malformed(path.clone()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity =
                DeviceIdentity::generate().map_err(|e| SecretError::Randomness(e.to_string()))?;
            let fingerprint = identity.device_id().to_string();
            let body = serde_json::json!({
                "version": 1,
                "hostId": perch_protocol::identity::host_id_for(&fingerprint),
                "fingerprint": fingerprint,
                "publicKey": identity.public_key_b64(),
                "privateKey": identity.private_b64(),
            });
            write_private(&path, format!("{body:#}\n").as_bytes())?;
            // Read back: a concurrent first start may have written first, and the file wins.
            load_or_create_host_identity(data_dir)
        }
        Err(source) => Err(SecretError::Io { path, source }),
    }
}

/// The fingerprint of the host key in `data_dir`, derived from the key itself (not from the
/// file's other fields), or `None` when the host there has never started. What operator
/// clients on this machine expect the host to prove before they send the operator token.
pub fn read_host_fingerprint(data_dir: &Path) -> Result<Option<String>, SecretError> {
    if !data_dir.join(HOST_IDENTITY_FILE).exists() {
        return Ok(None);
    }
    load_or_create_host_identity(data_dir).map(|id| Some(id.device_id().to_string()))
}

/// Creates `path` with mode 0600 and `bytes`, failing if it already exists.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    let io = |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(bytes).map_err(io)?;
            f.sync_all().map_err(io)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// `n` random bytes, base64url.
pub fn random_b64(n: usize) -> Result<String, SecretError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| SecretError::Randomness(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A fresh bearer token (256 bits).
pub fn new_token() -> Result<String, SecretError> {
    random_b64(32)
}

/// What the store keeps instead of the token itself.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares secrets without leaking where they differ through timing.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Path of the operator token file in a data directory.
pub fn operator_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(OPERATOR_TOKEN_FILE)
}

/// Reads the operator token, minting it (mode 0600) on first run.
pub fn load_or_create_operator_token(data_dir: &Path) -> Result<String, SecretError> {
    let path = operator_token_path(data_dir);
    match read_operator_token(&path) {
        Ok(t) => return Ok(t),
        Err(SecretError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = new_token()?;
    write_private(&path, format!("{token}\n").as_bytes())?;
    // Another process may have created it first: the file is the truth.
    read_operator_token(&path)
}

/// Reads an existing operator token file.
pub fn read_operator_token(path: &Path) -> Result<String, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.len() < 16 || token.contains(char::is_whitespace) {
        return Err(SecretError::Malformed(path.to_path_buf()));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hashes_stable() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert!(secrets_equal(&a, &a.clone()));
        assert!(!secrets_equal(&a, &b));
        assert!(!secrets_equal("short", "longer"));
    }

    #[test]
    fn operator_token_is_created_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let t1 = load_or_create_operator_token(dir.path()).unwrap();
        let t2 = load_or_create_operator_token(dir.path()).unwrap();
        assert_eq!(t1, t2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(operator_token_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn host_identity_is_created_once_with_0600_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_host_identity(dir.path()).unwrap();
        let b = load_or_create_host_identity(dir.path()).unwrap();
        assert_eq!(a.device_id(), b.device_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(HOST_IDENTITY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(HOST_IDENTITY_FILE), "{}").unwrap();
        assert!(matches!(
            load_or_create_host_identity(dir.path()),
            Err(SecretError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_token_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(operator_token_path(dir.path()), "  \n").unwrap();
        assert!(matches!(
            load_or_create_operator_token(dir.path()),
            Err(SecretError::Malformed(_))
        ));
    }
}
