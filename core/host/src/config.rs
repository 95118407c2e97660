//! The one reader of `perch.toml`. Everything a running host takes from the file is read here,
//! once at start and again when `settings.set` changes it: the `[gateway]` table (checked,
//! with unknown keys refused so typos do not pass silently) and the `[models.*]` tiers. Other
//! sections (`[desktop]`, anything a later version adds) are kept but not read here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use perch_gateway::GatewayConfig;
use perch_gateway::config::{CommandPolicy, MdnsMode, parse_allowed_host, parse_bind, parse_name};
use perch_kernel::credentials::ModelsConfig;

/// Name of the settings file inside the data directory.
pub const CONFIG_FILE: &str = "perch.toml";

/// Where the settings file of a data directory is.
pub fn config_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CONFIG_FILE)
}

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong key or value; the message names the line.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong and where (line and column).
        message: String,
    },
    /// A value parsed but makes no sense.
    #[error("{path}: {message}")]
    Invalid {
        /// The file, or `command line`.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The text of `perch.toml`, empty when there is none yet. The only place the file is read.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// What a host runs with, as the file says (flags are applied by [`crate::HostOptions`]).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The gateway's settings.
    pub gateway: GatewayConfig,
    /// The model tiers; an error here does not stop the host, it is reported by the turns
    /// that need a model (and by `settings.get`).
    pub models: Result<ModelsConfig, String>,
}

impl HostConfig {
    /// Defaults, then `DATA_DIR/perch.toml` if it exists.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = config_path(data_dir);
        let text = read_text(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_text(data_dir, &path, &text)
    }

    /// The settings a file's text gives, over the defaults for `data_dir`.
    pub fn from_text(data_dir: &Path, path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut gateway = GatewayConfig::defaults(data_dir.to_path_buf());
        apply_gateway(&mut gateway, path, text)?;
        let models = ModelsConfig::from_toml(text).map_err(|e| e.to_string());
        Ok(Self { gateway, models })
    }
}

/// The whole `perch.toml`; sections owned by other parts of Perch are kept but ignored here.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    gateway: GatewaySection,
    #[serde(flatten)]
    _other: toml::Table,
}

/// The `[gateway]` table; unknown keys are errors so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaySection {
    bind: Option<String>,
    name: Option<String>,
    tick_interval_ms: Option<u64>,
    max_payload: Option<u64>,
    max_buffered_bytes: Option<u64>,
    invoke_timeout_ms: Option<u64>,
    mdns: Option<MdnsMode>,
    ui_dir: Option<PathBuf>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
    limit_loopback: Option<bool>,
    handshake_timeout_ms: Option<u64>,
    header_timeout_ms: Option<u64>,
    max_pending_pairings: Option<usize>,
    max_pending_pairings_per_source: Option<usize>,
    allowed_hosts: Option<Vec<String>>,
    tls: Option<bool>,
    allow_plain_ws: Option<bool>,
    #[serde(default)]
    nodes: NodesSection,
}

/// Checks that an optional `[gateway]` number is in range and stores it.
fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    value: Option<T>,
    key: &str,
    range: std::ops::RangeInclusive<T>,
    slot: &mut T,
) -> Result<(), String> {
    if let Some(v) = value {
        if !range.contains(&v) {
            return Err(format!(
                "[gateway] {key} must be between {} and {}",
                range.start(),
                range.end()
            ));
        }
        *slot = v;
    }
    Ok(())
}

/// The `[gateway.nodes]` table: host policy for node commands.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesSection {
    #[serde(default)]
    allow_commands: Vec<String>,
    #[serde(default)]
    deny_commands: Vec<String>,
    queue_offline_invokes: Option<bool>,
    max_queued_invokes: Option<usize>,
}

