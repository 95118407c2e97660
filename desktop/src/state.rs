//! What the tray says: one of four states and a status line, derived by a pure function from
//! the host, the operator connection, pending pairing requests, running turns and devices.

use serde::Serialize;

use perch_client::ConnectionState;

use crate::host::HostState;
use crate::tracker::{DeviceView, PendingPairing};

/// Longest status row in the menu, in characters; the tooltip keeps the whole text.
pub const MENU_LABEL_CHARS: usize = 90;

/// The tray icon's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TrayState {
    /// Everything is fine and nothing runs.
    Idle,
    /// Starting, connecting, or the assistant is answering.
    Working,
    /// Someone waits for the user: a pairing request.
    Attention,
    /// No usable host, and why.
    Error {
        /// One line.
        reason: String,
    },
}

/// The operator connection as the tray sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Dialing or waiting for `hello-ok`.
    Connecting,
    /// Admitted.
    Connected,
    /// Not connected; the client retries.
    Lost {
        /// Why.
        reason: String,
    },
    /// The host refused us (operator token) or we have no token; no automatic retry.
    Refused {
        /// Why.
        reason: String,
    },
}

impl Link {
    /// The tray's view of the client's state.
    pub fn from_client(state: &ConnectionState) -> Link {
        match state {
            ConnectionState::Connecting => Link::Connecting,
            ConnectionState::Connected { .. } => Link::Connected,
            ConnectionState::Disconnected { reason, .. } => Link::Lost {
                reason: reason.clone(),
            },
            ConnectionState::Unauthorized { reason } => Link::Refused {
                reason: reason.clone(),
            },
            ConnectionState::Stopped => Link::Lost {
                reason: "the connection was closed".into(),
            },
        }
    }
}

/// Everything the tray state depends on.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The host supervisor's state.
    pub host: &'a HostState,
    /// The operator connection (meaningful while the host runs).
    pub link: &'a Link,
    /// Pairing requests waiting.
    pub pending: &'a [PendingPairing],
    /// Agent turns running.
    pub active_turns: u32,
    /// Paired nodes.
    pub devices: &'a [DeviceView],
}

/// The tray state and its status line ("Perch: idle · 2 devices online").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Derived {
    /// The icon's state.
    pub tray: TrayState,
    /// Tooltip and first menu row.
    pub status: String,
}

/// The pure derivation. Priority: no host (error) > connection trouble > pairing requests
/// waiting (attention) > a turn running (working) > idle.
pub fn derive(i: &Inputs<'_>) -> Derived {
    let error = |reason: String| Derived {
        status: format!("Perch: error — {reason}"),
        tray: TrayState::Error { reason },
    };
    let working = |status: &str| Derived {
        tray: TrayState::Working,
        status: status.to_string(),
    };
    match i.host {
        HostState::Error { reason, .. } => return error(reason.clone()),
        HostState::Starting => return working("Perch: starting the host…"),
        HostState::Stopped => return working("Perch: stopping…"),
        HostState::Running { .. } => {}
    }
    match i.link {
        Link::Refused { reason } => return error(reason.clone()),
        Link::Lost { reason } => {
            return error(format!("lost the connection to the host: {reason}"));
        }
        Link::Connecting => return working("Perch: connecting to the host…"),
        Link::Connected => {}
    }
    if !i.pending.is_empty() {
        let n = i.pending.len();
        return Derived {
            tray: TrayState::Attention,
            status: format!(
                "Perch: {n} pairing {} waiting",
                if n == 1 { "request" } else { "requests" }
            ),
        };
    }
    let online = i.devices.iter().filter(|d| d.online).count();
    let devices = match online {
        0 => "no devices online".to_string(),
        1 => "1 device online".to_string(),
        n => format!("{n} devices online"),
    };
    if i.active_turns > 0 {
        return Derived {
            tray: TrayState::Working,
            status: format!("Perch: answering · {devices}"),
        };
    }
    Derived {
        tray: TrayState::Idle,
        status: format!("Perch: idle · {devices}"),
    }
}

