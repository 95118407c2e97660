//! What the gateway asks of the host it runs in. The gateway owns the methods (`chat.send`,
//! `settings.get`, `settings.set`, `settings.secret.*`) and the connections they arrive on; the host composition
//! (perch-host) owns what they act on: perch.toml, model providers, the kernel's agent, tools
//! made from node commands. So the gateway never reads a settings file or builds a provider.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use perch_kernel::agent::{TurnEvent, TurnOutcome};
use perch_kernel::credentials::Secret;
use perch_protocol::settings::Settings;
use perch_protocol::{ErrorCode, ErrorShape};

use crate::hub::Hub;

/// One chat turn the gateway has accepted and announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnRequest {
    /// The conversation.
    pub session_key: String,
    /// This turn's id (also in `agent.turn` and `chat` events).
    pub turn_id: String,
    /// The model tier asked for (`fast`, `default`, `smart`).
    pub tier: String,
    /// The user's message, already checked to be non-empty.
    pub message: String,
}

/// The host's side of the methods that need more than the gateway has.
pub trait HostServices: Send + Sync + 'static {
    /// Runs one assistant turn, streaming its events; errors are what the operator sees.
    fn run_turn<'a>(
        &'a self,
        hub: &'a Arc<Hub>,
        turn: &'a TurnRequest,
        events: mpsc::UnboundedSender<TurnEvent>,
    ) -> BoxFuture<'a, Result<TurnOutcome, ErrorShape>>;

    /// `settings.get`: the file's settings beside those the running host uses.
    fn settings<'a>(&'a self, hub: &'a Arc<Hub>) -> BoxFuture<'a, Result<Settings, ErrorShape>>;

    /// `settings.set`: checks and writes a patch, reloads what can change live, and answers
    /// like [`HostServices::settings`].
    fn update_settings<'a>(
        &'a self,
        hub: &'a Arc<Hub>,
        patch: Value,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>>;

    /// `settings.secret.set`: stores a tier's own key in the secret store, bound to where the
    /// tier points; the next turn uses it. Answers like [`HostServices::settings`], which
    /// never hold the secret.
    fn set_tier_secret<'a>(
        &'a self,
        hub: &'a Arc<Hub>,
        tier: String,
        secret: Secret,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>>;

    /// `settings.secret.clear`: removes a tier's own key; answers like
    /// [`HostServices::settings`].
    fn clear_tier_secret<'a>(
        &'a self,
        hub: &'a Arc<Hub>,
        tier: String,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>>;
}

/// A gateway on its own, without an assistant or a settings file: what tests of the transport
/// and embedders that only route devices run. Its chat and settings methods say so.
#[derive(Debug, Default, Clone, Copy)]
pub struct GatewayOnly;

fn not_here(what: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::Unavailable,
        format!("this gateway runs without a host composition, so it has no {what}"),
    )
}

impl HostServices for GatewayOnly {
    fn run_turn<'a>(
        &'a self,
        _hub: &'a Arc<Hub>,
        _turn: &'a TurnRequest,
        _events: mpsc::UnboundedSender<TurnEvent>,
    ) -> BoxFuture<'a, Result<TurnOutcome, ErrorShape>> {
        Box::pin(async { Err(not_here("assistant")) })
    }

    fn settings<'a>(&'a self, _hub: &'a Arc<Hub>) -> BoxFuture<'a, Result<Settings, ErrorShape>> {
        Box::pin(async { Err(not_here("settings file")) })
    }

    fn update_settings<'a>(
        &'a self,
        _hub: &'a Arc<Hub>,
        _patch: Value,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>> {
        Box::pin(async { Err(not_here("settings file")) })
    }

    fn set_tier_secret<'a>(
        &'a self,
        _hub: &'a Arc<Hub>,
        _tier: String,
        _secret: Secret,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>> {
        Box::pin(async { Err(not_here("secret store")) })
    }

    fn clear_tier_secret<'a>(
        &'a self,
        _hub: &'a Arc<Hub>,
        _tier: String,
    ) -> BoxFuture<'a, Result<Settings, ErrorShape>> {
        Box::pin(async { Err(not_here("secret store")) })
    }
}
