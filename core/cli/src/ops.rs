//! Operator commands: each connects, calls one gateway method, and prints the answer.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

use perch_host::paths::{operator_token_path, read_operator_token};
use perch_protocol::access::{AccessList, DEVICE_ACCESS_LIST, DeviceAccessParams};
use perch_protocol::location::{self as loc, AuditInfo, PlaceInfo, SharingInfo};
use perch_protocol::methods::{
    self, DeviceClosure, DevicePairList, InvokeResult, NodeDescription, NodeSummary,
    PairDecisionResult, SetupCodeResult, StatusResult,
};
use perch_protocol::node_commands::{self, LocationFix, NotifyResult};
use perch_protocol::node_reports::NodeInventory;
use perch_protocol::notify_replies::{NOTIFY_REPLIES_LIST, NotifyRepliesList, NotifyRepliesParams};
use perch_protocol::presence::{PresenceList, SYSTEM_PRESENCE};
use perch_protocol::sessions::{SESSIONS_HISTORY, SESSIONS_LIST, SessionHistory, SessionSummary};

use crate::client::OperatorClient;
use crate::output::{ago, print_json, short, table};
use crate::{DevicesCmd, LocationCmd, NodesCmd, OperatorArgs, PlacesCmd, SessionsCmd};

/// Shown in the code column for a request from a client that made no commitment (an OpenClaw
/// node): there is nothing to compare.
const NO_CODE: &str = "none";

/// Deadline for methods that only read host state.
const QUICK: Duration = Duration::from_secs(15);
/// Time allowed on top of an invoke's own deadline for the round trip.
const INVOKE_MARGIN: Duration = Duration::from_secs(5);

async fn connect(data_dir: Option<PathBuf>, op: &OperatorArgs) -> Result<OperatorClient> {
    let dir = crate::paths::data_dir(data_dir)?;
    let url = crate::paths::gateway_url(op.gateway.clone(), &dir)?;
    let token = operator_token(&dir)?;
    let host = expected_host(&dir)?;
    Ok(OperatorClient::connect(&url, &token, &host).await?)
}

/// The host key fingerprint an operator connection insists on: `PERCH_HOST_FINGERPRINT`, else
/// the key of the host whose data directory this is. Without one the token goes nowhere.
pub fn expected_host(dir: &std::path::Path) -> Result<String> {
    if let Ok(fp) = std::env::var("PERCH_HOST_FINGERPRINT")
        && !fp.trim().is_empty()
    {
        return Ok(fp.trim().to_string());
    }
    match perch_host::paths::read_host_fingerprint(dir)? {
        Some(fp) => Ok(fp),
        None => Err(anyhow::anyhow!(
            "no host key in {} to check the host against (start `perch serve` there once, or set PERCH_HOST_FINGERPRINT to the host's fingerprint); the operator token is not sent to an unchecked host",
            dir.display()
        )),
    }
}

/// The operator token: `PERCH_OPERATOR_TOKEN`, else the data directory's token file.
pub fn operator_token(dir: &std::path::Path) -> Result<String> {
    match std::env::var("PERCH_OPERATOR_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => read_operator_token(&operator_token_path(dir)).with_context(|| {
            format!(
                "no operator token: start the host once with this data directory ({}) or set PERCH_OPERATOR_TOKEN",
                dir.display()
            )
        }),
    }
}

async fn call<T: serde::de::DeserializeOwned>(
    c: &mut OperatorClient,
    method: &str,
    params: Option<Value>,
    timeout: Duration,
) -> Result<T> {
    let v = c.call(method, params, timeout).await?;
    serde_json::from_value(v).with_context(|| format!("unexpected answer to {method}"))
}

/// `perch status`.
pub async fn status(data_dir: Option<PathBuf>, op: OperatorArgs) -> Result<()> {
    let mut c = connect(data_dir, &op).await?;
    let s: StatusResult = call(&mut c, methods::STATUS, None, QUICK).await?;
    c.close().await;
    if op.json {
        return print_json(&s);
    }
    println!(
        "Perch host {} (v{}, protocol {})",
        s.name, s.version, s.protocol
    );
    println!("  host id      {}", s.host_id);
    println!("  listening    {}", s.bind);
    println!("  uptime       {}s", s.uptime_ms / 1000);
    println!("  paired       {}", s.paired_devices);
    println!("  pending      {}", s.pending_requests);
    println!("  nodes online {}", s.nodes_online);
    println!("  turns now    {}", s.active_turns);
    Ok(())
}

