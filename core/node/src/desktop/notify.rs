//! `system.notify`: shows a desktop notification through the platform's notification service
//! (on Linux the `org.freedesktop.Notifications` D-Bus service, via notify-rust).

use futures_util::future::BoxFuture;
use perch_protocol::ErrorCode;
use perch_protocol::node_commands::{NotifyParams, NotifyResult, SYSTEM_NOTIFY};
use serde_json::Value;

use crate::capability::{CapabilityHandler, CommandError};

/// The application name notifications are shown under.
pub const APP_NAME: &str = "Perch";
pub use crate::shapes::{MAX_BODY_BYTES, MAX_TITLE_BYTES};

/// Answers `system.notify` by handing the notification to the desktop's notification service.
#[derive(Debug, Clone, Default)]
pub struct NotifyHandler;

impl NotifyHandler {
    /// The handler.
    pub fn new() -> Self {
        Self
    }

    /// Validated params: a non-empty title and bounded sizes, or `INVALID_REQUEST`.
    pub fn validate(params: Value) -> Result<NotifyParams, CommandError> {
        crate::shapes::validate_notify(params)
    }
}

/// Shows one notification; blocking (D-Bus round trip), so it runs on a blocking thread.
fn show(title: &str, body: &str) -> Result<NotifyResult, CommandError> {
    let mut n = notify_rust::Notification::new();
    n.appname(APP_NAME).summary(title).body(body);
    match n.show() {
        Ok(handle) => Ok(NotifyResult {
            delivered: true,
            notification_id: notification_id(&handle),
        }),
        Err(e) => Err(CommandError::new(
            ErrorCode::NotificationsUnavailable,
            format!("no notification service available: {e}"),
        )),
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
fn notification_id(handle: &notify_rust::NotificationHandle) -> Option<String> {
    Some(handle.id().to_string())
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn notification_id<T>(_handle: &T) -> Option<String> {
    None
}

impl CapabilityHandler for NotifyHandler {
    fn commands(&self) -> Vec<String> {
        vec![SYSTEM_NOTIFY.into()]
    }

    fn caps(&self) -> Vec<String> {
        vec!["system".into()]
    }

    fn invoke(
        &self,
        _command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        let params = Self::validate(params);
        Box::pin(async move {
            let p = params?;
            let shown = tokio::task::spawn_blocking(move || show(&p.title, &p.body))
                .await
                .map_err(|e| CommandError::internal(format!("notification task failed: {e}")))??;
            serde_json::to_value(shown).map_err(|e| CommandError::internal(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_are_validated() {
        let ok = NotifyHandler::validate(json!({"title": "Hi", "body": "there"})).unwrap();
        assert_eq!((ok.title.as_str(), ok.body.as_str()), ("Hi", "there"));
        for bad in [
            json!({"body": "no title"}),
            json!({"title": "", "body": "x"}),
            json!({"title": "   ", "body": "x"}),
            json!({"title": 5, "body": "x"}),
            json!({"title": "t"}),
            json!({"title": "x".repeat(MAX_TITLE_BYTES + 1), "body": ""}),
            json!({"title": "t", "body": "x".repeat(MAX_BODY_BYTES + 1)}),
            Value::Null,
        ] {
            let e = NotifyHandler::validate(bad.clone()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}");
        }
    }
}
