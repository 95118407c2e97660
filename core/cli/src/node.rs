//! `perch node ...`: this machine as a node of a Perch host, with the desktop capabilities;
//! finding the host (address, setup code, or mDNS), and the host keys it trusts.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use tokio::sync::Notify;

use perch_node::desktop::desktop_capabilities;
use perch_node::desktop::location::ConfiguredLocation;
use perch_node::discovery::{self, Choice, DiscoveredHost};
use perch_node::setup::{PROBE_TIMEOUT, SetupTarget, first_answering};
use perch_node::{BootstrapToken, ExpectedHost, HostPins, Node, NodeConfig, NodeState, TokenStore};

use crate::output::{ago, print_json, say, short, table};

/// Flags of `perch node run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Host gateway URL, for example ws://192.168.1.10:18789. Without it (and without
    /// --setup-code) the node finds the host on the local network.
    #[arg(long, env = "PERCH_GATEWAY")]
    gateway: Option<String>,
    /// A setup code from `perch devices setup-code`: finds the host, checks its key, and pairs
    /// without a manual approval.
    #[arg(long, value_name = "CODE")]
    setup_code: Option<String>,
    /// Which discovered host to use when several answer.
    #[arg(long, value_name = "HOST_ID")]
    host_id: Option<String>,
    /// Name shown in pairing prompts and node lists (default: this machine's host name).
    #[arg(long)]
    name: Option<String>,
    /// Where the node keeps its identity, device tokens and pinned host keys.
    #[arg(long, env = "PERCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Fixed location for location.get on a machine without GPS: LAT,LON[,ACCURACY_M].
    #[arg(long, value_name = "LAT,LON[,ACCURACY_M]")]
    location: Option<String>,
    /// How long each discovery round listens, in milliseconds.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    discover_timeout: u64,
}

/// Flags of `perch node hosts`.
#[derive(Args, Debug)]
pub struct HostsArgs {
    /// Where the node keeps its data.
    #[arg(long, env = "PERCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `perch node forget-host`.
#[derive(Args, Debug)]
pub struct ForgetHostArgs {
    /// The host id shown by `perch node hosts`.
    host_id: String,
    /// Where the node keeps its data.
    #[arg(long, env = "PERCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// How long a node with a setup code looks for its host over mDNS before using the code's
/// addresses.
const SETUP_CODE_DISCOVERY_MS: u64 = 2000;

/// Where to connect, and what the node insists on finding there.
struct Target {
    url: String,
    expected: Option<ExpectedHost>,
    bootstrap: Option<BootstrapToken>,
    /// The host is known by its key (mDNS or a setup code): watch mDNS for it to come back.
    discovered: bool,
}

/// Runs the node until Ctrl-C / SIGTERM, or until the host refuses it for good.
pub async fn run(args: RunArgs) -> Result<()> {
    let location = args
        .location
        .as_deref()
        .map(ConfiguredLocation::parse)
        .transpose()
        .context("--location")?;
    let data_dir = crate::paths::data_dir(args.data_dir.clone())?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => gethostname::gethostname().to_string_lossy().to_string(),
    };
    let target = find_target(&args, &data_dir).await?;
    let mut config = NodeConfig::new(target.url.clone(), name, data_dir);
    config.expected_host = target.expected.clone();
    config.bootstrap_token = target.bootstrap;
    let node = Node::new(config, desktop_capabilities(location))?;
    say!(
        "Perch node {} ({}) connecting to {}",
        node.device_id().short(),
        node.device_id(),
        node.gateway_url()
    );
    let waker = node.waker();
    let mut background = vec![tokio::spawn(watch_network(waker.clone()))];
    if target.discovered
        && let Some(expected) = target.expected
    {
        background.push(tokio::spawn(watch_host(expected.host_id, waker)));
    }
    let mut states = node.subscribe();
    background.push(tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            match state {
                NodeState::AwaitingApproval {
                    request_id,
                    verification_code,
                } => {
                    say!(
                        "Waiting for approval. On the host run: perch devices approve {request_id}"
                    );
                    match verification_code {
                        Some(code) => say!(
                            "Check that the host shows the same verification code {code} beside request {request_id} before you approve it."
                        ),
                        None => say!(
                            "No verification code to compare: the host proved no key, or it keeps the code of an earlier connection (reject request {request_id} on the host and pair again to get one)."
                        ),
                    }
                }
                NodeState::Connected { host_name, .. } => say!("Connected to {host_name}"),
                NodeState::Backoff {
                    retry_in_ms,
                    last_error,
                } => say!("Disconnected ({last_error}); retrying in {retry_in_ms} ms"),
                NodeState::WrongHost {
                    message,
                    retry_in_ms,
                    ..
                } => say!("Refused the host: {message}. Nothing was sent to it; trying again in {retry_in_ms} ms"),
                _ => {}
            }
        }
    }));
    let result = node.run(shutdown_signal()).await;
    for task in background {
        task.abort();
    }
    result.map_err(Into::into)
}