/// `perch devices ...`.
pub async fn devices(cmd: DevicesCmd, data_dir: Option<PathBuf>, op: OperatorArgs) -> Result<()> {
    let mut c = connect(data_dir, &op).await?;
    match cmd {
        DevicesCmd::List => {
            let l: DevicePairList = call(&mut c, methods::DEVICE_PAIR_LIST, None, QUICK).await?;
            if op.json {
                print_json(&l)?;
            } else {
                let mut t = table(&["DEVICE", "NAME", "PLATFORM", "ROLE", "STATE", "LAST SEEN"]);
                for d in &l.paired {
                    let state = if d.revoked {
                        "revoked"
                    } else if d.online {
                        "online"
                    } else {
                        "offline"
                    };
                    t.add_row(vec![
                        short(&d.device_id).to_string(),
                        d.display_name.clone(),
                        d.platform.clone(),
                        d.role.to_string(),
                        state.to_string(),
                        if d.online {
                            "now".into()
                        } else {
                            ago(d.last_seen_ms)
                        },
                    ]);
                }
                println!("Paired devices ({})", l.paired.len());
                println!("{t}");
                let mut t = table(&[
                    "REQUEST",
                    "CODE",
                    "DEVICE",
                    "NAME",
                    "PLATFORM",
                    "ROLE",
                    "REQUESTED",
                    "FROM",
                ]);
                for p in &l.pending {
                    t.add_row(vec![
                        p.request_id.clone(),
                        p.verification_code
                            .clone()
                            .unwrap_or_else(|| NO_CODE.to_string()),
                        short(&p.device_id).to_string(),
                        p.display_name.clone(),
                        p.platform.clone(),
                        p.role.to_string(),
                        ago(Some(p.requested_at_ms)),
                        p.remote_addr.clone().unwrap_or_default(),
                    ]);
                }
                println!("Pending requests ({})", l.pending.len());
                println!("{t}");
                if let Some(p) = l.pending.first() {
                    match &p.verification_code {
                        Some(code) => println!(
                            "Approve with: perch devices approve {} (after checking that the device shows the code {code})",
                            p.request_id
                        ),
                        None => println!(
                            "Approve with: perch devices approve {} (this client shows no code: approve only a device you just started pairing)",
                            p.request_id
                        ),
                    }
                }
            }
        }
        DevicesCmd::Approve { request_id } | DevicesCmd::Reject { request_id }
            if request_id.trim().is_empty() =>
        {
            return Err(anyhow!("a request id is required"));
        }
        DevicesCmd::Approve { request_id } => {
            decide(
                &mut c,
                methods::DEVICE_PAIR_APPROVE,
                &request_id,
                "Approved",
                op.json,
            )
            .await?;
        }
        DevicesCmd::Reject { request_id } => {
            decide(
                &mut c,
                methods::DEVICE_PAIR_REJECT,
                &request_id,
                "Rejected",
                op.json,
            )
            .await?;
        }
        DevicesCmd::Remove { device } => {
            let r = depart(&mut c, methods::DEVICE_PAIR_REMOVE, &device, op.json).await?;
            if let Some(r) = r {
                println!(
                    "Removed device {}; closed {} connection(s). It may ask to pair again.",
                    short(&r.device_id),
                    r.closed_connections
                );
            }
        }
        DevicesCmd::SetupCode => {
            let r: SetupCodeResult =
                call(&mut c, methods::DEVICE_PAIR_SETUP_CODE, None, QUICK).await?;
            if op.json {
                print_json(&r)?;
            } else {
                println!("{}", crate::qr::render(&r.setup_code)?);
                println!("Setup code: {}", r.setup_code);
                println!(
                    "Single use, valid for {} minutes. Scan it in the Perch app, or run:",
                    ((r.expires_at_ms - crate::output::now_ms()).max(0) + 59_999) / 60_000
                );
                println!("  perch node run --setup-code {}", r.setup_code);
                println!("Host {} at {}", r.host_id, r.gateway_urls.join(", "));
                for w in &r.warnings {
                    println!("Note: {w}");
                }
            }
        }
        DevicesCmd::Access {
            node,
            limit,
            before,
        } => {
            let params = DeviceAccessParams {
                node_id: node,
                limit: Some(limit),
                before,
            };
            let list: AccessList = call(
                &mut c,
                DEVICE_ACCESS_LIST,
                Some(serde_json::to_value(params)?),
                QUICK,
            )
            .await?;
            crate::access::print(&list, op.json)?;
        }
        DevicesCmd::Replies { limit } => {
            let params = NotifyRepliesParams { limit: Some(limit) };
            let list: NotifyRepliesList = call(
                &mut c,
                NOTIFY_REPLIES_LIST,
                Some(serde_json::to_value(params)?),
                QUICK,
            )
            .await?;
            crate::replies::print(&list, op.json)?;
        }
        DevicesCmd::Revoke { device } => {
            let r = depart(&mut c, methods::DEVICE_PAIR_REVOKE, &device, op.json).await?;
            if let Some(r) = r {
                println!(
                    "Revoked device {}; closed {} connection(s)",
                    short(&r.device_id),
                    r.closed_connections
                );
            }
        }
    }
    c.close().await;
    Ok(())
}

