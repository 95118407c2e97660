//! The settings a person changes from a settings screen, read from and written to
//! `perch.toml`: the host's name, address and mDNS mode, the model tiers (and whether each has
//! a credential, never the credential), and the desktop's `[desktop]` section.
//!
//! [`read`] and [`update`] work on the file alone, without a running host, so the desktop app
//! can repair a host that cannot start. [`update`] edits the file in place with `toml_edit`
//! (comments, order and keys it does not know stay as they are), checks every value before it
//! writes, and replaces the file atomically (temporary file, then rename; mode 0600). A file
//! that is not valid TOML is never overwritten unless the caller asks for it
//! (`resetCorrupt`), and then the old file is kept beside it first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};
use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike};

use perch_kernel::credential_origins::{
    CredentialOrigins, Verdict, has_userinfo, is_loopback, redact_userinfo, tier_origin,
    without_userinfo,
};
use perch_kernel::credentials::{
    CredentialSource, ModelsConfig, ProviderKind, Secret, SecretSources, TIERS, is_tier_account,
    tier_account,
};
use perch_kernel::vault::{Vault, VaultSources};
use perch_protocol::settings::{
    CredentialInfo, CredentialProblem, CredentialSourceKind, DesktopLocation, DesktopSettings,
    ModelTiers, RunningSettings, Settings, SettingsPatch, SettingsProblem, TierInfo, TierPatch,
    find_secret_key,
};
use perch_protocol::{ErrorCode, ErrorShape, Reason};

use perch_gateway::GatewayConfig;
use perch_gateway::config::{MdnsMode, parse_bind, parse_name};

use crate::config::{CONFIG_FILE, ConfigError};

/// The `[desktop]` section's name in perch.toml.
pub const DESKTOP_SECTION: &str = "desktop";

/// Longest model name or base URL accepted, in characters.
const MAX_TEXT: usize = 2048;

/// One writer at a time in this process, so two changes cannot lose each other's keys.
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Why settings could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// perch.toml exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// perch.toml is not valid TOML, so nothing in it can be trusted or edited.
    #[error(
        "{path} is not valid TOML ({message}); fix it by hand, or set settings again with resetCorrupt to move it aside and start from an empty file"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line of the error, when known.
        line: Option<usize>,
        /// What is wrong and where.
        message: String,
    },
    /// A value in the patch is not acceptable; nothing was written.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as named on the wire (`bind`, `models.fast.baseUrl`, ...).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The new file could not be written; the old one is unchanged.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A change of address would take along a credential that no binding can hold back (one
    /// from the host's environment or from perch.toml); nothing was written.
    #[error("{field}: {message}")]
    CredentialWouldMove {
        /// The field that moves the tier (`models.fast.baseUrl`, `models.fast.provider`).
        field: String,
        /// Which credential, where to, and how to confirm.
        message: String,
    },
    /// The secret store refused (the message never holds the secret).
    #[error("the secret store failed: {0}")]
    SecretStore(String),
}

impl SettingsError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// What an operator sees: `INVALID_REQUEST` naming the field for a bad patch, `UNAVAILABLE`
    /// (with `details.reason`) when the file cannot be read, parsed or written.
    pub fn to_shape(&self) -> ErrorShape {
        match self {
            Self::Invalid { field, message } => ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("invalid settings: {field}: {message}"),
            )
            .with_details(json!({"field": field})),
            Self::CredentialWouldMove { field, message } => ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("invalid settings: {field}: {message}"),
            )
            .with_details(json!({"field": field, "reason": "credential-would-move"})),
            Self::SecretStore(_) => {
                tracing::warn!(error = %self, "secret store unusable");
                ErrorShape::new(ErrorCode::Unavailable, self.to_string())
                    .with_details(json!({"reason": "secret-store"}))
                    .with_retryable(true)
            }
            Self::Corrupt { path, line, .. } => {
                ErrorShape::new(ErrorCode::Unavailable, self.to_string())
                    .with_details(json!({
                        "reason": Reason::ConfigCorrupt,
                        "configPath": path.display().to_string(),
                        "line": line,
                    }))
                    .with_retryable(false)
            }
            Self::Read { path, .. } | Self::Write { path, .. } => {
                tracing::warn!(error = %self, "settings file unusable");
                ErrorShape::new(ErrorCode::Unavailable, self.to_string())
                    .with_details(json!({
                        "reason": Reason::ConfigIo,
                        "configPath": path.display().to_string(),
                    }))
                    .with_retryable(true)
            }
        }
    }
}

/// What a running host started with, beside the file's settings.
pub fn running(config: &GatewayConfig) -> RunningSettings {
    RunningSettings {
        name: config.name.clone(),
        bind: config.bind.to_string(),
        mdns: config.mdns.as_str().to_string(),
        overridden: [
            ("bind", config.overrides.bind),
            ("mdns", config.overrides.mdns),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(key, _)| key.to_string())
        .collect(),
    }
}

/// The settings in `DATA_DIR/perch.toml`, with credentials looked up where a host would (the
/// environment of this process, then the secret store). Blocking: the secret store may ask the
/// OS keyring.
pub fn read(data_dir: &Path) -> Result<Settings, SettingsError> {
    read_with(data_dir, &VaultSources(Vault::new(data_dir)))
}

/// [`read`], with the places credentials are looked up in given (tests, embedders).
pub fn read_with(data_dir: &Path, sources: &dyn SecretSources) -> Result<Settings, SettingsError> {
    let path = data_dir.join(CONFIG_FILE);
    let text = read_text(&path)?;
    let doc = parse(&path, &text)?;
    Ok(settings_from(data_dir, &path, &text, &doc, sources))
}

/// Adds what the running host uses, and whether the file asks for something else.
pub fn with_running(mut settings: Settings, running: RunningSettings) -> Settings {
    let fixed = |key: &str| running.overridden.iter().any(|k| k == key);
    settings.restart_required = settings.name != running.name
        || (!fixed("bind") && !same_bind(&settings.bind, &running.bind))
        || (!fixed("mdns") && settings.mdns != running.mdns);
    settings.running = Some(running);
    settings
}

/// Two bind strings name the same address (`localhost:1` and `127.0.0.1:1` do).
fn same_bind(a: &str, b: &str) -> bool {
    match (parse_bind(a), parse_bind(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Parses `settings.set` params, naming the field that is wrong. Keys that look like secrets
/// are refused before anything else.
pub fn parse_patch(params: Value) -> Result<SettingsPatch, SettingsError> {
    if !params.is_object() {
        // serde would read an array as the fields in order; a patch names what it changes.
        return Err(SettingsError::invalid(
            "params",
            "must be an object such as {\"name\": \"Studio\"}",
        ));
    }
    if let Some(field) = find_secret_key(&params) {
        return Err(SettingsError::invalid(
            field,
            "secrets are not settings; store credentials with `perch auth set PROVIDER` (the OS keyring)",
        ));
    }
    serde_path_to_error::deserialize(params).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "params".into() } else { field };
        SettingsError::invalid(field, e.inner().to_string())
    })
}

