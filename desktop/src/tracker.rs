//! The app's picture of the host, kept through the operator client: pending pairing requests,
//! paired nodes, running agent turns and presence. It refetches after every event that
//! changes them (coalesced), applies `agent.turn` and `presence` at once, and reports what
//! happened as [`Observation`]s for notifications.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use perch_client::{Client, ClientError};
use perch_protocol::chat::{AGENT_TURN_EVENT, AgentTurn, TurnState};
use perch_protocol::events::{self, NodeStatus, PairRequested};
use perch_protocol::frame::EventFrame;
use perch_protocol::methods::{self, DevicePairList, NodeSummary, StatusResult};
use perch_protocol::presence::{PRESENCE_EVENT, PresenceChange, PresenceEntry};
use perch_protocol::settings::{SETTINGS_CHANGED_EVENT, SETTINGS_GET, Settings};

/// Limit for the reads a refresh makes.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Events within this window share one refresh.
const COALESCE: Duration = Duration::from_millis(100);

/// A device waiting for the user's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingPairing {
    /// The id to approve or reject.
    pub request_id: String,
    /// The device asking.
    pub device_id: String,
    /// Its name.
    pub display_name: String,
    /// Its platform.
    pub platform: String,
    /// The six digits the device shows too ("048 213"); `None` for a client that made no
    /// commitment to derive one from (an OpenClaw node).
    pub verification_code: Option<String>,
    /// When it asked, ms since the epoch.
    pub requested_at_ms: i64,
}

/// A paired node, for the Devices submenu and the shell page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    /// Node id (= device id).
    pub node_id: String,
    /// Its name.
    pub display_name: String,
    /// Its platform.
    pub platform: String,
    /// Connected now.
    pub online: bool,
    /// Last connect or disconnect (now when online), ms since the epoch.
    pub last_seen_ms: Option<i64>,
}

/// What the app knows about the host right now.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Whether a first refresh succeeded on this connection.
    pub loaded: bool,
    /// Pairing requests waiting, oldest first.
    pub pending: Vec<PendingPairing>,
    /// Paired nodes, by pairing time.
    pub devices: Vec<DeviceView>,
    /// Agent turns running.
    pub active_turns: u32,
    /// The device the user touched last, from presence.
    pub active_device_id: Option<String>,
    /// perch.toml differs from what the host runs with (`settings.get`, `settings.changed`).
    pub restart_required: bool,
}

/// Something that happened, for the notification decision ([`crate::notify::decide`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A new pairing request.
    PairRequested {
        /// The request.
        request_id: String,
        /// The device's name.
        display_name: String,
        /// Its platform.
        platform: String,
        /// The verification code both sides show, when there is one.
        verification_code: Option<String>,
    },
    /// A node's connection ended.
    NodeOffline {
        /// The node.
        node_id: String,
        /// Its name.
        display_name: String,
        /// It was the active device (the last one the user touched) before it left.
        was_active: bool,
        /// When the user last touched it, ms since the epoch, if it ever reported activity.
        last_activity_ms: Option<i64>,
        /// When it last answered a command (or left with one running), per the host.
        last_invoke_ms: Option<i64>,
        /// When it went offline (host clock).
        at_ms: i64,
    },
    /// An agent turn answered.
    TurnFinished {
        /// The turn.
        turn_id: String,
        /// Its session.
        session_key: String,
        /// The first characters of the answer.
        preview: String,
    },
}

/// Presence as operators follow it, plus what outlives an entry (last activity, the last
/// active device) so a node that just left can still be judged "in use".
#[derive(Debug, Default)]
struct Presence {
    entries: BTreeMap<String, PresenceEntry>,
    last_activity: BTreeMap<String, i64>,
    last_active_device: Option<String>,
}

impl Presence {
    fn reset(&mut self, entries: &[PresenceEntry]) {
        self.entries = entries.iter().map(|e| (e.key.clone(), e.clone())).collect();
        for e in entries {
            self.note_activity(e);
        }
        self.recompute();
    }

    fn apply(&mut self, change: PresenceChange) {
        match change {
            PresenceChange::Upsert { entry } => {
                self.note_activity(&entry);
                self.entries.insert(entry.key.clone(), entry);
            }
            PresenceChange::Remove { key } => {
                self.entries.remove(&key);
            }
        }
        self.recompute();
    }