/// `text` cut to `max` characters with an ellipsis, for menu rows.
pub fn menu_label(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> HostState {
        HostState::Running {
            addr: "127.0.0.1:18789".parse().unwrap(),
            mode: crate::host::HostMode::Embedded,
            host_id: "h".into(),
        }
    }

    fn pending(name: &str) -> PendingPairing {
        PendingPairing {
            request_id: format!("req-{name}"),
            device_id: "d".into(),
            display_name: name.into(),
            platform: "ios".into(),
            verification_code: Some("123 456".into()),
            requested_at_ms: 1,
        }
    }

    fn device(online: bool) -> DeviceView {
        DeviceView {
            node_id: "n".into(),
            display_name: "Phone".into(),
            platform: "ios".into(),
            online,
            last_seen_ms: Some(1),
        }
    }

    fn derive_with(
        host: &HostState,
        link: &Link,
        pending: &[PendingPairing],
        turns: u32,
        devices: &[DeviceView],
    ) -> Derived {
        derive(&Inputs {
            host,
            link,
            pending,
            active_turns: turns,
            devices,
        })
    }

    #[test]
    fn idle_counts_online_devices() {
        let host = running();
        let d = derive_with(&host, &Link::Connected, &[], 0, &[]);
        assert_eq!(d.tray, TrayState::Idle);
        assert_eq!(d.status, "Perch: idle · no devices online");
        let d = derive_with(
            &host,
            &Link::Connected,
            &[],
            0,
            &[device(true), device(false)],
        );
        assert_eq!(d.status, "Perch: idle · 1 device online");
        let d = derive_with(
            &host,
            &Link::Connected,
            &[],
            0,
            &[device(true), device(true)],
        );
        assert_eq!(d.status, "Perch: idle · 2 devices online");
    }

    #[test]
    fn pairing_requests_need_attention() {
        let host = running();
        let one = [pending("Ana's iPhone")];
        let d = derive_with(&host, &Link::Connected, &one, 0, &[]);
        assert_eq!(d.tray, TrayState::Attention);
        assert_eq!(d.status, "Perch: 1 pairing request waiting");
        let two = [pending("a"), pending("b")];
        let d = derive_with(&host, &Link::Connected, &two, 3, &[]);
        assert_eq!(d.tray, TrayState::Attention, "attention beats working");
        assert_eq!(d.status, "Perch: 2 pairing requests waiting");
    }

    #[test]
    fn running_turns_are_working() {
        let host = running();
        let d = derive_with(&host, &Link::Connected, &[], 1, &[device(true)]);
        assert_eq!(d.tray, TrayState::Working);
        assert_eq!(d.status, "Perch: answering · 1 device online");
    }

    #[test]
    fn host_errors_win_over_everything() {
        let host = HostState::Error {
            reason: "cannot listen on 127.0.0.1:18789: address in use".into(),
            hint: None,
        };
        let d = derive_with(&host, &Link::Connected, &[pending("a")], 2, &[]);
        assert_eq!(
            d.tray,
            TrayState::Error {
                reason: "cannot listen on 127.0.0.1:18789: address in use".into()
            }
        );
        assert_eq!(
            d.status,
            "Perch: error — cannot listen on 127.0.0.1:18789: address in use"
        );
    }

    #[test]
    fn starting_and_connecting_are_working() {
        let d = derive_with(&HostState::Starting, &Link::Connected, &[], 0, &[]);
        assert_eq!(d.tray, TrayState::Working);
        assert_eq!(d.status, "Perch: starting the host…");
        let d = derive_with(&running(), &Link::Connecting, &[pending("a")], 0, &[]);
        assert_eq!(
            d.tray,
            TrayState::Working,
            "requests are unknown until connected"
        );
        assert_eq!(d.status, "Perch: connecting to the host…");
    }

    #[test]
    fn connection_trouble_is_an_error_with_the_reason() {
        let refused = Link::Refused {
            reason: "the host refused the operator token: token-mismatch".into(),
        };
        let d = derive_with(&running(), &refused, &[], 0, &[]);
        assert!(
            matches!(&d.tray, TrayState::Error { reason } if reason.contains("operator token"))
        );
        let lost = Link::Lost {
            reason: "the host shut down".into(),
        };
        let d = derive_with(&running(), &lost, &[], 0, &[]);
        assert_eq!(
            d.status,
            "Perch: error — lost the connection to the host: the host shut down"
        );
    }

    #[test]
    fn link_from_client_states() {
        assert_eq!(
            Link::from_client(&ConnectionState::Connecting),
            Link::Connecting
        );
        assert_eq!(
            Link::from_client(&ConnectionState::Unauthorized { reason: "r".into() }),
            Link::Refused { reason: "r".into() }
        );
        assert!(matches!(
            Link::from_client(&ConnectionState::Disconnected {
                reason: "r".into(),
                retry_in: None
            }),
            Link::Lost { .. }
        ));
        assert!(matches!(
            Link::from_client(&ConnectionState::Stopped),
            Link::Lost { .. }
        ));
    }

    #[test]
    fn menu_labels_are_cut_with_an_ellipsis() {
        assert_eq!(menu_label("short", 10), "short");
        assert_eq!(menu_label("abcdefghijkl", 5), "abcd…");
        assert_eq!(menu_label("ééééé", 5), "ééééé");
    }
}
