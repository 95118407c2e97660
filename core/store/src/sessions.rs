//! The `sessions` and `messages` tables: conversations and their transcripts. The store keeps
//! rows; the kernel decides what a message means.

use sqlx::{Row, SqlitePool};

use crate::{StoreError, begin_write};

/// What a transcript row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    /// The user's words.
    User,
    /// The model's answer (with tool calls as JSON).
    Assistant,
    /// A tool's result.
    Tool,
    /// A turn that failed, with the reason, so the transcript says what happened.
    Error,
}

impl MessageRole {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::Tool => "tool",
            MessageRole::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(MessageRole::User),
            "assistant" => Some(MessageRole::Assistant),
            "tool" => Some(MessageRole::Tool),
            "error" => Some(MessageRole::Error),
            _ => None,
        }
    }
}

/// A message to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// What it is.
    pub role: MessageRole,
    /// Its text (for tool rows, the result; for error rows, the reason).
    pub content: String,
    /// For assistant rows: the tool calls as JSON text.
    pub tool_calls: Option<String>,
    /// For tool rows: the call answered.
    pub tool_call_id: Option<String>,
    /// For tool rows: the tool's name.
    pub tool_name: Option<String>,
    /// For tool rows: whether the tool failed.
    pub is_error: bool,
    /// Tokens the model read for this message's call, when known.
    pub input_tokens: Option<u64>,
    /// Tokens the model wrote, when known.
    pub output_tokens: Option<u64>,
}

impl NewMessage {
    /// A plain message with only a role and text.
    pub fn text(role: MessageRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            tool_name: None,
            is_error: false,
            input_tokens: None,
            output_tokens: None,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// Position in the session, from 1.
    pub seq: i64,
    /// The turn it belongs to.
    pub turn_id: String,
    /// The message.
    pub message: NewMessage,
    /// When it was written.
    pub created_at_ms: i64,
}

/// A session's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Its key (`main`, or a name).
    pub session_key: String,
    /// When it started.
    pub created_at_ms: i64,
    /// When its last turn was written.
    pub updated_at_ms: i64,
    /// How many messages it holds.
    pub message_count: i64,
    /// Tokens read over all turns.
    pub input_tokens: i64,
    /// Tokens written over all turns.
    pub output_tokens: i64,
}

/// Reads and writes sessions and transcripts.
#[derive(Debug, Clone, Copy)]
pub struct SessionRepo<'a> {
    pool: &'a SqlitePool,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl<'a> SessionRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        SessionRepo { pool }
    }

    /// Appends one turn's messages in one transaction (creating the session on first use), so
    /// a transcript never holds half a turn. Returns the seq of the first message written.
    pub async fn append_turn(
        &self,
        session_key: &str,
        turn_id: &str,
        messages: &[NewMessage],
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        sqlx::query(
            "INSERT INTO sessions (session_key, created_at_ms, updated_at_ms) VALUES ($1, $2, $2) \
             ON CONFLICT (session_key) DO NOTHING",
        )
        .bind(session_key)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM messages WHERE session_key = $1")
                .bind(session_key)
                .fetch_one(&mut *tx)
                .await?;
        let first = last.unwrap_or(0) + 1;
        let (mut tokens_in, mut tokens_out) = (0i64, 0i64);
        for (i, m) in messages.iter().enumerate() {
            tokens_in += m.input_tokens.map(to_i64).unwrap_or(0);
            tokens_out += m.output_tokens.map(to_i64).unwrap_or(0);
            sqlx::query(
                "INSERT INTO messages (session_key, seq, turn_id, role, content, tool_calls, \
                 tool_call_id, tool_name, is_error, input_tokens, output_tokens, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(session_key)
            .bind(first + i as i64)
            .bind(turn_id)
            .bind(m.role.as_str())
            .bind(&m.content)
            .bind(&m.tool_calls)
            .bind(&m.tool_call_id)
            .bind(&m.tool_name)
            .bind(m.is_error)
            .bind(m.input_tokens.map(to_i64))
            .bind(m.output_tokens.map(to_i64))
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE sessions SET updated_at_ms = $2, input_tokens = input_tokens + $3, \
             output_tokens = output_tokens + $4 WHERE session_key = $1",
        )
        .bind(session_key)
        .bind(now_ms)
        .bind(tokens_in)
        .bind(tokens_out)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(first)
    }

    /// Every session, most recently used first.
    pub async fn list(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.session_key, s.created_at_ms, s.updated_at_ms, s.input_tokens, \
             s.output_tokens, (SELECT COUNT(*) FROM messages m WHERE m.session_key = s.session_key) \
             AS message_count FROM sessions s ORDER BY s.updated_at_ms DESC, s.session_key",
        )
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(session_row).collect()
    }

    /// One session's summary.
    pub async fn get(&self, session_key: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT s.session_key, s.created_at_ms, s.updated_at_ms, s.input_tokens, \
             s.output_tokens, (SELECT COUNT(*) FROM messages m WHERE m.session_key = s.session_key) \
             AS message_count FROM sessions s WHERE s.session_key = $1",
        )
        .bind(session_key)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(session_row).transpose()
    }

    /// The last `limit` messages of a session, oldest first.
    pub async fn messages(
        &self,
        session_key: &str,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, turn_id, role, content, tool_calls, tool_call_id, tool_name, is_error, \
             input_tokens, output_tokens, created_at_ms FROM (SELECT * FROM messages \
             WHERE session_key = $1 ORDER BY seq DESC LIMIT $2) ORDER BY seq",
        )
        .bind(session_key)
        .bind(i64::from(limit))
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                let role = MessageRole::parse(&role)
                    .ok_or_else(|| StoreError::corrupt("messages", "role", &role))?;
                let tokens = |col: &str| -> Result<Option<u64>, StoreError> {
                    let v: Option<i64> = r.try_get(col)?;
                    Ok(v.map(|n| u64::try_from(n).unwrap_or(0)))
                };
                Ok(MessageRecord {
                    seq: r.try_get("seq")?,
                    turn_id: r.try_get("turn_id")?,
                    message: NewMessage {
                        role,
                        content: r.try_get("content")?,
                        tool_calls: r.try_get("tool_calls")?,
                        tool_call_id: r.try_get("tool_call_id")?,
                        tool_name: r.try_get("tool_name")?,
                        is_error: r.try_get("is_error")?,
                        input_tokens: tokens("input_tokens")?,
                        output_tokens: tokens("output_tokens")?,
                    },
                    created_at_ms: r.try_get("created_at_ms")?,
                })
            })
            .collect()
    }
}

