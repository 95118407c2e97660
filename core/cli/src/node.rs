//! `perch node run`: this machine as a node of a Perch host, with the desktop capabilities.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Args;

use perch_node::desktop::desktop_capabilities;
use perch_node::desktop::location::ConfiguredLocation;
use perch_node::{Node, NodeConfig, NodeState};

/// Flags of `perch node run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Host gateway URL, for example ws://192.168.1.10:18789.
    #[arg(long, env = "PERCH_GATEWAY")]
    gateway: Option<String>,
    /// Name shown in pairing prompts and node lists (default: this machine's host name).
    #[arg(long)]
    name: Option<String>,
    /// Where the node keeps its identity and device token.
    #[arg(long, env = "PERCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Fixed location for location.get on a machine without GPS: LAT,LON[,ACCURACY_M].
    #[arg(long, value_name = "LAT,LON[,ACCURACY_M]")]
    location: Option<String>,
}

/// Runs the node until Ctrl-C / SIGTERM, or until the host refuses it for good.
pub async fn run(args: RunArgs) -> Result<()> {
    let location = args
        .location
        .as_deref()
        .map(ConfiguredLocation::parse)
        .transpose()
        .context("--location")?;
    let gateway = args.gateway.ok_or_else(|| {
        anyhow!("--gateway is required (for example --gateway ws://127.0.0.1:18789)")
    })?;
    let data_dir = crate::paths::data_dir(args.data_dir)?;
    let name = match args.name {
        Some(n) => n,
        None => gethostname::gethostname().to_string_lossy().to_string(),
    };
    let config = NodeConfig::new(gateway, name, data_dir);
    let node = Node::new(config, desktop_capabilities(location))?;
    println!(
        "Perch node {} ({}) connecting to {}",
        node.device_id().short(),
        node.device_id(),
        node.gateway_url()
    );
    let mut states = node.subscribe();
    let printer = tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            match state {
                NodeState::AwaitingApproval { request_id } => println!(
                    "Waiting for approval. On the host run: perch devices approve {request_id}"
                ),
                NodeState::Connected { host_name, .. } => println!("Connected to {host_name}"),
                NodeState::Backoff {
                    retry_in_ms,
                    last_error,
                } => println!(
                    "Disconnected ({last_error}); retrying in {} ms",
                    retry_in_ms
                ),
                _ => {}
            }
        }
    });
    let result = node.run(shutdown_signal()).await;
    printer.abort();
    result.map_err(Into::into)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