async fn find_target(args: &RunArgs, data_dir: &std::path::Path) -> Result<Target> {
    if let Some(code) = &args.setup_code {
        let target = SetupTarget::decode(code).context("--setup-code")?;
        let host_id = target.expected.host_id.clone();
        // The host may have moved since the code was made: ask the network first (briefly),
        // then fall back to the addresses in the code. The key is checked either way.
        let wait = Duration::from_millis(args.discover_timeout.min(SETUP_CODE_DISCOVERY_MS));
        let found = discovery::browse(wait, None).await.ok().and_then(|hosts| {
            match discovery::choose(&hosts, Some(&host_id), Some(&target.expected.fingerprint)) {
                Choice::One(h) => Some(h),
                _ => None,
            }
        });
        let urls = match found {
            Some(h) => {
                say!(
                    "Found Perch host {:?} ({host_id}) over mDNS at {}",
                    h.name,
                    h.ws_urls().join(", ")
                );
                h.ws_urls()
            }
            None => target.urls.clone(),
        };
        let url = first_reachable(&urls).await;
        return Ok(Target {
            url,
            expected: Some(target.expected),
            bootstrap: Some(target.bootstrap),
            discovered: true,
        });
    }
    if let Some(url) = &args.gateway {
        return Ok(Target {
            url: url.clone(),
            expected: None,
            bootstrap: None,
            discovered: false,
        });
    }
    let host = discover_host(args, data_dir).await?;
    let url = first_reachable(&host.ws_urls()).await;
    Ok(Target {
        url,
        expected: host.fingerprint.map(|fingerprint| ExpectedHost {
            host_id: host.host_id,
            fingerprint,
        }),
        bootstrap: None,
        discovered: true,
    })
}

/// Browses until exactly one eligible host answers. A node that trusts one host looks only for
/// that host (and its pinned key: an advertisement never overrides a pin).
async fn discover_host(args: &RunArgs, data_dir: &std::path::Path) -> Result<DiscoveredHost> {
    let pins = HostPins::new(data_dir);
    let pinned = pins.all()?;
    let (want, pin) = match (&args.host_id, pinned.as_slice()) {
        (Some(id), _) => (Some(id.clone()), pins.get(id)?.map(|p| p.fingerprint)),
        (None, [(id, p)]) => (Some(id.clone()), Some(p.fingerprint.clone())),
        _ => (None, None),
    };
    let mut said = false;
    loop {
        let mut hosts = discovery::browse(Duration::from_millis(args.discover_timeout), None)
            .await
            .map_err(|e| anyhow!("{e}; pass --gateway URL or --setup-code CODE instead"))?;
        // Only hosts that speak our protocol; and a node that trusts hosts already looks only
        // for those (a new host needs --host-id or a setup code, never a lone advertisement).
        hosts.retain(|h| h.speaks(perch_protocol::PROTOCOL_VERSION));
        if want.is_none() && !pinned.is_empty() {
            hosts.retain(|h| {
                pinned.iter().any(|(id, p)| {
                    *id == h.host_id && h.fingerprint.as_deref() == Some(p.fingerprint.as_str())
                })
            });
        }
        match discovery::choose(&hosts, want.as_deref(), pin.as_deref()) {
            Choice::One(h) => {
                say!(
                    "Found Perch host {:?} ({}) at {}",
                    h.name,
                    h.host_id,
                    h.ws_urls().join(", ")
                );
                return Ok(h);
            }
            Choice::Several(list) => {
                say!("Several Perch hosts answered:");
                for h in &list {
                    say!("  {}  {:?}  {}", h.host_id, h.name, h.ws_urls().join(", "));
                }
                bail!("several Perch hosts found; choose one with --host-id HOST_ID");
            }
            Choice::None => {
                if !said {
                    match &want {
                        Some(id) => {
                            say!("Host {id} is not on the local network yet; still looking...")
                        }
                        None => say!(
                            "No Perch host found on the local network yet; still looking \
                             (or pass --gateway URL or --setup-code CODE)..."
                        ),
                    }
                    said = true;
                }
            }
        }
    }
}

