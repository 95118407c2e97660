//! The model providers of each tier, made from the settings the host runs with. A tier's
//! provider is built once, on the first turn that needs it after a settings change, and reused
//! by every turn after: a turn reads no settings file. A tier whose credential is missing is
//! looked up again on the next turn (the user may have run `perch auth set` since), and one
//! whose provider refused the credential is dropped so the next turn resolves it afresh.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use perch_kernel::credential_origins::{CredentialOrigins, redact_userinfo};
use perch_kernel::credentials::{ModelsConfig, ProviderKind};
use perch_kernel::provider::ModelProvider;
use perch_kernel::provider::anthropic::{AnthropicConfig, AnthropicProvider};
use perch_kernel::provider::openai::{OpenAiConfig, OpenAiProvider};
use perch_kernel::vault::{Vault, VaultSources};
use perch_protocol::{ErrorCode, ErrorShape};
use serde_json::json;

/// A tier's provider and the model name it asks for.
#[derive(Clone)]
pub struct TierModel {
    /// The provider adapter, holding its credential.
    pub provider: Arc<dyn ModelProvider>,
    /// The model name sent with each request.
    pub model: String,
}

/// The tiers of one version of the settings.
pub struct Models {
    config: Result<ModelsConfig, String>,
    data_dir: PathBuf,
    built: Mutex<HashMap<String, TierModel>>,
}

impl Models {
    /// The tiers a settings file describes; nothing is resolved yet.
    pub fn new(data_dir: PathBuf, config: Result<ModelsConfig, String>) -> Self {
        Self {
            config,
            data_dir,
            built: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, tier: &str) -> Option<TierModel> {
        self.built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tier)
            .cloned()
    }

    /// The provider for `tier`: built before, or built now from the settings and the
    /// credential (the environment, then the secret store, which may ask the OS keyring: that
    /// runs off the async threads).
    pub async fn for_tier(&self, tier: &str) -> Result<TierModel, ErrorShape> {
        if let Some(m) = self.cached(tier) {
            return Ok(m);
        }
        let models = self
            .config
            .as_ref()
            .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, e.clone()))?;
        let (dir, m, t) = (self.data_dir.clone(), models.clone(), tier.to_string());
        let resolved = tokio::task::spawn_blocking(move || {
            let origins = CredentialOrigins::new(&dir);
            let (resolved, record) =
                m.resolve_bound(&t, &VaultSources(Vault::new(&dir)), &origins)?;
            if let Some((account, origin)) = record {
                // First use binds the stored secret to where this tier points.
                if let Err(e) = origins.bind(&t, &account, &origin) {
                    tracing::warn!(error = %e, "cannot record the credential's origin");
                }
            }
            Ok::<_, perch_kernel::credentials::CredentialError>(resolved)
        })
        .await
        .map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| {
            // The reason and the tier are for clients to branch on; the message says what to do.
            ErrorShape::new(
                ErrorCode::CredentialMissing,
                redact_userinfo(&e.to_string()),
            )
            .with_details(json!({"reason": e.reason(), "tier": tier}))
        })?;
        let cfg = models.tiers.get(tier).ok_or_else(|| {
            ErrorShape::new(
                ErrorCode::CredentialMissing,
                format!("model tier {tier:?} is not configured"),
            )
        })?;
        let invalid = |e: perch_kernel::provider::ConfigError| {
            ErrorShape::new(ErrorCode::InvalidRequest, e.to_string())
        };
        let provider: Arc<dyn ModelProvider> = match cfg.provider {
            ProviderKind::Openai => Arc::new(
                OpenAiProvider::new(OpenAiConfig {
                    base_url: cfg.base_url.clone(),
                    credential: resolved.credential,
                    ..Default::default()
                })
                .map_err(invalid)?,
            ),
            ProviderKind::Anthropic => Arc::new(
                AnthropicProvider::new(AnthropicConfig {
                    base_url: cfg.base_url.clone(),
                    credential: resolved.credential,
                    ..Default::default()
                })
                .map_err(invalid)?,
            ),
        };
        let built = TierModel {
            provider,
            model: cfg.model.clone(),
        };
        self.built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tier.to_string(), built.clone());
        tracing::debug!(
            tier,
            provider = cfg.provider.as_str(),
            "model provider built"
        );
        Ok(built)
    }

    /// Drops a tier's provider, so the next turn resolves its credential again.
    pub fn forget(&self, tier: &str) {
        self.built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tier);
    }
}
