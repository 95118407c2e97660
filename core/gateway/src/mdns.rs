//! The host's mDNS/Bonjour advertisement: `_perch-gw._tcp` with TXT hints (protocol range,
//! port, host id, key fingerprint) so nodes on the LAN find the host without typing an address.
//!
//! Advertising is best effort. Nothing here can stop or slow the gateway: a daemon that cannot
//! start or register logs one warning and the host keeps serving (nodes still connect by address
//! or setup code). A name conflict (RFC 6762 §9) is resolved by mdns-sd while probing, by renaming
//! the instance to `name (2)`; we log each distinct rename once and stop advertising after
//! [`MAX_RENAMES`] of them, so a misbehaving network can never drive a rename loop.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceInfo, UnregisterStatus};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::MdnsMode;
use crate::hub::{Hub, lock};

/// The DNS-SD service type the host advertises and nodes browse for.
pub const SERVICE_TYPE: &str = "_perch-gw._tcp.local.";
/// Value of the `txtvers` key; bumped only for changes old nodes cannot read (RFC 6763 §6.7).
pub const TXT_VERSION: &str = "1";
/// Every TXT key `minimal` mode may publish; a test holds the advertiser to this list. `tls=1`
/// is present only when the host serves TLS.
pub const MINIMAL_TXT_KEYS: [&str; 6] = ["txtvers", "proto", "port", "hid", "fp", "tls"];
/// Every TXT key `full` mode may publish: minimal plus display name and software version.
pub const FULL_TXT_KEYS: [&str; 8] = [
    "txtvers", "proto", "port", "hid", "fp", "tls", "name", "ver",
];
/// Distinct conflict renames tolerated before the advertisement is withdrawn for good: up to
/// six same-named hosts coexist (`name` to `name (6)`); a rename loop stops here.
pub const MAX_RENAMES: usize = 5;
/// Longest instance name we publish, in bytes: a DNS label holds 63, and a conflict rename
/// appends up to five more (` (10)`).
const MAX_INSTANCE_BYTES: usize = 57;
/// How long shutdown waits for the daemon to confirm the goodbye packets went out.
const GOODBYE_WAIT: Duration = Duration::from_millis(1000);
/// mdns-sd repeats a goodbye 120 ms after the first; waiting this long lets it go out too.
const GOODBYE_REPEAT: Duration = Duration::from_millis(150);
/// How long shutdown waits for the daemon thread to exit.
const DAEMON_EXIT_WAIT: Duration = Duration::from_millis(500);
/// Upper bound on [`MdnsHandle::stopped`], whatever the daemon does.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// What the host says about itself on the LAN: the hub's public facts, never its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// The host's display name; becomes the DNS-SD instance name.
    pub name: String,
    /// The address the gateway actually bound; decides the port and which interfaces announce.
    pub bind: SocketAddr,
    /// The host id (first 16 hex characters of the fingerprint).
    pub host_id: String,
    /// Hex SHA-256 of the host's public key: what nodes pin and verify at connect.
    pub fingerprint: String,
    /// The software version, published only in `full` mode.
    pub version: String,
    /// The host serves TLS (`tls=1`): nodes dial `wss://`.
    pub tls: bool,
}

impl Advertisement {
    /// The advertisement for a running hub (its config's bind is the address actually bound).
    pub fn from_hub(hub: &Hub) -> Self {
        Self {
            name: hub.config.name.clone(),
            bind: hub.config.bind,
            host_id: hub.host_id.clone(),
            fingerprint: hub.fingerprint.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            tls: hub.config.transport.tls,
        }
    }

    /// The TXT key/value pairs for `mode`, `txtvers` first; empty when mDNS is off.
    pub fn txt_records(&self, mode: MdnsMode) -> Vec<(String, String)> {
        let mut txt = match mode {
            MdnsMode::Off => return Vec::new(),
            MdnsMode::Minimal | MdnsMode::Full => vec![
                ("txtvers".to_string(), TXT_VERSION.to_string()),
                (
                    "proto".to_string(),
                    format!(
                        "{}-{}",
                        perch_protocol::MIN_NODE_PROTOCOL,
                        perch_protocol::PROTOCOL_VERSION
                    ),
                ),
                ("port".to_string(), self.bind.port().to_string()),
                ("hid".to_string(), self.host_id.clone()),
                ("fp".to_string(), self.fingerprint.clone()),
            ],
        };
        if self.tls {
            txt.push(("tls".to_string(), "1".to_string()));
        }
        if mode == MdnsMode::Full {
            txt.push(("name".to_string(), self.name.clone()));
            txt.push(("ver".to_string(), self.version.clone()));
        }
        txt
    }

