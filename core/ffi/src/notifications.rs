//! Notifications on a phone: `system.notify` shown through the app's
//! [`NotificationPresenter`], and what the user answers (a tapped action, typed text) sent back
//! to the host with [`crate::PerchNode::reply_to_notification`].
//!
//! Each notification gets the node's own id ([`Notification::id`]); the app keeps it with the
//! platform notification and passes it back with the reply. The node remembers the
//! notifications it posted in a small book kept in the data dir, so a reply still works after
//! the OS restarted the app, and refuses a reply to one it never posted (or that has aged out)
//! with a typed error.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use perch_node::shapes::validate_notify;
use perch_node::{CapabilityHandler, CommandError};
use perch_protocol::ErrorCode;
use perch_protocol::node_commands as nc;
use perch_protocol::notify_replies::{NotifyReplyPayload, ReplyError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{PerchError, ProviderError};
use crate::providers::{PROVIDER_TIMEOUT, call_foreign, provider_error, to_json};

/// A button on a notification.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NotificationAction {
    /// Stable id, reported back when the user taps it.
    pub id: String,
    /// The button's label.
    pub title: String,
}

/// A notification to show, from `system.notify`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Notification {
    /// The node's id for it: keep it with the platform notification and pass it back in a
    /// [`NotificationReply`].
    pub id: String,
    /// Title (never empty).
    pub title: String,
    /// Body text.
    pub body: String,
    /// Sound name, when the caller asked for one.
    pub sound: Option<String>,
    /// Priority hint (`passive`, `active`, `timeSensitive`), when given.
    pub priority: Option<String>,
    /// Buttons to offer.
    pub actions: Vec<NotificationAction>,
}

/// The platform's notifications (UserNotifications, NotificationCompat): answers
/// `system.notify`.
#[uniffi::export(foreign)]
pub trait NotificationPresenter: Send + Sync {
    /// Posts `notification`; returns the platform's own id for it, when it has one (kept in
    /// the app's logs; the host knows the notification by [`Notification::id`]).
    fn post(&self, notification: Notification) -> Result<Option<String>, ProviderError>;
}

/// What the user answered to a notification.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NotificationReply {
    /// [`Notification::id`] of the notification answered.
    pub notification_id: String,
    /// The action tapped (one of the notification's action ids), if it was a button.
    #[uniffi(default)]
    pub action_id: Option<String>,
    /// What the user typed, if it was a text reply.
    #[uniffi(default)]
    pub text: Option<String>,
}

/// Notifications remembered for replies; older ones go first.
const BOOK_CAPACITY: usize = 64;
/// How long a notification can be answered.
const BOOK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The book's file in the data dir.
const BOOK_FILE: &str = "notifications.json";

/// One posted notification, as the book keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Posted {
    id: String,
    title: String,
    actions: Vec<String>,
    posted_at_ms: i64,
}