/// Revokes or removes a device; prints JSON itself, or hands the result back for a sentence.
async fn depart(
    c: &mut OperatorClient,
    method: &str,
    device: &str,
    json: bool,
) -> Result<Option<DeviceClosure>> {
    let r: DeviceClosure = call(c, method, Some(json!({ "deviceId": device })), QUICK).await?;
    if json {
        print_json(&r)?;
        Ok(None)
    } else {
        Ok(Some(r))
    }
}

/// Approves or rejects a pairing request and prints the decision.
async fn decide(
    c: &mut OperatorClient,
    method: &str,
    request_id: &str,
    verb: &str,
    json: bool,
) -> Result<()> {
    let r: PairDecisionResult =
        call(c, method, Some(json!({ "requestId": request_id })), QUICK).await?;
    if json {
        print_json(&r)
    } else {
        println!(
            "{verb} device {} (request {})",
            short(&r.device_id),
            r.request_id
        );
        Ok(())
    }
}

async fn invoke(
    c: &mut OperatorClient,
    node: &str,
    command: &str,
    params: Option<Value>,
    timeout_ms: Option<u64>,
    idempotency_key: Option<String>,
) -> Result<InvokeResult> {
    let key = match idempotency_key {
        Some(k) => k,
        None => fresh_key()?,
    };
    let mut p = json!({ "nodeId": node, "command": command, "idempotencyKey": key });
    if let Some(params) = params {
        p["params"] = params;
    }
    if let Some(t) = timeout_ms {
        p["timeoutMs"] = json!(t);
    }
    let wait =
        Duration::from_millis(timeout_ms.unwrap_or(perch_protocol::DEFAULT_INVOKE_TIMEOUT_MS))
            + INVOKE_MARGIN;
    call(c, methods::NODE_INVOKE, Some(p), wait).await
}

fn fresh_key() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| anyhow!("no randomness for an idempotency key: {e}"))?;
    Ok(format!("cli-{}", hex::encode(b)))
}

/// How long one chat turn may take, tools included.
const TURN_TIMEOUT: Duration = Duration::from_secs(600);