    /// The DNS-SD instance name: the display name without control characters, cut to fit a
    /// DNS label with room for a conflict suffix.
    pub fn instance_name(&self) -> String {
        let clean: String = self
            .name
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let clean = clean.trim();
        let mut out = String::new();
        for c in clean.chars() {
            if out.len() + c.len_utf8() > MAX_INSTANCE_BYTES {
                break;
            }
            out.push(c);
        }
        let out = out.trim_end().to_string();
        if out.is_empty() {
            "Perch".to_string()
        } else {
            out
        }
    }

    /// The mDNS host name for the address records: derived from the host id, so two hosts on
    /// one machine (or two machines with the same hostname) never claim the same name.
    pub fn mdns_hostname(&self) -> String {
        let hid: String = self
            .host_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        format!("perch-{hid}.local.")
    }
}

/// Which interfaces announce, and with which addresses, for a bound address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Bound to loopback: only this machine can connect, so announce on loopback only.
    Loopback(IpAddr),
    /// Bound to one address: announce it, on its interface only.
    Specific(IpAddr),
    /// Bound to 0.0.0.0: every IPv4 interface with its own addresses (an IPv4 socket cannot
    /// accept IPv6 connections, so no AAAA records).
    AnyV4,
    /// Bound to [::]: every interface, both families (Linux sockets are dual-stack by default).
    AnyV6,
}

impl Reach {
    fn of(bind: SocketAddr) -> Self {
        let ip = bind.ip();
        if ip.is_loopback() {
            Reach::Loopback(ip)
        } else if ip.is_unspecified() {
            if ip.is_ipv4() {
                Reach::AnyV4
            } else {
                Reach::AnyV6
            }
        } else {
            Reach::Specific(ip)
        }
    }
}

/// The running advertisement; dropping it leaves the advertisement up until the hub shuts down.
#[derive(Debug)]
pub struct MdnsHandle {
    advertised: Arc<Mutex<String>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl MdnsHandle {
    /// The instance name now advertised (after a conflict rename, the new one).
    pub fn instance_name(&self) -> String {
        lock(&self.advertised).clone()
    }

    /// Withdraws the advertisement (goodbye packets) and waits, bounded, for it to go out.
    pub async fn stop(self) {
        self.stop.cancel();
        self.stopped().await;
    }

    /// Waits, bounded, for the goodbye after the hub's shutdown token fired.
    pub async fn stopped(self) {
        if tokio::time::timeout(STOP_WAIT, self.task).await.is_err() {
            tracing::debug!("mDNS advertiser did not stop in time");
        }
    }
}

/// Starts advertising; on any failure logs one warning and returns None (the gateway serves on).
/// Call from within a tokio runtime. Withdraws the advertisement when `shutdown` fires.
pub fn start(ad: Advertisement, mode: MdnsMode, shutdown: CancellationToken) -> Option<MdnsHandle> {
    if mode == MdnsMode::Off {
        tracing::info!("mDNS advertisement off; nodes connect by address or setup code");
        return None;
    }
    // An mDNS daemon joins the multicast group on every interface as it starts, so a host that
    // only this machine can reach starts none: nothing to tell the network, nothing sent.
    if ad.bind.ip().is_loopback() {
        tracing::info!(
            bind = %ad.bind,
            "mDNS advertisement skipped: the host listens on loopback only (use --bind 0.0.0.0:PORT to be found)"
        );
        return None;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("mDNS advertisement not started: no async runtime");
        return None;
    };
    let reach = Reach::of(ad.bind);
    let instance = ad.instance_name();
    let daemon = match ServiceDaemon::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "mDNS advertisement not started; nodes can still connect by address or setup code");
            return None;
        }
    };
    match register(&daemon, &ad, mode, reach, &instance) {
        Ok((fullname, monitor)) => {
            tracing::info!(
                instance = %instance,
                service = SERVICE_TYPE,
                port = ad.bind.port(),
                scope = ?reach,
                "advertising on mDNS"
            );
            let advertised = Arc::new(Mutex::new(instance.clone()));
            let stop = shutdown.child_token();
            let task = runtime.spawn(watch(
                daemon,
                fullname,
                monitor,
                stop.clone(),
                advertised.clone(),
            ));
            Some(MdnsHandle {
                advertised,
                stop,
                task,
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "mDNS advertisement not started; nodes can still connect by address or setup code");
            let _ = daemon.shutdown();
            None
        }
    }
}

