//! `chat.send`: the gateway's side of a turn. It checks the request, announces the turn's start
//! and end to every operator (`agent.turn`) and counts it in `status`, streams the turn's
//! events to the operator that asked, and hands the turn itself to the host
//! ([`crate::services::HostServices::run_turn`]), which owns the model, the tools and the
//! transcript.

use std::sync::Arc;

use tokio::sync::mpsc;

use perch_kernel::agent::TurnEvent;
use perch_protocol::chat::{
    AGENT_TURN_EVENT, AgentTurn, CHAT_EVENT, ChatEvent, ChatResult, ChatSendParams, TurnState,
    turn_preview,
};
use perch_protocol::sessions::{MAIN_SESSION, valid_session_key};
use perch_protocol::{ErrorCode, ErrorShape};

use crate::hub::{Hub, Outbox, now_ms};
use crate::secrets::random_b64;
use crate::services::TurnRequest;

/// Runs one turn for an operator, streaming `chat` events to it.
pub async fn send(
    hub: &Arc<Hub>,
    caller: &Outbox,
    p: ChatSendParams,
) -> Result<ChatResult, ErrorShape> {
    let session = p.session_key.unwrap_or_else(|| MAIN_SESSION.to_string());
    if !valid_session_key(&session) {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            "invalid sessionKey",
        ));
    }
    if p.message.trim().is_empty() {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            "the message is empty",
        ));
    }
    let turn_id = random_b64(9).map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))?;
    let request = TurnRequest {
        session_key: session,
        turn_id,
        tier: p.tier.unwrap_or_else(|| "default".to_string()),
        message: p.message,
    };
    let turn = TurnGuard::start(hub, &request.turn_id, &request.session_key);
    let result = run_turn(hub, caller, &request).await;
    turn.end(&result);
    result
}

/// Announces a turn to every operator (`agent.turn`) and counts it in `status`; the end is
/// announced exactly once, also when the caller cancels and the turn's future is dropped.
struct TurnGuard {
    hub: Arc<Hub>,
    turn_id: String,
    session_key: String,
    ended: bool,
}

impl TurnGuard {
    fn start(hub: &Arc<Hub>, turn_id: &str, session_key: &str) -> Self {
        hub.count_turn(true);
        let guard = Self {
            hub: hub.clone(),
            turn_id: turn_id.to_string(),
            session_key: session_key.to_string(),
            ended: false,
        };
        guard.announce(TurnState::Started);
        guard
    }

    fn end(mut self, result: &Result<ChatResult, ErrorShape>) {
        self.ended = true;
        self.hub.count_turn(false);
        self.announce(match result {
            Ok(r) => TurnState::Finished {
                preview: turn_preview(&r.text),
            },
            Err(e) => TurnState::Failed { error: e.clone() },
        });
    }

    fn announce(&self, state: TurnState) {
        self.hub.broadcast_operators(
            AGENT_TURN_EVENT,
            &AgentTurn {
                turn_id: self.turn_id.clone(),
                session_key: self.session_key.clone(),
                state,
                ts: now_ms(),
            },
        );
    }
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.hub.count_turn(false);
            self.announce(TurnState::Failed {
                error: ErrorShape::new(ErrorCode::Cancelled, "the turn was cancelled"),
            });
        }
    }
}

/// The kernel's event as the `chat` event an operator reads.
fn chat_event(turn_id: &str, ev: TurnEvent) -> ChatEvent {
    let turn_id = turn_id.to_string();
    match ev {
        TurnEvent::TextDelta(text) => ChatEvent::Delta { turn_id, text },
        TurnEvent::ToolStarted { name, .. } => ChatEvent::Tool {
            turn_id,
            name,
            state: "started".into(),
        },
        TurnEvent::ToolFinished { name, ok, .. } => ChatEvent::Tool {
            turn_id,
            name,
            state: if ok { "ok" } else { "failed" }.into(),
        },
    }
}

/// The turn itself, run by the host, with its events forwarded to the caller as they come.
async fn run_turn(
    hub: &Arc<Hub>,
    caller: &Outbox,
    request: &TurnRequest,
) -> Result<ChatResult, ErrorShape> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let out = caller.clone();
    let turn_id = request.turn_id.clone();
    let forward = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            out.event(CHAT_EVENT, &chat_event(&turn_id, ev));
        }
    });
    let outcome = hub.services.run_turn(hub, request, tx).await;
    // The sender is gone with the turn: every event is forwarded before the result.
    let _ = forward.await;
    let o = outcome?;
    Ok(ChatResult {
        session_key: request.session_key.clone(),
        turn_id: request.turn_id.clone(),
        text: o.text,
        tool_calls: o.tool_calls,
        input_tokens: o.usage.input_tokens,
        output_tokens: o.usage.output_tokens,
    })
}
