//! Talking to the assistant: one turn per `chat.send`, streamed back as `chat` events.

use serde::{Deserialize, Serialize};

/// `chat.send`: run one turn (operator).
pub const CHAT_SEND: &str = "chat.send";
/// Event streaming a running turn to the operator that asked.
pub const CHAT_EVENT: &str = "chat";

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
