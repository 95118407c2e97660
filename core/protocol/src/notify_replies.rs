//! Replies to notifications on the wire. A node that showed a `system.notify` notification
//! sends what the user answered (a tapped action, typed text) as the node event
//! `system.notify.reply`; the host records it and the assistant reads it in its next turn.
//! Operators list what arrived with `notify.replies.list`.

use serde::{Deserialize, Serialize};

/// Node event name of a reply (`node.event` with this `event`).
pub const SYSTEM_NOTIFY_REPLY: &str = "system.notify.reply";
/// `notify.replies.list` (operator, `operator.read`): the replies that arrived, newest first.
pub const NOTIFY_REPLIES_LIST: &str = "notify.replies.list";

/// Longest reply text kept, in characters; longer text is refused, not cut, so the user
/// never has half a sentence taken as their answer.
pub const MAX_REPLY_TEXT_CHARS: usize = 2_000;
/// Longest notification title carried with a reply, in characters (cut with an ellipsis).
pub const MAX_REPLY_TITLE_CHARS: usize = 200;
/// Longest id (reply, notification, action), in characters.
pub const MAX_REPLY_ID_CHARS: usize = 128;
/// Rows per page when `limit` is not given.
pub const DEFAULT_REPLIES_LIMIT: u32 = 50;
/// Most rows one page may ask for.
pub const MAX_REPLIES_LIMIT: u32 = 500;

/// Payload of the `system.notify.reply` node event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyReplyPayload {
    /// The node's id for this reply: a resend after a lost answer carries the same id, and
    /// the host keeps one row.
    pub reply_id: String,
    /// The node's id of the notification answered (the one `system.notify` returned).
    pub notification_id: String,
    /// The notification's title, so the assistant knows what was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The action the user tapped, when it was a button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
    /// What the user typed, when it was a text reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Why a reply payload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Neither an action nor text: nothing was answered.
    #[error("a reply needs an actionId or text")]
    Empty,
    /// An id is empty or too long.
    #[error("{field} must be 1 to {MAX_REPLY_ID_CHARS} characters")]
    BadId {
        /// The field's wire name.
        field: &'static str,
    },
    /// The text is longer than [`MAX_REPLY_TEXT_CHARS`].
    #[error("text is longer than {MAX_REPLY_TEXT_CHARS} characters")]
    TextTooLong,
}

impl NotifyReplyPayload {
    /// Checks the bounds a host enforces before it records anything; the title is cut, not
    /// refused (it only labels the reply).
    pub fn validated(mut self) -> Result<Self, ReplyError> {
        let id_ok = |s: &str| !s.is_empty() && s.chars().count() <= MAX_REPLY_ID_CHARS;
        for (field, value) in [
            ("replyId", Some(&self.reply_id)),
            ("notificationId", Some(&self.notification_id)),
            ("actionId", self.action_id.as_ref()),
        ] {
            if let Some(v) = value
                && !id_ok(v)
            {
                return Err(ReplyError::BadId { field });
            }
        }
        if self.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
            self.text = None;
        }
        if self.action_id.is_none() && self.text.is_none() {
            return Err(ReplyError::Empty);
        }
        if self
            .text
            .as_deref()
            .is_some_and(|t| t.chars().count() > MAX_REPLY_TEXT_CHARS)
        {
            return Err(ReplyError::TextTooLong);
        }
        if let Some(t) = &self.title
            && t.chars().count() > MAX_REPLY_TITLE_CHARS
        {
            let cut: String = t.chars().take(MAX_REPLY_TITLE_CHARS - 1).collect();
            self.title = Some(format!("{cut}…"));
        }
        Ok(self)
    }
}

/// Params of `notify.replies.list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyRepliesParams {
    /// Rows, 1 to [`MAX_REPLIES_LIMIT`] (default [`DEFAULT_REPLIES_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One recorded reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyReplyEntry {
    /// The device that sent it.
    pub device_id: String,
    /// The device's name when the reply arrived.
    pub display_name: String,
    /// The node's id of the notification answered.
    pub notification_id: String,
    /// The notification's title, as the node reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The action tapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
    /// The text typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// When the host received it, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// Whether the assistant has read it in a turn yet.
    pub seen: bool,
}

/// Result of `notify.replies.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyRepliesList {
    /// Newest first.
    pub replies: Vec<NotifyReplyEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(action: Option<&str>, text: Option<&str>) -> NotifyReplyPayload {
        NotifyReplyPayload {
            reply_id: "r1".into(),
            notification_id: "n1".into(),
            title: None,
            action_id: action.map(str::to_string),
            text: text.map(str::to_string),
        }
    }

    #[test]
    fn a_reply_must_answer_something_within_bounds() {
        assert_eq!(reply(None, None).validated(), Err(ReplyError::Empty));
        assert_eq!(reply(None, Some("  ")).validated(), Err(ReplyError::Empty));
        assert!(reply(Some("yes"), None).validated().is_ok());
        assert!(reply(None, Some("on my way")).validated().is_ok());
        let long = "x".repeat(MAX_REPLY_TEXT_CHARS + 1);
        assert_eq!(
            reply(None, Some(&long)).validated(),
            Err(ReplyError::TextTooLong)
        );
        let mut bad = reply(Some("yes"), None);
        bad.reply_id = String::new();
        assert_eq!(bad.validated(), Err(ReplyError::BadId { field: "replyId" }));
        let mut bad = reply(Some(&"a".repeat(MAX_REPLY_ID_CHARS + 1)), None);
        bad.title = Some("t".into());
        assert_eq!(
            bad.validated(),
            Err(ReplyError::BadId { field: "actionId" })
        );
    }

    #[test]
    fn a_long_title_is_cut_and_unknown_fields_are_refused() {
        let mut r = reply(Some("ok"), None);
        r.title = Some("é".repeat(MAX_REPLY_TITLE_CHARS + 50));
        let t = r.validated().unwrap().title.unwrap();
        assert_eq!(t.chars().count(), MAX_REPLY_TITLE_CHARS);
        assert!(t.ends_with('…'));
        let extra =
            serde_json::json!({"replyId": "r", "notificationId": "n", "text": "x", "sql": 1});
        assert!(serde_json::from_value::<NotifyReplyPayload>(extra).is_err());
    }
}
