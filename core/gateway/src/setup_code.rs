//! Minting setup codes: the addresses a device can reach this host at, the key it must pin,
//! and a single-use bootstrap token that pairs it without a manual approval.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use perch_protocol::methods::SetupCodeResult;
use perch_protocol::setup_code::{BOOTSTRAP_TOKEN_BYTES, MAX_ADDRESSES, SetupCode};
use perch_protocol::{ErrorCode, ErrorShape};

use crate::hub::{Hub, now_ms};
use crate::operator::store_error;
use crate::secrets::{hash_token, random_b64};

/// How long a bootstrap token works.
pub const SETUP_CODE_TTL_MS: i64 = 10 * 60 * 1000;

/// The addresses a device should try, best first, and what the user should know about them.
pub fn reachable_addresses(bind: SocketAddr, interfaces: &[IpAddr]) -> (Vec<IpAddr>, Vec<String>) {
    let mut warnings = Vec::new();
    let ip = bind.ip();
    if ip.is_loopback() {
        warnings.push(format!(
            "this host listens on {bind}, which only this machine can reach; start it with --bind 0.0.0.0:{} for phones and other computers",
            bind.port()
        ));
        return (vec![ip], warnings);
    }
    if !ip.is_unspecified() {
        return (vec![ip], warnings);
    }
    // Listening on every interface: offer the usable ones, IPv4 first (phones handle it best),
    // then global IPv6 when the socket accepts it ([::], not 0.0.0.0); never link-local (a URL
    // cannot carry its scope).
    let ipv6_too = ip.is_ipv6();
    let mut v4: Vec<IpAddr> = interfaces
        .iter()
        .copied()
        .filter(|a| matches!(a, IpAddr::V4(v) if !v.is_loopback() && !v.is_link_local() && !v.is_unspecified()))
        .collect();
    let mut v6: Vec<IpAddr> = interfaces
        .iter()
        .copied()
        .filter(|a| {
            ipv6_too
                && matches!(a, IpAddr::V6(v) if !v.is_loopback() && !v.is_unspecified()
                    && (v.segments()[0] & 0xffc0) != 0xfe80)
        })
        .collect();
    v4.sort();
    v4.dedup();
    v6.sort();
    v6.dedup();
    let mut all: Vec<IpAddr> = v4.into_iter().chain(v6).collect();
    if all.is_empty() {
        warnings.push("no network address found; the code points at this machine only".into());
        all.push(IpAddr::from([127, 0, 0, 1]));
    }
    all.truncate(MAX_ADDRESSES);
    (all, warnings)
}

fn interface_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list network interfaces");
            Vec::new()
        }
    }
}

/// `device.pair.setupCode`: mints a bootstrap token and the code that carries it.
pub async fn mint(hub: &Arc<Hub>) -> Result<SetupCodeResult, ErrorShape> {
    let internal = |m: String| ErrorShape::new(ErrorCode::Internal, m);
    let (addresses, warnings) = reachable_addresses(hub.config.bind, &interface_addresses());
    let fingerprint: [u8; 32] = hex::decode(&hub.fingerprint)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| internal("host fingerprint is not 32 bytes".into()))?;
    let token = random_b64(BOOTSTRAP_TOKEN_BYTES).map_err(|e| internal(e.to_string()))?;
    let now = now_ms();
    let expires_at_ms = now + SETUP_CODE_TTL_MS;
    let code = SetupCode::new(
        addresses,
        hub.config.bind.port(),
        fingerprint,
        token.clone(),
    )
    .with_tls(hub.config.transport.tls);
    let text = code.encode().map_err(|e| internal(e.to_string()))?;
    let store = hub.store.bootstrap();
    store
        .mint(&hash_token(&token), now, expires_at_ms)
        .await
        .map_err(store_error)?;
    if let Err(e) = store.prune(now).await {
        tracing::warn!(error = %e, "could not prune old bootstrap tokens");
    }
    tracing::info!(expires_at_ms, "setup code minted");
    Ok(SetupCodeResult {
        setup_code: text,
        expires_at_ms,
        gateway_urls: code.gateway_urls(),
        host_id: hub.host_id.clone(),
        fingerprint: hub.fingerprint.clone(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn loopback_bind_warns() {
        let (a, w) = reachable_addresses("127.0.0.1:18789".parse().unwrap(), &ips(&["10.0.0.5"]));
        assert_eq!(a, ips(&["127.0.0.1"]));
        assert!(w[0].contains("--bind 0.0.0.0:18789"), "{w:?}");
    }

    #[test]
    fn specific_bind_is_the_only_address() {
        let (a, w) = reachable_addresses("10.0.0.5:9000".parse().unwrap(), &ips(&["10.0.0.6"]));
        assert_eq!(a, ips(&["10.0.0.5"]));
        assert!(w.is_empty());
    }

    #[test]
    fn wildcard_offers_ipv4_then_global_ipv6_never_link_local() {
        let ifs = ips(&[
            "127.0.0.1",
            "::1",
            "fe80::1",
            "2001:db8::7",
            "192.168.1.10",
            "169.254.3.3",
            "10.0.0.2",
        ]);
        let (a, w) = reachable_addresses("[::]:18789".parse().unwrap(), &ifs);
        assert_eq!(a, ips(&["10.0.0.2", "192.168.1.10", "2001:db8::7"]));
        let (a, _) = reachable_addresses("0.0.0.0:18789".parse().unwrap(), &ifs);
        assert_eq!(
            a,
            ips(&["10.0.0.2", "192.168.1.10"]),
            "an IPv4 socket takes no IPv6"
        );
        assert!(w.is_empty());
        let (a, w) = reachable_addresses("0.0.0.0:18789".parse().unwrap(), &ips(&["127.0.0.1"]));
        assert_eq!(a, ips(&["127.0.0.1"]));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn at_most_eight_addresses() {
        let ifs: Vec<IpAddr> = (1..20).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let (a, _) = reachable_addresses("0.0.0.0:1".parse().unwrap(), &ifs);
        assert_eq!(a.len(), MAX_ADDRESSES);
    }
}
