//! Model tiers and their credentials: which provider and model each tier uses, and where its
//! secret comes from (config, then environment, then the OS keyring). A tier whose credential
//! is missing is an explicit error; the kernel never falls back to another tier.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::credential_origins::{
    CredentialOrigins, Verdict, is_loopback, origin_of, tier_origin, without_userinfo,
};

/// The tiers a turn can ask for.
pub const TIERS: &[&str] = &["fast", "default", "smart"];
/// Keyring service name for Perch secrets.
pub const KEYRING_SERVICE: &str = "perch";

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which wire format a tier speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions, and every compatible server.
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

impl ProviderKind {
    /// The name used in messages and keyring accounts.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// How a tier authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// An API key if one is found, else an OAuth token (Anthropic), else none for a local server.
    #[default]
    Auto,
    /// An API key only.
    ApiKey,
    /// An OAuth bearer token only (Anthropic).
    Oauth,
}

/// One `[models.TIER]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Wire format.
    pub provider: ProviderKind,
    /// Model name.
    pub model: String,
    /// Base URL for compatible servers (Ollama, vLLM, gateways).
    #[serde(default)]
    pub base_url: Option<String>,
    /// How to authenticate.
    #[serde(default)]
    pub auth_mode: AuthMode,
    /// A key in the file itself (discouraged; the keyring is better).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Allows a plain `http://` base URL off this machine (a trusted LAN server); without it,
    /// `http://` is for loopback only, at resolution as in `settings.set`.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// The `[models]` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelsConfig {
    /// Tiers by name.
    pub tiers: BTreeMap<String, TierConfig>,
}

/// Why the `[models]` section or a credential is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CredentialError {
    /// The section does not parse; the message names the line.
    #[error("perch.toml [models]: {0}")]
    Config(String),
    /// A tier name other than fast, default, smart.
    #[error("perch.toml: unknown model tier {0:?}; use fast, default or smart")]
    UnknownTier(String),
    /// The tier is not configured at all.
    #[error("model tier {0:?} is not configured; add [models.{0}] to perch.toml")]
    TierNotConfigured(String),
    /// The tier's auth mode cannot work with its provider.
    #[error("model tier {tier:?}: {provider} does not support auth_mode {mode}")]
    UnsupportedAuthMode {
        /// The tier.
        tier: String,
        /// The provider.
        provider: &'static str,
        /// The mode.
        mode: &'static str,
    },
    /// No credential in any source.
    #[error(
        "model tier {tier:?} ({provider}) has no credential: looked in {}; set one with `perch auth set {provider}`",
        tried.join(", ")
    )]
    Missing {
        /// The tier.
        tier: String,
        /// The provider.
        provider: &'static str,
        /// The places looked in, in order (names, never values).
        tried: Vec<String>,
    },
    /// The stored credential is bound to another origin than the tier now points at.
    #[error(
        "store the key again for model tier {tier:?} ({provider}): its base_url moved from {bound} to {origin}, and a stored key stays with the address it was set for (Settings: the tier's key, or `perch auth set {provider}`)"
    )]
    OriginChanged {
        /// The tier.
        tier: String,
        /// The provider.
        provider: &'static str,
        /// Where the secret may go.
        bound: String,
        /// Where the tier points now (`unknown` when its base URL does not parse).
        origin: String,
    },
    /// The tier points at plain `http://` off this machine without `allow_insecure_http`.
    #[error(
        "model tier {tier:?} points at {origin}, plain http off this machine, where its requests (and any key) would cross the network in clear; use https://, or set allow_insecure_http = true in [models.{tier}] for a server on a network you trust"
    )]
    InsecureHttp {
        /// The tier.
        tier: String,
        /// Where it points (`scheme://host:port`, never userinfo).
        origin: String,
    },
}

impl CredentialError {
    /// A stable reason for clients to branch on (`details.reason` on the wire).
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialError::Config(_) => "config-invalid",
            CredentialError::UnknownTier(_) => "unknown-tier",
            CredentialError::TierNotConfigured(_) => "tier-not-configured",
            CredentialError::UnsupportedAuthMode { .. } => "unsupported-auth-mode",
            CredentialError::Missing { .. } => "credential-missing",
            CredentialError::OriginChanged { .. } => "credential-origin-changed",
            CredentialError::InsecureHttp { .. } => "insecure-http",
        }
    }
}

