//! Bearer secrets the host mints: device tokens, the operator token, nonces.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// File in the data directory that holds the operator token.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// Why a secret could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The OS has no randomness to give.
    #[error("no randomness available: {0}")]
    Randomness(String),
    /// The token file could not be read or written.
    #[error("operator token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token file exists but holds no usable token.
    #[error("operator token file {0} is empty or malformed; delete it to mint a new token")]
    Malformed(PathBuf),
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
    let io = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(mut f) => {
            f.write_all(token.as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok(token)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_operator_token(&path),
        Err(e) => Err(io(e)),
    }
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
    fn malformed_token_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(operator_token_path(dir.path()), "  \n").unwrap();
        assert!(matches!(
            load_or_create_operator_token(dir.path()),
            Err(SecretError::Malformed(_))
        ));
    }
}
