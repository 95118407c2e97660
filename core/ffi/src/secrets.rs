//! The phone's keystore as the node's vault: a foreign [`SecretStore`] (Keychain, Android
//! Keystore) holds the device identity and the device tokens instead of files in the data dir.
//! Pinned host keys are public and stay in the data dir.

use std::path::PathBuf;
use std::sync::Arc;

use perch_node::{SecretVault, StoreError};

use crate::error::ProviderError;

/// The platform's secret storage. Keys are short ASCII names; values are small (a few KB).
/// Calls are made on the caller's or the library's threads and must return promptly.
#[uniffi::export(foreign)]
pub trait SecretStore: Send + Sync {
    /// The value kept under `key`, or `None`.
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, ProviderError>;
    /// Keeps `value` under `key`, replacing what was there.
    fn set(&self, key: String, value: Vec<u8>) -> Result<(), ProviderError>;
}

/// A [`SecretStore`] as perch-node's [`SecretVault`].
pub(crate) struct ForeignVault(pub(crate) Arc<dyn SecretStore>);

impl std::fmt::Debug for ForeignVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForeignVault")
    }
}

fn failed(action: &'static str, path: PathBuf, e: ProviderError) -> StoreError {
    StoreError::Io {
        action,
        path,
        source: std::io::Error::other(e.to_string()),
    }
}

impl SecretVault for ForeignVault {
    fn locate(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("secret store item {name}"))
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0
            .get(name.to_string())
            .map_err(|e| failed("read", self.locate(name), e))
    }

    fn write(&self, name: &str, bytes: &[u8], replace: bool) -> Result<bool, StoreError> {
        if !replace && self.read(name)?.is_some() {
            return Ok(false);
        }
        self.0
            .set(name.to_string(), bytes.to_vec())
            .map_err(|e| failed("write", self.locate(name), e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use perch_node::{IdentityStore, TokenStore};

    #[derive(Default)]
    struct Keychain(Mutex<HashMap<String, Vec<u8>>>, Mutex<bool>);

    impl SecretStore for Keychain {
        fn get(&self, key: String) -> Result<Option<Vec<u8>>, ProviderError> {
            if *self.1.lock().unwrap() {
                return Err(ProviderError::Unavailable {
                    reason: "device locked".into(),
                });
            }
            Ok(self.0.lock().unwrap().get(&key).cloned())
        }
        fn set(&self, key: String, value: Vec<u8>) -> Result<(), ProviderError> {
            self.0.lock().unwrap().insert(key, value);
            Ok(())
        }
    }

    #[test]
    fn the_identity_and_tokens_live_in_the_store_and_come_back() {
        let chain = Arc::new(Keychain::default());
        let vault: Arc<dyn SecretVault> = Arc::new(ForeignVault(chain.clone()));
        let id = IdentityStore::with_vault(vault.clone())
            .load_or_create()
            .unwrap();
        let again = IdentityStore::with_vault(vault.clone())
            .load_or_create()
            .unwrap();
        assert_eq!(
            id.device_id(),
            again.device_id(),
            "created once, then reloaded"
        );
        let tokens = TokenStore::with_vault(vault.clone());
        tokens
            .set("host:abc", &id.device_id(), "secret-token")
            .unwrap();
        assert_eq!(
            TokenStore::with_vault(vault.clone())
                .get("host:abc", &id.device_id())
                .unwrap()
                .as_deref(),
            Some("secret-token")
        );
        let keys: Vec<String> = chain.0.lock().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 2, "{keys:?}");

        // A locked keystore is a typed error naming the item, never a new identity.
        *chain.1.lock().unwrap() = true;
        let Err(e) = IdentityStore::with_vault(vault).load_or_create() else {
            panic!("a locked keystore gave an identity");
        };
        let text = e.to_string();
        assert!(
            text.contains("node-identity.json") && text.contains("device locked"),
            "{text}"
        );
        assert!(!text.contains("secret-token"));
    }
}
