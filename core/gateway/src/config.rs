//! Gateway settings: the values the gateway runs with, their defaults and the checks on
//! single values. Reading them from `perch.toml` is the host composition's job (perch-host).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use perch_protocol::node_commands::DEFAULT_ALLOWED_COMMANDS;

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
    /// Bounds on what unauthenticated clients can make the host hold.
    pub limits: Limits,
    /// Extra names the `Host` header may carry (`[gateway] allowed_hosts`), besides loopback
    /// names, this machine's addresses and `<name>.local`.
    pub allowed_hosts: Vec<String>,
    /// TLS and plain `ws://` (`[gateway] tls`, `allow_plain_ws`).
    pub transport: Transport,
}

/// Which transports the listener offers (`[gateway]` keys of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Offers TLS (`wss://`, `https://`) with the certificate issued by the host key; without
    /// it the network sees tokens, chats and locations in clear.
    pub tls: bool,
    /// Accepts plain `ws://`/`http://` from other machines while TLS is on (for OpenClaw-style
    /// nodes that cannot speak TLS); loopback clients may always use plain.
    pub allow_plain_ws: bool,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            tls: true,
            allow_plain_ws: false,
        }
    }
}

impl Transport {
    /// Whether a plain (not TLS) connection from `peer` is served.
    pub fn plain_allowed_from(&self, peer: std::net::IpAddr) -> bool {
        !self.tls || self.allow_plain_ws || is_loopback(peer)
    }
}

/// Loopback, counting IPv4-mapped IPv6 loopback (`::ffff:127.0.0.1`) as such.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Bounds on unauthenticated load (`[gateway]` keys of the same names); see docs/protocol.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections in total, counted from accept; more are refused with HTTP 503.
    pub max_connections: usize,
    /// Open connections from one source address; loopback is exempt unless
    /// [`Limits::limit_loopback`] is set.
    pub max_connections_per_source: usize,
    /// Applies the per-source connection cap to loopback clients too (the local CLI, app and
    /// tests all come from 127.0.0.1, so it is off by default).
    pub limit_loopback: bool,
    /// How long a WebSocket may take to complete `connect`; pings and junk do not extend it.
    pub handshake_timeout_ms: u64,
    /// How long a client may take to send a complete HTTP request head.
    pub header_timeout_ms: u64,
    /// Pending pairing requests in total; past it the oldest are expired.
    pub max_pending_pairings: usize,
    /// Pending pairing requests from one source address; past it new ones are refused.
    pub max_pending_pairings_per_source: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_source: 512,
            limit_loopback: false,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            max_pending_pairings: 64,
            max_pending_pairings_per_source: 8,
        }
    }
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
            limits: Limits::default(),
            allowed_hosts: Vec::new(),
            transport: Transport::default(),
        }
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

/// Checks one `[gateway] allowed_hosts` entry: a DNS name or an IP address, without a port
/// (any port is accepted), stored lowercase.
pub fn parse_allowed_host(s: &str) -> Result<String, String> {
    let h = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = h.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(bare.to_string());
    }
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(h)
    } else {
        Err(format!(
            "{s:?} is not a host name or IP address (no port, no scheme)"
        ))
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

    #[test]
    fn defaults_are_loopback_18789() {
        let c = GatewayConfig::defaults(PathBuf::from("/d"));
        assert_eq!(c.bind.to_string(), "127.0.0.1:18789");
        assert_eq!(c.tick_interval_ms, 15_000);
        assert_eq!(c.ui_dir, None);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  box ").unwrap(), "box");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(64)).is_err());
    }

    #[test]
    fn binds_parse_with_localhost_and_ipv6() {
        assert_eq!(
            parse_bind("localhost:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert_eq!(parse_bind("[::1]:9000").unwrap().to_string(), "[::1]:9000");
        assert!(parse_bind("nope").unwrap_err().contains("ADDR:PORT"));
    }

    #[test]
    fn allowed_hosts_are_names_or_addresses() {
        assert_eq!(parse_allowed_host("Box.Example.").unwrap(), "box.example");
        assert_eq!(parse_allowed_host("[fe80::1]").unwrap(), "fe80::1");
        assert_eq!(parse_allowed_host("10.0.0.2").unwrap(), "10.0.0.2");
        assert!(parse_allowed_host("box:8080").is_err());
        assert!(parse_allowed_host("http://box").is_err());
        assert!(parse_allowed_host("").is_err());
    }

    #[test]
    fn mdns_mode_from_flag() {
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
}