/// Chooses interfaces, builds the service and registers it; returns its full name and the
/// daemon's event channel.
fn register(
    daemon: &ServiceDaemon,
    ad: &Advertisement,
    mode: MdnsMode,
    reach: Reach,
    instance: &str,
) -> Result<(String, mdns_sd::Receiver<DaemonEvent>), mdns_sd::Error> {
    // The monitor first, so no event from probing is missed.
    let monitor = daemon.monitor()?;
    // Commands run in order on the daemon thread: interfaces are chosen before anything is sent.
    let mut addresses: Vec<IpAddr> = Vec::new();
    match reach {
        Reach::Loopback(ip) => {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(if ip.is_ipv4() {
                IfKind::LoopbackV4
            } else {
                IfKind::LoopbackV6
            })?;
            addresses.push(ip);
        }
        Reach::Specific(ip) => {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::Addr(ip))?;
            addresses.push(ip);
        }
        Reach::AnyV4 => daemon.disable_interface(IfKind::IPv6)?,
        Reach::AnyV6 => {}
    }
    let txt = ad.txt_records(mode);
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        instance,
        &ad.mdns_hostname(),
        &addresses[..],
        ad.bind.port(),
        &txt[..],
    )?;
    let info = if addresses.is_empty() {
        info.enable_addr_auto()
    } else {
        info
    };
    let fullname = info.get_fullname().to_string();
    daemon.register(info)?;
    Ok((fullname, monitor))
}

/// What to do about one daemon event.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing to say.
    Quiet,
    /// A new rename: log it once.
    Renamed { from: String, to: String },
    /// Too many renames: withdraw.
    GiveUp,
}

/// Tracks conflict renames so each distinct one is logged once and a loop is cut short.
#[derive(Debug, Default)]
struct Renames {
    seen: BTreeSet<String>,
}

impl Renames {
    /// mdns-sd reports a rename per record and per interface; only a new name counts.
    fn on_change(&mut self, original: &str, new_name: &str) -> Verdict {
        if !self.seen.insert(new_name.to_string()) {
            return Verdict::Quiet;
        }
        if self.seen.len() > MAX_RENAMES {
            Verdict::GiveUp
        } else {
            Verdict::Renamed {
                from: original.to_string(),
                to: new_name.to_string(),
            }
        }
    }
}

/// The instance label of a service full name, unescaped for logs (`a\.b._perch-gw._tcp.local.`
/// gives `a.b`); host names (A/AAAA renames) come back unchanged.
fn instance_of(fullname: &str) -> String {
    let Some(raw) = fullname.strip_suffix(&format!(".{SERVICE_TYPE}")) else {
        return fullname.to_string();
    };
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Follows daemon events until shutdown, then says goodbye and stops the daemon.
async fn watch(
    daemon: ServiceDaemon,
    fullname: String,
    monitor: mdns_sd::Receiver<DaemonEvent>,
    stop: CancellationToken,
    advertised: Arc<Mutex<String>>,
) {
    let mut renames = Renames::default();
    let mut errors = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            event = monitor.recv_async() => match event {
                Ok(DaemonEvent::NameChange(change)) => {
                    match renames.on_change(&change.original, &change.new_name) {
                        Verdict::Quiet => {}
                        Verdict::Renamed { from, to } => {
                            let (from, to) = (instance_of(&from), instance_of(&to));
                            tracing::warn!(
                                interface = %change.intf_name,
                                "mDNS name conflict: another host advertises {from:?}; advertising as {to:?}"
                            );
                            if change.new_name.ends_with(SERVICE_TYPE) {
                                *lock(&advertised) = to;
                            }
                        }
                        Verdict::GiveUp => {
                            tracing::warn!(
                                renames = MAX_RENAMES,
                                "mDNS name conflicts keep coming; withdrawing the advertisement (nodes can still connect by address or setup code)"
                            );
                            break;
                        }
                    }
                }
                Ok(DaemonEvent::Error(e)) => {
                    errors += 1;
                    if errors == 1 {
                        tracing::warn!(error = %e, "mDNS daemon error (further ones logged at debug)");
                    } else {
                        tracing::debug!(error = %e, "mDNS daemon error");
                    }
                }
                Ok(other) => tracing::trace!(event = ?other, "mDNS daemon event"),
                Err(_) => {
                    tracing::debug!("mDNS daemon stopped");
                    return;
                }
            }
        }
    }
    goodbye(&daemon, &fullname).await;
}