/// Applies the `[gateway]` table of a `perch.toml` text over `cfg`.
pub fn apply_gateway(cfg: &mut GatewayConfig, path: &Path, text: &str) -> Result<(), ConfigError> {
    let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: describe_toml_error(text, &e),
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let g = file.gateway;
    if let Some(bind) = g.bind {
        cfg.bind = parse_bind(&bind).map_err(|m| invalid(format!("[gateway] bind: {m}")))?;
    }
    if let Some(name) = g.name {
        cfg.name = parse_name(&name).map_err(|m| invalid(format!("[gateway] name {m}")))?;
    }
    if let Some(t) = g.tick_interval_ms {
        // Two silent intervals close a peer; keeping that under presence's five minutes
        // means a live connection's entry never expires.
        if !(100..=120_000).contains(&t) {
            return Err(invalid(
                "[gateway] tick_interval_ms must be between 100 and 120000".into(),
            ));
        }
        cfg.tick_interval_ms = t;
    }
    if let Some(m) = g.max_payload {
        if !(64 * 1024..=256 * 1024 * 1024).contains(&m) {
            return Err(invalid(
                "[gateway] max_payload must be between 65536 and 268435456 bytes".into(),
            ));
        }
        cfg.max_payload = m;
    }
    if let Some(m) = g.max_buffered_bytes {
        cfg.max_buffered_bytes = m.max(cfg.max_payload);
    }
    if let Some(t) = g.invoke_timeout_ms {
        if t == 0 || t > perch_protocol::MAX_INVOKE_TIMEOUT_MS {
            return Err(invalid(format!(
                "[gateway] invoke_timeout_ms must be between 1 and {}",
                perch_protocol::MAX_INVOKE_TIMEOUT_MS
            )));
        }
        cfg.invoke_timeout_ms = t;
    }
    if let Some(m) = g.mdns {
        cfg.mdns = m;
    }
    if let Some(dir) = g.ui_dir {
        // Relative to the data directory, like everything else in perch.toml.
        cfg.ui_dir = Some(match path.parent() {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir,
        });
    }
    let l = &mut cfg.limits;
    in_range(
        g.max_connections,
        "max_connections",
        16..=1_000_000,
        &mut l.max_connections,
    )
    .map_err(invalid)?;
    in_range(
        g.max_connections_per_source,
        "max_connections_per_source",
        1..=1_000_000,
        &mut l.max_connections_per_source,
    )
    .map_err(invalid)?;
    if let Some(b) = g.limit_loopback {
        l.limit_loopback = b;
    }
    in_range(
        g.handshake_timeout_ms,
        "handshake_timeout_ms",
        100..=600_000,
        &mut l.handshake_timeout_ms,
    )
    .map_err(invalid)?;
    in_range(
        g.header_timeout_ms,
        "header_timeout_ms",
        100..=600_000,
        &mut l.header_timeout_ms,
    )
    .map_err(invalid)?;
    in_range(
        g.max_pending_pairings,
        "max_pending_pairings",
        1..=10_000,
        &mut l.max_pending_pairings,
    )
    .map_err(invalid)?;
    in_range(
        g.max_pending_pairings_per_source,
        "max_pending_pairings_per_source",
        1..=10_000,
        &mut l.max_pending_pairings_per_source,
    )
    .map_err(invalid)?;
    if let Some(hosts) = g.allowed_hosts {
        cfg.allowed_hosts = hosts
            .iter()
            .map(|h| parse_allowed_host(h))
            .collect::<Result<_, _>>()
            .map_err(|m| invalid(format!("[gateway] allowed_hosts: {m}")))?;
    }
    if let Some(t) = g.tls {
        cfg.transport.tls = t;
    }
    if let Some(p) = g.allow_plain_ws {
        cfg.transport.allow_plain_ws = p;
    }
    if let Some(q) = g.nodes.queue_offline_invokes {
        cfg.queue_offline_invokes = q;
    }
    if let Some(m) = g.nodes.max_queued_invokes {
        if !(1..=1024).contains(&m) {
            return Err(invalid(
                "[gateway.nodes] max_queued_invokes must be between 1 and 1024".into(),
            ));
        }
        cfg.max_queued_invokes = m;
    }
    cfg.commands = CommandPolicy::new(&g.nodes.allow_commands, &g.nodes.deny_commands);
    Ok(())
}

