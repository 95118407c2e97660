//! The access record in the terminal: `perch devices access NODE` (as an operator) and
//! `perch node access` (as the node itself, with its own identity against its paired host)
//! print the same table of who ran which command on the device, when, and what came of it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use perch_node::{Capabilities, HostPins, Node, NodeConfig, NodeState, TokenStore};
use perch_protocol::access::{AccessList, AccessOutcome, AccessRequester, NodeAccessParams};

use crate::output::{ago, print_json, short, table};

/// Flags of `perch node access`.
#[derive(Args, Debug)]
pub struct NodeAccessArgs {
    /// Where the node keeps its identity, device tokens and pinned host keys.
    #[arg(long, env = "PERCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Which paired host to ask, when the node trusts several (see `perch node hosts`).
    #[arg(long, value_name = "HOST_ID")]
    host_id: Option<String>,
    /// Host gateway URL (default: where the host was last reached).
    #[arg(long, env = "PERCH_GATEWAY")]
    gateway: Option<String>,
    /// How many rows, newest first (1 to 500).
    #[arg(long, default_value_t = perch_protocol::access::DEFAULT_ACCESS_LIMIT)]
    limit: u32,
    /// Rows older than this cursor (the `nextBefore` of a previous page).
    #[arg(long)]
    before: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How long `perch node access` waits to be connected to its host.
const CONNECT_WAIT: Duration = Duration::from_secs(15);

/// Prints a device's record: a table, or the host's JSON as is.
pub fn print(list: &AccessList, json: bool) -> Result<()> {
    if json {
        return print_json(list);
    }
    if list.entries.is_empty() {
        println!("No commands recorded for {}.", short(&list.node_id));
        return Ok(());
    }
    let mut t = table(&["WHEN", "WHO", "COMMAND", "OUTCOME", "TOOK"]);
    for e in &list.entries {
        let who = match &e.requester {
            AccessRequester::Turn {
                session_key,
                turn_id,
            } => format!("assistant (session {session_key}, turn {})", short(turn_id)),
            AccessRequester::Operator { device_id, label } => match device_id {
                Some(d) => format!("operator {label} ({})", short(d)),
                None => format!("operator {label}"),
            },
        };
        let outcome = match (e.outcome, &e.error_code) {
            (AccessOutcome::Ok, _) => "ok".to_string(),
            (AccessOutcome::Failed, Some(c)) => format!("failed: {c}"),
            (AccessOutcome::Refused, Some(c)) => format!("refused: {c}"),
            (AccessOutcome::Failed, None) => "failed".to_string(),
            (AccessOutcome::Refused, None) => "refused".to_string(),
        };
        t.add_row(vec![
            ago(Some(e.at_ms)),
            who,
            e.command.clone(),
            outcome,
            format!("{} ms", e.duration_ms),
        ]);
    }
    println!("Access record of {} (newest first)", short(&list.node_id));
    println!("{t}");
    if let Some(next) = &list.next_before {
        println!("Older rows: --before {next}");
    }
    Ok(())
}

/// `perch node access`: connects as this node (without taking over a `perch node run` that
/// serves elsewhere) and reads its own record from the host it paired with.
pub async fn node_access(args: NodeAccessArgs) -> Result<()> {
    let dir = crate::paths::data_dir(args.data_dir)?;
    let identity = perch_node::IdentityStore::new(&dir)
        .load()?
        .ok_or_else(|| {
            anyhow!(
                "no node identity in {}; run `perch node run` first",
                dir.display()
            )
        })?;
    let pins = HostPins::new(&dir).all()?;
    let (host_id, pin) = match (&args.host_id, pins.as_slice()) {
        (Some(id), _) => pins.iter().find(|(h, _)| h == id).cloned().ok_or_else(|| {
            anyhow!("this node does not trust host {id:?} (see `perch node hosts`)")
        })?,
        (None, [one]) => one.clone(),
        (None, []) => bail!("this node has not paired with a host yet; run `perch node run` first"),
        (None, _) => bail!("this node trusts several hosts; choose one with --host-id HOST_ID"),
    };
    let token = TokenStore::new(&dir).get(&format!("host:{host_id}"), &identity.device_id())?;
    if token.is_none() {
        bail!(
            "this node holds no device token for host {host_id}; pair it with `perch node run` first"
        );
    }
    let url = match args
        .gateway
        .or_else(|| Some(pin.last_url.clone()).filter(|u| !u.is_empty()))
    {
        Some(u) => u,
        None => bail!("no address known for host {host_id}; pass --gateway URL"),
    };
    let mut config = NodeConfig::new(url, "perch node access", dir);
    config.expected_host = Some(perch_node::ExpectedHost {
        host_id: host_id.clone(),
        fingerprint: pin.fingerprint.clone(),
    });
    config.reader_only = true;
    config.handshake_timeout = CONNECT_WAIT;
    let node = Node::new(config, Capabilities::new())?;
    let calls = node.host_calls();
    let mut states = node.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        node.run(async {
            let _ = stopped.await;
        })
        .await
    });
    let connected = tokio::time::timeout(CONNECT_WAIT, async {
        loop {
            let state = states.borrow_and_update().clone();
            match state {
                NodeState::Connected { .. } => return Ok(()),
                NodeState::Stopped { error } => {
                    return Err(anyhow!(
                        "cannot reach host {host_id}: {}",
                        error.unwrap_or_else(|| "stopped".into())
                    ));
                }
                NodeState::AwaitingApproval { .. } => {
                    return Err(anyhow!(
                        "host {host_id} does not know this node any more; pair it again"
                    ));
                }
                NodeState::Backoff { last_error, .. } => {
                    return Err(anyhow!("cannot reach host {host_id}: {last_error}"));
                }
                NodeState::WrongHost { message, .. } => {
                    return Err(anyhow!("cannot reach host {host_id}: {message}"));
                }
                _ => {}
            }
            if states.changed().await.is_err() {
                return Err(anyhow!("the node stopped before it connected"));
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(anyhow!(
            "host {host_id} did not answer within {} s",
            CONNECT_WAIT.as_secs()
        ))
    });
    let result = match connected {
        Ok(()) => calls
            .access_record(NodeAccessParams {
                limit: Some(args.limit),
                before: args.before,
            })
            .await
            .map_err(|e| match e {
                perch_node::HostCallError::Refused(shape) => {
                    anyhow::Error::from(crate::client::CallError::Host(shape))
                }
                other => anyhow::Error::from(other),
            })
            .context("reading this node's access record"),
        Err(e) => Err(e),
    };
    let _ = stop.send(());
    let _ = running.await;
    print(&result?, args.json)
}
