//! What the host gives its gateway ([`HostServices`]): assistant turns over the providers of
//! the settings in force, `settings.get` / `settings.set` over perch.toml, and a tier's own key
//! in the secret store (`settings.secret.*`; the tier's provider is built afresh for the next
//! turn). A change
//! written through `settings.set` is reloaded from the text just written (the model tiers take
//! effect on the next turn); what needs a new listener (name, bind, mDNS) is reported as
//! `restartRequired`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use perch_gateway::hub::Hub;
use perch_gateway::{HostServices, TurnRequest};
use perch_kernel::agent::{TurnEvent, TurnOutcome};
use perch_kernel::credentials::{ModelsConfig, Secret};
use perch_kernel::pipeline::Pipeline;
use perch_kernel::vault::{Vault, VaultSources};
use perch_protocol::settings::Settings;
use perch_protocol::{ErrorCode, ErrorShape};

use crate::models::Models;
use crate::settings;

/// The host's services for one running gateway.
pub struct Services {
    data_dir: PathBuf,
    models: RwLock<Arc<Models>>,
    pipeline: Arc<Pipeline>,
}

impl Services {
    /// Services for a host started from these settings.
    pub fn new(data_dir: PathBuf, models: Result<ModelsConfig, String>) -> Self {
        Self {
            models: RwLock::new(Arc::new(Models::new(data_dir.clone(), models))),
            data_dir,
            pipeline: Arc::new(Pipeline::default()),
        }
    }

    /// The model tiers in force now.
    pub fn models(&self) -> Arc<Models> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes a new perch.toml text: its model tiers replace the current ones.
    fn reload(&self, text: &str) {
        let models = ModelsConfig::from_toml(text).map_err(|e| e.to_string());
        *self.models.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Models::new(self.data_dir.clone(), models));
        tracing::info!("settings reloaded: model tiers take effect on the next turn");
    }
}

fn join_error(e: tokio::task::JoinError) -> ErrorShape {
    ErrorShape::new(ErrorCode::Internal, e.to_string())
}

impl HostServices for Services {
    fn run_turn<'a>(
        &'a self,
        hub: &'a Arc<Hub>,
        turn: &'a TurnRequest,
        events: mpsc::UnboundedSender<TurnEvent>,
    ) -> BoxFuture<'a, Result<TurnOutcome, ErrorShape>> {
        Box::pin(async move {
            let models = self.models();
            crate::assistant::run_turn(hub, &models, &self.pipeline, turn, events).await
        })
    }

    fn settings<'a>(&'a self, hub: &'a Arc<Hub>) -> BoxFuture<'a, Result<Settings, ErrorShape>> {
        Box::pin(async move {
            let dir = self.data_dir.clone();
            // Blocking: the file, and the keyring for each tier's credential status.
            let s = tokio::task::spawn_blocking(move || settings::read(&dir))
                .await
                .map_err(join_error)?
                .map_err(|e| e.to_shape())?;
            Ok(settings::with_running(s, settings::running(&hub.config)))
        })
    }

    fn update_settings<'a>(
        &'a self,
        hub: &'a Arc<Hub>,
        patch: Value,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>> {
        Box::pin(async move {
            let patch = settings::parse_patch(patch).map_err(|e| e.to_shape())?;
            let dir = self.data_dir.clone();
            let (s, text) = tokio::task::spawn_blocking(move || {
                settings::update_text(&dir, patch, &VaultSources(Vault::new(&dir)))
            })
            .await
            .map_err(join_error)?
            .map_err(|e| e.to_shape())?;
            self.reload(&text);
            Ok(settings::with_running(s, settings::running(&hub.config)))
        })
    }

    fn set_tier_secret<'a>(
        &'a self,
        hub: &'a Arc<Hub>,
        tier: String,
        secret: Secret,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>> {
        Box::pin(async move {
            let dir = self.data_dir.clone();
            let t = tier.clone();
            let s = tokio::task::spawn_blocking(move || {
                let vault = Vault::new(&dir);
                settings::store_secret(&dir, &t, &secret, &vault, &VaultSources(vault.clone()))
            })
            .await
            .map_err(join_error)?
            .map_err(|e| e.to_shape())?;
            // The next turn builds this tier's provider with the new key.
            self.models().forget(&tier);
            Ok(settings::with_running(s, settings::running(&hub.config)))
        })
    }

    fn clear_tier_secret<'a>(
        &'a self,
        hub: &'a Arc<Hub>,
        tier: String,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>> {
        Box::pin(async move {
            let dir = self.data_dir.clone();
            let t = tier.clone();
            let s = tokio::task::spawn_blocking(move || {
                let vault = Vault::new(&dir);
                settings::clear_secret(&dir, &t, &vault, &VaultSources(vault.clone()))
            })
            .await
            .map_err(join_error)?
            .map_err(|e| e.to_shape())?;
            self.models().forget(&tier);
            Ok(settings::with_running(s, settings::running(&hub.config)))
        })
    }
}
