//! Hosts found on the LAN by the platform's own Bonjour browser (iOS `NWBrowser`, Android
//! `NsdManager`), which phones allow without the raw-multicast permission a Rust browser would
//! need: the app hands each resolved service to [`check_discovered_host`], which applies
//! perch-node's checks ([`perch_node::advert`]: sizes, `txtvers`, host id = fingerprint
//! prefix, the protocol range), and pairs with [`crate::PerchNode::connect_to_discovered`],
//! which insists on the advertised key and never lets an advertisement replace a pinned one.

use std::collections::HashMap;
use std::net::IpAddr;

use perch_node::advert::{self, SERVICE_TYPE};

use crate::error::PerchError;

/// One service the platform's browser resolved.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BrowsedService {
    /// The service instance name as the platform reports it (`Studio`, or the full
    /// `Studio._perch-gw._tcp.local.`).
    pub name: String,
    /// The port from the SRV record.
    pub port: u16,
    /// Resolved addresses, as text (`192.168.1.20`, `fe80::1`).
    pub addresses: Vec<String>,
    /// The TXT record: each key with its value's bytes (`None` for a key without `=`).
    pub txt: HashMap<String, Option<Vec<u8>>>,
}

/// A checked advertisement: what to show the user and where to dial. Only a hint until the
/// connect handshake proves the key.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DiscoveredHost {
    /// The host's name.
    pub name: String,
    /// The host id (first 16 hex characters of the fingerprint).
    pub host_id: String,
    /// The advertised key fingerprint (64 hex), when the host advertises it.
    pub fingerprint: Option<String>,
    /// WebSocket URLs to try, IPv4 first (`wss://` when the host serves TLS).
    pub urls: Vec<String>,
    /// The host serves TLS.
    pub tls: bool,
    /// The host's software version, when it advertises it.
    pub version: Option<String>,
}

/// The DNS-SD service type to browse for (`_perch-gw._tcp`; add `local.` where the platform
/// wants a domain).
#[uniffi::export]
pub fn perch_service_type() -> String {
    SERVICE_TYPE.trim_end_matches(".local.").to_string()
}

/// Checks one resolved service: an advertisement that is not a Perch host, is malformed, or
/// speaks another protocol is `InvalidAdvertisement` with the reason, never a crash.
#[uniffi::export]
pub fn check_discovered_host(service: BrowsedService) -> Result<DiscoveredHost, PerchError> {
    let invalid = |reason: String| PerchError::InvalidAdvertisement { reason };
    let full_name = if service.name.ends_with(SERVICE_TYPE) {
        service.name.clone()
    } else {
        format!("{}.{SERVICE_TYPE}", service.name.trim_end_matches('.'))
    };
    let addresses: Vec<IpAddr> = service
        .addresses
        .iter()
        .filter_map(|a| a.trim().trim_matches(['[', ']']).parse().ok())
        .collect();
    let txt: Vec<(&str, Option<&[u8]>)> = service
        .txt
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    let host = advert::parse_advertisement(&full_name, service.port, &addresses, &txt)
        .map_err(|e| invalid(e.to_string()))?;
    if !host.speaks(perch_protocol::PROTOCOL_VERSION) {
        return Err(invalid(format!(
            "the host speaks protocol {} to {}; this node speaks {}",
            host.proto_min,
            host.proto_max,
            perch_protocol::PROTOCOL_VERSION
        )));
    }
    let urls = host.ws_urls();
    if urls.is_empty() {
        return Err(invalid("no address a phone can dial".into()));
    }
    Ok(DiscoveredHost {
        name: host.name,
        host_id: host.host_id,
        fingerprint: host.fingerprint,
        urls,
        tls: host.tls,
        version: host.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "24f6ed6acbfe1009a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899";

    fn service(txt: &[(&str, &str)]) -> BrowsedService {
        BrowsedService {
            name: "Studio".into(),
            port: 18789,
            addresses: vec!["fe80::1".into(), "192.168.1.20".into()],
            txt: txt
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec())))
                .collect(),
        }
    }

    #[test]
    fn a_good_advertisement_gives_urls_and_the_key_to_insist_on() {
        let fp = &FP[..64];
        let hid = &fp[..16];
        let ok = [
            ("txtvers", "1"),
            ("proto", "4-4"),
            ("hid", hid),
            ("fp", fp),
            ("tls", "1"),
        ];
        let host = check_discovered_host(service(&ok)).unwrap();
        assert_eq!(host.name, "Studio");
        assert_eq!(host.host_id, hid);
        assert_eq!(host.fingerprint.as_deref(), Some(fp));
        assert_eq!(host.urls, vec!["wss://192.168.1.20:18789".to_string()]);
        assert_eq!(perch_service_type(), "_perch-gw._tcp");
    }

    #[test]
    fn forged_or_foreign_advertisements_are_typed_errors() {
        let fp = &FP[..64];
        let other_hid = "0000000000000000";
        for txt in [
            vec![
                ("txtvers", "1"),
                ("proto", "4-4"),
                ("hid", other_hid),
                ("fp", fp),
            ],
            vec![
                ("txtvers", "9"),
                ("proto", "4-4"),
                ("hid", &fp[..16]),
                ("fp", fp),
            ],
            vec![
                ("txtvers", "1"),
                ("proto", "1-2"),
                ("hid", &fp[..16]),
                ("fp", fp),
            ],
            vec![],
        ] {
            let e = check_discovered_host(service(&txt)).unwrap_err();
            assert!(
                matches!(e, PerchError::InvalidAdvertisement { .. }),
                "{e:?}"
            );
        }
        let mut huge = service(&[("txtvers", "1")]);
        huge.txt.insert("x".into(), Some(vec![b'a'; 300]));
        assert!(check_discovered_host(huge).is_err());
        let mut nowhere = service(&[
            ("txtvers", "1"),
            ("proto", "4-4"),
            ("hid", &fp[..16]),
            ("fp", fp),
        ]);
        nowhere.addresses = vec!["not an address".into()];
        assert!(check_discovered_host(nowhere).is_err());
    }
}