/// The notifications this node posted, bounded by count and age, saved in the data dir.
#[derive(Debug)]
pub(crate) struct NotificationBook {
    path: PathBuf,
    posted: Mutex<VecDeque<Posted>>,
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A fresh random id (hex), for a notification or a reply.
fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: time and address still make ids unique within this book.
        bytes[..8].copy_from_slice(&now_ms().to_le_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

impl NotificationBook {
    /// Opens the book in `dir`; a missing or unreadable file is an empty book.
    pub(crate) fn open(dir: &Path) -> Self {
        let path = dir.join(BOOK_FILE);
        let posted = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<VecDeque<Posted>>(&bytes).ok())
            .unwrap_or_default();
        Self {
            path,
            posted: Mutex::new(posted),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Posted>> {
        self.posted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a notification about to be posted.
    fn remember(&self, n: &Notification) {
        let mut posted = self.lock();
        posted.push_back(Posted {
            id: n.id.clone(),
            title: n.title.clone(),
            actions: n.actions.iter().map(|a| a.id.clone()).collect(),
            posted_at_ms: now_ms(),
        });
        self.prune_and_save(&mut posted);
    }

    /// Forgets a notification the platform would not show.
    fn forget(&self, id: &str) {
        let mut posted = self.lock();
        posted.retain(|p| p.id != id);
        self.prune_and_save(&mut posted);
    }

    fn prune_and_save(&self, posted: &mut VecDeque<Posted>) {
        let oldest = now_ms().saturating_sub(i64::try_from(BOOK_TTL.as_millis()).unwrap_or(0));
        posted.retain(|p| p.posted_at_ms >= oldest);
        while posted.len() > BOOK_CAPACITY {
            posted.pop_front();
        }
        // A book that cannot be saved still works until the app restarts.
        if let Err(e) = save(&self.path, posted) {
            tracing::warn!(error = %e, "could not save the notification book");
        }
    }

    /// The wire payload for `reply`, checked against the notification it answers.
    pub(crate) fn reply_payload(
        &self,
        reply: NotificationReply,
    ) -> Result<NotifyReplyPayload, PerchError> {
        let oldest = now_ms().saturating_sub(i64::try_from(BOOK_TTL.as_millis()).unwrap_or(0));
        let posted = self
            .lock()
            .iter()
            .find(|p| p.id == reply.notification_id && p.posted_at_ms >= oldest)
            .cloned()
            .ok_or_else(|| PerchError::UnknownNotification {
                notification_id: reply.notification_id.clone(),
            })?;
        if let Some(action) = &reply.action_id
            && !posted.actions.contains(action)
        {
            return Err(PerchError::InvalidReply {
                reason: format!("the notification has no action {action:?}"),
            });
        }
        NotifyReplyPayload {
            reply_id: random_id("r"),
            notification_id: posted.id,
            title: Some(posted.title),
            action_id: reply.action_id,
            text: reply.text,
        }
        .validated()
        .map_err(|e: ReplyError| PerchError::InvalidReply {
            reason: e.to_string(),
        })
    }
}

/// Writes the book whole (a temporary file renamed over the old one), private to the app.
fn save(path: &Path, posted: &VecDeque<Posted>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(posted).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}

/// `system.notify` through a [`NotificationPresenter`], remembering each notification for
/// its replies.
pub(crate) struct NotifyHandler {
    pub(crate) presenter: Arc<dyn NotificationPresenter>,
    pub(crate) book: Arc<NotificationBook>,
}

impl CapabilityHandler for NotifyHandler {
    fn commands(&self) -> Vec<String> {
        vec![nc::SYSTEM_NOTIFY.into()]
    }

    fn caps(&self) -> Vec<String> {
        vec!["system".into()]
    }

    fn invoke(
        &self,
        _command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        let presenter = self.presenter.clone();
        let book = self.book.clone();
        let actions = actions_of(&params);
        let params = validate_notify(params);
        Box::pin(async move {
            let p = params?;
            let notification = Notification {
                id: random_id("n"),
                title: p.title,
                body: p.body,
                sound: p.sound,
                priority: p.priority,
                actions: actions?,
            };
            let id = notification.id.clone();
            // Remembered before the user can see it, so the quickest reply still finds it.
            book.remember(&notification);
            let posted = call_foreign("notification presenter", PROVIDER_TIMEOUT, move || {
                presenter.post(notification)
            })
            .await
            .and_then(|r| {
                r.map_err(|e| {
                    provider_error(
                        e,
                        "NOTIFICATIONS_PERMISSION_REQUIRED",
                        ErrorCode::NotificationsUnavailable,
                    )
                })
            });
            if let Err(e) = posted {
                book.forget(&id);
                return Err(e);
            }
            to_json(&nc::NotifyResult {
                delivered: true,
                notification_id: Some(id),
            })
        })
    }
}

/// Most buttons a notification may carry (what both phone platforms show).
const MAX_ACTIONS: usize = 3;

/// The optional `actions` of `system.notify` (`[{"id", "title"}]`), a Perch extension the
/// desktop ignores.
fn actions_of(params: &Value) -> Result<Vec<NotificationAction>, CommandError> {
    let Some(list) = params.get("actions") else {
        return Ok(Vec::new());
    };
    let bad = || {
        CommandError::invalid_request(
            "actions must be a list of at most 3 {\"id\", \"title\"} objects with non-empty strings",
        )
    };
    let list = list.as_array().ok_or_else(bad)?;
    if list.len() > MAX_ACTIONS {
        return Err(bad());
    }
    list.iter()
        .map(|a| {
            let field = |k: &str| {
                a.get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty() && s.len() <= 256)
                    .map(str::to_string)
            };
            Ok(NotificationAction {
                id: field("id").ok_or_else(bad)?,
                title: field("title").ok_or_else(bad)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_are_read_and_bounded() {
        assert!(actions_of(&json!({})).unwrap().is_empty());
        let a = actions_of(&json!({"actions": [{"id": "y", "title": "Yes"}]})).unwrap();
        assert_eq!(
            a,
            vec![NotificationAction {
                id: "y".into(),
                title: "Yes".into()
            }]
        );
        assert!(actions_of(&json!({"actions": "x"})).is_err());
        assert!(actions_of(&json!({"actions": [{"id": ""}]})).is_err());
        let four = json!({"actions": [{"id":"a","title":"a"},{"id":"b","title":"b"},{"id":"c","title":"c"},{"id":"d","title":"d"}]});
        assert!(actions_of(&four).is_err());
    }

    fn shown(book: &NotificationBook, actions: &[&str]) -> String {
        let n = Notification {
            id: random_id("n"),
            title: "Dinner at 7?".into(),
            body: "Reply yes or no".into(),
            sound: None,
            priority: None,
            actions: actions
                .iter()
                .map(|a| NotificationAction {
                    id: (*a).into(),
                    title: a.to_uppercase(),
                })
                .collect(),
        };
        book.remember(&n);
        n.id
    }

    #[test]
    fn a_reply_names_a_posted_notification_and_one_of_its_actions() {
        let dir = tempfile::tempdir().unwrap();
        let book = NotificationBook::open(dir.path());
        let id = shown(&book, &["yes", "no"]);
        let p = book
            .reply_payload(NotificationReply {
                notification_id: id.clone(),
                action_id: Some("yes".into()),
                text: None,
            })
            .unwrap();
        assert_eq!(p.notification_id, id);
        assert_eq!(p.title.as_deref(), Some("Dinner at 7?"));
        assert!(p.reply_id.starts_with("r-"));
        assert_eq!(
            book.reply_payload(NotificationReply {
                notification_id: "n-gone".into(),
                action_id: None,
                text: Some("hi".into()),
            }),
            Err(PerchError::UnknownNotification {
                notification_id: "n-gone".into()
            })
        );
        assert!(matches!(
            book.reply_payload(NotificationReply {
                notification_id: id.clone(),
                action_id: Some("maybe".into()),
                text: None,
            }),
            Err(PerchError::InvalidReply { .. })
        ));
        assert!(matches!(
            book.reply_payload(NotificationReply {
                notification_id: id,
                action_id: None,
                text: Some("   ".into()),
            }),
            Err(PerchError::InvalidReply { .. })
        ));
    }

    #[test]
    fn the_book_survives_a_restart_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let book = NotificationBook::open(dir.path());
        let first = shown(&book, &[]);
        let ids: Vec<String> = (0..BOOK_CAPACITY).map(|_| shown(&book, &[])).collect();
        let reopened = NotificationBook::open(dir.path());
        let reply = |id: &str| NotificationReply {
            notification_id: id.into(),
            action_id: None,
            text: Some("ok".into()),
        };
        assert!(reopened.reply_payload(reply(&ids[0])).is_ok());
        assert!(
            reopened
                .reply_payload(reply(&ids[BOOK_CAPACITY - 1]))
                .is_ok()
        );
        assert!(
            matches!(
                reopened.reply_payload(reply(&first)),
                Err(PerchError::UnknownNotification { .. })
            ),
            "the oldest was pushed out"
        );
        // A corrupt file is an empty book, not a failure.
        std::fs::write(dir.path().join(BOOK_FILE), b"{not json").unwrap();
        let empty = NotificationBook::open(dir.path());
        assert!(empty.reply_payload(reply(&ids[0])).is_err());
    }
}
