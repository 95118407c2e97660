//! What a Perch host's mDNS/Bonjour advertisement (`_perch-gw._tcp`) says, checked: the strict
//! parser, merging the same host seen twice, and choosing the host to dial. Pure, so a phone
//! that browses with the platform's own Bonjour (`NWBrowser`, Android NSD) hands the result
//! here and gets the same checks as `perch node run`'s own browser ([`crate::discovery`]).
//!
//! Everything an advertisement says is unauthenticated: sizes, types and host id = fingerprint
//! prefix are checked, and [`choose`] never lets an advertisement override a pinned fingerprint.
//! The connect handshake proves the host key; an advertisement only suggests where to dial.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The DNS-SD service type Perch hosts advertise.
pub const SERVICE_TYPE: &str = "_perch-gw._tcp.local.";
/// The only `txtvers` this node understands.
pub const TXT_VERSION: &str = "1";
/// Longest TXT value accepted, in bytes; a TXT string cannot hold more on the wire.
pub const MAX_TXT_VALUE: usize = 255;
/// Longest whole TXT record accepted, in bytes (one Ethernet-sized packet's worth).
pub const MAX_TXT_RECORD: usize = 1300;
/// Longest instance name accepted, in bytes.
const MAX_INSTANCE: usize = 255;
/// Longest software version kept for display.
const MAX_VERSION: usize = 64;

/// A Perch host seen on the LAN: where to dial and what it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredHost {
    /// The DNS-SD instance name (the host's display name, `name (2)` after a conflict).
    pub name: String,
    /// The advertised host id (checked to be the fingerprint's first 16 hex characters).
    pub host_id: String,
    /// The advertised key fingerprint (64 lowercase hex); a hint until the connect proof.
    pub fingerprint: Option<String>,
    /// Resolved addresses, IPv4 first.
    pub addresses: Vec<IpAddr>,
    /// The port from the SRV record.
    pub port: u16,
    /// Oldest protocol version a node may speak to this host.
    pub proto_min: u32,
    /// Newest protocol version this host speaks.
    pub proto_max: u32,
    /// The host's software version (only when it advertises in `full` mode).
    pub version: Option<String>,
    /// The host serves TLS (`tls=1`): its URLs are `wss://`, pinned to the fingerprint.
    pub tls: bool,
}

impl DiscoveredHost {
    /// WebSocket URLs to try (`wss://` when the host serves TLS), IPv4 first; IPv6 link-local
    /// addresses are skipped because a URL cannot carry their zone.
    pub fn ws_urls(&self) -> Vec<String> {
        let scheme = if self.tls { "wss" } else { "ws" };
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for ip in &self.addresses {
            match ip {
                IpAddr::V4(a) => v4.push(format!("{scheme}://{a}:{}", self.port)),
                IpAddr::V6(a) if is_link_local_v6(a) => {}
                IpAddr::V6(a) => v6.push(format!("{scheme}://[{a}]:{}", self.port)),
            }
        }
        v4.extend(v6);
        v4
    }

    /// Whether a node speaking protocol `version` can talk to this host.
    pub fn speaks(&self, version: u32) -> bool {
        (self.proto_min..=self.proto_max).contains(&version)
    }

    /// Hosts are the same advertiser when host id, fingerprint and port agree.
    fn same_host(&self, other: &DiscoveredHost) -> bool {
        self.host_id == other.host_id
            && self.fingerprint == other.fingerprint
            && self.port == other.port
    }
}

