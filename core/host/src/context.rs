//! The device context a turn starts with: where the user's device is (place or city, time
//! zone, local time; coordinates only at `exact`), read through the kernel's
//! [`LocationPrompts`] (consent, the read, the audit) from the device the user is at first.

use std::sync::Arc;

use perch_gateway::hub::Hub;
use perch_gateway::secrets::random_b64;
use perch_kernel::location::{LocationPolicy, LocationPrompts, PromptTarget};
use perch_protocol::methods::InvokeParams;
use perch_protocol::node_commands::{LOCATION_GET, LocationFix};
use perch_store::Requester;

use crate::location_ledger::StoreLedger;

/// The device-context block for this turn, when a connected node shares its location: the
/// device the user is at first, then the others by id. Consent, the read and the audit are the
/// kernel's [`LocationPrompts`]; nothing is read from a device whose sharing is off.
pub async fn location_context(hub: &Arc<Hub>, session: &str, turn: &str) -> Option<String> {
    let ledger = StoreLedger(hub.store.clone());
    let active = hub.presence_list().active_device_id;
    let mut candidates: Vec<_> = hub
        .nodes()
        .into_iter()
        .filter(|n| {
            n.commands.iter().any(|c| c == LOCATION_GET) && hub.config.commands.allows(LOCATION_GET)
        })
        .collect();
    candidates.sort_by_key(|n| (Some(n.node_id.to_string()) != active, n.node_id.clone()));
    let active_name = candidates
        .iter()
        .find(|n| Some(n.node_id.to_string()) == active)
        .map(|n| n.display_name.clone());
    let prompts = LocationPrompts::new(LocationPolicy::default());
    for node in candidates {
        let sharing = hub.store.location().sharing(&node.node_id).await.ok()?;
        if sharing == perch_store::LocationPrecision::Off {
            continue;
        }
        let target = PromptTarget {
            device_id: node.node_id.clone(),
            device_name: node.display_name.clone(),
            session_key: session.to_string(),
            active_device: active_name.clone(),
        };
        let fetch = || async {
            let params = InvokeParams {
                node_id: node.node_id.to_string(),
                command: LOCATION_GET.to_string(),
                params: None,
                timeout_ms: Some(LOCATION_READ_TIMEOUT_MS),
                idempotency_key: format!("ctx:{}", random_b64(9).unwrap_or_default()),
            };
            // The turn asked: the node's access record says so.
            let requester = Requester::Turn {
                session_key: session.to_string(),
                turn_id: turn.to_string(),
            };
            let r = perch_gateway::invoke::invoke(hub, params, requester)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::from_value::<LocationFix>(r.payload).map_err(|e| e.to_string())
        };
        let read = prompts.read(&ledger, &target, fetch).await;
        if read.block.is_some() {
            return read.block;
        }
    }
    None
}

/// How long a prompt waits for a device's position.
const LOCATION_READ_TIMEOUT_MS: u64 = 5_000;
