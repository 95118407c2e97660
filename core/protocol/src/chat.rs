//! Talking to the assistant: one turn per `chat.send`, streamed back as `chat` events.

use serde::{Deserialize, Serialize};

use crate::error::ErrorShape;

/// `chat.send`: run one turn (operator).
pub const CHAT_SEND: &str = "chat.send";
/// Event streaming a running turn to the operator that asked.
pub const CHAT_EVENT: &str = "chat";
/// Event telling every operator that a turn started or ended, whoever asked for it, so a
/// menu-bar icon or a second window can show that the assistant is busy.
pub const AGENT_TURN_EVENT: &str = "agent.turn";
/// Most characters of the reply an `agent.turn` `finished` event carries.
pub const TURN_PREVIEW_CHARS: usize = 160;

/// Params of `chat.send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatSendParams {
    /// The session (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// The user's message.
    pub message: String,
    /// The model tier: `fast`, `default` or `smart` (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// Payload of a `chat` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ChatEvent {
    /// More answer text.
    #[serde(rename_all = "camelCase")]
    Delta {
        /// The turn.
        turn_id: String,
        /// The text.
        text: String,
    },
    /// A tool started or finished.
    #[serde(rename_all = "camelCase")]
    Tool {
        /// The turn.
        turn_id: String,
        /// The tool.
        name: String,
        /// `started`, `ok` or `failed`.
        state: String,
    },
}

/// Result of `chat.send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatResult {
    /// The session.
    pub session_key: String,
    /// The turn.
    pub turn_id: String,
    /// The final answer.
    pub text: String,
    /// Tool calls made.
    pub tool_calls: u32,
    /// Tokens read over the turn.
    pub input_tokens: u64,
    /// Tokens written over the turn.
    pub output_tokens: u64,
}

/// Payload of an `agent.turn` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentTurn {
    /// The turn, as in `chat` events and the `chat.send` result.
    pub turn_id: String,
    /// The session the turn runs in.
    pub session_key: String,
    /// Where the turn is.
    #[serde(flatten)]
    pub state: TurnState,
    /// When, ms since the epoch.
    pub ts: i64,
}

/// The state of a turn in an `agent.turn` event; on the wire the `state` field names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum TurnState {
    /// The host began working on the turn.
    Started,
    /// The turn answered.
    Finished {
        /// The first characters of the answer ([`TURN_PREVIEW_CHARS`] at most).
        preview: String,
    },
    /// The turn ended without an answer (the same error the caller got).
    Failed {
        /// Why.
        error: ErrorShape,
    },
}

/// The start of a reply, cut at [`TURN_PREVIEW_CHARS`] characters (never inside a character).
pub fn turn_preview(text: &str) -> String {
    text.trim().chars().take(TURN_PREVIEW_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    #[test]
    fn agent_turn_states_have_the_documented_shapes() {
        let ev = |state| AgentTurn {
            turn_id: "t1".into(),
            session_key: "main".into(),
            state,
            ts: 5,
        };
        let cases = [
            (
                ev(TurnState::Started),
                json!({"turnId": "t1", "sessionKey": "main", "state": "started", "ts": 5}),
            ),
            (
                ev(TurnState::Finished {
                    preview: "Hi".into(),
                }),
                json!({"turnId": "t1", "sessionKey": "main", "state": "finished",
                       "preview": "Hi", "ts": 5}),
            ),
            (
                ev(TurnState::Failed {
                    error: ErrorShape::new(ErrorCode::ModelError, "boom"),
                }),
                json!({"turnId": "t1", "sessionKey": "main", "state": "failed",
                       "error": {"code": "MODEL_ERROR", "message": "boom"}, "ts": 5}),
            ),
        ];
        for (value, wire) in cases {
            assert_eq!(serde_json::to_value(&value).unwrap(), wire);
            assert_eq!(serde_json::from_value::<AgentTurn>(wire).unwrap(), value);
        }
    }

    #[test]
    fn previews_are_cut_at_160_characters() {
        assert_eq!(turn_preview("  short answer \n"), "short answer");
        let long = "é".repeat(200);
        let p = turn_preview(&long);
        assert_eq!(p.chars().count(), 160);
        assert!(long.starts_with(&p));
    }
}
