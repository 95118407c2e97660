//! Starting and stopping a whole host: settings, then the gateway with the host's services.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast;

use perch_gateway::hub::Hub;
use perch_gateway::{GatewayError, RunningGateway};
use perch_protocol::frame::EventFrame;

use crate::config::{ConfigError, HostConfig};
use crate::options::HostOptions;
use crate::services::Services;

/// Why a host could not start; [`StartError::hint`] says what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// perch.toml is unreadable or wrong; the message names the line.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory, database, keys or listener failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

impl StartError {
    /// One sentence on what to do, for the CLI's message and the app's shell page.
    pub fn hint(&self) -> &'static str {
        match self {
            StartError::Config(_) => {
                "Fix perch.toml (by hand, or in Settings) and start again; `perch doctor` shows where it is."
            }
            StartError::Gateway(e) => e.hint(),
        }
    }
}

/// The host's composition root: the one call `perch serve` and the menu-bar app make.
pub struct Host;

impl Host {
    /// Loads perch.toml once, applies the options, and starts the gateway with the host's
    /// services (assistant, settings).
    pub async fn start(options: HostOptions) -> Result<RunningHost, StartError> {
        crate::paths::private_data_dir(&options.data_dir).map_err(|source| {
            GatewayError::DataDir {
                path: options.data_dir.clone(),
                source,
            }
        })?;
        let config = HostConfig::load(&options.data_dir)?;
        let mut gateway = config.gateway;
        if let Some(bind) = options.bind {
            gateway.override_bind(bind);
        }
        if let Some(mode) = options.mdns {
            gateway.override_mdns(mode);
        }
        if let Some(ui) = options.ui_dir {
            gateway.ui_dir = Some(ui);
        }
        tracing::info!(data_dir = %options.data_dir.display(), "starting Perch host");
        let services = Arc::new(Services::new(options.data_dir.clone(), config.models));
        let gw = perch_gateway::start(gateway, services).await?;
        Ok(RunningHost { gateway: gw })
    }
}

/// A host that is serving.
pub struct RunningHost {
    gateway: RunningGateway,
}

impl RunningHost {
    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.gateway.addr
    }

    /// The WebSocket URL clients on this machine use.
    pub fn url(&self) -> String {
        format!("ws://{}", crate::paths::dial_addr(self.gateway.addr))
    }

    /// The host id nodes pin (derived from the host key).
    pub fn host_id(&self) -> &str {
        &self.gateway.hub().host_id
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.gateway.hub().config.data_dir
    }

    /// Every event the host sends its operators, in process (pairing requests, presence,
    /// node status, turns, settings changes).
    pub fn events(&self) -> broadcast::Receiver<EventFrame> {
        self.gateway.hub().subscribe_events()
    }

    /// The gateway's shared state, for tests and diagnostics.
    pub fn hub(&self) -> &Arc<Hub> {
        self.gateway.hub()
    }

    /// Tells every client the host is going away, closes connections and the database.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
    }
}