/// Applies a patch to `DATA_DIR/perch.toml` and returns the settings now in the file. Every
/// value is checked first; on any error nothing is written. Blocking.
pub fn update(data_dir: &Path, patch: SettingsPatch) -> Result<Settings, SettingsError> {
    update_with(data_dir, patch, &VaultSources(Vault::new(data_dir)))
}

/// [`update`], with the places credentials are looked up in given.
pub fn update_with(
    data_dir: &Path,
    patch: SettingsPatch,
    sources: &dyn SecretSources,
) -> Result<Settings, SettingsError> {
    update_text(data_dir, patch, sources).map(|(settings, _)| settings)
}

/// [`update_with`], also returning the file's new text, so a running host reloads from what it
/// wrote rather than reading the file again.
pub(crate) fn update_text(
    data_dir: &Path,
    patch: SettingsPatch,
    sources: &dyn SecretSources,
) -> Result<(Settings, String), SettingsError> {
    let _one_writer = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = data_dir.join(CONFIG_FILE);
    let text = read_text(&path)?;
    let (mut doc, corrupt) = match parse(&path, &text) {
        Ok(doc) => (doc, false),
        Err(e) if patch.reset_corrupt => {
            tracing::warn!(error = %e, "perch.toml is not valid TOML; moving it aside as asked");
            (DocumentMut::new(), true)
        }
        Err(e) => return Err(e),
    };
    apply(&mut doc, &patch)?;
    let binds = credential_moves(data_dir, &patch, &text, &doc.to_string(), sources)?;
    std::fs::create_dir_all(data_dir).map_err(|source| SettingsError::Write {
        path: path.clone(),
        source,
    })?;
    if corrupt {
        let aside = data_dir.join(format!("{CONFIG_FILE}.corrupt-{}", now_ms()));
        std::fs::rename(&path, &aside).map_err(|source| SettingsError::Write {
            path: aside.clone(),
            source,
        })?;
        tracing::warn!(kept = %aside.display(), "the corrupt perch.toml was kept aside");
    }
    let new_text = doc.to_string();
    write_atomically(&path, new_text.as_bytes())?;
    tracing::info!(path = %path.display(), "settings changed");
    let origins = CredentialOrigins::new(data_dir);
    for (tier, account, origin) in binds {
        // The key stays with the address it was used at; the tier now needs it stored again.
        if let Err(e) = origins.bind(&tier, &account, &origin) {
            tracing::warn!(error = %e, "cannot record the credential's origin");
        }
    }
    let settings = settings_from(data_dir, &path, &new_text, &doc, sources);
    Ok((settings, new_text))
}

/// What a patch that points a tier elsewhere (another `scheme://host:port`, or another
/// provider's default) does to its credential, checked before anything is written:
/// - a key from the secret store stays with the address it was used at: the binding is made
///   now if first use has not made it yet (returned, to record after the write), and the
///   tier's settings then say to store the key again;
/// - a key from the host's environment or from perch.toml cannot be held back, so the move is
///   refused unless the tier's patch says `moveCredential`.
///
/// Refusing the keyring case too would make every address change a two-step dance for no
/// gain: nothing leaves, and the Settings page shows the key field right where the problem is.
fn credential_moves(
    data_dir: &Path,
    patch: &SettingsPatch,
    old_text: &str,
    new_text: &str,
    sources: &dyn SecretSources,
) -> Result<Vec<(String, String, String)>, SettingsError> {
    let mut binds = Vec::new();
    let Some(models) = &patch.models else {
        return Ok(binds);
    };
    let (Ok(before), Ok(after)) = (
        ModelsConfig::from_toml(old_text),
        ModelsConfig::from_toml(new_text),
    ) else {
        return Ok(binds);
    };
    let origins = CredentialOrigins::new(data_dir);
    for (tier, p) in [
        ("fast", &models.fast),
        ("default", &models.default),
        ("smart", &models.smart),
    ] {
        let Some(p) = p else { continue };
        let (Some(old), Some(new)) = (before.tiers.get(tier), after.tiers.get(tier)) else {
            continue;
        };
        let (Some(from), Some(to)) = (tier_origin(old), tier_origin(new)) else {
            continue;
        };
        if from == to {
            continue;
        }
        let Ok(was) = before.resolve(tier, sources) else {
            continue;
        };
        let field = if p.base_url.is_some() {
            format!("models.{tier}.baseUrl")
        } else {
            format!("models.{tier}.provider")
        };
        match &was.source {
            CredentialSource::Keyring(account) => {
                if origins.bound(tier, account).is_none()
                    && origins.check(tier, account, &from) == Verdict::Unbound
                {
                    binds.push((tier.to_string(), account.clone(), from.clone()));
                }
            }
            CredentialSource::Env(_) | CredentialSource::Config => {
                let still = after.resolve(tier, sources).map(|r| r.source).ok();
                if still.as_ref() == Some(&was.source) && !p.move_credential {
                    return Err(SettingsError::CredentialWouldMove {
                        field,
                        message: format!(
                            "tier {tier}'s key comes from {} and cannot be held back, so it would \
                             be sent to {to} instead of {from}; store a key for this tier \
                             (settings.secret.set) first, or send \"moveCredential\": true with \
                             the change to send it there",
                            was.source
                        ),
                    });
                }
            }
            CredentialSource::NoneNeeded => {}
        }
    }
    Ok(binds)
}

