//! The host's settings as an operator sees and changes them (`settings.get`, `settings.set`):
//! the values in `perch.toml` that a settings screen offers, what the running host uses, and
//! whether each model tier has a credential (where it comes from, never the secret).

use serde::{Deserialize, Serialize};

/// `settings.get`: the settings in `perch.toml` and those in force (operator).
pub const SETTINGS_GET: &str = "settings.get";
/// `settings.set`: change some settings in `perch.toml` (operator).
pub const SETTINGS_SET: &str = "settings.set";
/// `settings.secret.set`: store a tier's own key in the host's secret store (operator.admin).
/// Write-only: the answer is the [`Settings`], which say only whether a key is set.
pub const SETTINGS_SECRET_SET: &str = "settings.secret.set";
/// `settings.secret.clear`: remove a tier's own key from the secret store (operator.admin).
pub const SETTINGS_SECRET_CLEAR: &str = "settings.secret.clear";
/// Longest secret `settings.secret.set` accepts, in characters (API keys are ~200, OAuth tokens
/// a few hundred; anything near this is a paste gone wrong).
pub const MAX_SECRET_CHARS: usize = 4096;

/// Event to every operator after a `settings.set`, carrying the new [`Settings`]: other
/// windows refresh, and the menu-bar app offers a restart when one is required.
pub const SETTINGS_CHANGED_EVENT: &str = "settings.changed";

/// Accuracy assumed for a configured location that does not give one, meters; the same
/// default as `perch node run --location`.
pub const DEFAULT_LOCATION_ACCURACY_M: f64 = 100.0;
/// Largest accepted accuracy radius, meters (half the Earth's circumference).
pub const MAX_LOCATION_ACCURACY_M: f64 = 20_000_000.0;

/// Result of `settings.get` and `settings.set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The file these values come from.
    pub config_path: String,
    /// The host's display name (`[gateway] name`, else the machine's name).
    pub name: String,
    /// The listen address (`[gateway] bind`, else `127.0.0.1:18789`).
    pub bind: String,
    /// mDNS advertisement: `off`, `minimal` or `full`.
    pub mdns: String,
    /// What the running host uses; `null` when no host answered this (read from the file).
    pub running: Option<RunningSettings>,
    /// The file asks for something the running host does not use yet; a restart applies it.
    pub restart_required: bool,
    /// The model tiers.
    pub models: ModelTiers,
    /// Settings the desktop app keeps for this machine.
    pub desktop: DesktopSettings,
    /// What in the file a host would refuse at start (a bad value, an unknown key), one entry
    /// per section; empty when the file is fine.
    #[serde(default)]
    pub problems: Vec<SettingsProblem>,
}

/// The settings a running host started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningSettings {
    /// Display name in use.
    pub name: String,
    /// Address actually bound.
    pub bind: String,
    /// mDNS mode in use.
    pub mdns: String,
    /// Keys set on the command line (`bind`, `mdns`) rather than from the file: the file's
    /// value for them does not apply while the flag stands, so it asks for no restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<String>,
}

/// The three model tiers; `null` for a tier that is not configured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelTiers {
    /// `[models.fast]`.
    pub fast: Option<TierInfo>,
    /// `[models.default]`.
    pub default: Option<TierInfo>,
    /// `[models.smart]`.
    pub smart: Option<TierInfo>,
}

/// One configured model tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierInfo {
    /// `openai` or `anthropic` (as written in the file, even when it is neither).
    pub provider: String,
    /// The model name.
    pub model: String,
    /// A compatible server's base URL, when set; never with `user:password@` (removed even
    /// when a hand-edited file has it).
    pub base_url: Option<String>,
    /// Plain `http://` is allowed off this machine for this tier (`allow_insecure_http`).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Whether the tier has a credential, and where it is; never the credential.
    pub credential: CredentialInfo,
}

/// Whether a tier can authenticate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialInfo {
    /// A credential was found, or none is needed (a server on this machine).
    pub configured: bool,
    /// Where it was found; `null` when missing or when none is needed.
    pub source: Option<CredentialSourceKind>,
    /// The tier's own key (set with `settings.secret.set`) is in the secret store; whether or
    /// not it is the one in use (see `problem`).
    #[serde(default)]
    pub tier_secret: bool,
    /// Why the tier cannot use the credential it has, when it cannot: what to do is in the
    /// message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<CredentialProblem>,
}

