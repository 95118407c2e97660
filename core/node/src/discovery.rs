//! Finding Perch hosts on the LAN over mDNS/Bonjour (`_perch-gw._tcp`), so a node can pair
//! without anyone typing an address. What an advertisement says is checked in
//! [`crate::advert`] (re-exported here); this module browses with `mdns-sd`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::advert::instance_name;
pub use crate::advert::*;
use mdns_sd::{IfKind, IfPredicate, ServiceDaemon, ServiceEvent};

/// Why browsing could not run.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The mDNS daemon could not start or accept the browse.
    #[error("mDNS browsing failed: {0}")]
    Daemon(#[from] mdns_sd::Error),
    /// `--interface` named no interface with an address.
    #[error("no network interface named {0:?} with an address")]
    NoSuchInterface(String),
}

/// One change seen while browsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowseEvent {
    /// A host was resolved (or re-resolved with new addresses).
    Found(DiscoveredHost),
    /// A host withdrew its advertisement (goodbye) or its records expired.
    Lost {
        /// The instance name that went away.
        name: String,
        /// Its host id, when this browser had resolved it.
        host_id: Option<String>,
    },
}

/// The daemon's stream of browse events.
type Events = mdns_sd::Receiver<ServiceEvent>;

/// A running browse for Perch hosts; `perch node run` follows it, [`browse`] collects it.
pub struct Browser {
    daemon: ServiceDaemon,
    events: Events,
    interface_seen: Option<Arc<AtomicBool>>,
    known: HashMap<String, String>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts browsing on every interface, or only on `interface` (by name).
    pub fn start(interface: Option<&str>) -> Result<Self, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        match Self::configure(&daemon, interface) {
            Ok((events, interface_seen)) => Ok(Self {
                daemon,
                events,
                interface_seen,
                known: HashMap::new(),
            }),
            Err(e) => {
                let _ = daemon.shutdown();
                Err(e)
            }
        }
    }

    fn configure(
        daemon: &ServiceDaemon,
        interface: Option<&str>,
    ) -> Result<(Events, Option<Arc<AtomicBool>>), DiscoveryError> {
        let mut seen = None;
        if let Some(name) = interface {
            let flag = Arc::new(AtomicBool::new(false));
            let (want, hit) = (name.to_string(), flag.clone());
            // The daemon evaluates this on its own thread; the flag tells us afterwards whether
            // the name matched anything, so a typo is reported instead of finding nothing.
            let pick = IfPredicate::new(move |intf| {
                let matched = intf.name == want;
                if matched {
                    hit.store(true, Ordering::Relaxed);
                }
                matched
            });
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::Predicate(pick))?;
            seen = Some(flag);
        }
        let events = daemon.browse(SERVICE_TYPE)?;
        Ok((events, seen))
    }

    /// The next relevant change; None once the daemon has stopped. Cancel-safe.
    pub async fn next(&mut self) -> Option<BrowseEvent> {
        loop {
            let event = self.events.recv_async().await.ok()?;
            match event {
                ServiceEvent::ServiceResolved(svc) => {
                    let addresses: Vec<IpAddr> =
                        svc.addresses.iter().map(|a| a.to_ip_addr()).collect();
                    let txt: Vec<(&str, Option<&[u8]>)> = svc
                        .txt_properties
                        .iter()
                        .map(|p| (p.key(), p.val()))
                        .collect();
                    match parse_advertisement(&svc.fullname, svc.port, &addresses, &txt) {
                        Ok(host) => {
                            self.known
                                .insert(svc.fullname.to_ascii_lowercase(), host.host_id.clone());
                            return Some(BrowseEvent::Found(host));
                        }
                        Err(why) => {
                            tracing::debug!(instance = %svc.fullname, reason = %why, "ignoring mDNS advertisement");
                        }
                    }
                }
                ServiceEvent::ServiceRemoved(_, fullname) => {
                    let host_id = self.known.remove(&fullname.to_ascii_lowercase());
                    if let Ok(name) = instance_name(&fullname) {
                        return Some(BrowseEvent::Lost { name, host_id });
                    }
                }
                other => tracing::trace!(event = ?other, "mDNS browse event"),
            }
        }
    }

    /// Whether `--interface` matched an interface (always true without one).
    pub fn interface_found(&self) -> bool {
        self.interface_seen
            .as_ref()
            .is_none_or(|f| f.load(Ordering::Relaxed))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Both only queue a command for the daemon thread; neither blocks.
        let _ = self.daemon.stop_browse(SERVICE_TYPE);
        let _ = self.daemon.shutdown();
    }
}