/// Stores `secret` as `tier`'s own key (see [`tier_account`]) in the secret store and binds it
/// to the address the tier points at now, then answers like [`read`]. The tier must be
/// configured and pass the transport rule. The secret never appears in a message. Blocking.
pub fn store_secret(
    data_dir: &Path,
    tier: &str,
    secret: &Secret,
    vault: &Vault,
    sources: &dyn SecretSources,
) -> Result<Settings, SettingsError> {
    let _one_writer = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = data_dir.join(CONFIG_FILE);
    let text = read_text(&path)?;
    let doc = parse(&path, &text)?;
    if !TIERS.contains(&tier) {
        return Err(SettingsError::invalid(
            "tier",
            "not a model tier; use fast, default or smart",
        ));
    }
    let models = ModelsConfig::from_toml(&text).map_err(|e| {
        SettingsError::invalid(
            "tier",
            format!(
                "perch.toml [models] cannot be read ({}); fix it first",
                redact_userinfo(&e.to_string())
            ),
        )
    })?;
    let cfg = models.tiers.get(tier).ok_or_else(|| {
        SettingsError::invalid(
            "tier",
            format!("tier {tier} is not configured; choose its provider and model first"),
        )
    })?;
    cfg.check_transport(tier)
        .map_err(|e| SettingsError::invalid("tier", e.to_string()))?;
    let origin = tier_origin(cfg).ok_or_else(|| {
        SettingsError::invalid(
            "tier",
            format!("tier {tier}'s base_url is not an http(s) URL; fix it first"),
        )
    })?;
    let account = tier_account(cfg.provider, cfg.uses_oauth(), tier);
    let stored = vault
        .set(&account, secret)
        .map_err(|e| SettingsError::SecretStore(e.to_string()))?;
    CredentialOrigins::new(data_dir)
        .bind(tier, &account, &origin)
        .map_err(|e| SettingsError::SecretStore(e.to_string()))?;
    tracing::info!(tier, %origin, backend = %stored, "a tier's key was stored");
    Ok(settings_from(data_dir, &path, &text, &doc, sources))
}

/// Removes `tier`'s own keys (every provider and kind) from the secret store, then answers
/// like [`read`]. A key from `perch auth set`, the environment or perch.toml is not touched.
/// Blocking.
pub fn clear_secret(
    data_dir: &Path,
    tier: &str,
    vault: &Vault,
    sources: &dyn SecretSources,
) -> Result<Settings, SettingsError> {
    let _one_writer = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !TIERS.contains(&tier) {
        return Err(SettingsError::invalid(
            "tier",
            "not a model tier; use fast, default or smart",
        ));
    }
    let path = data_dir.join(CONFIG_FILE);
    let text = read_text(&path)?;
    let doc = parse(&path, &text)?;
    let mut removed = false;
    for provider in [ProviderKind::Openai, ProviderKind::Anthropic] {
        for oauth in [false, true] {
            removed |= vault
                .delete(&tier_account(provider, oauth, tier))
                .map_err(|e| SettingsError::SecretStore(e.to_string()))?;
        }
    }
    tracing::info!(tier, removed, "a tier's key was removed");
    Ok(settings_from(data_dir, &path, &text, &doc, sources))
}

fn read_text(path: &Path) -> Result<String, SettingsError> {
    crate::config::read_text(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Milliseconds since the Unix epoch, for the name of a corrupt file kept aside.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse(path: &Path, text: &str) -> Result<DocumentMut, SettingsError> {
    text.parse::<DocumentMut>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().to_string();
        SettingsError::Corrupt {
            path: path.to_path_buf(),
            line,
            message: match line {
                Some(l) => format!("line {l}: {msg}"),
                None => msg,
            },
        }
    })
}

/// Writes `path` by way of a temporary file in the same directory, so a crash leaves either
/// the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SettingsError> {
    let tmp = path.with_extension(format!("toml.tmp-{}", std::process::id()));
    let io = |source| SettingsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        // An existing temporary file keeps its old mode; make sure.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// The settings as the file has them, defaults where it is silent.
fn settings_from(
    data_dir: &Path,
    path: &Path,
    text: &str,
    doc: &DocumentMut,
    sources: &dyn SecretSources,
) -> Settings {
    let mut problems = Vec::new();
    let mut problem = |section: &str, message: String| {
        problems.push(SettingsProblem {
            section: section.into(),
            message: redact_userinfo(&message),
        })
    };
    let defaults = GatewayConfig::defaults(data_dir.to_path_buf());
    let gateway = doc.get("gateway").and_then(Item::as_table_like);
    let raw = |key: &str| {
        gateway
            .and_then(|g| g.get(key))
            .and_then(Item::as_str)
            .map(str::to_string)
    };
    let mut checked = defaults.clone();
    let (name, bind, mdns) = match crate::config::apply_gateway(&mut checked, path, text) {
        Ok(()) => (
            checked.name.clone(),
            raw("bind").unwrap_or_else(|| checked.bind.to_string()),
            checked.mdns.as_str().to_string(),
        ),
        Err(e) => {
            problem("gateway", config_message(e));
            (
                raw("name").unwrap_or_else(|| defaults.name.clone()),
                raw("bind").unwrap_or_else(|| defaults.bind.to_string()),
                raw("mdns").unwrap_or_else(|| defaults.mdns.as_str().to_string()),
            )
        }
    };
    let models = match ModelsConfig::from_toml(text) {
        Ok(m) => Some(m),
        Err(e) => {
            problem("models", e.to_string());
            None
        }
    };
    let tier = |name: &str| tier_info(data_dir, doc, models.as_ref(), name, sources);
    let models_out = ModelTiers {
        fast: tier("fast"),
        default: tier("default"),
        smart: tier("smart"),
    };
    let location = match desktop_location(doc) {
        Ok(l) => l,
        Err(message) => {
            problem(DESKTOP_SECTION, message);
            None
        }
    };
    Settings {
        config_path: path.display().to_string(),
        name,
        bind,
        mdns,
        running: None,
        restart_required: false,
        models: models_out,
        desktop: DesktopSettings { location },
        problems,
    }
}

/// A config error's message without the file name (the settings carry the path already) and
/// without the quoted line, which could hold a value that belongs in the secret store.
fn config_message(e: ConfigError) -> String {
    match e {
        ConfigError::Parse { message, .. } | ConfigError::Invalid { message, .. } => message
            .split(" (in `")
            .next()
            .unwrap_or_default()
            .to_string(),
        other => other.to_string(),
    }
}

fn tier_info(
    data_dir: &Path,
    doc: &DocumentMut,
    models: Option<&ModelsConfig>,
    tier: &str,
    sources: &dyn SecretSources,
) -> Option<TierInfo> {
    let table = doc
        .get("models")
        .and_then(Item::as_table_like)
        .and_then(|m| m.get(tier))
        .and_then(Item::as_table_like)?;
    let text = |key: &str| table.get(key).and_then(Item::as_str).map(str::to_string);
    let missing = CredentialInfo {
        configured: false,
        source: None,
        tier_secret: false,
        problem: None,
    };
    let credential = match models.and_then(|m| m.tiers.get(tier).map(|cfg| (m, cfg))) {
        Some((m, cfg)) => {
            let origins = CredentialOrigins::new(data_dir);
            // Read-only: a first use found here is not recorded (the next turn does that).
            let resolved = m.resolve_bound(tier, sources, &origins).map(|(r, _)| r);
            let tier_secret = match &resolved {
                Ok(r) => match &r.source {
                    CredentialSource::Keyring(account) => is_tier_account(account),
                    // The tier's own key comes before these, so it was looked for and is absent.
                    CredentialSource::Env(_) | CredentialSource::NoneNeeded => false,
                    CredentialSource::Config => has_tier_secret(cfg, tier, sources),
                },
                Err(_) => has_tier_secret(cfg, tier, sources),
            };
            match resolved {
                Ok(r) => CredentialInfo {
                    configured: true,
                    source: source_kind(data_dir, &r.source, sources),
                    tier_secret,
                    problem: None,
                },
                Err(e) => CredentialInfo {
                    tier_secret,
                    problem: Some(CredentialProblem {
                        reason: e.reason().to_string(),
                        message: redact_userinfo(&e.to_string()),
                    }),
                    ..missing
                },
            }
        }
        None => missing,
    };
    Some(TierInfo {
        provider: text("provider").unwrap_or_default(),
        model: text("model").unwrap_or_default(),
        base_url: text("base_url").map(|u| without_userinfo(&u)),
        allow_insecure_http: table
            .get("allow_insecure_http")
            .and_then(Item::as_bool)
            .unwrap_or(false),
        credential,
    })
}

