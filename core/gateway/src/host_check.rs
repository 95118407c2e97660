//! The `Host` header allowlist, a DNS-rebinding defence: a web page whose name was re-pointed
//! at this machine sends its own name as `Host`, so requests naming anything other than this
//! host are refused before any route (the socket, the UI, `/healthz`) sees them.
//!
//! Allowed: loopback names (`localhost`, `127.0.0.1`, `[::1]`), the bound address (for a
//! wildcard bind, any address of this machine's interfaces, read again when an unknown address
//! shows up), `<name>.local`, and `[gateway] allowed_hosts`. Any port is accepted: the port
//! does not change who the name points at.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::GatewayConfig;

/// Names and addresses the `Host` header may carry.
#[derive(Debug, Clone)]
pub struct HostAllowlist {
    names: HashSet<String>,
    addrs: HashSet<IpAddr>,
    /// Bound to 0.0.0.0 or `::`: any address of this machine is ours.
    wildcard: bool,
}

impl HostAllowlist {
    /// The allowlist for a gateway bound to `config.bind`.
    pub fn new(config: &GatewayConfig) -> Self {
        let mut names: HashSet<String> = ["localhost".to_string()].into();
        let mut addrs: HashSet<IpAddr> = ["127.0.0.1", "::1"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let ip = config.bind.ip();
        let wildcard = ip.is_unspecified();
        if wildcard {
            addrs.extend(interface_addresses());
        } else {
            addrs.insert(ip);
        }
        names.insert(format!("{}.local", config.name.to_ascii_lowercase()));
        for h in &config.allowed_hosts {
            match h.parse::<IpAddr>() {
                Ok(a) => {
                    addrs.insert(a);
                }
                Err(_) => {
                    names.insert(h.to_ascii_lowercase());
                }
            }
        }
        Self {
            names,
            addrs,
            wildcard,
        }
    }

    /// Whether a `Host` header value names this host.
    pub fn allows(&self, host_header: &str) -> bool {
        let Some(host) = host_part(host_header) else {
            return false;
        };
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = canonical(ip);
                ip.is_loopback()
                    || self.addrs.contains(&ip)
                    // Addresses change (DHCP, a new interface): look again before refusing.
                    || (self.wildcard && interface_addresses().contains(&ip))
            }
            // `*.localhost` always resolves to loopback (RFC 6761), so nobody can rebind it.
            Err(_) => self.names.contains(&host) || host.ends_with(".localhost"),
        }
    }
}

/// The host of a `Host` value, lowercase, without port, brackets or a trailing dot; `None` for
/// a malformed value.
fn host_part(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    let host = if let Some(rest) = v.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        inside.to_string()
    } else {
        match v.rsplit_once(':') {
            Some((h, port)) if is_port(port) && !h.contains(':') => h.to_string(),
            Some(_) => return None,
            None => v,
        }
    };
    let host = host.trim_end_matches('.').to_string();
    (!host.is_empty()).then_some(host)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn interface_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list network interfaces");
            Vec::new()
        }
    }
}

/// Middleware: refuses a request whose `Host` is missing or not on the list with
/// 421 Misdirected Request, and one a web page of another origin sent (its `Origin` names
/// another host or port than its `Host`) with 403, on every route: the socket, `/healthz`,
/// the UI, and methods no route has.
pub async fn check_host(
    State(allow): State<Arc<HostAllowlist>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match host {
        Some(h) if allow.allows(h) => match crate::web::foreign_origin(req.headers()) {
            None => next.run(req).await,
            Some(origin) => crate::web::forbidden_origin(&origin),
        },
        other => {
            tracing::debug!(host = ?other, "refused a request for another host name");
            (
                StatusCode::MISDIRECTED_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "this Perch host does not answer to that name (Host header not allowed; see [gateway] allowed_hosts)\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn list(bind: &str, extra: &[&str]) -> HostAllowlist {
        let mut c = GatewayConfig::defaults(PathBuf::from("/d"));
        c.bind = bind.parse().unwrap();
        c.name = "Box".into();
        c.allowed_hosts = extra.iter().map(|s| s.to_string()).collect();
        HostAllowlist::new(&c)
    }

    #[test]
    fn loopback_names_pass_with_or_without_port() {
        let l = list("127.0.0.1:18789", &[]);
        for h in [
            "localhost",
            "LOCALHOST:18789",
            "127.0.0.1",
            "127.0.0.1:18789",
            "[::1]",
            "[::1]:18789",
            "box.local:18789",
            "box.local.",
        ] {
            assert!(l.allows(h), "{h}");
        }
    }

    #[test]
    fn foreign_and_malformed_names_are_refused() {
        let l = list("127.0.0.1:18789", &[]);
        for h in [
            "evil.example",
            "evil.example:18789",
            "localhost.evil.example",
            "192.0.2.1",
            "",
            "127.0.0.1:port",
            "[::1",
            "::1:80",
            "box.local@evil",
        ] {
            assert!(!l.allows(h), "{h}");
        }
    }

    #[test]
    fn bound_address_and_configured_names_pass() {
        let l = list("192.0.2.5:18789", &["perch.example", "198.51.100.1"]);
        assert!(l.allows("192.0.2.5:18789"));
        assert!(l.allows("perch.example"));
        assert!(l.allows("198.51.100.1:1"));
        assert!(!l.allows("192.0.2.6"));
    }
}