/// Where a credential was found (shown by `perch auth status`; never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `api_key` in perch.toml.
    Config,
    /// An environment variable.
    Env(&'static str),
    /// Perch's secret store (the OS keyring, or its 0600 file fallback), under this account.
    Keyring(String),
    /// None needed: a local server.
    NoneNeeded,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Config => f.write_str("perch.toml"),
            CredentialSource::Env(v) => write!(f, "environment variable {v}"),
            CredentialSource::Keyring(a) => write!(f, "the secret store ({KEYRING_SERVICE}/{a})"),
            CredentialSource::NoneNeeded => f.write_str("none needed (local server)"),
        }
    }
}

/// How the credential is presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key (`Authorization: Bearer` for OpenAI, `x-api-key` for Anthropic).
    ApiKey(Secret),
    /// An OAuth bearer token.
    Bearer(Secret),
    /// Nothing to send.
    None,
}

/// A resolved credential and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What to send.
    pub credential: Credential,
    /// Where it was found.
    pub source: CredentialSource,
}

/// Where secrets may be found, injectable so tests need no real environment or keyring.
pub trait SecretSources {
    /// An environment variable.
    fn env(&self, name: &str) -> Option<String>;
    /// A keyring entry (service [`KEYRING_SERVICE`]).
    fn keyring(&self, account: &str) -> Option<String>;
}

/// Keyring account names, one per provider and kind (what `perch auth set` writes, shared by
/// every tier of that provider).
pub fn keyring_account(provider: ProviderKind, oauth: bool) -> String {
    format!(
        "{}:{}",
        provider.as_str(),
        if oauth { "oauth_token" } else { "api_key" }
    )
}

/// The account of one tier's own secret (`settings.secret.set`, the Settings page): used before
/// the provider's shared one, so two tiers of one provider can hold keys for two servers.
pub fn tier_account(provider: ProviderKind, oauth: bool, tier: &str) -> String {
    format!("{}:{tier}", keyring_account(provider, oauth))
}

/// Whether a keyring account is a tier's own (see [`tier_account`]).
pub fn is_tier_account(account: &str) -> bool {
    account.matches(':').count() == 2
}

impl TierConfig {
    /// Whether this tier authenticates with an OAuth token rather than an API key.
    pub fn uses_oauth(&self) -> bool {
        self.auth_mode == AuthMode::Oauth
    }

    /// Refuses a plain `http://` base URL off this machine unless the tier allows it.
    pub fn check_transport(&self, tier: &str) -> Result<(), CredentialError> {
        let Some(url) = self.base_url.as_deref() else {
            return Ok(());
        };
        let plain = url
            .trim()
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"));
        if plain && !self.allow_insecure_http && !is_loopback(url) {
            return Err(CredentialError::InsecureHttp {
                tier: tier.to_string(),
                origin: origin_of(url).unwrap_or_else(|| without_userinfo(url)),
            });
        }
        Ok(())
    }
}

