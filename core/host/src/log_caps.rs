//! What the host's log never carries, whatever level `PERCH_LOG` asks for: the WebSocket
//! library writes every frame it sends or receives at trace level, and frames carry operator
//! tokens and the keys a settings screen stores (`settings.secret.set`). Every process that
//! logs (`perch`, the menu-bar app) adds these directives after the user's filter.

/// Filter directives added last, so they win over `PERCH_LOG=trace` (and over
/// `PERCH_LOG=tungstenite=trace`): the wire libraries log at most at debug, which names frames
/// but never prints their payload.
pub const WIRE_LOG_CAPS: &[&str] = &["tungstenite=debug", "tokio_tungstenite=debug"];