/// toml's message plus the line number, in one sentence a user can act on.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let content = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line}: {msg} (in `{content}`)")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str) -> Result<GatewayConfig, ConfigError> {
        let mut c = GatewayConfig::defaults(PathBuf::from("/tmp/x"));
        apply_gateway(&mut c, Path::new("perch.toml"), text)?;
        Ok(c)
    }

    #[test]
    fn limits_from_file_are_range_checked() {
        let c = apply(
            "[gateway]\nmax_connections = 100\nmax_connections_per_source = 10\nlimit_loopback = true\n\
             handshake_timeout_ms = 500\nheader_timeout_ms = 700\nmax_pending_pairings = 5\n\
             max_pending_pairings_per_source = 2\nallowed_hosts = [\"Perch.Example\"]\n\
             tls = false\nallow_plain_ws = true\n",
        )
        .unwrap();
        assert_eq!(c.limits.max_connections, 100);
        assert_eq!(c.limits.max_connections_per_source, 10);
        assert!(c.limits.limit_loopback);
        assert_eq!(c.limits.handshake_timeout_ms, 500);
        assert_eq!(c.limits.header_timeout_ms, 700);
        assert_eq!(c.limits.max_pending_pairings, 5);
        assert_eq!(c.limits.max_pending_pairings_per_source, 2);
        assert_eq!(c.allowed_hosts, vec!["perch.example".to_string()]);
        assert!(!c.transport.tls);
        assert!(c.transport.allow_plain_ws);
        let err = apply("[gateway]\nmax_connections = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_connections must be between"), "{err}");
        let err = apply("[gateway]\nhandshake_timeout_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("handshake_timeout_ms"), "{err}");
        let err = apply("[gateway]\nallowed_hosts = [\"a b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("allowed_hosts"), "{err}");
    }

    #[test]
    fn bind_from_file() {
        let c = apply("[gateway]\nbind = \"0.0.0.0:9000\"\n").unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
        let c = apply("[gateway]\nbind = \"[::1]:9000\"\n").unwrap();
        assert_eq!(c.bind.to_string(), "[::1]:9000");
    }

    #[test]
    fn malformed_file_names_the_line() {
        let err = apply("# comment\n[gateway]\nbind = 127.0.0.1:9000\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("perch.toml"), "{msg}");
    }

    #[test]
    fn unknown_gateway_key_is_an_error_with_line() {
        let err = apply("[gateway]\nbnid = \"1.2.3.4:5\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("bnid"), "{err}");
    }

    #[test]
    fn other_sections_are_left_alone() {
        let c =
            apply("[models.default]\nprovider = \"openai\"\n[gateway]\ntick_interval_ms = 500\n")
                .unwrap();
        assert_eq!(c.tick_interval_ms, 500);
        let c = apply(
            "[desktop]\nlocation = { lat = 48.2, lon = 16.37, accuracy_m = 100 }\n[gateway]\nname = \"box\"\n",
        )
        .unwrap();
        assert_eq!(c.name, "box");
    }

    #[test]
    fn ui_dir_is_relative_to_the_data_directory() {
        let mut c = GatewayConfig::defaults(PathBuf::from("/d"));
        apply_gateway(
            &mut c,
            Path::new("/d/perch.toml"),
            "[gateway]\nui_dir = \"web\"\n",
        )
        .unwrap();
        assert_eq!(c.ui_dir, Some(PathBuf::from("/d/web")));
        apply_gateway(
            &mut c,
            Path::new("/d/perch.toml"),
            "[gateway]\nui_dir = \"/srv/ui\"\n",
        )
        .unwrap();
        assert_eq!(c.ui_dir, Some(PathBuf::from("/srv/ui")));
    }

    #[test]
    fn names_are_checked() {
        let err = apply("[gateway]\nname = \"\"\n").unwrap_err().to_string();
        assert!(
            err.contains("[gateway] name must be 1 to 63 characters"),
            "{err}"
        );
    }

    #[test]
    fn bad_bind_value_is_explained() {
        let err = apply("[gateway]\nbind = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bind") && err.contains("ADDR:PORT"), "{err}");
    }

    #[test]
    fn mdns_mode_from_file() {
        assert_eq!(apply("").unwrap().mdns, MdnsMode::Minimal);
        assert_eq!(
            apply("[gateway]\nmdns = \"off\"\n").unwrap().mdns,
            MdnsMode::Off
        );
        let err = apply("[gateway]\nmdns = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn policy_from_file() {
        let c = apply("[gateway.nodes]\ndeny_commands = [\"system.notify\"]\n").unwrap();
        assert!(!c.commands.allows("system.notify"));
    }

    #[test]
    fn a_broken_models_section_does_not_stop_the_host() {
        let dir = Path::new("/d");
        let c = HostConfig::from_text(
            dir,
            &config_path(dir),
            "[models.default]\nprovider = \"nope\"\n",
        )
        .unwrap();
        assert!(c.models.is_err());
        let c = HostConfig::from_text(dir, &config_path(dir), "").unwrap();
        assert!(c.models.unwrap().tiers.is_empty());
    }

    #[test]
    fn a_missing_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_text(&config_path(dir.path())).unwrap(), "");
        let c = HostConfig::load(dir.path()).unwrap();
        assert_eq!(c.gateway.data_dir, dir.path());
    }
}
