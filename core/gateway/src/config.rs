//! Gateway settings: defaults, the `[gateway]` table of `perch.toml`, and validation.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use perch_protocol::node_commands::DEFAULT_ALLOWED_COMMANDS;

/// Name of the settings file inside the data directory.
pub const CONFIG_FILE: &str = "perch.toml";

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
    #[serde(default)]
    nodes: NodesSection,
}

/// How much the host says about itself over mDNS/Bonjour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MdnsMode {
    /// No advertisement at all; nodes use an address or a setup code.
    Off,
    /// Protocol range, port, host id and key fingerprint: what a node needs to connect.
    #[default]
    Minimal,
    /// Minimal plus the display name and software version, for richer pickers.
    Full,
}

impl MdnsMode {
    /// The mode as written in perch.toml and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Minimal => "minimal",
            Self::Full => "full",
        }
    }

    /// Parses the `--mdns` flag.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "minimal" => Ok(Self::Minimal),
            "full" => Ok(Self::Full),
            other => Err(format!("{other:?} is not off, minimal or full")),
        }
    }
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

/// Which node commands the host lets operators and the assistant call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPolicy {
    allow: BTreeSet<String>,
    deny: BTreeSet<String>,
}

impl Default for CommandPolicy {
    fn default() -> Self {
        Self {
            allow: DEFAULT_ALLOWED_COMMANDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            deny: BTreeSet::new(),
        }
    }
}

impl CommandPolicy {
    /// The default allow list plus `extra_allow`, minus `deny`; deny always wins.
    pub fn new(extra_allow: &[String], deny: &[String]) -> Self {
        let mut p = Self::default();
        p.allow.extend(extra_allow.iter().cloned());
        p.deny.extend(deny.iter().cloned());
        p
    }

    /// Whether host policy lets this command through.
    pub fn allows(&self, command: &str) -> bool {
        !self.deny.contains(command) && self.allow.contains(command)
    }
}

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where to listen.
    pub bind: SocketAddr,
    /// Where the database, operator token and settings live.
    pub data_dir: PathBuf,
    /// Display name of this host.
    pub name: String,
    /// Keepalive interval sent in `hello-ok`.
    pub tick_interval_ms: u64,
    /// Largest frame after the handshake.
    pub max_payload: u64,
    /// Outbound bytes buffered for a slow reader before it is closed.
    pub max_buffered_bytes: u64,
    /// Default `node.invoke` deadline.
    pub invoke_timeout_ms: u64,
    /// Node command policy.
    pub commands: CommandPolicy,
    /// mDNS advertisement.
    pub mdns: MdnsMode,
    /// Invokes for a paired node that is briefly offline wait (until their deadline) for it to
    /// come back, instead of failing at once.
    pub queue_offline_invokes: bool,
    /// Most invokes waiting for one offline node; more fail at once.
    pub max_queued_invokes: usize,
    /// Where the built web UI is (`[gateway] ui_dir`); `None` looks in the usual places
    /// ([`crate::web::ui_dir`]).
    pub ui_dir: Option<PathBuf>,
    /// Which settings came from the command line instead of `perch.toml`.
    pub overrides: Overrides,
}

/// Settings given on the command line (`--bind`, `--mdns`): while they stand, the file's
/// values for them do not apply, so changing those in the file asks for no restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--bind` was given.
    pub bind: bool,
    /// `--mdns` was given.
    pub mdns: bool,
}

impl GatewayConfig {
    /// Listens on `addr` whatever perch.toml says (a `--bind` flag).
    pub fn override_bind(&mut self, addr: SocketAddr) {
        self.bind = addr;
        self.overrides.bind = true;
    }

    /// Advertises as `mode` whatever perch.toml says (a `--mdns` flag).
    pub fn override_mdns(&mut self, mode: MdnsMode) {
        self.mdns = mode;
        self.overrides.mdns = true;
    }
}

