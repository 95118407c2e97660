//! Where a host keeps its files and how this machine reaches it: the data directory (flag,
//! `PERCH_DATA_DIR`, the platform's data directory), the operator token in it, and the local
//! address of a host that listens on every interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, HostConfig};

/// The environment variable that names the data directory.
pub const DATA_DIR_ENV: &str = "PERCH_DATA_DIR";

/// Why no data directory could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// No flag, no `PERCH_DATA_DIR`, and the platform has no home directory.
    #[error("no home directory to keep Perch's data in; pass --data-dir or set PERCH_DATA_DIR")]
    NoHome,
}

/// The data directory: the flag, else `PERCH_DATA_DIR`, else the platform's data directory
/// for `perch` (for example `~/.local/share/perch`).
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf, DataDirError> {
    if let Some(d) = flag {
        return Ok(d);
    }
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "perch")
        .map(|p| p.data_dir().to_path_buf())
        .ok_or(DataDirError::NoHome)
}

/// Where to reach a host bound to `bind` from this machine: an unspecified address means
/// every interface, so loopback reaches it.
pub fn dial_addr(bind: SocketAddr) -> SocketAddr {
    let mut addr = bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// The WebSocket URL of the host of `data_dir` on this machine, from its perch.toml.
pub fn local_url(data_dir: &Path) -> Result<String, ConfigError> {
    let cfg = HostConfig::load(data_dir)?;
    Ok(format!("ws://{}", dial_addr(cfg.gateway.bind)))
}

pub use perch_gateway::secrets::{operator_token_path, read_host_fingerprint, read_operator_token};

/// Makes the data directory (keys, tokens, database, settings) reachable by this user only:
/// created with mode 0700, and an existing one that others can enter is tightened, saying so.
pub fn private_data_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        let shown = format!("{:o}", mode & 0o7777);
        if mode & 0o1000 != 0 {
            // A shared directory such as /tmp: never ours to close. The files in it stay 0600.
            tracing::warn!(dir = %dir.display(), mode = %shown, "the data directory is a shared directory; choose a private one with --data-dir");
        } else if mode & 0o077 != 0 {
            match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), old_mode = %shown, "the data directory was open to other users; it is now private (0700)");
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), mode = %shown, error = %e, "the data directory is open to other users and cannot be made private");
                }
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_binds_are_dialed_on_loopback() {
        assert_eq!(
            dial_addr("0.0.0.0:18789".parse().unwrap()).to_string(),
            "127.0.0.1:18789"
        );
        assert_eq!(dial_addr("[::]:9".parse().unwrap()).to_string(), "[::1]:9");
        assert_eq!(
            dial_addr("192.168.1.2:9".parse().unwrap()).to_string(),
            "192.168.1.2:9"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a").join("perch");
        private_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // A shared, sticky directory is left as it is.
        let shared = parent.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        private_data_dir(&shared).unwrap();
        assert_eq!(
            std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
    }

    #[test]
    fn the_flag_wins() {
        assert_eq!(
            data_dir(Some(PathBuf::from("/x"))).unwrap(),
            PathBuf::from("/x")
        );
    }

    #[test]
    fn the_local_url_follows_perch_toml() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(local_url(dir.path()).unwrap(), "ws://127.0.0.1:18789");
        std::fs::write(
            dir.path().join("perch.toml"),
            "[gateway]\nbind = \"0.0.0.0:9100\"\n",
        )
        .unwrap();
        assert_eq!(local_url(dir.path()).unwrap(), "ws://127.0.0.1:9100");
    }
}