impl ModelsConfig {
    /// Parses the `[models]` table of a whole `perch.toml` text (other sections ignored).
    pub fn from_toml(text: &str) -> Result<Self, CredentialError> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            models: BTreeMap<String, TierConfig>,
            #[serde(flatten)]
            _other: toml::Table,
        }
        let file: File = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            CredentialError::Config(match line {
                Some(l) => format!("line {l}: {}", e.message().trim()),
                None => e.message().trim().to_string(),
            })
        })?;
        if let Some(bad) = file.models.keys().find(|k| !TIERS.contains(&k.as_str())) {
            return Err(CredentialError::UnknownTier(bad.clone()));
        }
        Ok(Self { tiers: file.models })
    }

    /// Resolves the credential of one tier; a tier that points at plain `http://` off this
    /// machine without `allow_insecure_http` is refused first (a hand-edited file included).
    pub fn resolve(
        &self,
        tier: &str,
        sources: &dyn SecretSources,
    ) -> Result<Resolved, CredentialError> {
        let cfg = self
            .tiers
            .get(tier)
            .ok_or_else(|| CredentialError::TierNotConfigured(tier.to_string()))?;
        cfg.check_transport(tier)?;
        resolve(tier, cfg, sources)
    }

    /// [`ModelsConfig::resolve`], refusing a secret-store credential bound to another origin
    /// (a local OpenAI-compatible server then gets none, as it needs none). Also returns the
    /// binding to record, `(account, origin)`, when this tier has none yet.
    pub fn resolve_bound(
        &self,
        tier: &str,
        sources: &dyn SecretSources,
        origins: &CredentialOrigins,
    ) -> Result<(Resolved, Option<(String, String)>), CredentialError> {
        let resolved = self.resolve(tier, sources)?;
        let CredentialSource::Keyring(account) = &resolved.source else {
            return Ok((resolved, None));
        };
        let Some(cfg) = self.tiers.get(tier) else {
            return Err(CredentialError::TierNotConfigured(tier.to_string()));
        };
        let origin = tier_origin(cfg);
        let verdict = match &origin {
            Some(o) => origins.check(tier, account, o),
            None => Verdict::Refused {
                bound: origins
                    .bound(tier, account)
                    .unwrap_or_else(|| "another address".into()),
            },
        };
        match verdict {
            Verdict::Allowed => Ok((resolved, None)),
            Verdict::Unbound => {
                let record = origin.map(|o| (account.clone(), o));
                Ok((resolved, record))
            }
            Verdict::Refused { bound } => {
                if cfg.provider == ProviderKind::Openai
                    && cfg.auth_mode == AuthMode::Auto
                    && is_local(cfg.base_url.as_deref())
                {
                    return Ok((
                        Resolved {
                            credential: Credential::None,
                            source: CredentialSource::NoneNeeded,
                        },
                        None,
                    ));
                }
                Err(CredentialError::OriginChanged {
                    tier: tier.to_string(),
                    provider: cfg.provider.as_str(),
                    bound,
                    origin: origin.unwrap_or_else(|| "unknown".into()),
                })
            }
        }
    }
}

/// A base URL on this machine (`localhost`, 127.0.0.0/8, `::1`): a compatible server there
/// needs no key.
fn is_local(base_url: Option<&str>) -> bool {
    base_url.is_some_and(is_loopback)
}