/// Whether the tier's own key (of the kind its auth mode uses) is in the secret store.
fn has_tier_secret(
    cfg: &perch_kernel::credentials::TierConfig,
    tier: &str,
    sources: &dyn SecretSources,
) -> bool {
    sources
        .keyring(&tier_account(cfg.provider, cfg.uses_oauth(), tier))
        .is_some_and(|k| !k.trim().is_empty())
}

/// Where a credential came from, in the settings' terms. The secret store answers from the OS
/// keyring or, where none answers, from its 0600 file; the file is named when it holds the
/// value found.
fn source_kind(
    data_dir: &Path,
    source: &CredentialSource,
    sources: &dyn SecretSources,
) -> Option<CredentialSourceKind> {
    match source {
        CredentialSource::Config => Some(CredentialSourceKind::Config),
        CredentialSource::Env(_) => Some(CredentialSourceKind::Env),
        CredentialSource::Keyring(account) => {
            let in_file = Vault::file_only(data_dir).get(account);
            if in_file.is_some() && in_file == sources.keyring(account) {
                Some(CredentialSourceKind::File)
            } else {
                Some(CredentialSourceKind::Keyring)
            }
        }
        CredentialSource::NoneNeeded => None,
    }
}

/// `[desktop] location = { lat, lon, accuracy_m }`, checked like a patch would be.
fn desktop_location(doc: &DocumentMut) -> Result<Option<DesktopLocation>, String> {
    let Some(desktop) = doc.get(DESKTOP_SECTION) else {
        return Ok(None);
    };
    let Some(desktop) = desktop.as_table_like() else {
        return Err("[desktop] must be a table".into());
    };
    let Some(loc) = desktop.get("location") else {
        return Ok(None);
    };
    let Some(loc) = loc.as_table_like() else {
        return Err(
            "[desktop] location must be a table like { lat = 48.2, lon = 16.37, accuracy_m = 100 }"
                .into(),
        );
    };
    if let Some((key, _)) = loc
        .iter()
        .find(|(k, _)| !matches!(*k, "lat" | "lon" | "accuracy_m"))
    {
        return Err(format!(
            "[desktop] location has an unknown key {key:?} (known: lat, lon, accuracy_m)"
        ));
    }
    let number = |key: &str| -> Result<Option<f64>, String> {
        match loc.get(key) {
            None => Ok(None),
            Some(item) => item
                .as_float()
                .or_else(|| item.as_integer().map(|i| i as f64))
                .map(Some)
                .ok_or_else(|| format!("[desktop] location {key} must be a number")),
        }
    };
    let (Some(lat), Some(lon)) = (number("lat")?, number("lon")?) else {
        return Err("[desktop] location needs lat and lon".into());
    };
    let location = DesktopLocation {
        lat,
        lon,
        accuracy_m: number("accuracy_m")?
            .unwrap_or(perch_protocol::settings::DEFAULT_LOCATION_ACCURACY_M),
    };
    location
        .validate()
        .map_err(|(field, message)| format!("[desktop] location {field}: {message}"))?;
    Ok(Some(location))
}

/// Checks every value of the patch and writes it into the document.
fn apply(doc: &mut DocumentMut, patch: &SettingsPatch) -> Result<(), SettingsError> {
    let root: &mut dyn TableLike = doc.as_table_mut();
    if let Some(name) = &patch.name {
        let name = parse_name(name).map_err(|m| SettingsError::invalid("name", m))?;
        set_in_place(child_table(root, "gateway", "name")?, "name", name.into());
    }
    if let Some(bind) = &patch.bind {
        let addr = parse_bind(bind).map_err(|m| SettingsError::invalid("bind", m))?;
        set_in_place(
            child_table(root, "gateway", "bind")?,
            "bind",
            addr.to_string().into(),
        );
    }
    if let Some(mdns) = &patch.mdns {
        let mode = MdnsMode::parse(mdns).map_err(|m| SettingsError::invalid("mdns", m))?;
        set_in_place(
            child_table(root, "gateway", "mdns")?,
            "mdns",
            mode.as_str().into(),
        );
    }
    if let Some(models) = &patch.models {
        for (tier, p) in [
            ("fast", &models.fast),
            ("default", &models.default),
            ("smart", &models.smart),
        ] {
            if let Some(p) = p {
                apply_tier(&mut *root, tier, p)?;
            }
        }
    }
    if let Some(desktop) = &patch.desktop
        && let Some(location) = &desktop.location
    {
        let section = child_table(root, DESKTOP_SECTION, "desktop")?;
        match location {
            None => {
                section.remove("location");
            }
            Some(loc) => {
                loc.validate().map_err(|(field, message)| {
                    SettingsError::invalid(format!("desktop.location.{field}"), message)
                })?;
                let mut t = InlineTable::new();
                t.insert("lat", loc.lat.into());
                t.insert("lon", loc.lon.into());
                t.insert("accuracy_m", loc.accuracy_m.into());
                set_in_place(section, "location", t.into());
            }
        }
    }
    Ok(())
}

