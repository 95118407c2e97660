//! Where Perch keeps its files, and how the CLI finds the local host.

use std::path::PathBuf;

use anyhow::{Result, anyhow};

use perch_gateway::GatewayConfig;

/// The data directory: `--data-dir`, else `PERCH_DATA_DIR` (clap fills both into the flag),
/// else the platform's data directory.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d);
    }
    directories::ProjectDirs::from("", "", "perch")
        .map(|p| p.data_dir().to_path_buf())
        .ok_or_else(|| anyhow!("no home directory to keep Perch's data in; pass --data-dir"))
}

/// The gateway URL operator commands use: the flag or `PERCH_GATEWAY`, else the bind address
/// in the data directory's `perch.toml`, else the default.
pub fn gateway_url(flag: Option<String>, data_dir: &std::path::Path) -> Result<String> {
    if let Some(u) = flag {
        return Ok(u);
    }
    let cfg = GatewayConfig::load(data_dir)?;
    let mut addr = cfg.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(format!("ws://{addr}"))
}
