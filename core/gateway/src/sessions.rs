//! `sessions.list` and `sessions.history`: reading conversations from the store.

use std::sync::Arc;

use perch_protocol::sessions::{
    HistoryParams, SessionHistory, SessionSummary, TranscriptEntry, valid_session_key,
};
use perch_protocol::{ErrorCode, ErrorShape};
use perch_store::{MessageRecord, SessionRecord};

use crate::hub::Hub;
use crate::operator::store_error;

fn summary(r: SessionRecord) -> SessionSummary {
    SessionSummary {
        session_key: r.session_key,
        created_at_ms: r.created_at_ms,
        updated_at_ms: r.updated_at_ms,
        message_count: r.message_count,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
    }
}

fn entry(m: MessageRecord) -> TranscriptEntry {
    TranscriptEntry {
        seq: m.seq,
        turn_id: m.turn_id,
        role: m.message.role.as_str().to_string(),
        content: m.message.content,
        // Stored as JSON text by the kernel; shown as JSON, or as text if it is not JSON.
        tool_calls: m
            .message
            .tool_calls
            .map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))),
        tool_call_id: m.message.tool_call_id,
        tool_name: m.message.tool_name,
        is_error: m.message.is_error,
        input_tokens: m.message.input_tokens,
        output_tokens: m.message.output_tokens,
        created_at_ms: m.created_at_ms,
    }
}

/// Every session, most recently used first.
pub async fn list(hub: &Arc<Hub>) -> Result<Vec<SessionSummary>, ErrorShape> {
    let rows = hub.store.sessions().list().await.map_err(store_error)?;
    Ok(rows.into_iter().map(summary).collect())
}

/// A session's latest messages.
pub async fn history(hub: &Arc<Hub>, p: HistoryParams) -> Result<SessionHistory, ErrorShape> {
    if !valid_session_key(&p.session_key) {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            "sessionKey must be 1 to 64 letters, digits or ._:- and start with a letter or digit",
        ));
    }
    let limit = p.limit.unwrap_or(200).clamp(1, 1000);
    let store = hub.store.sessions();
    let Some(session) = store.get(&p.session_key).await.map_err(store_error)? else {
        return Err(ErrorShape::new(
            ErrorCode::NotFound,
            format!("no session {:?}", p.session_key),
        ));
    };
    let messages = store
        .messages(&p.session_key, limit)
        .await
        .map_err(store_error)?;
    Ok(SessionHistory {
        session: summary(session),
        messages: messages.into_iter().map(entry).collect(),
    })
}