/// `perch chat`: one turn, or a prompt loop; answers stream as they are written.
pub async fn chat(
    message: Option<String>,
    session: Option<String>,
    tier: Option<String>,
    data_dir: Option<PathBuf>,
    op: OperatorArgs,
) -> Result<()> {
    use std::io::Write;
    let mut c = connect(data_dir, &op).await?;
    let json_out = op.json;
    let turn = async |c: &mut OperatorClient, text: String| -> Result<()> {
        let mut params = json!({ "message": text });
        if let Some(s) = &session {
            params["sessionKey"] = json!(s);
        }
        if let Some(t) = &tier {
            params["tier"] = json!(t);
        }
        let mut on_event = |e: &perch_protocol::frame::EventFrame| {
            if json_out || e.event != perch_protocol::chat::CHAT_EVENT {
                return;
            }
            let Some(p) = &e.payload else { return };
            match p["kind"].as_str() {
                Some("delta") => {
                    print!("{}", p["text"].as_str().unwrap_or(""));
                    let _ = std::io::stdout().flush();
                }
                Some("tool") if p["state"] == "started" => {
                    eprintln!("[{}…]", p["name"].as_str().unwrap_or("tool"));
                }
                _ => {}
            }
        };
        let r = c
            .call_streaming(
                perch_protocol::chat::CHAT_SEND,
                Some(params),
                TURN_TIMEOUT,
                &mut on_event,
            )
            .await?;
        if json_out {
            print_json(&r)?;
        } else {
            println!();
        }
        Ok(())
    };
    match message {
        Some(m) => turn(&mut c, m).await?,
        None => {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            loop {
                if !json_out {
                    print!("you> ");
                    let _ = std::io::stdout().flush();
                }
                let Some(line) = lines.next_line().await? else {
                    break;
                };
                let line = line.trim().to_string();
                if line.is_empty() {
                    continue;
                }
                if matches!(line.as_str(), "/quit" | "/exit") {
                    break;
                }
                if let Err(e) = turn(&mut c, line).await {
                    // One failed turn does not end the conversation.
                    eprintln!("error: {e:#}");
                }
            }
        }
    }
    c.close().await;
    Ok(())
}

/// `perch sessions ...`.
pub async fn sessions(cmd: SessionsCmd, data_dir: Option<PathBuf>, op: OperatorArgs) -> Result<()> {
    let mut c = connect(data_dir, &op).await?;
    match cmd {
        SessionsCmd::List => {
            let list: Vec<SessionSummary> = call(&mut c, SESSIONS_LIST, None, QUICK).await?;
            if op.json {
                print_json(&list)?;
            } else {
                let mut t = table(&[
                    "SESSION",
                    "MESSAGES",
                    "TOKENS IN",
                    "TOKENS OUT",
                    "LAST USED",
                    "STARTED",
                ]);
                for s in &list {
                    t.add_row(vec![
                        s.session_key.clone(),
                        s.message_count.to_string(),
                        s.input_tokens.to_string(),
                        s.output_tokens.to_string(),
                        ago(Some(s.updated_at_ms)),
                        ago(Some(s.created_at_ms)),
                    ]);
                }
                println!("{t}");
            }
        }
        SessionsCmd::Show { key, limit } => {
            let h: SessionHistory = call(
                &mut c,
                SESSIONS_HISTORY,
                Some(json!({ "sessionKey": key, "limit": limit })),
                QUICK,
            )
            .await?;
            if op.json {
                print_json(&h)?;
            } else {
                println!(
                    "Session {} ({} messages, {} tokens in, {} out)",
                    h.session.session_key,
                    h.session.message_count,
                    h.session.input_tokens,
                    h.session.output_tokens
                );
                for m in &h.messages {
                    let who = match (m.role.as_str(), &m.tool_name) {
                        ("tool", Some(name)) => {
                            format!("tool {name}{}", if m.is_error { " (failed)" } else { "" })
                        }
                        (role, _) => role.to_string(),
                    };
                    let mut text = m.content.clone();
                    if let Some(calls) = &m.tool_calls {
                        text = format!(
                            "{text}{}calls {calls}",
                            if text.is_empty() { "" } else { " " }
                        );
                    }
                    println!("#{:<4} {:<10} {text}", m.seq, who);
                }
            }
        }
    }
    c.close().await;
    Ok(())
}