fn apply_tier(root: &mut dyn TableLike, tier: &str, p: &TierPatch) -> Result<(), SettingsError> {
    let field = |key: &str| format!("models.{tier}.{key}");
    let provider = p
        .provider
        .as_deref()
        .map(|s| {
            serde_json::from_value::<ProviderKind>(Value::String(s.trim().to_ascii_lowercase()))
                .map(|k| k.as_str())
                .map_err(|_| {
                    SettingsError::invalid(
                        field("provider"),
                        format!("{s:?} is not openai or anthropic"),
                    )
                })
        })
        .transpose()?;
    let model = p
        .model
        .as_deref()
        .map(|m| {
            let m = m.trim();
            if m.is_empty() || m.chars().count() > MAX_TEXT || m.chars().any(char::is_control) {
                Err(SettingsError::invalid(
                    field("model"),
                    "must be a model name without control characters",
                ))
            } else {
                Ok(m.to_string())
            }
        })
        .transpose()?;
    let base_url = match &p.base_url {
        None => None,
        Some(None) => Some(None),
        Some(Some(u)) => Some(Some(
            check_base_url(u).map_err(|m| SettingsError::invalid(field("baseUrl"), m))?,
        )),
    };
    let models = child_table(root, "models", "models")?;
    let table = child_table(models, tier, &format!("models.{tier}"))?;
    if let Some(provider) = provider {
        set_in_place(table, "provider", provider.into());
    }
    if let Some(model) = model {
        set_in_place(table, "model", model.into());
    }
    match base_url {
        None => {}
        Some(None) => {
            table.remove("base_url");
        }
        Some(Some(u)) => set_in_place(table, "base_url", u.into()),
    }
    match p.allow_insecure_http {
        None => {}
        Some(true) => set_in_place(table, "allow_insecure_http", true.into()),
        Some(false) => {
            table.remove("allow_insecure_http");
        }
    }
    // The rule holds for the tier as it ends up, whichever of the two fields changed.
    let allowed = table
        .get("allow_insecure_http")
        .and_then(Item::as_bool)
        .unwrap_or(false);
    if let Some(u) = table.get("base_url").and_then(Item::as_str)
        && u.get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        && !allowed
        && !is_loopback(u)
    {
        let key = if p.base_url.is_some() {
            "baseUrl"
        } else {
            "allowInsecureHttp"
        };
        return Err(SettingsError::invalid(
            field(key),
            format!(
                "{} is plain http off this machine: requests and the key would cross the \
                 network in clear. Use https://, or allow it for this tier (allowInsecureHttp) \
                 if the server is on a network you trust",
                without_userinfo(u)
            ),
        ));
    }
    for key in ["provider", "model"] {
        if table.get(key).and_then(Item::as_str).is_none() {
            return Err(SettingsError::invalid(
                field(key),
                format!("required: tier {tier} has no {key} yet"),
            ));
        }
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host, without spaces and without `user:password@`
/// (a credential in a plain file, and in every message that quotes the URL). Messages quote
/// the URL without its userinfo.
fn check_base_url(u: &str) -> Result<String, String> {
    let u = u.trim();
    let shown = without_userinfo(u);
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{shown:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{shown:?} has no host"));
    }
    if u.chars().count() > MAX_TEXT || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{shown:?} is not a URL"));
    }
    if has_userinfo(u) {
        return Err(format!(
            "{shown:?} must not carry user:password@; store the key as the tier's key \
             (settings.secret.set) or with `perch auth set`"
        ));
    }
    if perch_kernel::credential_origins::origin_of(u).is_none() {
        return Err(format!("{shown:?} is not a URL"));
    }
    Ok(u.to_string())
}

/// The table under `key`, made (without a header of its own until it has values) when absent.
fn child_table<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    field: &str,
) -> Result<&'a mut dyn TableLike, SettingsError> {
    if parent.get(key).is_none() {
        let mut t = Table::new();
        t.set_implicit(true);
        parent.insert(key, Item::Table(t));
    }
    parent
        .get_mut(key)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| {
            SettingsError::invalid(
                field,
                format!("perch.toml has {key:?} but not as a table; fix the file by hand"),
            )
        })
}

