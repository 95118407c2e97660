//! Desktop notifications: a pure decision ([`decide`]) from what the tracker observed, and a
//! best-effort sender (no notification service → a debug log line, nothing else).
//!
//! "In use", for a node going offline: it was the active device in presence (the one the user
//! touched last), it reported user activity within the last five minutes, or it answered a
//! command (for anyone: an operator or the assistant) within the last five minutes or left
//! with one still running (`lastInvokeMs` in the host's `node.status`). This app's own node is
//! never reported: it goes offline when the app quits.

use serde::Serialize;

use crate::tracker::Observation;

/// Application name shown by the notification service.
pub const APP_NAME: &str = "Perch";
/// A node counts as in use if the user touched it within this window, ms.
pub const IN_USE_WINDOW_MS: i64 = 5 * 60 * 1000;

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The title.
    pub summary: String,
    /// The text.
    pub body: String,
}

/// What the decision needs besides the observation.
#[derive(Debug, Clone, Default)]
pub struct NotifyContext {
    /// Host clock now, ms since the epoch (compared with activity times from the host).
    pub now_ms: i64,
    /// The chat window is on screen (then a finished turn needs no notification).
    pub chat_visible: bool,
    /// This app's own node, never reported.
    pub self_node_id: Option<String>,
}

/// Whether `obs` deserves a notification, and its text.
pub fn decide(obs: &Observation, ctx: &NotifyContext) -> Option<Notice> {
    match obs {
        Observation::PairRequested {
            display_name,
            platform,
            verification_code,
            ..
        } => Some(Notice {
            summary: format!("{display_name} wants to pair"),
            body: match verification_code {
                Some(code) => format!(
                    "{display_name} ({platform}) asks to join Perch. Approve it from the Perch menu if the device shows code {code}."
                ),
                None => format!(
                    "{display_name} ({platform}) asks to join Perch. It shows no verification code: approve it from the Perch menu only if you just started pairing it."
                ),
            },
        }),
        Observation::NodeOffline {
            node_id,
            display_name,
            was_active,
            last_activity_ms,
            last_invoke_ms,
            at_ms,
        } => {
            if ctx.self_node_id.as_deref() == Some(node_id.as_str()) {
                return None;
            }
            let now = ctx.now_ms.max(*at_ms);
            let within = |t: &Option<i64>| t.is_some_and(|t| now - t <= IN_USE_WINDOW_MS);
            (*was_active || within(last_activity_ms) || within(last_invoke_ms)).then(|| Notice {
                summary: format!("{display_name} went offline"),
                body: format!(
                    "{display_name} was in use and disconnected from Perch. Requests for it wait until it is back."
                ),
            })
        }
        Observation::TurnFinished { preview, .. } => {
            if ctx.chat_visible {
                return None;
            }
            let body = if preview.trim().is_empty() {
                "The assistant finished answering.".to_string()
            } else {
                preview.clone()
            };
            Some(Notice {
                summary: "Perch answered".into(),
                body,
            })
        }
    }
}

/// Shows `notice` on a blocking thread (a D-Bus round trip on Linux); failures are logged at
/// debug level, because a desktop without a notification service is normal.
pub fn send(notice: Notice) {
    tokio::task::spawn_blocking(move || {
        let mut n = notify_rust::Notification::new();
        n.appname(APP_NAME)
            .summary(&notice.summary)
            .body(&notice.body);
        if let Err(e) = n.show() {
            tracing::debug!(error = %e, "notification not shown");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000_000;

    fn ctx() -> NotifyContext {
        NotifyContext {
            now_ms: NOW,
            chat_visible: false,
            self_node_id: Some("me".into()),
        }
    }

    fn offline(node: &str, was_active: bool, activity: Option<i64>) -> Observation {
        Observation::NodeOffline {
            node_id: node.into(),
            display_name: "Ana's iPhone".into(),
            was_active,
            last_activity_ms: activity,
            last_invoke_ms: None,
            at_ms: NOW,
        }
    }

    #[test]
    fn a_node_that_served_a_command_lately_is_in_use() {
        let served = |at: Option<i64>| Observation::NodeOffline {
            node_id: "p".into(),
            display_name: "Kitchen".into(),
            was_active: false,
            last_activity_ms: None,
            last_invoke_ms: at,
            at_ms: NOW,
        };
        assert!(decide(&served(Some(NOW - 1_000)), &ctx()).is_some());
        assert!(decide(&served(Some(NOW - IN_USE_WINDOW_MS - 1)), &ctx()).is_none());
        assert!(decide(&served(None), &ctx()).is_none());
    }

    #[test]
    fn pairing_requests_always_notify_with_the_code() {
        let n = decide(
            &Observation::PairRequested {
                request_id: "r".into(),
                display_name: "Kitchen".into(),
                platform: "linux".into(),
                verification_code: Some("123 456".into()),
            },
            &ctx(),
        )
        .unwrap();
        assert_eq!(n.summary, "Kitchen wants to pair");
        assert!(
            n.body.contains("123 456") && n.body.contains("(linux)"),
            "{}",
            n.body
        );
    }

    #[test]
    fn offline_notifies_only_for_devices_in_use() {
        assert!(
            decide(&offline("p", true, None), &ctx()).is_some(),
            "active device"
        );
        assert!(
            decide(&offline("p", false, Some(NOW - 60_000)), &ctx()).is_some(),
            "touched a minute ago"
        );
        assert!(
            decide(&offline("p", false, Some(NOW - IN_USE_WINDOW_MS)), &ctx()).is_some(),
            "exactly five minutes"
        );
        assert!(
            decide(
                &offline("p", false, Some(NOW - IN_USE_WINDOW_MS - 1)),
                &ctx()
            )
            .is_none(),
            "older than five minutes"
        );
        assert!(
            decide(&offline("p", false, None), &ctx()).is_none(),
            "never used"
        );
        assert!(
            decide(&offline("me", true, Some(NOW)), &ctx()).is_none(),
            "our own node"
        );
        let n = decide(&offline("p", true, None), &ctx()).unwrap();
        assert_eq!(n.summary, "Ana's iPhone went offline");
    }

    #[test]
    fn finished_turns_notify_only_when_chat_is_hidden() {
        let done = Observation::TurnFinished {
            turn_id: "t".into(),
            session_key: "main".into(),
            preview: "It is 21 °C in Vienna.".into(),
        };
        let n = decide(&done, &ctx()).unwrap();
        assert_eq!(n.summary, "Perch answered");
        assert_eq!(n.body, "It is 21 °C in Vienna.");
        let visible = NotifyContext {
            chat_visible: true,
            ..ctx()
        };
        assert!(decide(&done, &visible).is_none());
        let empty = Observation::TurnFinished {
            turn_id: "t".into(),
            session_key: "main".into(),
            preview: " ".into(),
        };
        assert_eq!(
            decide(&empty, &ctx()).unwrap().body,
            "The assistant finished answering."
        );
    }
}
