//! `perch-desktop`: the menu-bar app. Logs go to stderr (`PERCH_LOG` adjusts them, as for
//! the `perch` command).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Perch in the menu bar: runs (or attaches to) your Perch host and shows what it is doing.
#[derive(Parser, Debug)]
#[command(name = "perch-desktop", version)]
struct Args {
    /// Where Perch keeps its data (database, operator token, perch.toml).
    #[arg(long, env = "PERCH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address for the host, overriding `[gateway] bind` in perch.toml.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<String>,
    /// Do not run this computer as a node of the host.
    #[arg(long)]
    no_node: bool,
}

fn main() -> Result<()> {
    let filter = EnvFilter::try_from_env("PERCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Frames carry tokens and keys: the wire libraries never log them, whatever was asked.
    let filter = perch_host::log_caps::cap_wire_logs(filter);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    let args = Args::parse();
    let bind = args
        .bind
        .as_deref()
        .map(perch_host::parse_bind)
        .transpose()
        .map_err(|m| anyhow::anyhow!("--bind: {m}"))?;
    perch_desktop::run(perch_desktop::RunOptions {
        data_dir: args.data_dir,
        bind,
        node_mode: !args.no_node,
    })
    .context("Perch could not run")
}