/// `perch places ...`.
pub async fn places(cmd: PlacesCmd, data_dir: Option<PathBuf>, op: OperatorArgs) -> Result<()> {
    let mut c = connect(data_dir, &op).await?;
    match cmd {
        PlacesCmd::Add {
            name,
            center,
            radius_m,
        } => {
            let (lat, lon) = center
                .split_once(',')
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?))
                })
                .ok_or_else(|| {
                    anyhow!("the center must be LAT,LON, for example 48.2085,16.3721")
                })?;
            let p: PlaceInfo = call(
                &mut c,
                loc::PLACES_ADD,
                Some(json!({"name": name, "lat": lat, "lon": lon, "radiusM": radius_m})),
                QUICK,
            )
            .await?;
            if op.json {
                print_json(&p)?;
            } else {
                println!(
                    "Added {} ({:.5}, {:.5}, {} m)",
                    p.name, p.lat, p.lon, p.radius_m
                );
            }
        }
        PlacesCmd::List => {
            let list: Vec<PlaceInfo> = call(&mut c, loc::PLACES_LIST, None, QUICK).await?;
            if op.json {
                print_json(&list)?;
            } else {
                let mut t = table(&["PLACE", "CENTER", "RADIUS", "ADDED"]);
                for p in &list {
                    t.add_row(vec![
                        p.name.clone(),
                        format!("{:.5}, {:.5}", p.lat, p.lon),
                        format!("{} m", p.radius_m),
                        ago(Some(p.created_at_ms)),
                    ]);
                }
                println!("{t}");
            }
        }
        PlacesCmd::Remove { name } => {
            let r: Value = call(
                &mut c,
                loc::PLACES_REMOVE,
                Some(json!({"name": name})),
                QUICK,
            )
            .await?;
            if op.json {
                print_json(&r)?;
            } else {
                println!("Removed {name}");
            }
        }
    }
    c.close().await;
    Ok(())
}

