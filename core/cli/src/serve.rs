//! `perch serve`: start the host and run until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::{Context, Result};

use perch_gateway::GatewayConfig;
use perch_gateway::config::{MdnsMode, parse_bind};

use crate::output::say;

/// Loads settings (defaults, perch.toml, flags), starts the gateway, waits for a signal.
pub async fn serve(
    data_dir: Option<PathBuf>,
    bind: Option<String>,
    mdns: Option<String>,
) -> Result<()> {
    let dir = crate::paths::data_dir(data_dir)?;
    let mut cfg = GatewayConfig::load(&dir)?;
    if let Some(b) = bind {
        cfg.override_bind(parse_bind(&b).map_err(|m| anyhow::anyhow!("--bind: {m}"))?);
    }
    if let Some(m) = mdns {
        cfg.override_mdns(MdnsMode::parse(&m).map_err(|m| anyhow::anyhow!("--mdns: {m}"))?);
    }
    tracing::info!(data_dir = %dir.display(), "starting Perch host");
    let gw = perch_gateway::start(cfg).await?;
    say!(
        "Perch host listening on {} (data in {})",
        gw.url(),
        dir.display()
    );
    wait_for_signal()
        .await
        .context("cannot listen for shutdown signals")?;
    gw.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
