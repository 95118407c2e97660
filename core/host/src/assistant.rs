//! One assistant turn as the host runs it: the tier's provider, the kernel's agent over the
//! store's transcript and the host's pipeline, the tools of the nodes connected now, and the
//! device-context block; kernel errors become what an operator reads.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use perch_gateway::TurnRequest;
use perch_gateway::hub::Hub;
use perch_kernel::agent::{Agent, AgentConfig, TurnError, TurnEvent, TurnOutcome};
use perch_kernel::pipeline::Pipeline;
use perch_kernel::provider::ProviderError;
use perch_protocol::{ErrorCode, ErrorShape};

use crate::context::{DeviceEvents, location_context};
use crate::models::Models;
use crate::tools::TurnTools;
use crate::transcript::StoreTranscript;

/// Runs `turn` to its end, streaming its events into `events`.
pub async fn run_turn(
    hub: &Arc<Hub>,
    models: &Models,
    pipeline: &Arc<Pipeline>,
    turn: &TurnRequest,
    events: mpsc::UnboundedSender<TurnEvent>,
) -> Result<TurnOutcome, ErrorShape> {
    let tier = models.for_tier(&turn.tier).await?;
    let agent = Agent::new(
        tier.provider,
        Arc::new(StoreTranscript(hub.store.clone())),
        AgentConfig {
            model: tier.model,
            ..Default::default()
        },
    )
    .with_pipeline(pipeline.clone());
    let tools = TurnTools::new(hub, &turn.session_key, &turn.turn_id).await;
    let device_events = DeviceEvents::read(hub, &turn.session_key).await;
    let context: Vec<String> = location_context(hub, &turn.session_key, &turn.turn_id)
        .await
        .into_iter()
        .chain(device_events.blocks.iter().cloned())
        .collect();
    let result = agent
        .run_turn(
            &turn.session_key,
            &turn.turn_id,
            &turn.message,
            &context,
            &tools,
            &events,
        )
        .await;
    if let Err(TurnError::Provider(ProviderError::Unauthorized { .. })) = &result {
        // The key may have been replaced since the provider was built: look it up next time.
        models.forget(&turn.tier);
    }
    if result.is_ok() {
        device_events.mark_read(hub).await;
    }
    result.map_err(|e| turn_error(e, &turn.turn_id))
}

/// A kernel failure as the operator reads it.
fn turn_error(e: TurnError, turn_id: &str) -> ErrorShape {
    match e {
        TurnError::EmptyMessage => {
            ErrorShape::new(ErrorCode::InvalidRequest, "the message is empty")
        }
        TurnError::Transcript(e) => {
            tracing::error!(error = %e, "transcript failure");
            ErrorShape::new(ErrorCode::Unavailable, "the host's database is unavailable")
                .with_retryable(true)
        }
        e => ErrorShape::new(ErrorCode::ModelError, e.to_string())
            .with_details(json!({"turnId": turn_id})),
    }
}
