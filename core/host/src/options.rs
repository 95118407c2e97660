//! What starts a host: the data directory and the flags that override `perch.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;

use perch_gateway::config::MdnsMode;

/// How to start a host; everything else comes from `DATA_DIR/perch.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostOptions {
    /// Where the database, keys, operator token and perch.toml live.
    pub data_dir: PathBuf,
    /// `--bind`: listen here whatever perch.toml says.
    pub bind: Option<SocketAddr>,
    /// `--mdns`: advertise like this whatever perch.toml says.
    pub mdns: Option<MdnsMode>,
    /// Where the built web UI is, over `[gateway] ui_dir` and the usual places.
    pub ui_dir: Option<PathBuf>,
}

impl HostOptions {
    /// A host on `data_dir` with no overrides.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind: None,
            mdns: None,
            ui_dir: None,
        }
    }

    /// Listens on `addr` whatever perch.toml says.
    pub fn with_bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Advertises as `mode` whatever perch.toml says.
    pub fn with_mdns(mut self, mode: MdnsMode) -> Self {
        self.mdns = Some(mode);
        self
    }
}
