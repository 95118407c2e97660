//! `perch serve`: start the host (perch-host) and run until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};

use perch_host::{Host, HostOptions, MdnsMode, parse_bind};

use crate::output::say;

/// Starts the host from the data directory's settings and the flags, waits for a signal.
pub async fn serve(
    data_dir: Option<PathBuf>,
    bind: Option<String>,
    mdns: Option<String>,
) -> Result<()> {
    let dir = crate::paths::data_dir(data_dir)?;
    let mut options = HostOptions::new(&dir);
    if let Some(b) = bind {
        options = options.with_bind(parse_bind(&b).map_err(|m| anyhow!("--bind: {m}"))?);
    }
    if let Some(m) = mdns {
        options = options.with_mdns(MdnsMode::parse(&m).map_err(|m| anyhow!("--mdns: {m}"))?);
    }
    let host = match Host::start(options).await {
        Ok(h) => h,
        Err(e) => return Err(anyhow!("{e}\n  hint: {}", e.hint())),
    };
    say!(
        "Perch host listening on ws://{} (data in {})",
        host.addr(),
        dir.display()
    );
    wait_for_signal()
        .await
        .context("cannot listen for shutdown signals")?;
    host.shutdown().await;
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