fn is_link_local_v6(a: &std::net::Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// Why an advertisement was dropped; each is logged at debug and never reaches the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The full name is not an instance of `_perch-gw._tcp.local.`.
    #[error("not a {SERVICE_TYPE} instance")]
    NotOurService,
    /// The instance name is empty or too long.
    #[error("bad instance name")]
    BadName,
    /// The SRV port is 0.
    #[error("SRV port is 0")]
    NoPort,
    /// No address a node could dial.
    #[error("no usable address")]
    NoAddress,
    /// A TXT value or the whole record is larger than allowed.
    #[error("TXT record too large")]
    TooLarge,
    /// `txtvers` is missing or a version this node cannot read.
    #[error("unsupported txtvers")]
    TxtVersion,
    /// A required key is missing.
    #[error("missing TXT key {0}")]
    Missing(&'static str),
    /// A key has a value of the wrong shape.
    #[error("bad TXT value for {0}")]
    BadValue(&'static str),
    /// The host id is not the fingerprint's first 16 characters: a forgery or a broken host.
    #[error("host id does not match the fingerprint")]
    HostIdMismatch,
}

/// Parses one resolved advertisement: its full name, SRV port, addresses and TXT pairs.
///
/// Rules: each TXT value at most [`MAX_TXT_VALUE`] bytes and the record at most
/// [`MAX_TXT_RECORD`]; `txtvers=1`; `proto=a-b` with a <= b; `hid` 16 hex; `fp` 64 hex and
/// `hid` its prefix; keys are case-insensitive, the first occurrence counts, unknown keys are
/// ignored. A TXT `port` must be a number, but when it disagrees with the SRV port the SRV port
/// wins (SRV is what DNS-SD resolves to; TXT is only a hint). Bad `ver` values are dropped,
/// not the host.
pub fn parse_advertisement(
    fullname: &str,
    srv_port: u16,
    addresses: &[IpAddr],
    txt: &[(&str, Option<&[u8]>)],
) -> Result<DiscoveredHost, Rejected> {
    let name = instance_name(fullname)?;
    if srv_port == 0 {
        return Err(Rejected::NoPort);
    }
    let mut total = 0usize;
    for (k, v) in txt {
        let vlen = v.map_or(0, |v| v.len());
        if vlen > MAX_TXT_VALUE || k.len() > MAX_TXT_VALUE {
            return Err(Rejected::TooLarge);
        }
        total = total.saturating_add(1 + k.len() + v.map_or(0, |v| v.len() + 1));
    }
    if total > MAX_TXT_RECORD {
        return Err(Rejected::TooLarge);
    }
    let get = |key: &str| -> Option<Option<&[u8]>> {
        txt.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    };
    // A present key must have a UTF-8 value.
    let text = |key: &'static str| -> Result<Option<&str>, Rejected> {
        match get(key) {
            None => Ok(None),
            Some(None) => Err(Rejected::BadValue(key)),
            Some(Some(bytes)) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| Rejected::BadValue(key)),
        }
    };
    match text("txtvers") {
        Ok(Some(TXT_VERSION)) => {}
        _ => return Err(Rejected::TxtVersion),
    }
    let (proto_min, proto_max) = parse_proto(text("proto")?.ok_or(Rejected::Missing("proto"))?)
        .ok_or(Rejected::BadValue("proto"))?;
    let host_id = text("hid")?.ok_or(Rejected::Missing("hid"))?;
    if !is_hex(host_id, 16) {
        return Err(Rejected::BadValue("hid"));
    }
    let host_id = host_id.to_ascii_lowercase();
    let fingerprint = match text("fp")? {
        None => None,
        Some(fp) if is_hex(fp, 64) => Some(fp.to_ascii_lowercase()),
        Some(_) => return Err(Rejected::BadValue("fp")),
    };
    if let Some(fp) = &fingerprint
        && !fp.starts_with(&host_id)
    {
        return Err(Rejected::HostIdMismatch);
    }
    if let Some(p) = text("port")? {
        let p = parse_decimal(p)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n != 0)
            .ok_or(Rejected::BadValue("port"))?;
        if p != srv_port {
            tracing::debug!(
                txt_port = p,
                srv_port,
                instance = %name,
                "TXT port disagrees with SRV; using SRV"
            );
        }
    }
    let version = match text("ver") {
        Ok(Some(v))
            if !v.is_empty()
                && v.len() <= MAX_VERSION
                && v.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Some(v.to_string())
        }
        _ => None,
    };
    // Only `tls=1` turns TLS on; a host that does not serve TLS says nothing. (An advert that
    // hides it only sends the node to `ws://`, where the host answers 426 and the node moves
    // to `wss://`, or an impostor fails the signed challenge.)
    let tls = matches!(text("tls"), Ok(Some("1")));
    let addresses = usable_addresses(addresses);
    if addresses.is_empty() {
        return Err(Rejected::NoAddress);
    }
    Ok(DiscoveredHost {
        tls,
        name,
        host_id,
        fingerprint,
        addresses,
        port: srv_port,
        proto_min,
        proto_max,
        version,
    })
}

