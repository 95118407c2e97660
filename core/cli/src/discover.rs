//! `perch discover`: list the Perch hosts advertising on the LAN over mDNS/Bonjour.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use perch_node::discovery::{self, DiscoveredHost};

use crate::output;

/// Options of `perch discover`.
#[derive(clap::Args, Debug)]
pub struct DiscoverArgs {
    /// How long to listen for answers, in milliseconds (answers can take about a second).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub timeout: u64,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Browse on this network interface only (for example en0 or eth0).
    #[arg(long)]
    pub interface: Option<String>,
    /// Stop at the first host that answers (for scripts waiting for a host to come up).
    #[arg(long)]
    pub first: bool,
}

/// One host as printed by `--json`: the discovery fields plus the URLs to try.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    #[serde(flatten)]
    host: &'a DiscoveredHost,
    ws_urls: Vec<String>,
}

/// The first host that answers within `timeout`, if any.
async fn first_host(timeout: Duration, interface: Option<&str>) -> Result<Vec<DiscoveredHost>> {
    let mut browser = discovery::Browser::start(interface)?;
    let found = tokio::time::timeout(timeout, async {
        while let Some(event) = browser.next().await {
            if let discovery::BrowseEvent::Found(h) = event {
                return Some(h);
            }
        }
        None
    })
    .await;
    Ok(found.ok().flatten().into_iter().collect())
}

/// Browses for the requested time and prints what answered.
pub async fn run(args: DiscoverArgs) -> Result<()> {
    let timeout = Duration::from_millis(args.timeout);
    let hosts = if args.first {
        first_host(timeout, args.interface.as_deref()).await?
    } else {
        discovery::browse(timeout, args.interface.as_deref()).await?
    };
    if args.json {
        let rows: Vec<Row<'_>> = hosts
            .iter()
            .map(|host| Row {
                host,
                ws_urls: host.ws_urls(),
            })
            .collect();
        return output::print_json(&rows);
    }
    if hosts.is_empty() {
        println!(
            "No Perch host answered within {:.1} s. Multicast may not reach this network; \
             connect with an address (--gateway ws://HOST:PORT) or a setup code instead.",
            args.timeout as f64 / 1000.0
        );
        return Ok(());
    }
    let mut t = output::table(&[
        "NAME",
        "HOST ID",
        "ADDRESSES",
        "PORT",
        "PROTOCOL",
        "FINGERPRINT",
    ]);
    for h in &hosts {
        let addresses: Vec<String> = h.addresses.iter().map(|a| a.to_string()).collect();
        let fingerprint = match &h.fingerprint {
            Some(fp) => format!("{}…", output::short(fp)),
            None => "-".to_string(),
        };
        t.add_row(vec![
            h.name.clone(),
            h.host_id.clone(),
            addresses.join(", "),
            h.port.to_string(),
            format!("{}-{}", h.proto_min, h.proto_max),
            fingerprint,
        ]);
    }
    println!("{t}");
    Ok(())
}