/// Browses for `timeout` and returns every Perch host seen, merged across interfaces and
/// sorted by name. Answers take up to about a second (RFC 6762 rate limits); 3 s is a good wait.
pub async fn browse(
    timeout: Duration,
    interface: Option<&str>,
) -> Result<Vec<DiscoveredHost>, DiscoveryError> {
    let mut browser = Browser::start(interface)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut hosts: Vec<DiscoveredHost> = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, browser.next()).await {
            Ok(Some(BrowseEvent::Found(host))) => merge(&mut hosts, host),
            Ok(Some(BrowseEvent::Lost { name, .. })) => hosts.retain(|h| h.name != name),
            Ok(None) | Err(_) => break,
        }
    }
    if hosts.is_empty()
        && let Some(name) = interface
        && !browser.interface_found()
    {
        return Err(DiscoveryError::NoSuchInterface(name.to_string()));
    }
    hosts.sort_by(|a, b| a.name.cmp(&b.name).then(a.host_id.cmp(&b.host_id)));
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn full(name: &str) -> String {
        format!("{name}.{SERVICE_TYPE}")
    }

    fn txt_of(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn good() -> Vec<(String, Vec<u8>)> {
        txt_of(&[
            ("txtvers", "1"),
            ("proto", "3-4"),
            ("port", "18789"),
            ("hid", &FP[..16]),
            ("fp", FP),
        ])
    }

    fn parse_with(txt: &[(String, Vec<u8>)], port: u16) -> Result<DiscoveredHost, Rejected> {
        let pairs: Vec<(&str, Option<&[u8]>)> = txt
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
            .collect();
        parse_advertisement(
            &full("Kitchen"),
            port,
            &["10.0.0.2".parse().unwrap(), "fe80::1".parse().unwrap()],
            &pairs,
        )
    }

    fn set(txt: &mut [(String, Vec<u8>)], key: &str, value: &[u8]) {
        for (k, v) in txt.iter_mut() {
            if k == key {
                *v = value.to_vec();
            }
        }
    }

    fn host(name: &str, fp: &str, ip: &str) -> DiscoveredHost {
        DiscoveredHost {
            name: name.into(),
            host_id: fp[..16].into(),
            fingerprint: Some(fp.into()),
            addresses: vec![ip.parse().unwrap()],
            port: 18789,
            proto_min: 3,
            proto_max: 4,
            version: None,
            tls: false,
        }
    }

    #[test]
    fn a_good_advertisement_parses() {
        let h = parse_with(&good(), 18789).unwrap();
        assert_eq!(h.name, "Kitchen");
        assert_eq!(h.host_id, &FP[..16]);
        assert_eq!(h.fingerprint.as_deref(), Some(FP));
        assert_eq!((h.proto_min, h.proto_max, h.port), (3, 4, 18789));
        assert_eq!(h.version, None);
        assert!(h.speaks(4) && h.speaks(3) && !h.speaks(5));
    }

    #[test]
    fn oversized_values_and_records_are_dropped() {
        let mut txt = good();
        txt.push(("junk".into(), vec![b'x'; MAX_TXT_VALUE + 1]));
        assert_eq!(parse_with(&txt, 18789), Err(Rejected::TooLarge));
        let mut txt = good();
        for i in 0..6 {
            txt.push((format!("pad{i}"), vec![b'x'; 250]));
        }
        assert_eq!(parse_with(&txt, 18789), Err(Rejected::TooLarge));
        // Just under the record cap is fine.
        let mut txt = good();
        txt.push(("pad".into(), vec![b'x'; 200]));
        assert!(parse_with(&txt, 18789).is_ok());
    }

    #[test]
    fn wrong_types_are_dropped() {
        let cases: [(&str, &[u8], Rejected); 12] = [
            ("port", b"http", Rejected::BadValue("port")),
            ("port", b"70000", Rejected::BadValue("port")),
            ("port", b"-1", Rejected::BadValue("port")),
            ("proto", b"4", Rejected::BadValue("proto")),
            ("proto", b"4-3", Rejected::BadValue("proto")),
            ("proto", b"a-b", Rejected::BadValue("proto")),
            ("proto", b"+3-4", Rejected::BadValue("proto")),
            ("fp", b"xyz", Rejected::BadValue("fp")),
            ("fp", &[0xff, 0xfe], Rejected::BadValue("fp")),
            ("hid", b"0123", Rejected::BadValue("hid")),
            ("hid", b"0123456789abcdeg", Rejected::BadValue("hid")),
            ("txtvers", b"2", Rejected::TxtVersion),
        ];
        for (key, value, why) in cases {
            let mut txt = good();
            set(&mut txt, key, value);
            assert_eq!(
                parse_with(&txt, 18789),
                Err(why),
                "{key}={:?}",
                String::from_utf8_lossy(value)
            );
        }
        let without = |key: &str| -> Vec<(String, Vec<u8>)> {
            good().into_iter().filter(|(k, _)| k != key).collect()
        };
        assert_eq!(
            parse_with(&without("proto"), 18789),
            Err(Rejected::Missing("proto"))
        );
        assert_eq!(
            parse_with(&without("hid"), 18789),
            Err(Rejected::Missing("hid"))
        );
        assert_eq!(
            parse_with(&without("txtvers"), 18789),
            Err(Rejected::TxtVersion)
        );
        // A key without a value is a wrong type too.
        let pairs = [("txtvers", Some(&b"1"[..])), ("proto", None)];
        assert_eq!(
            parse_advertisement(&full("x"), 1, &["10.0.0.1".parse().unwrap()], &pairs),
            Err(Rejected::BadValue("proto"))
        );
        // Without fp the host id alone is accepted (nothing to check it against).
        assert!(
            parse_with(&without("fp"), 18789)
                .unwrap()
                .fingerprint
                .is_none()
        );
    }

    #[test]
    fn a_host_id_that_is_not_the_fingerprint_prefix_is_a_forgery() {
        let mut txt = good();
        set(&mut txt, "hid", b"ffffffffffffffff");
        assert_eq!(parse_with(&txt, 18789), Err(Rejected::HostIdMismatch));
    }

    #[test]
    fn srv_port_wins_over_txt_port() {
        let h = parse_with(&good(), 9000).unwrap();
        assert_eq!(h.port, 9000);
        assert_eq!(parse_with(&good(), 0), Err(Rejected::NoPort));
    }

    #[test]
    fn keys_are_case_insensitive_first_wins_unknown_ignored() {
        let mut txt = txt_of(&[("TXTVERS", "1"), ("Proto", "3-4"), ("HID", &FP[..16])]);
        txt.push(("hid".into(), b"garbage".to_vec()));
        txt.push(("future-key".into(), b"whatever".to_vec()));
        let h = parse_with(&txt, 1).unwrap();
        assert_eq!(h.host_id, &FP[..16]);
        let mut txt = good();
        set(&mut txt, "fp", FP.to_uppercase().as_bytes());
        set(&mut txt, "hid", FP[..16].to_uppercase().as_bytes());
        let h = parse_with(&txt, 1).unwrap();
        assert_eq!(
            h.fingerprint.as_deref(),
            Some(FP),
            "normalized to lowercase"
        );
    }

    #[test]
    fn version_is_kept_only_when_printable() {
        let mut txt = good();
        txt.push(("ver".into(), b"0.1.0".to_vec()));
        assert_eq!(
            parse_with(&txt, 1).unwrap().version.as_deref(),
            Some("0.1.0")
        );
        let mut txt = good();
        txt.push(("ver".into(), b"1.0\x1b[31m".to_vec()));
        assert_eq!(parse_with(&txt, 1).unwrap().version, None);
    }

    #[test]
    fn names_are_unescaped_and_foreign_services_rejected() {
        let pairs: Vec<(String, Vec<u8>)> = good();
        let p: Vec<(&str, Option<&[u8]>)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
            .collect();
        let ip = ["10.0.0.1".parse().unwrap()];
        let name = |f: &str| parse_advertisement(f, 1, &ip, &p).map(|h| h.name);
        assert_eq!(name(&full("a\\.b\\032c")).unwrap(), "a.b c");
        assert_eq!(name(&full("Mac (2)")).unwrap(), "Mac (2)");
        assert_eq!(name(&full("bell\x07")).unwrap(), "bell");
        assert_eq!(name("Mac._http._tcp.local."), Err(Rejected::NotOurService));
        assert_eq!(name(SERVICE_TYPE), Err(Rejected::NotOurService));
        assert_eq!(name(&full("  ")), Err(Rejected::BadName));
        assert_eq!(name(&full(&"x".repeat(300))), Err(Rejected::BadName));
    }

    #[test]
    fn unusable_addresses_are_dropped() {
        let p = [
            ("txtvers", Some(&b"1"[..])),
            ("proto", Some(&b"3-4"[..])),
            ("hid", Some(&FP.as_bytes()[..16])),
        ];
        let bad: Vec<IpAddr> = vec![
            "0.0.0.0".parse().unwrap(),
            "224.0.0.251".parse().unwrap(),
            "255.255.255.255".parse().unwrap(),
            "::".parse().unwrap(),
        ];
        assert_eq!(
            parse_advertisement(&full("x"), 1, &bad, &p),
            Err(Rejected::NoAddress)
        );
    }

    #[test]
    fn ws_urls_put_ipv4_first_bracket_ipv6_and_skip_link_local() {
        let mut h = host("a", FP, "10.0.0.2");
        h.addresses = vec![
            "2001:db8::5".parse().unwrap(),
            "fe80::1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
        ];
        assert_eq!(
            h.ws_urls(),
            vec!["ws://10.0.0.2:18789", "ws://[2001:db8::5]:18789"]
        );
        h.tls = true;
        assert_eq!(
            h.ws_urls(),
            vec!["wss://10.0.0.2:18789", "wss://[2001:db8::5]:18789"]
        );
    }

    #[test]
    fn only_tls_1_turns_tls_on() {
        assert!(!parse_with(&good(), 18789).unwrap().tls);
        for (value, on) in [("1", true), ("0", false), ("yes", false), ("", false)] {
            let mut txt = good();
            txt.push(("tls".to_string(), value.as_bytes().to_vec()));
            assert_eq!(parse_with(&txt, 18789).unwrap().tls, on, "tls={value}");
        }
    }

    #[test]
    fn duplicates_across_interfaces_merge_by_host() {
        let mut hosts = Vec::new();
        merge(&mut hosts, host("Mac", FP, "10.0.0.2"));
        merge(&mut hosts, host("Mac", FP, "192.168.1.7"));
        merge(&mut hosts, host("Mac", FP, "10.0.0.2"));
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].addresses.len(), 2);
        // Same host id, another fingerprint: kept apart, never merged into the real one.
        let mut impostor = host("Mac", FP, "10.0.0.66");
        impostor.fingerprint = Some(format!("{}{}", &FP[..16], "f".repeat(48)));
        merge(&mut hosts, impostor);
        assert_eq!(hosts.len(), 2);
    }

    #[test]
    fn serde_is_camel_case() {
        let v = serde_json::to_value(host("Mac", FP, "10.0.0.2")).unwrap();
        for key in [
            "name",
            "hostId",
            "fingerprint",
            "addresses",
            "port",
            "protoMin",
            "protoMax",
            "version",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn choose_without_constraints() {
        let a = host("A", FP, "10.0.0.2");
        let fp_b = "b".repeat(64);
        let b = host("B", &fp_b, "10.0.0.3");
        assert_eq!(choose(&[], None, None), Choice::None);
        assert_eq!(
            choose(std::slice::from_ref(&a), None, None),
            Choice::One(a.clone())
        );
        assert!(
            matches!(choose(&[a.clone(), b.clone()], None, None), Choice::Several(v) if v.len() == 2)
        );
        assert_eq!(
            choose(&[a.clone(), b.clone()], Some(&fp_b[..16]), None),
            Choice::One(b.clone())
        );
        assert_eq!(
            choose(&[a, b], Some("cccccccccccccccc"), None),
            Choice::None
        );
    }

    #[test]
    fn choose_with_a_pin_ignores_spoofed_host_ids() {
        let real = host("Mac", FP, "10.0.0.2");
        let mut spoof = host("Mac", FP, "10.0.0.66");
        spoof.fingerprint = Some(format!("{}{}", &FP[..16], "f".repeat(48)));
        let no_fp = DiscoveredHost {
            fingerprint: None,
            ..host("Mac", FP, "10.0.0.77")
        };
        let all = [spoof.clone(), no_fp.clone(), real.clone()];
        // Pinned: only the exact fingerprint, whatever the host ids say.
        assert_eq!(choose(&all, None, Some(FP)), Choice::One(real.clone()));
        assert_eq!(
            choose(&all, Some(&FP[..16]), Some(&FP.to_uppercase())),
            Choice::One(real.clone())
        );
        assert_eq!(
            choose(&[spoof.clone(), no_fp.clone()], None, Some(FP)),
            Choice::None
        );
        // Unpinned, a duplicated host id is ambiguous: the user decides, not the network.
        assert!(matches!(choose(&all, Some(&FP[..16]), None), Choice::Several(v) if v.len() == 3));
    }

    /// Random bytes in every position never panic the parser.
    #[test]
    fn random_input_never_panics() {
        let mut rng = rand::rng();
        let keys = ["txtvers", "proto", "port", "hid", "fp", "ver", "name", "x"];
        for _ in 0..5000 {
            let n = rng.random_range(0..10);
            let mut owned: Vec<(String, Option<Vec<u8>>)> = Vec::new();
            for _ in 0..n {
                let key = if rng.random_bool(0.7) {
                    keys[rng.random_range(0..keys.len())].to_string()
                } else {
                    let len = rng.random_range(0..300);
                    (0..len).map(|_| rng.random::<char>()).collect()
                };
                let value = if rng.random_bool(0.1) {
                    None
                } else {
                    let len = rng.random_range(0..300);
                    let mut v: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    if rng.random_bool(0.3) {
                        v = match rng.random_range(0..4) {
                            0 => b"1".to_vec(),
                            1 => format!("{}-{}", rng.random::<u32>(), rng.random::<u32>())
                                .into_bytes(),
                            2 => FP.as_bytes()[..rng.random_range(0..=64)].to_vec(),
                            _ => rng.random::<u16>().to_string().into_bytes(),
                        };
                    }
                    Some(v)
                };
                owned.push((key, value));
            }
            let pairs: Vec<(&str, Option<&[u8]>)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            let name_len = rng.random_range(0..80);
            let raw: Vec<u8> = (0..name_len)
                .map(|_| match rng.random_range(0..4) {
                    0 => b'\\',
                    1 => b'0' + rng.random_range(0..10),
                    _ => rng.random(),
                })
                .collect();
            let fullname = format!("{}.{SERVICE_TYPE}", String::from_utf8_lossy(&raw));
            let addrs: Vec<IpAddr> = (0..rng.random_range(0..4))
                .map(|_| {
                    if rng.random_bool(0.5) {
                        IpAddr::from(rng.random::<[u8; 4]>())
                    } else {
                        IpAddr::from(rng.random::<[u8; 16]>())
                    }
                })
                .collect();
            if let Ok(h) = parse_advertisement(&fullname, rng.random(), &addrs, &pairs) {
                let _ = h.ws_urls();
            }
            let _ = parse_advertisement(&String::from_utf8_lossy(&raw), 1, &addrs, &pairs);
        }
    }
}