/// The instance label of `fullname`, unescaped (`\.`, `\\`, `\DDD`) and made printable.
pub(crate) fn instance_name(fullname: &str) -> Result<String, Rejected> {
    let suffix_len = SERVICE_TYPE.len() + 1;
    if fullname.len() <= suffix_len
        || !fullname.is_char_boundary(fullname.len() - suffix_len)
        || !fullname[fullname.len() - suffix_len..]
            .eq_ignore_ascii_case(&format!(".{SERVICE_TYPE}"))
    {
        return Err(Rejected::NotOurService);
    }
    let raw = &fullname[..fullname.len() - suffix_len];
    if raw.len() > MAX_INSTANCE {
        return Err(Rejected::BadName);
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let src = raw.as_bytes();
    let mut i = 0;
    while i < src.len() {
        if src[i] == b'\\' && i + 1 < src.len() {
            let digits = &src[i + 1..src.len().min(i + 4)];
            if digits.len() == 3 && digits.iter().all(u8::is_ascii_digit) {
                let n = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(n) {
                    bytes.push(b);
                    i += 4;
                    continue;
                }
            }
            bytes.push(src[i + 1]);
            i += 2;
        } else {
            bytes.push(src[i]);
            i += 1;
        }
    }
    let name: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(Rejected::BadName);
    }
    Ok(name)
}

/// `a-b` with plain decimal numbers and a <= b.
fn parse_proto(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let a = u32::try_from(parse_decimal(a)?).ok()?;
    let b = u32::try_from(parse_decimal(b)?).ok()?;
    (a <= b).then_some((a, b))
}

/// 1 to 9 ASCII digits, nothing else (no sign, no spaces).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Drops addresses no node could dial, removes duplicates, and puts IPv4 first.
fn usable_addresses(addresses: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in addresses {
        let bad = ip.is_unspecified()
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(a) if a.is_broadcast());
        if !bad && !out.contains(ip) {
            out.push(*ip);
        }
    }
    out.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    out
}

/// Adds `host` to `hosts`, merging with an entry for the same host (seen on another interface
/// or re-resolved): addresses are joined, the first name is kept.
pub fn merge(hosts: &mut Vec<DiscoveredHost>, host: DiscoveredHost) {
    match hosts.iter_mut().find(|h| h.same_host(&host)) {
        Some(h) => {
            let mut all = h.addresses.clone();
            all.extend(host.addresses);
            h.addresses = usable_addresses(&all);
            if h.version.is_none() {
                h.version = host.version;
            }
        }
        None => hosts.push(host),
    }
}

/// The node's decision after a browse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Exactly one eligible host: connect to it.
    One(DiscoveredHost),
    /// Several eligible hosts: ask the user (or require `--host-id`).
    Several(Vec<DiscoveredHost>),
    /// No eligible host.
    None,
}

/// Picks the host a node should dial. With `pinned_fingerprint`, only hosts advertising exactly
/// that fingerprint are eligible (an advertisement never replaces a stored pin: a host id copied
/// by an impostor with another fingerprint is ignored). With `want_host_id`, only that host id.
pub fn choose(
    hosts: &[DiscoveredHost],
    want_host_id: Option<&str>,
    pinned_fingerprint: Option<&str>,
) -> Choice {
    let mut eligible: Vec<DiscoveredHost> = hosts
        .iter()
        .filter(|h| {
            pinned_fingerprint.is_none_or(|pin| {
                h.fingerprint
                    .as_deref()
                    .is_some_and(|fp| fp.eq_ignore_ascii_case(pin.trim()))
            })
        })
        .filter(|h| want_host_id.is_none_or(|id| h.host_id.eq_ignore_ascii_case(id.trim())))
        .cloned()
        .collect();
    match eligible.len() {
        0 => Choice::None,
        1 => Choice::One(eligible.remove(0)),
        _ => Choice::Several(eligible),
    }
}
