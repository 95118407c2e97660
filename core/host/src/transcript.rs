//! The kernel's `Transcript` over the store's sessions: what a turn reads as history and the
//! rows it writes, once per turn.

use futures_util::future::BoxFuture;

use perch_gateway::hub::now_ms;
use perch_kernel::agent::{Transcript, TurnRecord};
use perch_kernel::model::{ChatMessage, ToolCall};
use perch_store::{MessageRole, NewMessage, Store};

/// The store's transcript, in kernel terms.
pub struct StoreTranscript(pub Store);

impl Transcript for StoreTranscript {
    fn history(
        &self,
        session: &str,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<ChatMessage>, String>> {
        let session = session.to_string();
        Box::pin(async move {
            let rows = self
                .0
                .sessions()
                .messages(&session, limit)
                .await
                .map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let m = r.message;
                    match m.role {
                        MessageRole::User => Some(ChatMessage::User { text: m.content }),
                        MessageRole::Assistant => Some(ChatMessage::Assistant {
                            text: m.content,
                            tool_calls: m
                                .tool_calls
                                .and_then(|t| serde_json::from_str::<Vec<ToolCall>>(&t).ok())
                                .unwrap_or_default(),
                        }),
                        MessageRole::Tool => Some(ChatMessage::Tool {
                            call_id: m.tool_call_id.unwrap_or_default(),
                            name: m.tool_name.unwrap_or_default(),
                            content: m.content,
                            is_error: m.is_error,
                        }),
                        MessageRole::Error => None,
                    }
                })
                .collect())
        })
    }

    fn append(
        &self,
        session: &str,
        turn_id: &str,
        records: Vec<TurnRecord>,
    ) -> BoxFuture<'_, Result<(), String>> {
        let (session, turn_id) = (session.to_string(), turn_id.to_string());
        Box::pin(async move {
            let rows: Vec<NewMessage> = records
                .into_iter()
                .map(|r| match r {
                    TurnRecord::Message { message, usage } => {
                        let mut row = match message {
                            ChatMessage::User { text } => NewMessage::text(MessageRole::User, text),
                            ChatMessage::Assistant { text, tool_calls } => NewMessage {
                                tool_calls: (!tool_calls.is_empty()).then(|| {
                                    serde_json::to_string(&tool_calls).unwrap_or_default()
                                }),
                                ..NewMessage::text(MessageRole::Assistant, text)
                            },
                            ChatMessage::Tool {
                                call_id,
                                name,
                                content,
                                is_error,
                            } => NewMessage {
                                tool_call_id: Some(call_id),
                                tool_name: Some(name),
                                is_error,
                                ..NewMessage::text(MessageRole::Tool, content)
                            },
                        };
                        if let Some(u) = usage {
                            row.input_tokens = Some(u.input_tokens);
                            row.output_tokens = Some(u.output_tokens);
                        }
                        row
                    }
                    TurnRecord::Error(reason) => NewMessage::text(MessageRole::Error, reason),
                })
                .collect();
            self.0
                .sessions()
                .append_turn(&session, &turn_id, &rows, now_ms())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