fn session_row(r: &sqlx::sqlite::SqliteRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        session_key: r.try_get("session_key")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        message_count: r.try_get("message_count")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn assistant(text: &str, calls: Option<&str>, out: u64) -> NewMessage {
        NewMessage {
            tool_calls: calls.map(String::from),
            output_tokens: Some(out),
            input_tokens: Some(10),
            ..NewMessage::text(MessageRole::Assistant, text)
        }
    }

    #[tokio::test]
    async fn turns_append_in_order_and_count_tokens() {
        let store = Store::open_in_memory().await.unwrap();
        let s = store.sessions();
        let first = s
            .append_turn(
                "main",
                "t1",
                &[
                    NewMessage::text(MessageRole::User, "hi"),
                    assistant("hello", None, 5),
                ],
                100,
            )
            .await
            .unwrap();
        assert_eq!(first, 1);
        let tool = NewMessage {
            tool_call_id: Some("c1".into()),
            tool_name: Some("location_get".into()),
            ..NewMessage::text(MessageRole::Tool, "{\"lat\":1}")
        };
        let second = s
            .append_turn(
                "main",
                "t2",
                &[
                    NewMessage::text(MessageRole::User, "where am I"),
                    assistant("", Some("[{\"id\":\"c1\"}]"), 3),
                    tool,
                    assistant("in Vienna", None, 4),
                ],
                200,
            )
            .await
            .unwrap();
        assert_eq!(second, 3);
        let msgs = s.messages("main", 100).await.unwrap();
        assert_eq!(msgs.len(), 6);
        assert_eq!(
            msgs.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert_eq!(msgs[4].message.tool_name.as_deref(), Some("location_get"));
        let last_two = s.messages("main", 2).await.unwrap();
        assert_eq!(last_two[0].seq, 5, "the last N, oldest first");
        let rec = s.get("main").await.unwrap().unwrap();
        assert_eq!(rec.message_count, 6);
        assert_eq!(rec.output_tokens, 12);
        assert_eq!(rec.input_tokens, 30);
        assert_eq!(rec.updated_at_ms, 200);
        assert!(s.get("other").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sessions_list_most_recent_first() {
        let store = Store::open_in_memory().await.unwrap();
        let s = store.sessions();
        s.append_turn("a", "t", &[NewMessage::text(MessageRole::User, "x")], 1)
            .await
            .unwrap();
        s.append_turn("b", "t", &[NewMessage::text(MessageRole::User, "y")], 2)
            .await
            .unwrap();
        let keys: Vec<String> = s
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.session_key)
            .collect();
        assert_eq!(keys, vec!["b", "a"]);
    }

    #[tokio::test]
    async fn a_failed_turn_writes_nothing() {
        let store = Store::open_in_memory().await.unwrap();
        let s = store.sessions();
        s.append_turn(
            "main",
            "t1",
            &[NewMessage::text(MessageRole::User, "ok")],
            1,
        )
        .await
        .unwrap();
        // Force the second insert of the turn to fail.
        sqlx::query(
            "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.content = 'fail' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let r = s
            .append_turn(
                "main",
                "t2",
                &[
                    NewMessage::text(MessageRole::User, "fine"),
                    NewMessage::text(MessageRole::Assistant, "fail"),
                ],
                2,
            )
            .await;
        assert!(r.is_err());
        let msgs = s.messages("main", 10).await.unwrap();
        assert_eq!(msgs.len(), 1, "no half turn");
        assert_eq!(s.get("main").await.unwrap().unwrap().updated_at_ms, 1);
    }

    #[tokio::test]
    async fn corrupt_role_is_reported() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .sessions()
            .append_turn("main", "t", &[NewMessage::text(MessageRole::User, "x")], 1)
            .await
            .unwrap();
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE messages SET role = 'wizard'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(
            store.sessions().messages("main", 10).await,
            Err(StoreError::Corrupt(_))
        ));
    }
}