/// Sets a value in place: the key, the comment above it and the comment after the value stay.
fn set_in_place(table: &mut dyn TableLike, key: &str, value: toml_edit::Value) {
    let mut value = value;
    match table.get_mut(key) {
        Some(item) => {
            if let Some(old) = item.as_value() {
                *value.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(value);
        }
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        env: HashMap<String, String>,
        keyring: HashMap<String, String>,
    }

    impl SecretSources for Fake {
        fn env(&self, name: &str) -> Option<String> {
            self.env.get(name).cloned()
        }
        fn keyring(&self, account: &str) -> Option<String> {
            self.keyring.get(account).cloned()
        }
    }

    fn patch(v: Value) -> SettingsPatch {
        parse_patch(v).unwrap()
    }

    fn write(dir: &Path, text: &str) {
        std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
    }

    fn file(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap()
    }

    fn invalid_field(e: SettingsError) -> String {
        match e {
            SettingsError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn no_file_reads_as_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let s = read_with(dir.path(), &Fake::default()).unwrap();
        assert_eq!(s.bind, "127.0.0.1:18789");
        assert_eq!(s.mdns, "minimal");
        assert!(!s.name.is_empty());
        assert_eq!(s.running, None);
        assert!(!s.restart_required);
        assert_eq!(s.models, ModelTiers::default());
        assert_eq!(s.desktop.location, None);
        assert!(s.problems.is_empty());
        assert!(s.config_path.ends_with("perch.toml"));
    }

    #[test]
    fn update_keeps_comments_order_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let original = "\
# My host. Hands off the comments!
[gateway]
# where it listens
bind = \"127.0.0.1:9000\" # loopback only
name = \"old\"
tick_interval_ms = 500

[models.default]
provider = \"openai\" # the cheap one
model = \"gpt-x\"

[extensions.weather]
city = \"Vienna\"
";
        write(dir.path(), original);
        let s = update_with(
            dir.path(),
            patch(
                json!({"bind": "0.0.0.0:9100", "models": {"default": {"model": "gpt-y"}},
                         "desktop": {"location": {"lat": 48.2, "lon": 16.37}}}),
            ),
            &Fake::default(),
        )
        .unwrap();
        let text = file(dir.path());
        assert_eq!(
            text,
            "\
# My host. Hands off the comments!
[gateway]
# where it listens
bind = \"0.0.0.0:9100\" # loopback only
name = \"old\"
tick_interval_ms = 500

[models.default]
provider = \"openai\" # the cheap one
model = \"gpt-y\"

[extensions.weather]
city = \"Vienna\"

[desktop]
location = { lat = 48.2, lon = 16.37, accuracy_m = 100.0 }
"
        );
        assert_eq!(s.bind, "0.0.0.0:9100");
        assert_eq!(s.name, "old");
        assert_eq!(s.models.default.as_ref().unwrap().model, "gpt-y");
        assert_eq!(
            s.desktop.location,
            Some(DesktopLocation {
                lat: 48.2,
                lon: 16.37,
                accuracy_m: 100.0
            })
        );
        // The result is a file the host accepts.
        crate::config::HostConfig::load(dir.path()).unwrap();
        ModelsConfig::from_toml(&text).unwrap();
    }

    #[test]
    fn new_sections_get_headers_without_empty_parents() {
        let dir = tempfile::tempdir().unwrap();
        update_with(
            dir.path(),
            patch(json!({"name": " Studio ", "mdns": "FULL",
                         "models": {"fast": {"provider": "anthropic", "model": "claude-x",
                                             "baseUrl": "https://api.example.com"}}})),
            &Fake::default(),
        )
        .unwrap();
        let text = file(dir.path());
        assert_eq!(
            text,
            "[gateway]\nname = \"Studio\"\nmdns = \"full\"\n\n[models.fast]\nprovider = \"anthropic\"\nmodel = \"claude-x\"\nbase_url = \"https://api.example.com\"\n"
        );
        let s = update_with(
            dir.path(),
            patch(json!({"models": {"fast": {"baseUrl": null}}, "desktop": {"location": null}})),
            &Fake::default(),
        )
        .unwrap();
        assert_eq!(s.models.fast.unwrap().base_url, None);
        assert!(!file(dir.path()).contains("base_url"));
    }

    #[test]
    fn the_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "[gateway]\nname = \"a\"\n");
        update_with(dir.path(), patch(json!({"name": "b"})), &Fake::default()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CONFIG_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec![CONFIG_FILE.to_string()], "no temporary left");
    }

    #[test]
    fn a_missing_data_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("new");
        update_with(&sub, patch(json!({"mdns": "off"})), &Fake::default()).unwrap();
        assert_eq!(file(&sub), "[gateway]\nmdns = \"off\"\n");
    }

    #[test]
    fn each_bad_value_is_refused_naming_its_field_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let before = "[gateway]\nname = \"keep\"\n";
        write(dir.path(), before);
        let cases = [
            (json!({"name": ""}), "name"),
            (json!({"name": "x".repeat(64)}), "name"),
            (json!({"bind": "nope"}), "bind"),
            (json!({"bind": "1.2.3.4:99999"}), "bind"),
            (json!({"mdns": "loud"}), "mdns"),
            (
                json!({"models": {"fast": {"provider": "acme", "model": "m"}}}),
                "models.fast.provider",
            ),
            (
                json!({"models": {"fast": {"provider": "openai", "model": " "}}}),
                "models.fast.model",
            ),
            (
                json!({"models": {"smart": {"provider": "openai", "model": "m",
                                            "baseUrl": "ftp://x"}}}),
                "models.smart.baseUrl",
            ),
            (
                json!({"models": {"smart": {"provider": "openai", "model": "m",
                                            "baseUrl": "https://a b"}}}),
                "models.smart.baseUrl",
            ),
            (
                json!({"models": {"default": {"model": "m"}}}),
                "models.default.provider",
            ),
            (
                json!({"models": {"default": {"provider": "openai"}}}),
                "models.default.model",
            ),
            (
                json!({"desktop": {"location": {"lat": 91, "lon": 0}}}),
                "desktop.location.lat",
            ),
            (
                json!({"desktop": {"location": {"lat": 0, "lon": -181}}}),
                "desktop.location.lon",
            ),
            (
                json!({"desktop": {"location": {"lat": 0, "lon": 0, "accuracyM": -1}}}),
                "desktop.location.accuracyM",
            ),
        ];
        for (p, field) in cases {
            let e = update_with(dir.path(), patch(p.clone()), &Fake::default()).unwrap_err();
            let shape = e.to_shape();
            assert_eq!(shape.code, ErrorCode::InvalidRequest, "{p}");
            assert_eq!(shape.details.as_ref().unwrap()["field"], field, "{p}");
            assert!(shape.message.contains(field), "{}", shape.message);
            assert_eq!(file(dir.path()), before, "{p} changed the file");
        }
    }

    #[test]
    fn malformed_patches_name_the_field() {
        let cases = [
            (json!({"name": 5}), "name"),
            (
                json!({"models": {"fast": {"model": true}}}),
                "models.fast.model",
            ),
            (json!({"models": {"huge": {}}}), "models.huge"),
            (json!({"nmae": "x"}), "nmae"),
            (
                json!({"desktop": {"location": {"lat": "north", "lon": 1}}}),
                "desktop.location.lat",
            ),
            (json!(["name"]), "params"),
            (json!("name"), "params"),
        ];
        for (p, field) in cases {
            let e = parse_patch(p.clone()).unwrap_err();
            assert_eq!(invalid_field(e), field, "{p}");
        }
    }

    #[test]
    fn secret_fields_are_refused_pointing_to_perch_auth_set() {
        for p in [
            json!({"models": {"fast": {"provider": "openai", "model": "m", "apiKey": "sk-1"}}}),
            json!({"api_key": "sk-1"}),
            json!({"token": "t"}),
        ] {
            let e = parse_patch(p.clone()).unwrap_err();
            let shape = e.to_shape();
            assert_eq!(shape.code, ErrorCode::InvalidRequest);
            assert!(
                shape.message.contains("perch auth set"),
                "{}",
                shape.message
            );
            assert!(!shape.message.contains("sk-1"), "the secret is echoed");
        }
    }

    #[test]
    fn a_corrupt_file_is_reported_with_its_line_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let bad = "# fine\n[gateway]\nbind = 127.0.0.1:9000\n";
        write(dir.path(), bad);
        let e = read_with(dir.path(), &Fake::default()).unwrap_err();
        assert!(
            matches!(&e, SettingsError::Corrupt { line: Some(3), .. }),
            "{e:?}"
        );
        let shape = e.to_shape();
        assert_eq!(shape.code, ErrorCode::Unavailable);
        assert_eq!(shape.details.as_ref().unwrap()["reason"], "config-corrupt");
        assert_eq!(shape.details.as_ref().unwrap()["line"], 3);
        assert!(shape.message.contains("line 3"), "{}", shape.message);
        let e = update_with(dir.path(), patch(json!({"name": "x"})), &Fake::default()).unwrap_err();
        assert!(matches!(e, SettingsError::Corrupt { .. }), "{e:?}");
        assert_eq!(
            file(dir.path()),
            bad,
            "never overwritten without resetCorrupt"
        );
    }

    #[test]
    fn reset_corrupt_moves_the_bad_file_aside_first() {
        let dir = tempfile::tempdir().unwrap();
        let bad = "[gateway\nname = \"x\"\n";
        write(dir.path(), bad);
        let s = update_with(
            dir.path(),
            patch(json!({"bind": "127.0.0.1:9200", "resetCorrupt": true})),
            &Fake::default(),
        )
        .unwrap();
        assert_eq!(s.bind, "127.0.0.1:9200");
        assert_eq!(file(dir.path()), "[gateway]\nbind = \"127.0.0.1:9200\"\n");
        let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("perch.toml.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), bad);
        // On a valid file the flag changes nothing but the patch.
        update_with(
            dir.path(),
            patch(json!({"mdns": "off", "resetCorrupt": true})),
            &Fake::default(),
        )
        .unwrap();
        assert!(file(dir.path()).contains("bind = \"127.0.0.1:9200\""));
    }

    #[test]
    fn a_file_that_parses_but_a_host_would_refuse_can_be_fixed_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "[gateway]\nbind = \"nope\" # typo\n[desktop]\nlocation = { lat = 100, lon = 0 }\n",
        );
        let s = read_with(dir.path(), &Fake::default()).unwrap();
        assert_eq!(s.bind, "nope");
        let sections: Vec<&str> = s.problems.iter().map(|p| p.section.as_str()).collect();
        assert_eq!(sections, vec!["gateway", "desktop"], "{:?}", s.problems);
        assert!(s.problems[0].message.contains("bind"), "{:?}", s.problems);
        let s = update_with(
            dir.path(),
            patch(json!({"bind": "127.0.0.1:9300"})),
            &Fake::default(),
        )
        .unwrap();
        assert_eq!(s.bind, "127.0.0.1:9300");
        assert_eq!(s.problems.len(), 1, "only the desktop problem is left");
        assert!(file(dir.path()).contains("bind = \"127.0.0.1:9300\" # typo"));
        crate::config::HostConfig::load(dir.path()).unwrap();
    }

    #[test]
    fn problems_never_quote_the_offending_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "[gateway]\napi_key = \"sk-pasted-here\"\n");
        let s = read_with(dir.path(), &Fake::default()).unwrap();
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].message.contains("line 2"), "{:?}", s.problems);
        assert!(
            s.problems[0].message.contains("api_key"),
            "{:?}",
            s.problems
        );
        assert!(
            !serde_json::to_string(&s)
                .unwrap()
                .contains("sk-pasted-here"),
            "{:?}",
            s.problems
        );
    }

    #[test]
    fn a_section_of_the_wrong_kind_is_refused_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "gateway = 5\n");
        let e = update_with(dir.path(), patch(json!({"name": "x"})), &Fake::default()).unwrap_err();
        assert_eq!(invalid_field(e), "name");
        assert_eq!(file(dir.path()), "gateway = 5\n");
    }

    #[test]
    fn credentials_say_where_they_are_never_what() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "[models.fast]\nprovider = \"openai\"\nmodel = \"a\"\napi_key = \"sk-in-file\"\n\
             [models.default]\nprovider = \"anthropic\"\nmodel = \"b\"\n\
             [models.smart]\nprovider = \"openai\"\nmodel = \"c\"\n",
        );
        let mut sources = Fake::default();
        sources
            .env
            .insert("ANTHROPIC_API_KEY".into(), "sk-env".into());
        let s = read_with(dir.path(), &sources).unwrap();
        let source = |t: &Option<TierInfo>| t.as_ref().unwrap().credential.clone();
        assert_eq!(
            source(&s.models.fast),
            CredentialInfo {
                configured: true,
                source: Some(CredentialSourceKind::Config),
                tier_secret: false,
                problem: None,
            }
        );
        assert_eq!(
            source(&s.models.default).source,
            Some(CredentialSourceKind::Env)
        );
        let smart = source(&s.models.smart);
        assert!(!smart.configured && smart.source.is_none(), "{smart:?}");
        assert_eq!(smart.problem.unwrap().reason, "credential-missing");
        let wire = serde_json::to_string(&s).unwrap();
        assert!(
            !wire.contains("sk-in-file") && !wire.contains("sk-env"),
            "{wire}"
        );

        // The keyring, and the secret store's 0600 file where no keyring answers.
        sources
            .keyring
            .insert("openai:api_key".into(), "sk-kr".into());
        let s = read_with(dir.path(), &sources).unwrap();
        assert_eq!(
            source(&s.models.smart).source,
            Some(CredentialSourceKind::Keyring)
        );
        Vault::file_only(dir.path())
            .set(
                "openai:api_key",
                &perch_kernel::credentials::Secret::new("sk-kr"),
            )
            .unwrap();
        let s = read_with(dir.path(), &sources).unwrap();
        assert_eq!(
            source(&s.models.smart).source,
            Some(CredentialSourceKind::File)
        );
    }

    #[test]
    fn a_local_server_needs_no_credential() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "[models.fast]\nprovider = \"openai\"\nmodel = \"llama\"\nbase_url = \"http://localhost:11434/v1\"\n",
        );
        let s = read_with(dir.path(), &Fake::default()).unwrap();
        let fast = s.models.fast.unwrap();
        assert_eq!(fast.base_url.as_deref(), Some("http://localhost:11434/v1"));
        assert_eq!(
            fast.credential,
            CredentialInfo {
                configured: true,
                source: None,
                tier_secret: false,
                problem: None,
            }
        );
    }

    #[test]
    fn restart_is_required_when_the_file_differs_from_the_running_host() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "[gateway]\nname = \"box\"\nbind = \"localhost:9000\"\n",
        );
        let s = read_with(dir.path(), &Fake::default()).unwrap();
        let running = |name: &str, bind: &str| RunningSettings {
            name: name.into(),
            bind: bind.into(),
            mdns: "minimal".into(),
            overridden: vec![],
        };
        let same = with_running(s.clone(), running("box", "127.0.0.1:9000"));
        assert!(!same.restart_required);
        assert_eq!(same.running.as_ref().unwrap().name, "box");
        assert!(with_running(s.clone(), running("other", "127.0.0.1:9000")).restart_required);
        assert!(with_running(s.clone(), running("box", "127.0.0.1:9001")).restart_required);
        // A --bind flag keeps the file's address from applying: no restart would change it.
        let flagged = RunningSettings {
            overridden: vec!["bind".into()],
            ..running("box", "127.0.0.1:9001")
        };
        assert!(!with_running(s.clone(), flagged.clone()).restart_required);
        assert!(
            with_running(
                s,
                RunningSettings {
                    name: "other".into(),
                    ..flagged
                }
            )
            .restart_required,
            "the name has no flag"
        );
    }

    const OPENAI_TIER: &str = "[models.fast]\nprovider = \"openai\"\nmodel = \"m\"\n";

    #[test]
    fn userinfo_is_refused_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), OPENAI_TIER);
        let e = update_with(
            dir.path(),
            patch(json!({"models": {"fast": {"baseUrl": "https://me:hunter2@gw.example/v1"}}})),
            &Fake::default(),
        )
        .unwrap_err();
        let shape = e.to_shape();
        assert_eq!(
            shape.details.as_ref().unwrap()["field"],
            "models.fast.baseUrl"
        );
        assert!(
            shape.message.contains("user:password@"),
            "{}",
            shape.message
        );
        assert!(!shape.message.contains("hunter2"), "{}", shape.message);
        assert_eq!(file(dir.path()), OPENAI_TIER);
        // A hand-edited file may have it; settings.get never returns it.
        write(
            dir.path(),
            "[models.fast]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = \"https://me:hunter2@gw.example/v1\"\n",
        );
        let s = read_with(dir.path(), &Fake::default()).unwrap();
        let wire = serde_json::to_string(&s).unwrap();
        assert!(!wire.contains("hunter2") && !wire.contains("me:"), "{wire}");
        assert_eq!(
            s.models.fast.unwrap().base_url.as_deref(),
            Some("https://gw.example/v1")
        );
    }

    #[test]
    fn plain_http_needs_loopback_or_the_tiers_permission() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), OPENAI_TIER);
        let lan = json!({"models": {"fast": {"baseUrl": "http://192.168.1.9:8080/v1"}}});
        let e = update_with(dir.path(), patch(lan.clone()), &Fake::default()).unwrap_err();
        assert_eq!(invalid_field(e), "models.fast.baseUrl");
        assert_eq!(file(dir.path()), OPENAI_TIER);
        for ok in [
            "http://127.0.0.1:9/v1",
            "http://localhost:1",
            "http://[::1]:2/v1",
        ] {
            update_with(
                dir.path(),
                patch(json!({"models": {"fast": {"baseUrl": ok}}})),
                &Fake::default(),
            )
            .unwrap();
        }
        let s = update_with(
            dir.path(),
            patch(
                json!({"models": {"fast": {"baseUrl": "http://192.168.1.9:8080/v1",
                                              "allowInsecureHttp": true}}}),
            ),
            &Fake::default(),
        )
        .unwrap();
        assert!(s.models.fast.unwrap().allow_insecure_http);
        assert!(file(dir.path()).contains("allow_insecure_http = true"));
        // Taking the permission back while the URL is plain http is refused too.
        let e = update_with(
            dir.path(),
            patch(json!({"models": {"fast": {"allowInsecureHttp": false}}})),
            &Fake::default(),
        )
        .unwrap_err();
        assert_eq!(invalid_field(e), "models.fast.allowInsecureHttp");
        // A hand-edited file without the permission: the tier is not usable, and says why.
        write(
            dir.path(),
            "[models.fast]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = \"http://10.0.0.2/v1\"\n",
        );
        let mut env = Fake::default();
        env.env.insert("OPENAI_API_KEY".into(), "sk-env".into());
        let c = read_with(dir.path(), &env)
            .unwrap()
            .models
            .fast
            .unwrap()
            .credential;
        assert!(!c.configured);
        assert_eq!(c.problem.unwrap().reason, "insecure-http");
    }

    #[test]
    fn moving_a_tier_keeps_a_stored_key_home_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), OPENAI_TIER);
        let mut kr = Fake::default();
        kr.keyring.insert("openai:api_key".into(), "sk-kr".into());
        // Never used yet: the move binds it to where it was, so it does not follow.
        let s = update_with(
            dir.path(),
            patch(json!({"models": {"fast": {"baseUrl": "https://elsewhere.example/v1"}}})),
            &kr,
        )
        .unwrap();
        let c = s.models.fast.unwrap().credential;
        assert!(!c.configured, "{c:?}");
        let problem = c.problem.unwrap();
        assert_eq!(problem.reason, "credential-origin-changed");
        assert!(
            problem.message.contains("https://api.openai.com:443")
                && problem.message.contains("https://elsewhere.example:443")
                && problem.message.contains("store the key again"),
            "{}",
            problem.message
        );
        // Pointing it back home makes it usable again.
        let s = update_with(
            dir.path(),
            patch(json!({"models": {"fast": {"baseUrl": null}}})),
            &kr,
        )
        .unwrap();
        assert!(s.models.fast.unwrap().credential.configured);
    }

    #[test]
    fn moving_a_key_that_cannot_be_held_back_needs_a_confirmation() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), OPENAI_TIER);
        let mut env = Fake::default();
        env.env.insert("OPENAI_API_KEY".into(), "sk-env".into());
        let away = json!({"models": {"fast": {"baseUrl": "https://elsewhere.example/v1"}}});
        let e = update_with(dir.path(), patch(away), &env).unwrap_err();
        let shape = e.to_shape();
        let d = shape.details.as_ref().unwrap();
        assert_eq!(d["field"], "models.fast.baseUrl");
        assert_eq!(d["reason"], "credential-would-move");
        assert!(
            shape.message.contains("OPENAI_API_KEY"),
            "{}",
            shape.message
        );
        assert!(!shape.message.contains("sk-env"));
        assert_eq!(file(dir.path()), OPENAI_TIER);
        let s = update_with(
            dir.path(),
            patch(
                json!({"models": {"fast": {"baseUrl": "https://elsewhere.example/v1",
                                              "moveCredential": true}}}),
            ),
            &env,
        )
        .unwrap();
        assert!(s.models.fast.unwrap().credential.configured);
        // A change that keeps the origin needs nothing.
        update_with(
            dir.path(),
            patch(json!({"models": {"fast": {"baseUrl": "https://elsewhere.example/v2"}}})),
            &env,
        )
        .unwrap();
    }

    #[test]
    fn a_tiers_own_key_is_stored_bound_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), OPENAI_TIER);
        let vault = Vault::file_only(dir.path());
        let sources = VaultSources(vault.clone());
        let key = Secret::new("sk-tier-own-1");
        let s = store_secret(dir.path(), "fast", &key, &vault, &sources).unwrap();
        let c = s.models.fast.clone().unwrap().credential;
        assert!(c.configured && c.tier_secret, "{c:?}");
        assert_eq!(c.source, Some(CredentialSourceKind::File));
        assert!(!serde_json::to_string(&s).unwrap().contains("sk-tier-own-1"));
        assert_eq!(
            CredentialOrigins::new(dir.path())
                .bound("fast", "openai:api_key:fast")
                .as_deref(),
            Some("https://api.openai.com:443")
        );
        // Unknown or unconfigured tiers are refused by name.
        let e = store_secret(dir.path(), "smart", &key, &vault, &sources).unwrap_err();
        assert_eq!(invalid_field(e), "tier");
        let e = store_secret(dir.path(), "huge", &key, &vault, &sources).unwrap_err();
        assert_eq!(invalid_field(e), "tier");
        let s = clear_secret(dir.path(), "fast", &vault, &sources).unwrap();
        let c = s.models.fast.unwrap().credential;
        assert!(!c.configured && !c.tier_secret, "{c:?}");
        assert_eq!(vault.get("openai:api_key:fast"), None);
    }
}
