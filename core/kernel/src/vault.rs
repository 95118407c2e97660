//! Where Perch keeps model credentials: the OS keyring (Keychain, Secret Service, Credential
//! Manager) through the `keyring` crate, and only where no keyring answers, a file in the data
//! directory with mode 0600 — said out loud by `perch doctor` and `perch auth status`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::credential_origins::CredentialOrigins;
use crate::credentials::{KEYRING_SERVICE, Secret, SecretSources};

/// The fallback file in the data directory.
pub const SECRETS_FILE: &str = "secrets.json";

/// Where secrets end up on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The OS keyring answered.
    Keyring,
    /// No keyring: the 0600 file, and why.
    File {
        /// The file.
        path: PathBuf,
        /// What the keyring said.
        reason: String,
    },
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Keyring => f.write_str("the OS keyring"),
            Backend::File { path, reason } => write!(
                f,
                "the file {} (mode 0600), because no OS keyring is available ({reason})",
                path.display()
            ),
        }
    }
}

/// Why a secret could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The fallback file could not be written or read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The fallback file is not valid JSON.
    #[error("{0} is corrupt; fix or remove it")]
    Corrupt(PathBuf),
}

/// Stores and reads secrets by keyring account (`openai:api_key`, ...).
#[derive(Debug, Clone)]
pub struct Vault {
    file: PathBuf,
    use_keyring: bool,
}

impl Vault {
    /// The vault of a data directory, using the OS keyring when one answers.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            file: data_dir.join(SECRETS_FILE),
            use_keyring: std::env::var_os("PERCH_NO_KEYRING").is_none(),
        }
    }

    /// A vault that never touches the OS keyring (tests, and `PERCH_NO_KEYRING`).
    pub fn file_only(data_dir: &Path) -> Self {
        Self {
            file: data_dir.join(SECRETS_FILE),
            use_keyring: false,
        }
    }

    /// Which backend secrets go to. Blocking: call from a blocking context.
    pub fn backend(&self) -> Backend {
        if !self.use_keyring {
            return Backend::File {
                path: self.file.clone(),
                reason: "PERCH_NO_KEYRING is set".into(),
            };
        }
        match keyring::Entry::new(KEYRING_SERVICE, "perch:probe").and_then(|e| e.get_password()) {
            Ok(_) | Err(keyring::Error::NoEntry) => Backend::Keyring,
            Err(e) => Backend::File {
                path: self.file.clone(),
                reason: e.to_string(),
            },
        }
    }

    /// Stores a secret; returns where it went. The account's origin bindings are released, so
    /// its next use binds it to where its tier points then. Blocking.
    pub fn set(&self, account: &str, secret: &Secret) -> Result<Backend, VaultError> {
        let backend = self.store(account, secret)?;
        if let Some(dir) = self.file.parent() {
            CredentialOrigins::new(dir)
                .release(account)
                .map_err(|e| VaultError::File {
                    path: e.path,
                    source: e.source,
                })?;
        }
        Ok(backend)
    }

    fn store(&self, account: &str, secret: &Secret) -> Result<Backend, VaultError> {
        match self.backend() {
            Backend::Keyring => {
                let stored = keyring::Entry::new(KEYRING_SERVICE, account)
                    .and_then(|e| e.set_password(secret.expose()));
                match stored {
                    Ok(()) => return Ok(Backend::Keyring),
                    Err(e) => {
                        tracing::warn!(error = %e, "the OS keyring refused the secret; using the file")
                    }
                }
            }
            Backend::File { .. } => {}
        }
        let mut all = self.read_file()?;
        all.insert(account.to_string(), secret.expose().to_string());
        self.write_file(&all)?;
        Ok(self.backend_file("the OS keyring is not available"))
    }

    fn backend_file(&self, reason: &str) -> Backend {
        Backend::File {
            path: self.file.clone(),
            reason: reason.into(),
        }
    }

    /// Removes a secret from the keyring and the file, and releases its origin bindings;
    /// `Ok(false)` when there was none. Blocking.
    pub fn delete(&self, account: &str) -> Result<bool, VaultError> {
        let mut removed = false;
        if self.use_keyring {
            match keyring::Entry::new(KEYRING_SERVICE, account).and_then(|e| e.delete_credential())
            {
                Ok(()) => removed = true,
                Err(keyring::Error::NoEntry) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the OS keyring did not answer; the file still is checked")
                }
            }
        }
        let mut all = self.read_file()?;
        if all.remove(account).is_some() {
            self.write_file(&all)?;
            removed = true;
        }
        if let Some(dir) = self.file.parent() {
            CredentialOrigins::new(dir)
                .release(account)
                .map_err(|e| VaultError::File {
                    path: e.path,
                    source: e.source,
                })?;
        }
        Ok(removed)
    }

    /// Reads a secret: the keyring, then the file. Blocking.
    pub fn get(&self, account: &str) -> Option<String> {
        if self.use_keyring
            && let Ok(v) =
                keyring::Entry::new(KEYRING_SERVICE, account).and_then(|e| e.get_password())
        {
            return Some(v);
        }
        self.read_file().ok()?.remove(account)
    }

    fn read_file(&self) -> Result<BTreeMap<String, String>, VaultError> {
        match std::fs::read_to_string(&self.file) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|_| VaultError::Corrupt(self.file.clone()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(VaultError::File {
                path: self.file.clone(),
                source,
            }),
        }
    }

    fn write_file(&self, all: &BTreeMap<String, String>) -> Result<(), VaultError> {
        let io = |source| VaultError::File {
            path: self.file.clone(),
            source,
        };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.file.with_extension("json.tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        let text = serde_json::to_string_pretty(all).unwrap_or_else(|_| "{}".into());
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.file).map_err(io)
    }
}

/// Credentials from the environment, then this vault.
pub struct VaultSources(pub Vault);

impl SecretSources for VaultSources {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn keyring(&self, account: &str) -> Option<String> {
        self.0.get(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_fallback_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::file_only(dir.path());
        assert!(matches!(v.backend(), Backend::File { .. }));
        let where_ = v.set("openai:api_key", &Secret::new("sk-abc")).unwrap();
        assert!(where_.to_string().contains("0600"));
        assert!(!where_.to_string().contains("sk-abc"));
        assert_eq!(v.get("openai:api_key").as_deref(), Some("sk-abc"));
        assert_eq!(v.get("anthropic:api_key"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRETS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        v.set("openai:api_key", &Secret::new("sk-new")).unwrap();
        assert_eq!(v.get("openai:api_key").as_deref(), Some("sk-new"));
        assert!(v.delete("openai:api_key").unwrap());
        assert_eq!(v.get("openai:api_key"), None);
        assert!(
            !v.delete("openai:api_key").unwrap(),
            "nothing left to remove"
        );
        std::fs::write(dir.path().join(SECRETS_FILE), "{oops").unwrap();
        assert!(matches!(
            v.set("x", &Secret::new("y")),
            Err(VaultError::Corrupt(_))
        ));
    }
}
