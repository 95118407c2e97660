//! The node's durable secrets: its Ed25519 identity and the device tokens hosts issued.
//!
//! They are kept in a [`SecretVault`]: by default [`FileVault`], files in the data directory,
//! readable by the owner only (0600 on unix) and replaced atomically (temp file, fsync,
//! rename), so a crash never leaves half a key; a phone app passes its platform keystore
//! instead (Keychain, Android Keystore). Pinned host keys are public and stay in a file.
//! The identity is what a host paired with: a damaged identity file is an error naming the
//! file, never a reason to generate a new key, because a new key is a new, unpaired device.
//! Nothing here logs a token or a key.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use perch_protocol::{DeviceId, DeviceIdentity, IdentityError};
use serde::{Deserialize, Serialize};

/// File name of the identity inside the data directory.
pub const IDENTITY_FILE: &str = "node-identity.json";
/// File name of the device-token store inside the data directory.
pub const TOKENS_FILE: &str = "node-tokens.json";

/// File name of the pinned host keys inside the data directory.
pub const PINS_FILE: &str = "node-hosts.json";

const FORMAT_VERSION: u32 = 1;

/// Why the identity or token store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `create directory`...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The identity file exists but does not hold a valid identity.
    #[error(
        "identity file {} is corrupt ({reason}); it holds this node's pairing, so Perch will \
         not replace it: restore it from a backup, or move it aside to pair as a new device",
        path.display()
    )]
    CorruptIdentity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The pinned-hosts file exists but does not parse. Pins protect against impostors, so
    /// this fails closed instead of forgetting them.
    #[error(
        "pinned hosts file {} is corrupt ({reason}); restore it, or move it aside to trust \
         hosts anew",
        path.display()
    )]
    CorruptPins {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No key could be generated.
    #[error("cannot generate a device key: {0}")]
    KeyGeneration(#[from] IdentityError),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Creates the data directory (owner-only on unix) if it does not exist.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err("create directory", dir))
}

/// Writes a private file next to `path` and moves it into place. With `replace == false` an
/// existing file wins (the write is skipped and `Ok(false)` returned), so two processes
/// creating the same identity at once cannot end up with different keys.
fn write_private_atomic(path: &Path, bytes: &[u8], replace: bool) -> Result<bool, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "perch".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| -> Result<bool, StoreError> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("sync", &tmp))?;
        drop(file);
        if replace {
            fs::rename(&tmp, path).map_err(io_err("replace", path))?;
            Ok(true)
        } else {
            // A hard link is an atomic "create if absent"; fall back to rename where the file
            // system has no links (the race it guards against is then merely unlikely).
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(_) if !path.exists() => {
                    fs::rename(&tmp, path).map_err(io_err("create", path))?;
                    Ok(true)
                }
                Err(_) => Ok(false),
            }
        }
    })();
    // Gone already after a rename; after a link or a failure, the temp file goes here.
    let _ = fs::remove_file(&tmp);
    let written = result?;
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        // Make the rename durable; failure only weakens crash safety, never correctness.
        let _ = d.sync_all();
    }
    Ok(written)
}

/// Tightens a secret file that was left readable by others (copied by hand, restored from a
/// backup), instead of refusing to start.
#[cfg(unix)]
fn tighten_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "secret file was readable by other users; restricting it to the owner (0600)"
        );
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
    }
}

#[cfg(not(unix))]
fn tighten_permissions(_path: &Path) {}

/// Where a node keeps its secrets by name (the identity, the device tokens): private files by
/// default, or the platform's keystore on a phone.
pub trait SecretVault: Send + Sync + std::fmt::Debug {
    /// Where `name` lives, for messages (never its content).
    fn locate(&self, name: &str) -> PathBuf;
    /// The bytes kept under `name`, `None` when there are none.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keeps `bytes` under `name`. With `replace == false` a value already there wins: nothing
    /// is written and `Ok(false)` returned, so two creators cannot end up with two keys.
    fn write(&self, name: &str, bytes: &[u8], replace: bool) -> Result<bool, StoreError>;
}