impl GatewayConfig {
    /// Defaults for a data directory, before `perch.toml` and flags.
    pub fn defaults(data_dir: PathBuf) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], perch_protocol::DEFAULT_PORT)),
            data_dir,
            name: default_host_name(),
            tick_interval_ms: perch_protocol::DEFAULT_TICK_INTERVAL_MS,
            max_payload: perch_protocol::DEFAULT_MAX_PAYLOAD as u64,
            max_buffered_bytes: 2 * perch_protocol::DEFAULT_MAX_PAYLOAD as u64,
            invoke_timeout_ms: perch_protocol::DEFAULT_INVOKE_TIMEOUT_MS,
            commands: CommandPolicy::default(),
            mdns: MdnsMode::default(),
            queue_offline_invokes: true,
            max_queued_invokes: 16,
            ui_dir: None,
            overrides: Overrides::default(),
        }
    }

    /// Defaults, then `perch.toml` from the data directory if it exists.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let mut cfg = Self::defaults(data_dir.to_path_buf());
        let path = data_dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => cfg.apply_toml(&path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::Read { path, source }),
        }
        Ok(cfg)
    }

    /// Applies the text of a `perch.toml` over the current values.
    pub fn apply_toml(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
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
            self.bind = parse_bind(&bind).map_err(|m| invalid(format!("[gateway] bind: {m}")))?;
        }
        if let Some(name) = g.name {
            self.name = parse_name(&name).map_err(|m| invalid(format!("[gateway] name {m}")))?;
        }
        if let Some(t) = g.tick_interval_ms {
            // Two silent intervals close a peer; keeping that under presence's five minutes
            // means a live connection's entry never expires.
            if !(100..=120_000).contains(&t) {
                return Err(invalid(
                    "[gateway] tick_interval_ms must be between 100 and 120000".into(),
                ));
            }
            self.tick_interval_ms = t;
        }
        if let Some(m) = g.max_payload {
            if !(64 * 1024..=256 * 1024 * 1024).contains(&m) {
                return Err(invalid(
                    "[gateway] max_payload must be between 65536 and 268435456 bytes".into(),
                ));
            }
            self.max_payload = m;
        }
        if let Some(m) = g.max_buffered_bytes {
            self.max_buffered_bytes = m.max(self.max_payload);
        }
        if let Some(t) = g.invoke_timeout_ms {
            if t == 0 || t > perch_protocol::MAX_INVOKE_TIMEOUT_MS {
                return Err(invalid(format!(
                    "[gateway] invoke_timeout_ms must be between 1 and {}",
                    perch_protocol::MAX_INVOKE_TIMEOUT_MS
                )));
            }
            self.invoke_timeout_ms = t;
        }
        if let Some(m) = g.mdns {
            self.mdns = m;
        }
        if let Some(dir) = g.ui_dir {
            // Relative to the data directory, like everything else in perch.toml.
            self.ui_dir = Some(match path.parent() {
                Some(base) if dir.is_relative() => base.join(dir),
                _ => dir,
            });
        }
        if let Some(q) = g.nodes.queue_offline_invokes {
            self.queue_offline_invokes = q;
        }
        if let Some(m) = g.nodes.max_queued_invokes {
            if !(1..=1024).contains(&m) {
                return Err(invalid(
                    "[gateway.nodes] max_queued_invokes must be between 1 and 1024".into(),
                ));
            }
            self.max_queued_invokes = m;
        }
        self.commands = CommandPolicy::new(&g.nodes.allow_commands, &g.nodes.deny_commands);
        Ok(())
    }
}

/// Checks a host display name: trimmed, 1 to 63 bytes (it becomes an mDNS instance label).
pub fn parse_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() || name.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    Ok(name.to_string())
}

/// Parses `ADDR:PORT` (IPv6 as `[::1]:PORT`); `localhost:PORT` means loopback.
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?} has no valid port"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not ADDR:PORT (for example 127.0.0.1:18789)"))
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

fn default_host_name() -> String {
    let raw = gethostname::gethostname().to_string_lossy().to_string();
    let name = raw.split('.').next().unwrap_or("").trim().to_string();
    if name.is_empty() {
        "perch".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str) -> Result<GatewayConfig, ConfigError> {
        let mut c = GatewayConfig::defaults(PathBuf::from("/tmp/x"));
        c.apply_toml(Path::new("perch.toml"), text)?;
        Ok(c)
    }

    #[test]
    fn defaults_are_loopback_18789() {
        let c = GatewayConfig::defaults(PathBuf::from("/d"));
        assert_eq!(c.bind.to_string(), "127.0.0.1:18789");
        assert_eq!(c.tick_interval_ms, 15_000);
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
    }

    #[test]
    fn desktop_section_is_left_to_the_desktop() {
        let c = apply(
            "[desktop]\nlocation = { lat = 48.2, lon = 16.37, accuracy_m = 100 }\n[gateway]\nname = \"box\"\n",
        )
        .unwrap();
        assert_eq!(c.name, "box");
    }

    #[test]
    fn ui_dir_is_relative_to_the_data_directory() {
        let mut c = GatewayConfig::defaults(PathBuf::from("/d"));
        c.apply_toml(Path::new("/d/perch.toml"), "[gateway]\nui_dir = \"web\"\n")
            .unwrap();
        assert_eq!(c.ui_dir, Some(PathBuf::from("/d/web")));
        c.apply_toml(
            Path::new("/d/perch.toml"),
            "[gateway]\nui_dir = \"/srv/ui\"\n",
        )
        .unwrap();
        assert_eq!(c.ui_dir, Some(PathBuf::from("/srv/ui")));
        assert_eq!(GatewayConfig::defaults(PathBuf::from("/d")).ui_dir, None);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  box ").unwrap(), "box");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(64)).is_err());
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
    fn mdns_mode_from_file_and_flag() {
        assert_eq!(apply("").unwrap().mdns, MdnsMode::Minimal);
        assert_eq!(
            apply("[gateway]\nmdns = \"off\"\n").unwrap().mdns,
            MdnsMode::Off
        );
        let err = apply("[gateway]\nmdns = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert_eq!(MdnsMode::parse("FULL").unwrap(), MdnsMode::Full);
        assert!(MdnsMode::parse("x").is_err());
    }

    #[test]
    fn policy_deny_wins() {
        let p = CommandPolicy::new(&["camera.snap".into()], &["location.get".into()]);
        assert!(p.allows("camera.snap"));
        assert!(p.allows("device.info"));
        assert!(!p.allows("location.get"));
        assert!(!p.allows("system.run"));
    }

    #[test]
    fn policy_from_file() {
        let c = apply("[gateway.nodes]\ndeny_commands = [\"system.notify\"]\n").unwrap();
        assert!(!c.commands.allows("system.notify"));
    }
}
