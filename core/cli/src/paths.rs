//! How the CLI finds the local host: perch-host's rules, with the CLI's flags.

use std::path::PathBuf;

use anyhow::Result;

/// The data directory: `--data-dir`, else `PERCH_DATA_DIR`, else the platform's.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    Ok(perch_host::paths::data_dir(flag)?)
}

/// The gateway URL operator commands use: the flag or `PERCH_GATEWAY`, else the host of the
/// data directory as its `perch.toml` says.
pub fn gateway_url(flag: Option<String>, data_dir: &std::path::Path) -> Result<String> {
    match flag {
        Some(u) => Ok(u),
        None => Ok(perch_host::paths::local_url(data_dir)?),
    }
}