/// Secrets as private files in the data directory (0600, written atomically).
#[derive(Debug, Clone)]
pub struct FileVault {
    dir: PathBuf,
}

impl FileVault {
    /// The vault for a data directory.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }
}

impl SecretVault for FileVault {
    fn locate(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.locate(name);
        match fs::read(&path) {
            Ok(bytes) => {
                tighten_permissions(&path);
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn write(&self, name: &str, bytes: &[u8], replace: bool) -> Result<bool, StoreError> {
        ensure_data_dir(&self.dir)?;
        write_private_atomic(&self.locate(name), bytes, replace)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdentityFile {
    version: u32,
    device_id: String,
    public_key: String,
    private_key: String,
    created_at_ms: i64,
}

/// Loads the node's identity (`node-identity.json` in its vault), creating it on first run.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    vault: Arc<dyn SecretVault>,
    path: PathBuf,
}

impl IdentityStore {
    /// The store for a data directory (files).
    pub fn new(data_dir: &Path) -> Self {
        Self::with_vault(Arc::new(FileVault::new(data_dir)))
    }

    /// The store in `vault` (a phone's keystore).
    pub fn with_vault(vault: Arc<dyn SecretVault>) -> Self {
        Self {
            path: vault.locate(IDENTITY_FILE),
            vault,
        }
    }

    /// Where the identity lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored identity, generating and saving one if there is none yet.
    pub fn load_or_create(&self) -> Result<DeviceIdentity, StoreError> {
        match self.load()? {
            Some(id) => Ok(id),
            None => {
                let identity = DeviceIdentity::generate()?;
                let file = IdentityFile {
                    version: FORMAT_VERSION,
                    device_id: identity.device_id().to_string(),
                    public_key: identity.public_key_b64(),
                    private_key: identity.private_b64(),
                    created_at_ms: now_ms(),
                };
                let text = serde_json::to_string_pretty(&file).map_err(|e| {
                    StoreError::CorruptIdentity {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                if self.vault.write(IDENTITY_FILE, text.as_bytes(), false)? {
                    tracing::info!(
                        device_id = %identity.device_id(),
                        path = %self.path.display(),
                        "created a new device identity"
                    );
                    Ok(identity)
                } else {
                    // Another process created it first: use theirs.
                    self.load()?.ok_or_else(|| StoreError::CorruptIdentity {
                        path: self.path.clone(),
                        reason: "vanished while being created".into(),
                    })
                }
            }
        }
    }

    /// The stored identity, or `None` when the file does not exist.
    pub fn load(&self) -> Result<Option<DeviceIdentity>, StoreError> {
        let Some(bytes) = self.vault.read(IDENTITY_FILE)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| self.corrupt("not UTF-8 text"))?;
        let file: IdentityFile = serde_json::from_str(&text)
            .map_err(|e| self.corrupt(format!("not a Perch identity: {e}")))?;
        if file.version != FORMAT_VERSION {
            return Err(self.corrupt(format!(
                "unsupported version {} (this build reads {FORMAT_VERSION})",
                file.version
            )));
        }
        let identity = DeviceIdentity::from_private_b64(&file.private_key)
            .map_err(|e| self.corrupt(format!("privateKey: {e}")))?;
        if identity.public_key_b64() != file.public_key {
            return Err(self.corrupt("publicKey does not belong to privateKey"));
        }
        if identity.device_id().as_str() != file.device_id {
            return Err(self.corrupt("deviceId does not match the key"));
        }
        Ok(Some(identity))
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::CorruptIdentity {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TokensFile {
    version: u32,
    #[serde(default)]
    gateways: BTreeMap<String, StoredToken>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredToken {
    /// The identity the token was issued to; a token for another key is useless.
    device_id: String,
    device_token: String,
    saved_at_ms: i64,
}

/// Device tokens issued by hosts, kept as `node-tokens.json` in the vault, keyed by gateway
/// URL (or `host:<id>`).
#[derive(Debug, Clone)]
pub struct TokenStore {
    vault: Arc<dyn SecretVault>,
    path: PathBuf,
}

impl TokenStore {
    /// The store for a data directory (files).
    pub fn new(data_dir: &Path) -> Self {
        Self::with_vault(Arc::new(FileVault::new(data_dir)))
    }

    /// The store in `vault` (a phone's keystore).
    pub fn with_vault(vault: Arc<dyn SecretVault>) -> Self {
        Self {
            path: vault.locate(TOKENS_FILE),
            vault,
        }
    }

    /// Where the tokens live.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<TokensFile, StoreError> {
        let Some(bytes) = self.vault.read(TOKENS_FILE)? else {
            return Ok(TokensFile::default());
        };
        let text = String::from_utf8(bytes).unwrap_or_default();
        match serde_json::from_str::<TokensFile>(&text) {
            Ok(f) if f.version == FORMAT_VERSION => Ok(f),
            // Tokens can be re-issued by the host (the identity, not the token, is the pairing),
            // so a damaged token file is set aside rather than fatal.
            _ => {
                tracing::warn!(
                    path = %self.path.display(),
                    "device token file is unreadable; ignoring it (the host issues a new token)"
                );
                Ok(TokensFile::default())
            }
        }
    }

    fn write(&self, file: &TokensFile) -> Result<(), StoreError> {
        let text = serde_json::to_string_pretty(file).map_err(|e| StoreError::Io {
            action: "encode",
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        self.vault
            .write(TOKENS_FILE, text.as_bytes(), true)
            .map(|_| ())
    }

    /// The token this device holds for `gateway_url`, if any.
    pub fn get(
        &self,
        gateway_url: &str,
        device_id: &DeviceId,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .read()?
            .gateways
            .remove(gateway_url)
            .filter(|t| t.device_id == device_id.as_str() && !t.device_token.is_empty())
            .map(|t| t.device_token))
    }

    /// Stores (or replaces) the token for `gateway_url`.
    pub fn set(
        &self,
        gateway_url: &str,
        device_id: &DeviceId,
        token: &str,
    ) -> Result<(), StoreError> {
        let mut file = self.read()?;
        file.version = FORMAT_VERSION;
        file.gateways.insert(
            gateway_url.to_string(),
            StoredToken {
                device_id: device_id.to_string(),
                device_token: token.to_string(),
                saved_at_ms: now_ms(),
            },
        );
        self.write(&file)
    }

    /// Forgets the token for `gateway_url`; returns whether there was one.
    pub fn remove(&self, gateway_url: &str) -> Result<bool, StoreError> {
        let mut file = self.read()?;
        if file.gateways.remove(gateway_url).is_none() {
            return Ok(false);
        }
        file.version = FORMAT_VERSION;
        self.write(&file)?;
        Ok(true)
    }
}

/// A host this node trusts: its key fingerprint and where it was last reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinnedHost {
    /// Hex SHA-256 of the host's public key.
    pub fingerprint: String,
    /// The URL it was last reached at.
    pub last_url: String,
    /// When the pin was made.
    pub pinned_at_ms: i64,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PinsFile {
    version: u32,
    #[serde(default)]
    hosts: std::collections::BTreeMap<String, PinnedHost>,
}

/// Host keys this node pinned, in `<data_dir>/node-hosts.json` keyed by host id. A pin is
/// made when the node first pairs (or from a setup code) and never replaced by what a network
/// advertises; only the user can remove it.
#[derive(Debug, Clone)]
pub struct HostPins {
    path: PathBuf,
}

impl HostPins {
    /// The store for a data directory.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(PINS_FILE),
        }
    }

    fn read(&self) -> Result<PinsFile, StoreError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PinsFile::default()),
            Err(e) => return Err(io_err("read", &self.path)(e)),
        };
        match serde_json::from_str::<PinsFile>(&text) {
            Ok(f) if f.version == FORMAT_VERSION => Ok(f),
            Ok(f) => Err(StoreError::CorruptPins {
                path: self.path.clone(),
                reason: format!("unknown format version {}", f.version),
            }),
            Err(e) => Err(StoreError::CorruptPins {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The pin for a host id.
    pub fn get(&self, host_id: &str) -> Result<Option<PinnedHost>, StoreError> {
        Ok(self.read()?.hosts.remove(host_id))
    }

    /// The host last reached at `url`, if any: a different host answering there is suspect.
    pub fn by_url(&self, url: &str) -> Result<Option<(String, PinnedHost)>, StoreError> {
        Ok(self
            .read()?
            .hosts
            .into_iter()
            .find(|(_, p)| p.last_url == url))
    }

    /// Every pinned host.
    pub fn all(&self) -> Result<Vec<(String, PinnedHost)>, StoreError> {
        Ok(self.read()?.hosts.into_iter().collect())
    }

    /// Forgets a host; returns whether it was pinned. Only the user does this (a reinstalled
    /// host), never the network.
    pub fn forget(&self, host_id: &str) -> Result<bool, StoreError> {
        let mut file = self.read()?;
        if file.hosts.remove(host_id).is_none() {
            return Ok(false);
        }
        file.version = FORMAT_VERSION;
        self.write(&file).map(|_| true)
    }

    fn write(&self, file: &PinsFile) -> Result<(), StoreError> {
        if let Some(dir) = self.path.parent() {
            ensure_data_dir(dir)?;
        }
        let text = serde_json::to_string_pretty(file).map_err(|e| StoreError::Io {
            action: "encode",
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        write_private_atomic(&self.path, text.as_bytes(), true).map(|_| ())
    }

    /// Pins a host, or records a new URL for it. Refuses to change a pinned fingerprint.
    pub fn pin(&self, host_id: &str, fingerprint: &str, url: &str) -> Result<bool, StoreError> {
        let mut file = self.read()?;
        file.version = FORMAT_VERSION;
        // One host per address: another host last seen here is no longer reachable here.
        for (id, other) in file.hosts.iter_mut() {
            if id != host_id && other.last_url == url {
                other.last_url.clear();
            }
        }
        if let Some(existing) = file.hosts.get_mut(host_id) {
            if existing.fingerprint != fingerprint {
                return Ok(false);
            }
            if existing.last_url == url {
                return Ok(true);
            }
            existing.last_url = url.to_string();
        } else {
            file.hosts.insert(
                host_id.to_string(),
                PinnedHost {
                    fingerprint: fingerprint.to_string(),
                    last_url: url.to_string(),
                    pinned_at_ms: now_ms(),
                },
            );
        }
        self.write(&file).map(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn identity_is_created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let store = IdentityStore::new(&data);
        assert!(store.load().unwrap().is_none());
        let first = store.load_or_create().unwrap();
        let again = IdentityStore::new(&data).load_or_create().unwrap();
        assert_eq!(first.device_id(), again.device_id());
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(store.path()).unwrap()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["deviceId"], first.device_id().as_str());
        assert_eq!(v["publicKey"], first.public_key_b64());
        assert!(v["createdAtMs"].as_i64().unwrap() > 0);
        #[cfg(unix)]
        {
            assert_eq!(mode(store.path()), 0o600);
            assert_eq!(mode(&data), 0o700);
        }
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(IDENTITY_FILE)]);
    }

    #[test]
    fn corrupt_identity_is_an_error_naming_the_file_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::new(dir.path());
        for bad in [
            "not json",
            r#"{"version":1}"#,
            r#"{"version":2,"deviceId":"a","publicKey":"b","privateKey":"c","createdAtMs":1}"#,
            r#"{"version":1,"deviceId":"a","publicKey":"b","privateKey":"c","createdAtMs":1}"#,
        ] {
            fs::write(store.path(), bad).unwrap();
            let err = store.load_or_create().err().expect("must fail");
            assert!(matches!(err, StoreError::CorruptIdentity { .. }), "{err}");
            assert!(err.to_string().contains(IDENTITY_FILE), "{err}");
            assert_eq!(
                fs::read_to_string(store.path()).unwrap(),
                bad,
                "file was touched"
            );
        }
        // A valid key whose device id was edited.
        let good = DeviceIdentity::from_seed(&[3; 32]);
        let text = serde_json::json!({"version": 1, "deviceId": "0".repeat(64),
            "publicKey": good.public_key_b64(), "privateKey": good.private_b64(), "createdAtMs": 1});
        fs::write(store.path(), text.to_string()).unwrap();
        assert!(matches!(
            store.load(),
            Err(StoreError::CorruptIdentity { .. })
        ));
        fs::write(store.path(), [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(
            store.load(),
            Err(StoreError::CorruptIdentity { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn loose_permissions_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::new(dir.path());
        store.load_or_create().unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        store.load().unwrap().unwrap();
        assert_eq!(mode(store.path()), 0o600);
    }

    #[test]
    fn tokens_are_keyed_by_url_and_device() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenStore::new(dir.path());
        let me = DeviceIdentity::from_seed(&[1; 32]).device_id();
        let other = DeviceIdentity::from_seed(&[2; 32]).device_id();
        assert_eq!(tokens.get("ws://a", &me).unwrap(), None);
        tokens.set("ws://a", &me, "tok-a").unwrap();
        tokens.set("ws://b", &me, "tok-b").unwrap();
        assert_eq!(tokens.get("ws://a", &me).unwrap().as_deref(), Some("tok-a"));
        assert_eq!(tokens.get("ws://b", &me).unwrap().as_deref(), Some("tok-b"));
        assert_eq!(tokens.get("ws://a", &other).unwrap(), None);
        tokens.set("ws://a", &me, "tok-a2").unwrap();
        assert_eq!(
            tokens.get("ws://a", &me).unwrap().as_deref(),
            Some("tok-a2")
        );
        assert!(tokens.remove("ws://a").unwrap());
        assert!(!tokens.remove("ws://a").unwrap());
        assert_eq!(tokens.get("ws://a", &me).unwrap(), None);
        assert_eq!(tokens.get("ws://b", &me).unwrap().as_deref(), Some("tok-b"));
        #[cfg(unix)]
        assert_eq!(mode(tokens.path()), 0o600);
    }

    #[test]
    fn damaged_token_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenStore::new(dir.path());
        let me = DeviceIdentity::from_seed(&[1; 32]).device_id();
        fs::write(tokens.path(), "{{{").unwrap();
        assert_eq!(tokens.get("ws://a", &me).unwrap(), None);
        tokens.set("ws://a", &me, "t").unwrap();
        assert_eq!(tokens.get("ws://a", &me).unwrap().as_deref(), Some("t"));
    }

    #[test]
    fn pins_never_change_a_fingerprint_and_corruption_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let pins = HostPins::new(dir.path());
        assert_eq!(pins.get("h1").unwrap(), None);
        assert!(pins.pin("h1", "fp-a", "ws://10.0.0.1:18789").unwrap());
        assert!(
            pins.pin("h1", "fp-a", "ws://10.0.0.2:18789").unwrap(),
            "new address is fine"
        );
        assert!(
            !pins.pin("h1", "fp-b", "ws://10.0.0.3:18789").unwrap(),
            "new key is refused"
        );
        let p = pins.get("h1").unwrap().unwrap();
        assert_eq!(p.fingerprint, "fp-a");
        assert_eq!(p.last_url, "ws://10.0.0.2:18789");
        assert_eq!(pins.by_url("ws://10.0.0.2:18789").unwrap().unwrap().0, "h1");
        assert!(pins.pin("h2", "fp-c", "ws://10.0.0.2:18789").unwrap());
        assert_eq!(
            pins.by_url("ws://10.0.0.2:18789").unwrap().unwrap().0,
            "h2",
            "the newest host at an address owns it"
        );
        assert_eq!(pins.get("h1").unwrap().unwrap().last_url, "");
        #[cfg(unix)]
        assert_eq!(mode(&dir.path().join(PINS_FILE)), 0o600);
        assert!(pins.forget("h1").unwrap());
        assert!(!pins.forget("h1").unwrap());
        assert!(
            pins.pin("h1", "fp-b", "ws://10.0.0.3:18789").unwrap(),
            "re-pin after forget"
        );
        fs::write(dir.path().join(PINS_FILE), "{not json").unwrap();
        assert!(matches!(
            pins.get("h1"),
            Err(StoreError::CorruptPins { .. })
        ));
        assert!(matches!(
            pins.pin("h1", "x", "y"),
            Err(StoreError::CorruptPins { .. })
        ));
    }
}