/// The first URL whose host answers TCP, trying them in order until one does.
async fn first_reachable(urls: &[String]) -> String {
    let mut said = false;
    loop {
        if let Some(url) = first_answering(urls, PROBE_TIMEOUT).await {
            return url;
        }
        match urls.first() {
            Some(first) if urls.len() == 1 => return first.clone(),
            None => return String::new(),
            Some(_) => {}
        }
        if !said {
            say!("None of {} answers yet; still trying...", urls.join(", "));
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Wakes the node when the machine's network addresses change (Wi-Fi back, cable in), so it
/// reconnects at once instead of at the end of its backoff.
async fn watch_network(waker: Arc<Notify>) {
    let snapshot = || -> BTreeSet<(String, IpAddr)> {
        if_addrs::get_if_addrs()
            .map(|list| list.into_iter().map(|i| (i.name.clone(), i.ip())).collect())
            .unwrap_or_default()
    };
    let mut last = snapshot();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = snapshot();
        if now != last {
            tracing::info!("network addresses changed");
            if !now.is_empty() {
                waker.notify_one();
            }
            last = now;
        }
    }
}

/// Wakes the node when its host announces itself again (it restarted, or came back in range).
async fn watch_host(host_id: String, waker: Arc<Notify>) {
    let mut browser = match discovery::Browser::start(None) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "cannot watch for the host over mDNS");
            return;
        }
    };
    while let Some(event) = browser.next().await {
        if let discovery::BrowseEvent::Found(h) = event
            && h.host_id == host_id
        {
            tracing::debug!(host_id, "host announced itself");
            waker.notify_one();
        }
    }
}

/// `perch node hosts`.
pub fn hosts(args: HostsArgs) -> Result<()> {
    let dir = crate::paths::data_dir(args.data_dir)?;
    let pinned = HostPins::new(&dir).all()?;
    if args.json {
        let v: Vec<serde_json::Value> = pinned
            .iter()
            .map(|(id, p)| serde_json::json!({"hostId": id, "fingerprint": p.fingerprint, "lastUrl": p.last_url, "pinnedAtMs": p.pinned_at_ms}))
            .collect();
        return print_json(&v);
    }
    let mut t = table(&["HOST ID", "FINGERPRINT", "LAST URL", "PINNED"]);
    for (id, p) in &pinned {
        t.add_row(vec![
            id.clone(),
            short(&p.fingerprint).to_string(),
            p.last_url.clone(),
            ago(Some(p.pinned_at_ms)),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `perch node forget-host HOST_ID`.
pub fn forget_host(args: ForgetHostArgs) -> Result<()> {
    let dir = crate::paths::data_dir(args.data_dir)?;
    let removed = HostPins::new(&dir).forget(&args.host_id)?;
    if !removed {
        bail!("no pinned host {:?} (see `perch node hosts`)", args.host_id);
    }
    let _ = TokenStore::new(&dir).remove(&format!("host:{}", args.host_id));
    println!(
        "Forgot host {}; the next connection pairs anew.",
        args.host_id
    );
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