/// Unregisters (goodbye packets, TTL 0) and stops the daemon, each step bounded.
async fn goodbye(daemon: &ServiceDaemon, fullname: &str) {
    match daemon.unregister(fullname) {
        Ok(rx) => match tokio::time::timeout(GOODBYE_WAIT, rx.recv_async()).await {
            Ok(Ok(UnregisterStatus::OK)) => {
                tracing::debug!("mDNS goodbye sent");
                tokio::time::sleep(GOODBYE_REPEAT).await;
            }
            Ok(Ok(status)) => tracing::debug!(?status, "mDNS unregister"),
            Ok(Err(_)) => tracing::debug!("mDNS daemon gone before goodbye"),
            Err(_) => tracing::debug!("mDNS goodbye not confirmed in time"),
        },
        Err(e) => tracing::debug!(error = %e, "mDNS unregister failed"),
    }
    match daemon.shutdown() {
        Ok(rx) => {
            let _ = tokio::time::timeout(DAEMON_EXIT_WAIT, rx.recv_async()).await;
        }
        Err(e) => tracing::debug!(error = %e, "mDNS daemon shutdown failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad() -> Advertisement {
        let fp = "ab".repeat(32);
        Advertisement {
            name: "Kitchen Mac".into(),
            bind: "0.0.0.0:18789".parse().unwrap(),
            host_id: perch_protocol::identity::host_id_for(&fp),
            fingerprint: fp,
            version: "0.1.0".into(),
            tls: true,
        }
    }

    fn keys(txt: &[(String, String)]) -> Vec<&str> {
        txt.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn off_publishes_nothing() {
        assert!(ad().txt_records(MdnsMode::Off).is_empty());
    }

    #[test]
    fn minimal_has_exactly_the_documented_keys_and_values() {
        let a = ad();
        let txt = a.txt_records(MdnsMode::Minimal);
        assert_eq!(keys(&txt), MINIMAL_TXT_KEYS);
        let get = |k: &str| txt.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("txtvers"), "1");
        assert_eq!(get("proto"), "3-4");
        assert_eq!(get("port"), "18789");
        assert_eq!(get("hid"), a.host_id);
        assert_eq!(get("fp"), a.fingerprint);
        assert_eq!(get("tls"), "1");
        let plain = Advertisement { tls: false, ..a };
        assert!(
            !keys(&plain.txt_records(MdnsMode::Minimal)).contains(&"tls"),
            "a host without TLS says nothing about it"
        );
    }

    #[test]
    fn full_adds_name_and_version() {
        let txt = ad().txt_records(MdnsMode::Full);
        assert_eq!(keys(&txt), FULL_TXT_KEYS);
        assert!(txt.contains(&("name".into(), "Kitchen Mac".into())));
        assert!(txt.contains(&("ver".into(), "0.1.0".into())));
    }

    #[test]
    fn every_txt_string_fits_one_length_byte() {
        let mut a = ad();
        a.name = "é".repeat(31); // 62 bytes, the longest name config allows is 63
        for mode in [MdnsMode::Minimal, MdnsMode::Full] {
            for (k, v) in a.txt_records(mode) {
                assert!(k.len() + 1 + v.len() <= 255, "{k}");
            }
        }
    }

    /// Builds a real hub with known secrets and proves none of them reaches the TXT record,
    /// and that no key outside the allowlist is ever published.
    #[tokio::test]
    async fn txt_never_carries_secrets_or_paths() {
        let operator_token = crate::secrets::new_token().unwrap();
        let device_token = crate::secrets::new_token().unwrap();
        let user = "alice-the-user";
        let data_dir = std::path::PathBuf::from(format!("/home/{user}/.local/share/perch"));
        let mut config = crate::GatewayConfig::defaults(data_dir.clone());
        config.bind = "0.0.0.0:18789".parse().unwrap();
        config.name = "Living room".into();
        let store = perch_store::Store::open_in_memory().await.unwrap();
        let host_key = perch_protocol::DeviceIdentity::generate().unwrap();
        let hub = Hub::new(
            config,
            store,
            operator_token.clone(),
            host_key,
            Arc::new(crate::services::GatewayOnly),
        );
        let ad = Advertisement::from_hub(&hub);
        assert_eq!(ad.fingerprint, hub.fingerprint);
        let secrets = [
            operator_token.as_str(),
            device_token.as_str(),
            user,
            data_dir.to_str().unwrap(),
        ];
        for mode in [MdnsMode::Minimal, MdnsMode::Full] {
            let txt = ad.txt_records(mode);
            for (k, v) in &txt {
                assert!(FULL_TXT_KEYS.contains(&k.as_str()), "key {k} not allowed");
                if mode == MdnsMode::Minimal {
                    assert!(
                        MINIMAL_TXT_KEYS.contains(&k.as_str()),
                        "key {k} not minimal"
                    );
                }
                for s in secrets {
                    assert_ne!(v, s, "{k}");
                    assert!(!v.contains(s), "{k} carries a secret");
                }
                assert!(!v.contains('/'), "{k} looks like a path");
            }
        }
        hub.store.close().await;
    }

    #[test]
    fn reach_follows_the_bind_address() {
        let r = |s: &str| Reach::of(s.parse().unwrap());
        assert_eq!(r("0.0.0.0:1"), Reach::AnyV4);
        assert_eq!(r("[::]:1"), Reach::AnyV6);
        assert_eq!(
            r("127.0.0.1:1"),
            Reach::Loopback("127.0.0.1".parse().unwrap())
        );
        assert_eq!(r("[::1]:1"), Reach::Loopback("::1".parse().unwrap()));
        assert_eq!(
            r("10.1.2.3:1"),
            Reach::Specific("10.1.2.3".parse().unwrap())
        );
    }

    #[test]
    fn instance_names_fit_a_dns_label_with_a_suffix() {
        let mut a = ad();
        a.name = "x".repeat(63);
        assert_eq!(a.instance_name().len(), MAX_INSTANCE_BYTES);
        a.name = "ü".repeat(40); // 80 bytes: cut on a character boundary
        let n = a.instance_name();
        assert!(n.len() <= MAX_INSTANCE_BYTES && n.chars().all(|c| c == 'ü'));
        a.name = "tab\there\n".into();
        assert_eq!(a.instance_name(), "tab here");
        a.name = "\n\t".into();
        assert_eq!(a.instance_name(), "Perch");
        assert_eq!(a.mdns_hostname(), format!("perch-{}.local.", a.host_id));
    }

    #[test]
    fn renames_are_logged_once_each_and_capped() {
        let mut r = Renames::default();
        let t = |n: &str| format!("{n}.{SERVICE_TYPE}");
        assert!(matches!(
            r.on_change(&t("Mac"), &t("Mac (2)")),
            Verdict::Renamed { .. }
        ));
        // The same rename on another interface or for the TXT record: quiet.
        assert_eq!(r.on_change(&t("Mac"), &t("Mac (2)")), Verdict::Quiet);
        for n in 3..=MAX_RENAMES + 1 {
            assert!(matches!(
                r.on_change(&t("Mac"), &t(&format!("Mac ({n})"))),
                Verdict::Renamed { .. }
            ));
        }
        let next = format!("Mac ({})", MAX_RENAMES + 2);
        assert_eq!(r.on_change(&t("Mac"), &t(&next)), Verdict::GiveUp);
    }

    #[test]
    fn instance_labels_are_unescaped_for_logs() {
        assert_eq!(instance_of(&format!("a\\.b (2).{SERVICE_TYPE}")), "a.b (2)");
        assert_eq!(instance_of("perch-x-2.local."), "perch-x-2.local.");
    }

    /// The contract with the node side: what we publish parses into what a node needs.
    #[test]
    fn node_parser_reads_what_we_publish() {
        assert_eq!(SERVICE_TYPE, perch_node::discovery::SERVICE_TYPE);
        let a = ad();
        for mode in [MdnsMode::Minimal, MdnsMode::Full] {
            let txt = a.txt_records(mode);
            let pairs: Vec<(&str, Option<&[u8]>)> = txt
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_bytes())))
                .collect();
            let host = perch_node::discovery::parse_advertisement(
                &format!("Kitchen Mac.{SERVICE_TYPE}"),
                18789,
                &["10.0.0.2".parse().unwrap()],
                &pairs,
            )
            .unwrap();
            assert_eq!(host.host_id, a.host_id);
            assert_eq!(host.fingerprint.as_deref(), Some(a.fingerprint.as_str()));
            assert_eq!((host.proto_min, host.proto_max), (3, 4));
            assert_eq!(host.port, 18789);
            assert_eq!(
                host.version.is_some(),
                mode == MdnsMode::Full,
                "version only in full mode"
            );
        }
    }
}