/// Why a tier's credential is not usable as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProblem {
    /// Stable: `credential-origin-changed` (store the key again for the new address),
    /// `insecure-http` (plain http off this machine), `credential-missing`, ...
    pub reason: String,
    /// What is wrong and what to do, for people.
    pub message: String,
}

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialSourceKind {
    /// An environment variable of the host process.
    Env,
    /// `api_key` in perch.toml.
    Config,
    /// The OS keyring.
    Keyring,
    /// The 0600 `secrets.json` fallback in the data directory.
    File,
}

/// The `[desktop]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesktopSettings {
    /// A fixed position for this machine's node, when the user set one.
    pub location: Option<DesktopLocation>,
}

/// A position the user typed for a machine without a location service.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesktopLocation {
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
    /// Uncertainty radius in meters, above 0 (default 100).
    #[serde(default = "default_accuracy")]
    pub accuracy_m: f64,
}

fn default_accuracy() -> f64 {
    DEFAULT_LOCATION_ACCURACY_M
}

impl DesktopLocation {
    /// Checks the ranges; the error names the field (`lat`, `lon`, `accuracyM`) and the range.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat)) {
            return Err(("lat", format!("{} is not between -90 and 90", self.lat)));
        }
        if !(self.lon.is_finite() && (-180.0..=180.0).contains(&self.lon)) {
            return Err(("lon", format!("{} is not between -180 and 180", self.lon)));
        }
        if !(self.accuracy_m.is_finite()
            && self.accuracy_m > 0.0
            && self.accuracy_m <= MAX_LOCATION_ACCURACY_M)
        {
            return Err((
                "accuracyM",
                format!(
                    "{} is not above 0 and at most {MAX_LOCATION_ACCURACY_M} meters",
                    self.accuracy_m
                ),
            ));
        }
        Ok(())
    }
}

/// Something in `perch.toml` that a host would refuse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsProblem {
    /// `gateway`, `models` or `desktop`.
    pub section: String,
    /// What is wrong and where (with the line when known).
    pub message: String,
}

/// Params of `settings.set`: only the fields present change. Secrets are not settings: they go
/// to the secret store with `perch auth set`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    /// New display name, 1 to 63 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New listen address, `ADDR:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// New mDNS mode: `off`, `minimal` or `full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdns: Option<String>,
    /// Changes to model tiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelTiersPatch>,
    /// Changes to the desktop section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<DesktopPatch>,
    /// When perch.toml is not valid TOML: move it aside to `perch.toml.corrupt-<ms>` and start
    /// from an empty file. Without it, a corrupt file is never overwritten.
    #[serde(default)]
    pub reset_corrupt: bool,
}

/// Changes to the model tiers; an absent tier is left alone.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelTiersPatch {
    /// `[models.fast]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<TierPatch>,
    /// `[models.default]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<TierPatch>,
    /// `[models.smart]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart: Option<TierPatch>,
}

/// Changes to one tier; a tier that does not exist yet needs `provider` and `model`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierPatch {
    /// `openai` or `anthropic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Base URL: a string sets it, `null` removes it, absent leaves it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub base_url: Option<Option<String>>,
    /// Allow plain `http://` off this machine for this tier (a server on a trusted network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_http: Option<bool>,
    /// Confirms that a credential that cannot be held back (from the host's environment or
    /// perch.toml) may go to the tier's new address; without it such a move is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub move_credential: bool,
}

/// Changes to the `[desktop]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesktopPatch {
    /// A position sets it, `null` removes it, absent leaves it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub location: Option<Option<DesktopLocation>>,
}

/// `null` versus absent: absent is `None`, `null` is `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Patch keys that look like secrets, refused so that no secret is ever written by a settings
/// screen into a plain file (lower case, without `_` or `-`).
pub const SECRET_LIKE_KEYS: &[&str] = &[
    "apikey",
    "token",
    "secret",
    "password",
    "oauthtoken",
    "authtoken",
];