/// `perch location ...`.
pub async fn location(cmd: LocationCmd, data_dir: Option<PathBuf>, op: OperatorArgs) -> Result<()> {
    let mut c = connect(data_dir, &op).await?;
    match cmd {
        LocationCmd::Share { node, precision } => {
            let s: SharingInfo = call(
                &mut c,
                loc::LOCATION_SHARE,
                Some(json!({"nodeId": node, "precision": precision})),
                QUICK,
            )
            .await?;
            if op.json {
                print_json(&s)?;
            } else {
                println!(
                    "{} now shares its location: {}",
                    s.display_name, s.precision
                );
            }
        }
        LocationCmd::Status => {
            let list: Vec<SharingInfo> = call(&mut c, loc::LOCATION_STATUS, None, QUICK).await?;
            if op.json {
                print_json(&list)?;
            } else {
                let mut t = table(&["NODE", "NAME", "SHARES", "CHANGED"]);
                for s in &list {
                    t.add_row(vec![
                        short(&s.node_id).to_string(),
                        s.display_name.clone(),
                        s.precision.clone(),
                        s.updated_at_ms
                            .map(|m| ago(Some(m)))
                            .unwrap_or_else(|| "never (off)".into()),
                    ]);
                }
                println!("{t}");
            }
        }
        LocationCmd::Audit { limit } => {
            let rows: Vec<AuditInfo> = call(
                &mut c,
                loc::LOCATION_AUDIT,
                Some(json!({"limit": limit})),
                QUICK,
            )
            .await?;
            if op.json {
                print_json(&rows)?;
            } else {
                let mut t = table(&[
                    "WHEN",
                    "NODE",
                    "SESSION",
                    "PATH",
                    "PRECISION",
                    "OUTCOME",
                    "TOLD",
                ]);
                for r in &rows {
                    t.add_row(vec![
                        ago(Some(r.at_ms)),
                        short(&r.device_id).to_string(),
                        r.session_key.clone(),
                        r.path.clone(),
                        r.precision.clone(),
                        r.outcome.clone(),
                        r.place_name.clone().or(r.city.clone()).unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
        }
        LocationCmd::Changes { limit } => {
            let list: loc::LocationChangesList = call(
                &mut c,
                loc::LOCATION_CHANGES,
                Some(json!({"limit": limit})),
                QUICK,
            )
            .await?;
            if op.json {
                print_json(&list)?;
            } else if list.changes.is_empty() {
                println!("No location changes recorded.");
            } else {
                let mut t = table(&["WHEN", "DEVICE", "CHANGE", "WHERE", "PRECISION", "READ"]);
                for ch in &list.changes {
                    let change = match &ch.trigger {
                        loc::LocationTrigger::First => "first fix".to_string(),
                        loc::LocationTrigger::Moved { distance_meters } => {
                            format!("moved {distance_meters:.0} m")
                        }
                        loc::LocationTrigger::Entered { place } => format!("entered {place}"),
                        loc::LocationTrigger::Exited { place } => format!("left {place}"),
                    };
                    let place = ch
                        .place_name
                        .clone()
                        .or(ch.city.clone())
                        .unwrap_or_default();
                    let at = match (ch.lat, ch.lon) {
                        (Some(lat), Some(lon)) => format!("{place} ({lat:.5}, {lon:.5})"),
                        _ => place,
                    };
                    t.add_row(vec![
                        ago(Some(ch.at_ms)),
                        ch.display_name.clone(),
                        change,
                        at,
                        ch.precision.clone(),
                        if ch.seen { "yes" } else { "not yet" }.to_string(),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    c.close().await;
    Ok(())
}

/// `perch presence`.
pub async fn presence(data_dir: Option<PathBuf>, op: OperatorArgs) -> Result<()> {
    let mut c = connect(data_dir, &op).await?;
    let list: PresenceList = call(&mut c, SYSTEM_PRESENCE, None, QUICK).await?;
    c.close().await;
    if op.json {
        return print_json(&list);
    }
    let mut t = table(&[
        "",
        "DEVICE",
        "NAME",
        "PLATFORM",
        "ROLE",
        "CONNECTED",
        "LAST SEEN",
        "LAST ACTIVE",
        "FROM",
    ]);
    for e in &list.entries {
        let active = e.device_id.is_some() && e.device_id == list.active_device_id;
        t.add_row(vec![
            if active { "*" } else { "" }.to_string(),
            e.device_id.as_deref().map(short).unwrap_or("-").to_string(),
            e.display_name.clone(),
            e.platform.clone(),
            e.role.to_string(),
            ago(Some(e.connected_since_ms)),
            ago(Some(e.last_seen_ms)),
            e.last_activity_ms
                .map(|m| ago(Some(m)))
                .unwrap_or_else(|| "-".into()),
            e.remote_addr.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    match list
        .entries
        .iter()
        .find(|e| e.device_id.is_some() && e.device_id == list.active_device_id)
    {
        Some(e) => println!(
            "Active device: {} ({})",
            e.display_name,
            short(e.device_id.as_deref().unwrap_or(""))
        ),
        None => println!("Active device: unknown (no device has reported user activity)"),
    }
    Ok(())
}

/// `perch nodes ...`.
pub async fn nodes(cmd: NodesCmd, data_dir: Option<PathBuf>, op: OperatorArgs) -> Result<()> {
    let mut c = connect(data_dir, &op).await?;
    match cmd {
        NodesCmd::List => {
            let l: Vec<NodeSummary> = call(&mut c, methods::NODE_LIST, None, QUICK).await?;
            if op.json {
                print_json(&l)?;
            } else {
                let mut t = table(&["NODE", "NAME", "PLATFORM", "STATE", "LAST SEEN", "COMMANDS"]);
                for n in &l {
                    t.add_row(vec![
                        short(&n.node_id).to_string(),
                        n.display_name.clone(),
                        n.platform.clone(),
                        if n.online { "online" } else { "offline" }.to_string(),
                        if n.online {
                            "now".into()
                        } else {
                            ago(n.last_seen_ms)
                        },
                        n.commands.join(", "),
                    ]);
                }
                println!("{t}");
            }
        }
        NodesCmd::Describe { node } => {
            let d: NodeDescription = call(
                &mut c,
                methods::NODE_DESCRIBE,
                Some(json!({ "nodeId": node })),
                QUICK,
            )
            .await?;
            if op.json {
                print_json(&d)?;
            } else {
                let s = &d.summary;
                println!("{} ({})", s.display_name, s.node_id);
                println!("  platform    {}", s.platform);
                println!(
                    "  state       {}",
                    if s.online {
                        "online".to_string()
                    } else {
                        format!("offline, last seen {}", ago(s.last_seen_ms))
                    }
                );
                if let Some(v) = &d.client_version {
                    println!("  client      {v}");
                }
                if let Some(a) = &d.remote_addr {
                    println!("  address     {a}");
                }
                println!("  commands    {}", s.commands.join(", "));
                if !d.blocked_commands.is_empty() {
                    println!(
                        "  blocked     {} (host policy)",
                        d.blocked_commands.join(", ")
                    );
                }
                if !d.caps.is_empty() {
                    println!("  caps        {}", d.caps.join(", "));
                }
                print_inventory(&d.inventory);
                println!("  paired      {}", ago(Some(d.paired_at_ms)));
            }
        }
        NodesCmd::Invoke {
            node,
            command,
            params,
            timeout,
            idempotency_key,
        } => {
            let params = params
                .map(|p| serde_json::from_str::<Value>(&p).context("--params is not valid JSON"))
                .transpose()?;
            let r = invoke(&mut c, &node, &command, params, timeout, idempotency_key).await?;
            if op.json {
                print_json(&r.payload)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&r.payload)?);
            }
        }
        NodesCmd::Location { node, timeout } => {
            let r = invoke(
                &mut c,
                &node,
                node_commands::LOCATION_GET,
                None,
                timeout,
                None,
            )
            .await?;
            if op.json {
                print_json(&r.payload)?;
            } else {
                let f: LocationFix = serde_json::from_value(r.payload)
                    .context("the node's location answer is malformed")?;
                println!(
                    "{:.5}, {:.5} ±{:.0} m ({}, {}, {})",
                    f.lat,
                    f.lon,
                    f.accuracy_meters,
                    serde_json::to_value(f.source)?
                        .as_str()
                        .unwrap_or("unknown"),
                    if f.is_precise {
                        "precise"
                    } else {
                        "approximate"
                    },
                    f.timestamp
                );
            }
        }
        NodesCmd::Notify { node, title, body } => {
            let r = invoke(
                &mut c,
                &node,
                node_commands::SYSTEM_NOTIFY,
                Some(json!({ "title": title, "body": body })),
                None,
                None,
            )
            .await?;
            if op.json {
                print_json(&r.payload)?;
            } else {
                let n: NotifyResult = serde_json::from_value(r.payload)
                    .context("the node's notify answer is malformed")?;
                println!(
                    "{}",
                    if n.delivered {
                        "Notification delivered"
                    } else {
                        "Notification not delivered"
                    }
                );
            }
        }
    }
    c.close().await;
    Ok(())
}

/// The lines of `nodes describe` for what the node reported about itself; nothing for a node
/// that reported nothing (Perch's own node).
fn print_inventory(inv: &NodeInventory) {
    if let Some(r) = &inv.runner {
        let features = if r.protocol_features.is_empty() {
            "no runner features".to_string()
        } else {
            r.protocol_features.join(", ")
        };
        let worker = match &r.worker_host {
            Some(w) if w.enabled => match w.capacity {
                Some(c) => format!("hosts sessions ({} of {} free)", c.available, c.total),
                None => "hosts sessions".to_string(),
            },
            _ => "hosts no sessions".to_string(),
        };
        println!("  runner      {features}; {worker}");
    }
    if let Some(skills) = &inv.skills {
        if skills.is_empty() {
            println!("  skills      none");
        }
        for (i, s) in skills.iter().enumerate() {
            let label = if i == 0 { "skills" } else { "" };
            println!(
                "  {label:<11} {} ({} bytes): {}",
                s.name, s.content_bytes, s.description
            );
        }
    }
    if let Some(tools) = &inv.plugin_tools {
        if tools.is_empty() {
            println!("  tools       none");
        }
        for (i, t) in tools.iter().enumerate() {
            let label = if i == 0 { "tools" } else { "" };
            let via = match (&t.command, t.allowed) {
                (Some(c), true) => format!("via {c}, allowed"),
                (Some(c), false) => format!("via {c}, not allowed (host policy)"),
                (None, _) => "no command, not callable".to_string(),
            };
            println!(
                "  {label:<11} {}/{} ({via}): {}",
                t.plugin_id, t.name, t.description
            );
        }
    }
}
