//! The app's side of a phone's life: on screen or not, and the network coming and going. A
//! phone app reports both; the runtime uses them to refuse what needs the screen while the app
//! is in the background (`NODE_BACKGROUND_UNAVAILABLE`, as OpenClaw's apps answer) and to try
//! the host again at once when the app returns or the network changes, instead of waiting out
//! its backoff. A socket that survived the background is kept as it is: coming back to the
//! foreground never forces a reconnect.

use std::sync::Arc;

use perch_protocol::ErrorCode;
use tokio::sync::{Notify, watch};

use crate::capability::CommandError;

/// Whether the app is on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppPhase {
    /// On screen (the default: desktops are always here).
    #[default]
    Foreground,
    /// Not on screen; the OS may suspend the app at any time.
    Background,
}

/// The embedder's handle on the node's lifecycle: cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    phase: Arc<watch::Sender<AppPhase>>,
    wake: Arc<Notify>,
}

impl Lifecycle {
    pub(crate) fn new(wake: Arc<Notify>) -> Self {
        Self {
            phase: Arc::new(watch::Sender::new(AppPhase::Foreground)),
            wake,
        }
    }

    /// Reports the app entering or leaving the screen. Returning to the foreground ends a
    /// reconnect wait at once; a live connection is left alone.
    pub fn set_phase(&self, phase: AppPhase) {
        let previous = self.phase.send_replace(phase);
        if previous != phase {
            tracing::info!(?phase, "app phase changed");
        }
        if phase == AppPhase::Foreground && previous == AppPhase::Background {
            self.wake.notify_one();
        }
    }

    /// The phase the app last reported.
    pub fn phase(&self) -> AppPhase {
        *self.phase.borrow()
    }

    /// Reports that the network changed (Wi-Fi joined, cellular back): a node waiting to
    /// reconnect tries now.
    pub fn network_changed(&self) {
        tracing::info!("network changed");
        self.wake.notify_one();
    }
}

/// Whether `command` may run now: one that needs the screen is refused in the background.
pub fn gate(phase: AppPhase, command: &str, needs_foreground: bool) -> Result<(), CommandError> {
    if phase == AppPhase::Background && needs_foreground {
        return Err(CommandError::new(
            ErrorCode::NodeBackgroundUnavailable,
            format!(
                "NODE_BACKGROUND_UNAVAILABLE: {command} needs the app on screen; open it and try again"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_screen_commands_are_refused_and_only_in_the_background() {
        assert!(gate(AppPhase::Foreground, "canvas.present", true).is_ok());
        assert!(gate(AppPhase::Background, "location.get", false).is_ok());
        let e = gate(AppPhase::Background, "canvas.present", true).unwrap_err();
        assert_eq!(e.code, ErrorCode::NodeBackgroundUnavailable);
        assert!(
            e.message
                .starts_with("NODE_BACKGROUND_UNAVAILABLE: canvas.present"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn coming_back_wakes_a_waiting_node_and_nothing_else_does() {
        let wake = Arc::new(Notify::new());
        let life = Lifecycle::new(wake.clone());
        assert_eq!(life.phase(), AppPhase::Foreground);
        // Foreground to foreground and going to the background wake nobody.
        life.set_phase(AppPhase::Foreground);
        life.set_phase(AppPhase::Background);
        assert_eq!(life.phase(), AppPhase::Background);
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), wake.notified());
        assert!(quiet.await.is_err(), "a wake without a reason");
        // Back on screen: the waiting node is woken.
        life.set_phase(AppPhase::Foreground);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified());
        assert!(woken.await.is_ok());
        life.network_changed();
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified());
        assert!(woken.await.is_ok());
    }
}