/// The first key anywhere in `value` that looks like a secret, as a dotted path.
pub fn find_secret_key(value: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, path: &str) -> Option<String> {
        let serde_json::Value::Object(map) = v else {
            return None;
        };
        for (k, child) in map {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let norm: String = k
                .chars()
                .filter(|c| *c != '_' && *c != '-')
                .collect::<String>()
                .to_ascii_lowercase();
            if SECRET_LIKE_KEYS.contains(&norm.as_str()) {
                return Some(here);
            }
            if let Some(found) = walk(child, &here) {
                return Some(found);
            }
        }
        None
    }
    walk(value, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_have_the_documented_keys() {
        let s = Settings {
            config_path: "/data/perch.toml".into(),
            name: "box".into(),
            bind: "127.0.0.1:18789".into(),
            mdns: "minimal".into(),
            running: None,
            restart_required: false,
            models: ModelTiers {
                fast: None,
                default: Some(TierInfo {
                    provider: "openai".into(),
                    model: "gpt".into(),
                    base_url: None,
                    allow_insecure_http: false,
                    credential: CredentialInfo {
                        configured: true,
                        source: Some(CredentialSourceKind::Keyring),
                        tier_secret: true,
                        problem: None,
                    },
                }),
                smart: None,
            },
            desktop: DesktopSettings {
                location: Some(DesktopLocation {
                    lat: 48.2,
                    lon: 16.37,
                    accuracy_m: 100.0,
                }),
            },
            problems: vec![],
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"configPath": "/data/perch.toml", "name": "box", "bind": "127.0.0.1:18789",
                   "mdns": "minimal", "running": null, "restartRequired": false,
                   "models": {"fast": null, "smart": null, "default": {"provider": "openai",
                     "model": "gpt", "baseUrl": null, "allowInsecureHttp": false,
                     "credential": {"configured": true, "source": "keyring",
                                    "tierSecret": true}}},
                   "desktop": {"location": {"lat": 48.2, "lon": 16.37, "accuracyM": 100.0}},
                   "problems": []})
        );
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: SettingsPatch = serde_json::from_value(json!({
            "models": {"fast": {"baseUrl": null}, "smart": {"model": "m"}},
            "desktop": {"location": null}
        }))
        .unwrap();
        let models = p.models.unwrap();
        assert_eq!(models.fast.unwrap().base_url, Some(None));
        assert_eq!(models.smart.unwrap().base_url, None);
        assert_eq!(p.desktop.unwrap().location, Some(None));
        let p: SettingsPatch = serde_json::from_value(json!({"desktop": {}})).unwrap();
        assert_eq!(p.desktop.unwrap().location, None);
        let p: SettingsPatch =
            serde_json::from_value(json!({"desktop": {"location": {"lat": 1, "lon": 2}}})).unwrap();
        assert_eq!(
            p.desktop.unwrap().location,
            Some(Some(DesktopLocation {
                lat: 1.0,
                lon: 2.0,
                accuracy_m: DEFAULT_LOCATION_ACCURACY_M
            }))
        );
    }

    #[test]
    fn patch_refuses_unknown_keys() {
        assert!(serde_json::from_value::<SettingsPatch>(json!({"nmae": "x"})).is_err());
        assert!(serde_json::from_value::<SettingsPatch>(json!({"models": {"huge": {}}})).is_err());
    }

    #[test]
    fn secret_like_keys_are_found_anywhere() {
        assert_eq!(
            find_secret_key(&json!({"models": {"fast": {"apiKey": "sk"}}})).as_deref(),
            Some("models.fast.apiKey")
        );
        assert_eq!(
            find_secret_key(&json!({"api_key": "sk"})).as_deref(),
            Some("api_key")
        );
        assert_eq!(
            find_secret_key(&json!({"Token": "x"})).as_deref(),
            Some("Token")
        );
        assert_eq!(
            find_secret_key(&json!({"name": "token", "bind": "x"})),
            None
        );
    }

    #[test]
    fn locations_are_range_checked() {
        let at = |lat, lon, accuracy_m| DesktopLocation {
            lat,
            lon,
            accuracy_m,
        };
        assert!(at(48.2, 16.37, 100.0).validate().is_ok());
        assert!(at(90.0, -180.0, 1.0).validate().is_ok());
        assert_eq!(at(91.0, 0.0, 1.0).validate().unwrap_err().0, "lat");
        assert_eq!(at(f64::NAN, 0.0, 1.0).validate().unwrap_err().0, "lat");
        assert_eq!(at(0.0, 180.5, 1.0).validate().unwrap_err().0, "lon");
        assert_eq!(at(0.0, 0.0, 0.0).validate().unwrap_err().0, "accuracyM");
        assert_eq!(at(0.0, 0.0, 3e7).validate().unwrap_err().0, "accuracyM");
    }
}