    fn note_activity(&mut self, e: &PresenceEntry) {
        if let (Some(id), Some(at)) = (&e.device_id, e.last_activity_ms) {
            let slot = self.last_activity.entry(id.clone()).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    /// The host's rule: newest activity, then newest last-seen, then the greater key; only
    /// entries with a device and reported activity count. The last answer sticks until
    /// another device takes over, so a device that left is still known as the active one.
    fn recompute(&mut self) {
        let active =
            perch_protocol::presence::active_device(self.entries.values()).map(str::to_string);
        if active.is_some() {
            self.last_active_device = active;
        }
    }

    fn active_device(&self) -> Option<String> {
        self.last_active_device.clone()
    }
}

/// Follows one client's connection; stops when dropped.
pub struct Tracker {
    snapshot: watch::Receiver<Snapshot>,
    task: JoinHandle<()>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tracker {
    /// Starts following `client`; observations go to `observations`, and a notification on
    /// `refresh` (after the app itself changed something) asks for a refetch.
    pub fn start(
        client: Client,
        observations: broadcast::Sender<Observation>,
        refresh: Arc<Notify>,
    ) -> Tracker {
        let (tx, snapshot) = watch::channel(Snapshot::default());
        let task = tokio::spawn(follow(client, tx, observations, refresh));
        Tracker { snapshot, task }
    }

    /// A live view of the snapshot.
    pub fn snapshot(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }
}

async fn follow(
    client: Client,
    tx: watch::Sender<Snapshot>,
    observations: broadcast::Sender<Observation>,
    refresh: Arc<Notify>,
) {
    let mut states = client.state();
    loop {
        // Subscribe before reading, so nothing slips between the snapshot and the events.
        let mut events = client.subscribe();
        let hello = loop {
            let state = states.borrow_and_update().clone();
            if let Some(h) = state.hello() {
                break h.clone();
            }
            tx.send_modify(|s| s.loaded = false);
            if states.changed().await.is_err() {
                return;
            }
        };
        let restart = restart_required(&client).await;
        tx.send_modify(|s| s.restart_required = restart);
        let mut presence = Presence::default();
        presence.reset(&hello.snapshot.presence);
        let mut turns: HashSet<String> = HashSet::new();
        let mut dirty = true;
        loop {
            if dirty {
                tokio::select! {
                    _ = tokio::time::sleep(COALESCE) => {}
                    _ = states.changed() => {}
                }
                if !states.borrow().is_connected() {
                    break;
                }
                match read_all(&client).await {
                    Ok((list, nodes, status)) => {
                        tx.send_modify(|s| {
                            s.loaded = true;
                            s.pending = pending_from(&list);
                            s.devices = nodes.iter().map(device_from).collect();
                            s.active_turns = u32::try_from(status.active_turns)
                                .unwrap_or(u32::MAX)
                                .max(u32::try_from(turns.len()).unwrap_or(u32::MAX));
                            s.active_device_id = presence.active_device();
                        });
                        dirty = false;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "refresh failed; waiting for the connection");
                        if !matches!(e, ClientError::Host(_)) {
                            break;
                        }
                        dirty = false;
                    }
                }
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if let Some(changed) = apply_event(&ev, &mut presence, &mut turns, &tx, &observations) {
                            dirty |= changed;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "missed events; refetching");
                        dirty = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                r = states.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if !states.borrow().is_connected() {
                        break;
                    }
                }
                _ = refresh.notified() => dirty = true,
            }
        }
        tx.send_modify(|s| s.loaded = false);
    }
}

async fn read_all(
    client: &Client,
) -> Result<(DevicePairList, Vec<NodeSummary>, StatusResult), ClientError> {
    let (list, nodes, status) = tokio::join!(
        client.call_as::<DevicePairList>(methods::DEVICE_PAIR_LIST, None, READ_TIMEOUT),
        client.call_as::<Vec<NodeSummary>>(methods::NODE_LIST, None, READ_TIMEOUT),
        client.call_as::<StatusResult>(methods::STATUS, None, READ_TIMEOUT),
    );
    Ok((list?, nodes?, status?))
}

/// Whether perch.toml asks for a restart, read once per connection (it reads the file and the
/// credential stores); `settings.changed` keeps it current after that. An older host without
/// settings, or a corrupt perch.toml, counts as no.
async fn restart_required(client: &Client) -> bool {
    match client
        .call_as::<Settings>(SETTINGS_GET, None, READ_TIMEOUT)
        .await
    {
        Ok(s) => s.restart_required,
        Err(e) => {
            tracing::debug!(error = %e, "no settings from the host");
            false
        }
    }
}

fn pending_from(list: &DevicePairList) -> Vec<PendingPairing> {
    list.pending
        .iter()
        .map(|p| PendingPairing {
            request_id: p.request_id.clone(),
            device_id: p.device_id.clone(),
            display_name: p.display_name.clone(),
            platform: p.platform.clone(),
            verification_code: p.verification_code.clone(),
            requested_at_ms: p.requested_at_ms,
        })
        .collect()
}

fn device_from(n: &NodeSummary) -> DeviceView {
    DeviceView {
        node_id: n.node_id.clone(),
        display_name: n.display_name.clone(),
        platform: n.platform.clone(),
        online: n.online,
        last_seen_ms: n.last_seen_ms,
    }
}

/// Applies one event; returns whether lists need a refetch (`None` for events that do not
/// concern the tracker).
fn apply_event(
    ev: &EventFrame,
    presence: &mut Presence,
    turns: &mut HashSet<String>,
    tx: &watch::Sender<Snapshot>,
    observations: &broadcast::Sender<Observation>,
) -> Option<bool> {
    let payload = ev.payload.clone().unwrap_or(serde_json::Value::Null);
    let observe = |o: Observation| {
        // Nobody listening (tests, no notifier) is fine.
        let _ = observations.send(o);
    };
    match ev.event.as_str() {
        events::DEVICE_PAIR_REQUESTED => {
            if let Ok(p) = serde_json::from_value::<PairRequested>(payload) {
                observe(Observation::PairRequested {
                    request_id: p.request_id,
                    display_name: p.display_name,
                    platform: p.platform,
                    verification_code: p.verification_code,
                });
            }
            Some(true)
        }
        events::DEVICE_PAIR_RESOLVED => Some(true),
        SETTINGS_CHANGED_EVENT => {
            if let Ok(s) = serde_json::from_value::<Settings>(payload) {
                tx.send_modify(|snap| snap.restart_required = s.restart_required);
            }
            Some(false)
        }
        events::NODE_STATUS => {
            if let Ok(s) = serde_json::from_value::<NodeStatus>(payload)
                && !s.online
            {
                observe(Observation::NodeOffline {
                    was_active: presence.active_device().as_deref() == Some(s.node_id.as_str()),
                    last_activity_ms: presence.last_activity.get(&s.node_id).copied(),
                    last_invoke_ms: s.last_invoke_ms,
                    node_id: s.node_id,
                    display_name: s.display_name,
                    at_ms: s.ts,
                });
            }
            Some(true)
        }
        PRESENCE_EVENT => {
            match serde_json::from_value::<PresenceChange>(payload) {
                Ok(change) => {
                    presence.apply(change);
                    let active = presence.active_device();
                    tx.send_if_modified(|s| {
                        let changed = s.active_device_id != active;
                        s.active_device_id = active;
                        changed
                    });
                }
                Err(e) => tracing::debug!(error = %e, "unreadable presence event"),
            }
            Some(false)
        }
        AGENT_TURN_EVENT => {
            match serde_json::from_value::<AgentTurn>(payload) {
                Ok(turn) => match turn.state {
                    TurnState::Started => {
                        // A refresh may already count this turn (`status` can be read between
                        // the start and this event), so raise the count to what the events
                        // prove rather than adding one.
                        turns.insert(turn.turn_id);
                        let seen = u32::try_from(turns.len()).unwrap_or(u32::MAX);
                        tx.send_modify(|s| s.active_turns = s.active_turns.max(seen));
                    }
                    TurnState::Finished { preview } => {
                        turns.remove(&turn.turn_id);
                        tx.send_modify(|s| s.active_turns = s.active_turns.saturating_sub(1));
                        observe(Observation::TurnFinished {
                            turn_id: turn.turn_id,
                            session_key: turn.session_key,
                            preview,
                        });
                    }
                    TurnState::Failed { .. } => {
                        turns.remove(&turn.turn_id);
                        tx.send_modify(|s| s.active_turns = s.active_turns.saturating_sub(1));
                    }
                },
                Err(e) => tracing::debug!(error = %e, "unreadable agent.turn event"),
            }
            // The count in `status` is the truth; the event only makes the icon prompt.
            Some(true)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_protocol::handshake::Role;

    fn entry(key: &str, activity: Option<i64>, seen: i64) -> PresenceEntry {
        PresenceEntry {
            key: key.into(),
            device_id: Some(key.into()),
            display_name: key.into(),
            platform: "linux".into(),
            role: Role::Node,
            mode: "node".into(),
            connected_since_ms: 0,
            last_seen_ms: seen,
            last_activity_ms: activity,
            remote_addr: None,
        }
    }

    #[test]
    fn active_device_follows_the_hosts_rule_and_sticks_after_it_leaves() {
        let mut p = Presence::default();
        p.reset(&[entry("phone", Some(100), 5), entry("mac", Some(50), 9)]);
        assert_eq!(p.active_device().as_deref(), Some("phone"));
        p.apply(PresenceChange::Upsert {
            entry: entry("mac", Some(200), 10),
        });
        assert_eq!(p.active_device().as_deref(), Some("mac"));
        p.apply(PresenceChange::Remove { key: "mac".into() });
        // phone is the only one with activity left: it takes over.
        assert_eq!(p.active_device().as_deref(), Some("phone"));
        p.apply(PresenceChange::Remove {
            key: "phone".into(),
        });
        // Nobody left: the last answer sticks, and activity is remembered.
        assert_eq!(p.active_device().as_deref(), Some("phone"));
        assert_eq!(p.last_activity.get("mac"), Some(&200));
    }

    #[test]
    fn entries_without_activity_never_become_active() {
        let mut p = Presence::default();
        p.reset(&[entry("a", None, 99)]);
        assert_eq!(p.active_device(), None);
    }

    fn frame(event: &str, payload: serde_json::Value) -> EventFrame {
        EventFrame {
            event: event.into(),
            payload: Some(payload),
            seq: Some(1),
            state_version: None,
        }
    }

    #[test]
    fn events_become_observations_and_counts() {
        let (tx, rx) = watch::channel(Snapshot::default());
        let (obs_tx, mut obs) = broadcast::channel(8);
        let mut presence = Presence::default();
        presence.reset(&[entry("phone", Some(100), 5)]);
        let mut turns = HashSet::new();
        let started = frame(
            AGENT_TURN_EVENT,
            serde_json::json!({"turnId": "t", "sessionKey": "main", "state": "started", "ts": 1}),
        );
        assert_eq!(
            apply_event(&started, &mut presence, &mut turns, &tx, &obs_tx),
            Some(true)
        );
        assert_eq!(rx.borrow().active_turns, 1);
        // A refresh that already counted the turn is not counted twice.
        tx.send_modify(|s| s.active_turns = 1);
        apply_event(&started, &mut presence, &mut turns, &tx, &obs_tx);
        assert_eq!(rx.borrow().active_turns, 1);
        let finished = frame(
            AGENT_TURN_EVENT,
            serde_json::json!({"turnId": "t", "sessionKey": "main", "state": "finished", "preview": "Hi", "ts": 2}),
        );
        apply_event(&finished, &mut presence, &mut turns, &tx, &obs_tx);
        assert_eq!(rx.borrow().active_turns, 0);
        assert_eq!(
            obs.try_recv().unwrap(),
            Observation::TurnFinished {
                turn_id: "t".into(),
                session_key: "main".into(),
                preview: "Hi".into()
            }
        );
        let offline = frame(
            events::NODE_STATUS,
            serde_json::json!({"nodeId": "phone", "displayName": "Phone", "online": false,
                               "lastInvokeMs": 5, "ts": 7}),
        );
        apply_event(&offline, &mut presence, &mut turns, &tx, &obs_tx);
        assert_eq!(
            obs.try_recv().unwrap(),
            Observation::NodeOffline {
                node_id: "phone".into(),
                display_name: "Phone".into(),
                was_active: true,
                last_activity_ms: Some(100),
                last_invoke_ms: Some(5),
                at_ms: 7
            }
        );
        let tick = frame("tick", serde_json::json!({"ts": 1}));
        assert_eq!(
            apply_event(&tick, &mut presence, &mut turns, &tx, &obs_tx),
            None
        );
    }
}
