//! Sessions on the wire: listing conversations and reading their transcripts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `sessions.list`: every session, most recently used first (operator).
pub const SESSIONS_LIST: &str = "sessions.list";
/// `sessions.history`: a session's transcript (operator).
pub const SESSIONS_HISTORY: &str = "sessions.history";
/// The session a turn goes to when none is named.
pub const MAIN_SESSION: &str = "main";

/// Whether a session key is acceptable: `main` or a name of 1–64 characters from letters,
/// digits and `._:-`, starting with a letter or digit.
pub fn valid_session_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && key.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// One session as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// Its key.
    pub session_key: String,
    /// When it started.
    pub created_at_ms: i64,
    /// When its last turn was written.
    pub updated_at_ms: i64,
    /// Messages in its transcript.
    pub message_count: i64,
    /// Tokens read over all turns.
    pub input_tokens: i64,
    /// Tokens written over all turns.
    pub output_tokens: i64,
}

/// Params of `sessions.history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryParams {
    /// The session.
    pub session_key: String,
    /// At most this many of the latest messages (default 200, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One transcript message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    /// Position in the session, from 1.
    pub seq: i64,
    /// The turn it belongs to.
    pub turn_id: String,
    /// `user`, `assistant`, `tool` or `error`.
    pub role: String,
    /// Text, tool result, or error reason.
    pub content: String,
    /// Tool calls the assistant made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// Whether the tool failed.
    #[serde(default)]
    pub is_error: bool,
    /// Tokens read for this message's model call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Tokens written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// When it was written.
    pub created_at_ms: i64,
}

/// Result of `sessions.history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionHistory {
    /// The session.
    pub session: SessionSummary,
    /// The latest messages, oldest first.
    pub messages: Vec<TranscriptEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys() {
        for ok in ["main", "work", "node-abc:1", "a.b_c"] {
            assert!(valid_session_key(ok), "{ok}");
        }
        for bad in ["", "-x", "with space", "ü", &"x".repeat(65)] {
            assert!(!valid_session_key(bad), "{bad}");
        }
    }
}