/// Resolves one tier's credential: config, then environment, then keyring, as the mode allows.
pub fn resolve(
    tier: &str,
    cfg: &TierConfig,
    sources: &dyn SecretSources,
) -> Result<Resolved, CredentialError> {
    let provider = cfg.provider;
    let mut tried = Vec::new();
    let api_key_env: &'static str = match provider {
        ProviderKind::Openai => "OPENAI_API_KEY",
        ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
    };
    // The most specific first: this tier's key in the file, this tier's own stored key, then
    // the provider's key from the environment, then the provider's stored key.
    let stored = |tried: &mut Vec<String>, account: String| -> Option<Resolved> {
        tried.push(format!("secret store {KEYRING_SERVICE}/{account}"));
        sources
            .keyring(&account)
            .filter(|k| !k.trim().is_empty())
            .map(|k| (Secret::new(k.trim()), account))
            .map(|(k, account)| Resolved {
                credential: if account.contains(":oauth_token") {
                    Credential::Bearer(k)
                } else {
                    Credential::ApiKey(k)
                },
                source: CredentialSource::Keyring(account),
            })
    };
    let find_api_key = |tried: &mut Vec<String>| -> Option<Resolved> {
        tried.push("perch.toml api_key".into());
        if let Some(k) = cfg
            .api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty())
        {
            return Some(Resolved {
                credential: Credential::ApiKey(k),
                source: CredentialSource::Config,
            });
        }
        if let Some(r) = stored(tried, tier_account(provider, false, tier)) {
            return Some(r);
        }
        tried.push(api_key_env.into());
        if let Some(k) = sources.env(api_key_env).filter(|k| !k.trim().is_empty()) {
            return Some(Resolved {
                credential: Credential::ApiKey(Secret::new(k.trim())),
                source: CredentialSource::Env(api_key_env),
            });
        }
        stored(tried, keyring_account(provider, false))
    };
    let find_oauth = |tried: &mut Vec<String>| -> Option<Resolved> {
        if let Some(r) = stored(tried, tier_account(provider, true, tier)) {
            return Some(r);
        }
        tried.push("ANTHROPIC_AUTH_TOKEN".into());
        if let Some(t) = sources
            .env("ANTHROPIC_AUTH_TOKEN")
            .filter(|t| !t.trim().is_empty())
        {
            return Some(Resolved {
                credential: Credential::Bearer(Secret::new(t.trim())),
                source: CredentialSource::Env("ANTHROPIC_AUTH_TOKEN"),
            });
        }
        stored(tried, keyring_account(provider, true))
    };
    let found = match (cfg.auth_mode, provider) {
        (AuthMode::ApiKey, _) => find_api_key(&mut tried),
        (AuthMode::Oauth, ProviderKind::Anthropic) => find_oauth(&mut tried),
        (AuthMode::Oauth, ProviderKind::Openai) => {
            return Err(CredentialError::UnsupportedAuthMode {
                tier: tier.to_string(),
                provider: provider.as_str(),
                mode: "oauth",
            });
        }
        (AuthMode::Auto, ProviderKind::Anthropic) => {
            find_api_key(&mut tried).or_else(|| find_oauth(&mut tried))
        }
        (AuthMode::Auto, ProviderKind::Openai) => find_api_key(&mut tried).or_else(|| {
            // A compatible server on this machine (Ollama, LM Studio) needs no key.
            is_local(cfg.base_url.as_deref()).then_some(Resolved {
                credential: Credential::None,
                source: CredentialSource::NoneNeeded,
            })
        }),
    };
    found.ok_or(CredentialError::Missing {
        tier: tier.to_string(),
        provider: provider.as_str(),
        tried,
    })
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

    fn tier(provider: ProviderKind, mode: AuthMode) -> TierConfig {
        TierConfig {
            provider,
            model: "m".into(),
            base_url: None,
            auth_mode: mode,
            api_key: None,
            allow_insecure_http: false,
        }
    }

    #[test]
    fn a_stored_key_is_not_sent_to_an_origin_it_was_not_set_for() {
        let dir = tempfile::tempdir().unwrap();
        let origins = CredentialOrigins::new(dir.path());
        let mut f = Fake::default();
        f.keyring.insert("openai:api_key".into(), "kr".into());
        f.env.insert("ANTHROPIC_API_KEY".into(), "env".into());
        let mut models = ModelsConfig::default();
        models
            .tiers
            .insert("fast".into(), tier(ProviderKind::Openai, AuthMode::Auto));
        // First use: allowed, and the caller is told what to record.
        let (r, record) = models.resolve_bound("fast", &f, &origins).unwrap();
        assert_eq!(r.credential, Credential::ApiKey(Secret::new("kr")));
        let record = record.unwrap();
        assert_eq!(record.1, "https://api.openai.com:443");
        origins.bind("fast", &record.0, &record.1).unwrap();
        assert_eq!(models.resolve_bound("fast", &f, &origins).unwrap().1, None);
        // Pointed elsewhere: refused, naming both origins and the way out.
        let t = models.tiers.get_mut("fast").unwrap();
        t.base_url = Some("https://proxy.example/v1".into());
        let e = models.resolve_bound("fast", &f, &origins).unwrap_err();
        assert!(matches!(e, CredentialError::OriginChanged { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("https://proxy.example:443"), "{msg}");
        assert!(msg.contains("https://api.openai.com:443"), "{msg}");
        assert!(msg.contains("perch auth set openai"), "{msg}");
        assert!(
            msg.starts_with("store the key again for model tier \"fast\""),
            "{msg}"
        );
        assert_eq!(e.reason(), "credential-origin-changed");
        assert!(!msg.contains("kr"), "{msg}");
        // A local server gets no key at all rather than the bound one.
        models.tiers.get_mut("fast").unwrap().base_url = Some("http://localhost:11434/v1".into());
        let (r, _) = models.resolve_bound("fast", &f, &origins).unwrap();
        assert_eq!(r.credential, Credential::None);
        // Storing the key again releases it.
        models.tiers.get_mut("fast").unwrap().base_url = Some("https://proxy.example/v1".into());
        origins.release("openai:api_key").unwrap();
        assert!(models.resolve_bound("fast", &f, &origins).is_ok());
        // Environment credentials are not bound.
        let mut a = tier(ProviderKind::Anthropic, AuthMode::Auto);
        a.base_url = Some("https://elsewhere.example".into());
        models.tiers.insert("smart".into(), a);
        origins
            .bind(
                "smart",
                "anthropic:api_key",
                "https://api.anthropic.com:443",
            )
            .unwrap();
        let (r, record) = models.resolve_bound("smart", &f, &origins).unwrap();
        assert_eq!(r.source, CredentialSource::Env("ANTHROPIC_API_KEY"));
        assert_eq!(record, None);
    }

    #[test]
    fn a_tiers_own_key_comes_before_the_environment_and_the_shared_key() {
        let mut f = Fake::default();
        f.keyring.insert("openai:api_key".into(), "shared".into());
        f.env.insert("OPENAI_API_KEY".into(), "env".into());
        let mut t = tier(ProviderKind::Openai, AuthMode::Auto);
        assert_eq!(
            resolve("fast", &t, &f).unwrap().source,
            CredentialSource::Env("OPENAI_API_KEY")
        );
        f.keyring.insert("openai:api_key:fast".into(), "own".into());
        let r = resolve("fast", &t, &f).unwrap();
        assert_eq!(r.credential, Credential::ApiKey(Secret::new("own")));
        assert_eq!(
            r.source,
            CredentialSource::Keyring("openai:api_key:fast".into())
        );
        // Another tier of the same provider does not see it.
        assert_eq!(
            resolve("smart", &t, &f).unwrap().source,
            CredentialSource::Env("OPENAI_API_KEY")
        );
        t.api_key = Some(Secret::new("file"));
        assert_eq!(
            resolve("fast", &t, &f).unwrap().source,
            CredentialSource::Config
        );
        // An OAuth tier's own token is a bearer token.
        let mut f = Fake::default();
        f.keyring
            .insert("anthropic:oauth_token:smart".into(), "tok".into());
        let r = resolve("smart", &tier(ProviderKind::Anthropic, AuthMode::Oauth), &f).unwrap();
        assert_eq!(r.credential, Credential::Bearer(Secret::new("tok")));
        assert!(is_tier_account("anthropic:oauth_token:smart"));
        assert!(!is_tier_account("anthropic:oauth_token"));
    }

    #[test]
    fn plain_http_is_for_this_machine_unless_the_tier_allows_it() {
        let mut f = Fake::default();
        f.env.insert("OPENAI_API_KEY".into(), "env".into());
        let mut models = ModelsConfig::default();
        let mut t = tier(ProviderKind::Openai, AuthMode::Auto);
        t.base_url = Some("http://user:pw@192.168.1.20:8080/v1".into());
        models.tiers.insert("fast".into(), t);
        let e = models.resolve("fast", &f).unwrap_err();
        assert_eq!(e.reason(), "insecure-http");
        let msg = e.to_string();
        assert!(msg.contains("http://192.168.1.20:8080"), "{msg}");
        assert!(msg.contains("allow_insecure_http"), "{msg}");
        assert!(!msg.contains("pw"), "userinfo shown: {msg}");
        let origins = CredentialOrigins::new(tempfile::tempdir().unwrap().path());
        assert!(models.resolve_bound("fast", &f, &origins).is_err());
        models.tiers.get_mut("fast").unwrap().allow_insecure_http = true;
        assert!(models.resolve("fast", &f).is_ok());
        for ok in [
            "http://localhost:11434/v1",
            "http://127.0.0.2:1/v1",
            "http://[::1]:8080",
            "https://192.168.1.20/v1",
        ] {
            let t = models.tiers.get_mut("fast").unwrap();
            t.allow_insecure_http = false;
            t.base_url = Some(ok.into());
            assert!(models.resolve("fast", &f).is_ok(), "{ok}");
        }
        // A name that merely starts like a loopback one is not loopback.
        models.tiers.get_mut("fast").unwrap().base_url =
            Some("http://localhost.example.com/v1".into());
        assert!(models.resolve("fast", &f).is_err());
    }

    #[test]
    fn order_is_config_then_env_then_keyring() {
        let mut f = Fake::default();
        f.keyring.insert("openai:api_key".into(), "kr".into());
        let mut t = tier(ProviderKind::Openai, AuthMode::Auto);
        assert_eq!(
            resolve("default", &t, &f).unwrap().source,
            CredentialSource::Keyring("openai:api_key".into())
        );
        f.env.insert("OPENAI_API_KEY".into(), "env".into());
        assert_eq!(
            resolve("default", &t, &f).unwrap().source,
            CredentialSource::Env("OPENAI_API_KEY")
        );
        t.api_key = Some(Secret::new("cfg"));
        let r = resolve("default", &t, &f).unwrap();
        assert_eq!(r.source, CredentialSource::Config);
        assert_eq!(r.credential, Credential::ApiKey(Secret::new("cfg")));
    }

    #[test]
    fn missing_is_an_explicit_error_naming_where_it_looked() {
        let f = Fake::default();
        let e = resolve("smart", &tier(ProviderKind::Anthropic, AuthMode::Auto), &f).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("smart")
                && msg.contains("ANTHROPIC_API_KEY")
                && msg.contains("ANTHROPIC_AUTH_TOKEN"),
            "{msg}"
        );
        assert!(msg.contains("perch auth set anthropic"));
    }

    #[test]
    fn auth_modes() {
        let mut f = Fake::default();
        f.env.insert("ANTHROPIC_AUTH_TOKEN".into(), "tok".into());
        // auto falls to the OAuth token when no key exists.
        let r = resolve("d", &tier(ProviderKind::Anthropic, AuthMode::Auto), &f).unwrap();
        assert_eq!(r.credential, Credential::Bearer(Secret::new("tok")));
        // api_key mode never uses the token.
        assert!(matches!(
            resolve("d", &tier(ProviderKind::Anthropic, AuthMode::ApiKey), &f),
            Err(CredentialError::Missing { .. })
        ));
        // oauth mode never uses a key.
        f.env.insert("ANTHROPIC_API_KEY".into(), "key".into());
        let r = resolve("d", &tier(ProviderKind::Anthropic, AuthMode::Oauth), &f).unwrap();
        assert_eq!(r.credential, Credential::Bearer(Secret::new("tok")));
        let r = resolve("d", &tier(ProviderKind::Anthropic, AuthMode::Auto), &f).unwrap();
        assert_eq!(
            r.credential,
            Credential::ApiKey(Secret::new("key")),
            "auto prefers the key"
        );
        assert!(matches!(
            resolve("d", &tier(ProviderKind::Openai, AuthMode::Oauth), &f),
            Err(CredentialError::UnsupportedAuthMode { .. })
        ));
    }

    #[test]
    fn a_local_compatible_server_needs_no_key_but_a_remote_one_does() {
        let f = Fake::default();
        let mut t = tier(ProviderKind::Openai, AuthMode::Auto);
        t.base_url = Some("http://127.0.0.1:11434/v1".into());
        assert_eq!(resolve("d", &t, &f).unwrap().credential, Credential::None);
        t.base_url = Some("https://gateway.example/v1".into());
        assert!(resolve("d", &t, &f).is_err());
        t.base_url = Some("http://127.0.0.1:11434/v1".into());
        t.auth_mode = AuthMode::ApiKey;
        assert!(
            resolve("d", &t, &f).is_err(),
            "api_key mode insists on a key"
        );
    }

    #[test]
    fn config_parses_tiers_and_names_bad_lines() {
        let text = "[gateway]\nbind = \"127.0.0.1:1\"\n[models.default]\nprovider = \"openai\"\nmodel = \"gpt-4.1-mini\"\nbase_url = \"http://127.0.0.1:11434/v1\"\nauth_mode = \"auto\"\n";
        let c = ModelsConfig::from_toml(text).unwrap();
        assert_eq!(c.tiers["default"].model, "gpt-4.1-mini");
        let e = ModelsConfig::from_toml("[models.default]\nprovider = \"bard\"\nmodel = \"x\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(matches!(
            ModelsConfig::from_toml("[models.huge]\nprovider = \"openai\"\nmodel = \"x\"\n"),
            Err(CredentialError::UnknownTier(_))
        ));
        assert!(matches!(
            c.resolve("smart", &Fake::default()),
            Err(CredentialError::TierNotConfigured(_))
        ));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-very-secret");
        assert!(!format!("{s:?} {s}").contains("very-secret"));
        let mut t = tier(ProviderKind::Openai, AuthMode::ApiKey);
        t.api_key = Some(s);
        assert!(!format!("{t:?}").contains("very-secret"));
        let r = resolve("d", &t, &Fake::default()).unwrap();
        assert!(!format!("{r:?} {}", r.source).contains("very-secret"));
    }
}
